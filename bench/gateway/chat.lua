-- wrk script of bench/gateway: POST /v1/chat/completions, whole or streamed (BENCH_STREAM=1),
-- with a bearer key (BENCH_KEY); BENCH_DELAY_MS > 0 waits a random 0 to 2 x that many
-- milliseconds (mean: that) between a connection's answer and its next request, to hold a
-- rate (wrk has no open-loop mode). done() prints one line that run.sh reads.
local stream = os.getenv("BENCH_STREAM") == "1"
local key = os.getenv("BENCH_KEY") or ""
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "") or 0

wrk.method = "POST"
wrk.body = '{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant."},'
  .. '{"role":"user","content":"Summarise in one sentence: the programme funds compute for research teams."}],'
  .. '"max_tokens":16' .. (stream and ',"stream":true' or '') .. '}'
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

if delay_ms > 0 then
  function delay()
    return math.floor(math.random() * 2 * delay_ms + 0.5)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
