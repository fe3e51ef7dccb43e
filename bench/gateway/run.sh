#!/usr/bin/env bash
# bench/gateway: what the AI-as-a-Service gateway adds to a request, against LiteLLM's proxy in
# the same run, both in front of the same minimal model server on loopback (upstream.rs, built
# as the example `gateway_upstream`, one thread: it answers in tens of microseconds).
#   bench/gateway/run.sh [DURATION_S] [MEMORY_S]
# (default 10 s per measurement, 60 s for the memory run). wrk (chat.lua) sends
# POST /v1/chat/completions, whole or streamed, to the upstream alone, to Grappe (release,
# `grappe serve` on SQLite in a temporary directory: a project with a large GPU allocation, a
# key with per-minute limits, the model registered through the API; every request looked up,
# reserved, forwarded, settled and recorded) and to LiteLLM (`litellm[proxy]` in
# bench/gateway/.venv, a master key and no database: no virtual keys, budgets or spend logs;
# LITELLM_WORKERS uvicorn workers, default 2). Each: one connection (sequential); a held rate of
# RATE requests/s (default 1,000: RATE_CONNECTIONS connections, 50 by default, each waiting a
# random delay between requests: wrk is closed-loop, the rate reached is printed); the most
# requests/s with MAX_CONNECTIONS (default 32). Overhead: the proxy's percentile minus the
# upstream's at the same load. Memory: resident set (VmRSS, the whole process tree for LiteLLM)
# idle, after the measurements, then every 5 s through MEMORY_S seconds at MAX_CONNECTIONS.
# Last, Grappe's usage records are checked against the requests wrk saw answered.
# BENCH_GATEWAY_GRAPPE=path/to/grappe measures another build of the server; SKIP_LITELLM=1
# leaves the peer out.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
memory_s=${2:-60}
rate=${RATE:-1000}
rate_connections=${RATE_CONNECTIONS:-50}
max_connections=${MAX_CONNECTIONS:-32}
litellm_workers=${LITELLM_WORKERS:-2}
litellm_version=1.108.7
target=${CARGO_TARGET_DIR:-target}
grappe_bin=${BENCH_GATEWAY_GRAPPE:-$target/release/grappe}
peers="upstream grappe"
[ "${SKIP_LITELLM:-0}" = 1 ] || peers="$peers litellm"
venv=bench/gateway/.venv
admin_token=bench-gateway-admin-token-0123456789
litellm_key=sk-bench-gateway-master-key

command -v wrk >/dev/null || apt-get install -y wrk
if [[ $peers == *litellm* && ! -x "$venv/bin/litellm" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "litellm[proxy]==$litellm_version"
fi
scripts/build.sh --example gateway_upstream

work=$(mktemp -d)
upstream_pid= grappe_pid= litellm_pid=
cleanup() {
  [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null
  [ -n "$grappe_pid" ] && kill "$grappe_pid" 2>/dev/null
  # LiteLLM runs in its own session (setsid): its workers go with it.
  [ -n "$litellm_pid" ] && kill -- "-$litellm_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # file, pattern: waits up to 60 s for a line
  for _ in $(seq 1 600); do grep -qs "$2" "$1" && return 0; sleep 0.1; done
  echo "no '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The upstream.
"$target/release/examples/gateway_upstream" 127.0.0.1:0 1 >"$work/upstream.out" 2>&1 &
upstream_pid=$!
wait_for "$work/upstream.out" "listening on"
upstream=$(awk '/listening on/ { print $3 }' "$work/upstream.out")

# Grappe, without --demo, and what a client of the gateway needs: a project, its key, the model.
mkdir -p "$work/grappe"
GRAPPE_ADMIN_TOKEN=$admin_token GRAPPE_LOG=warn "$grappe_bin" serve --addr 127.0.0.1:0 \
  --database "sqlite://$work/grappe/grappe.db?mode=rwc" --data-dir "$work/grappe" >"$work/grappe.out" 2>&1 &
grappe_pid=$!
wait_for "$work/grappe.out" "listening on"
grappe=$(awk '/listening on/ { print $4 }' "$work/grappe.out")
sleep 1
bare_mb=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$grappe_pid/status")
api() { # method, path, JSON body
  curl -sf -X "$1" -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
    ${3:+-d "$3"} "$grappe$2"
}
project=$(api POST /api/v1/projects '{"name":"bench-gateway","gpu_hours":1000000,"cpu_hours":10}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
grappe_key=$(api POST "/api/v1/projects/$project/keys" \
  '{"name":"bench","limits":{"requests_per_minute":1000000000,"tokens_per_minute":1000000000}}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
api POST /api/v1/gateway/models "{\"name\":\"bench-model\",\"upstream\":\"$upstream\",\
\"input_gpu_ms_per_1k\":10,\"output_gpu_ms_per_1k\":40,\"max_output_tokens\":4096}" >/dev/null

# LiteLLM: the same model, the same upstream, a master key, no database.
if [[ $peers == *litellm* ]]; then
litellm_port=$(free_port)
cat >"$work/litellm.yaml" <<EOF
model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-model
      api_base: $upstream
      api_key: unused
general_settings:
  master_key: $litellm_key
litellm_settings:
  drop_params: true
EOF
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR setsid "$venv/bin/litellm" --config "$work/litellm.yaml" \
  --host 127.0.0.1 --port "$litellm_port" --num_workers "$litellm_workers" >"$work/litellm.out" 2>&1 &
litellm_pid=$!
litellm=http://127.0.0.1:$litellm_port/v1
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$litellm_port/health/liveliness" && break
  sleep 0.5
done
curl -sf -o /dev/null "http://127.0.0.1:$litellm_port/health/liveliness" || { cat "$work/litellm.out" >&2; exit 1; }
fi

rss_mb() { # peer: resident MB of its process (LiteLLM: its session, master and workers)
  case $1 in
    grappe) awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$grappe_pid/status" ;;
    litellm) ps -o rss= --sid "$litellm_pid" | awk '{ s += $1 } END { printf "%.1f", s / 1024 }' ;;
  esac
}

base_of() { case $1 in upstream) echo "$upstream" ;; grappe) echo "$grappe/v1" ;; litellm) echo "$litellm" ;; esac; }
key_of() { case $1 in upstream) echo "" ;; grappe) echo "$grappe_key" ;; litellm) echo "$litellm_key" ;; esac; }

# Each peer answers both kinds of request before anything is measured.
for peer in $peers; do
  for stream in false true; do
    answer=$(curl -sf -H "Authorization: Bearer $(key_of $peer)" -H 'Content-Type: application/json' \
      -d "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":$stream}" \
      "$(base_of $peer)/chat/completions") || { echo "$peer does not answer (stream: $stream)" >&2; exit 1; }
    grep -q '"content"' <<<"$answer" || { echo "$peer answered: $answer" >&2; exit 1; }
  done
done

declare -A fresh_mb idle_mb
fresh_mb[grappe]=$(rss_mb grappe)
[[ $peers == *litellm* ]] && fresh_mb[litellm]=$(rss_mb litellm)

# run_wrk peer stream connections delay_ms seconds: "req/s p50_ms p99_ms non2xx errors requests"
run_wrk() {
  local out
  out=$(BENCH_STREAM=$2 BENCH_KEY=$(key_of "$1") BENCH_DELAY_MS=$4 wrk -t1 -c"$3" -d"$5s" --timeout 10s \
    -s bench/gateway/chat.lua "$(base_of "$1")/chat/completions" | grep '^RESULT')
  awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         printf "%.0f %.3f %.3f %d %d %d\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000,
           v["p99_us"] / 1000, v["non2xx"], v["errors"], v["requests"] }' <<<"$out"
}

# Warm each path (connection pools, lazy imports) before anything is measured; Grappe's answers
# are counted, to check its usage records at the end.
grappe_answered=0
for peer in $peers; do
  for stream in 0 1; do
    read -r _ _ _ non2xx _ requests < <(run_wrk "$peer" "$stream" 4 0 2)
    [ "$peer" = grappe ] && grappe_answered=$((grappe_answered + requests - non2xx))
  done
done
sleep 1
idle_mb[grappe]=$(rss_mb grappe)
[[ $peers == *litellm* ]] && idle_mb[litellm]=$(rss_mb litellm)

echo "bench/gateway: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg);" \
  "wrk -t1, ${duration} s per row; LiteLLM $("$venv/bin/pip" show litellm | awk '/^Version/ { print $2 }')," \
  "$litellm_workers workers, no database; Grappe: $grappe_bin"
echo
echo "| body | load | peer | req/s | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms | non-2xx / errors |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A seq_p50 base_p50 base_p99
for stream in 0 1; do
  body=$([ "$stream" = 1 ] && echo stream || echo whole)
  for load in sequential rate max; do
    for peer in $peers; do
      case $load in
        sequential) connections=1 delay=0 label="1 connection" ;;
        rate)
          connections=$rate_connections label="$rate/s asked ($rate_connections conn.)"
          # Each connection's cycle: its latency and its mean wait, so that all together ask $rate/s.
          delay=$(awk -v c="$connections" -v r="$rate" -v l="${seq_p50[$peer]}" 'BEGIN { d = c * 1000 / r - l; printf "%.3f", (d > 0 ? d : 0) }')
          ;;
        max) connections=$max_connections delay=0 label="max ($max_connections conn.)" ;;
      esac
      read -r rps p50 p99 non2xx errors requests < <(run_wrk "$peer" "$stream" "$connections" "$delay" "$duration")
      [ "$load" = sequential ] && seq_p50[$peer]=$p50
      [ "$peer" = grappe ] && grappe_answered=$((grappe_answered + requests - non2xx))
      if [ "$peer" = upstream ]; then
        base_p50[$load]=$p50 base_p99[$load]=$p99
        over50="" over99=""
      elif [ "$load" = max ]; then
        over50="" over99=""
      else
        over50=$(awk -v a="$p50" -v b="${base_p50[$load]}" 'BEGIN { printf "%.3f", a - b }')
        over99=$(awk -v a="$p99" -v b="${base_p99[$load]}" 'BEGIN { printf "%.3f", a - b }')
      fi
      echo "| $body | $label | $peer | $rps | $p50 | $p99 | $over50 | $over99 | $non2xx / $errors |"
    done
  done
done

echo
echo "Resident memory (MB): Grappe just started: $bare_mb; idle after the setup requests, idle after warm-up, after the rows above, then every 5 s of ${memory_s} s of whole" \
  "requests with $max_connections connections"
echo
echo "| peer | set up, idle | warmed up, idle | after the rows | during the run (every 5 s) | req/s of the run | non-2xx / errors |"
echo "|---|---|---|---|---|---|---|"
for peer in ${peers#upstream }; do
  after=$(rss_mb "$peer")
  BENCH_STREAM=0 BENCH_KEY=$(key_of $peer) wrk -t1 -c"$max_connections" -d"${memory_s}s" --timeout 10s \
    -s bench/gateway/chat.lua "$(base_of $peer)/chat/completions" >"$work/memory-$peer.out" &
  wrk_pid=$!
  samples=()
  for _ in $(seq 5 5 "$memory_s"); do
    sleep 5
    samples+=("$(rss_mb "$peer")")
  done
  wait "$wrk_pid"
  read -r rps non2xx errors requests < <(awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%.0f %d %d %d\n", v["requests"] / (v["duration_us"] / 1e6), v["non2xx"], v["errors"], v["requests"] }' \
    "$work/memory-$peer.out")
  [ "$peer" = grappe ] && grappe_answered=$((grappe_answered + requests - non2xx))
  echo "| $peer | ${fresh_mb[$peer]} | ${idle_mb[$peer]} | $after | ${samples[*]} | $rps | $non2xx / $errors |"
done

# Every answered request was paid for and recorded, and none is left reserved. wrk stops with
# requests in flight that it does not count: up to its connections more records per run.
sleep 1
usage=$(api GET "/api/v1/projects/$project/gateway-usage")
in_flight=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["in_flight"])' <<<"$usage")
records=$(sqlite3 "$work/grappe/grappe.db" "SELECT count(*) FROM gateway_usage WHERE project_id = $project")
statuses=$(sqlite3 "$work/grappe/grappe.db" \
  "SELECT group_concat(status || ': ' || n, ', ') FROM (SELECT status, count(*) AS n FROM gateway_usage GROUP BY status)")
used=$(sqlite3 "$work/grappe/grappe.db" "SELECT used_gpu_ms, reserved_gpu_ms FROM projects WHERE id = $project")
echo
echo "Grappe's accounts: $records usage records ($statuses) for $grappe_answered answers counted by wrk;" \
  "in flight now: $in_flight; project used|reserved GPU-ms: $used"
