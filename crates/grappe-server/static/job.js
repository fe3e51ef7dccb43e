// The job page: follow the output as it is written; reload once the job has ended, for its
// final state. The job's id comes from this script's data-job attribute.
(async () => {
  const script = document.currentScript;
  const job = script && script.dataset.job;
  const pre = document.getElementById("log");
  if (!job || !pre) return;
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
  location.reload();
})();
