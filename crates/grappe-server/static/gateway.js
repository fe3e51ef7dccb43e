// The gateway's playground: send the form, show the model's answer as its events arrive.
(() => {
  const form = document.getElementById("playground-form");
  const out = document.getElementById("playground-answer");
  if (!form || !out) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    body.set("stream", "1");
    out.textContent = "";
    const button = document.getElementById("playground-submit");
    button.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body, credentials: "same-origin" });
      if (!response.ok || !response.body) {
        const error = await response.json().catch(() => null);
        out.textContent = (error && error.error && error.error.message) || response.statusText;
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        let end;
        while ((end = pending.indexOf("\n\n")) >= 0) {
          const line = pending.slice(0, end).trim();
          pending = pending.slice(end + 2);
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) out.textContent += `\n[${chunk.error.message}]`;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) out.textContent += delta.content;
        }
      }
    } finally {
      button.disabled = false;
    }
  });
})();
