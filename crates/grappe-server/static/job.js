// The job page, live: the output followed as it is written, and the job's state, facts,
// timeline and metric charts refreshed every two seconds (from the page itself, so that they
// read exactly as the server renders them) until the job has ended; no reload. A region is
// replaced only when it changed, so that the keyboard's focus stays put. The cancel button asks
// first, and goes once the job ended or its cancellation was asked. The job's id comes from this
// script's data-job attribute.
(() => {
  const script = document.currentScript;
  const job = script && script.dataset.job;
  if (!job) return;

  const cancel = document.getElementById("job-cancel-form");
  if (cancel) {
    cancel.addEventListener("submit", (event) => {
      if (!window.confirm(cancel.dataset.confirm)) event.preventDefault();
    });
  }

  let active = true;
  const refresh = async () => {
    const response = await fetch(location.pathname, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["job-live", "job-history"]) {
      const now = document.getElementById(id);
      const fresh = page.getElementById(id);
      if (now && fresh && now.innerHTML !== fresh.innerHTML) now.replaceWith(fresh);
    }
    const live = page.getElementById("job-live");
    active = live && live.dataset.active === "true";
    const form = document.getElementById("job-cancel-form");
    if (form && !page.getElementById("job-cancel-form")) form.remove();
  };
  const poll = async () => {
    try {
      await refresh();
    } catch (_) {
      // A lost connection: try again at the next tick.
    }
    if (active) setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);

  const pre = document.getElementById("log");
  if (!pre) return;
  (async () => {
    const response = await fetch(`/api/v1/jobs/${job}/logs?follow=true`, { credentials: "same-origin" });
    if (!response.ok || !response.body) return;
    pre.textContent = "";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pre.textContent += decoder.decode(value, { stream: true });
      pre.scrollTop = pre.scrollHeight;
    }
    await refresh();
  })();
})();
