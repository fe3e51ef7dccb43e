#!/usr/bin/env bash
# bench/gateway/profile.sh: where Grappe's gateway spends a request, on the same setup as
# run.sh (Grappe alone, no peer). For whole requests on one connection, then with 32: requests/s,
# the server's CPU per request (utime + stime from /proc), its fsync/fdatasync calls per request
# and their mean duration (perf trace), and the hottest symbols of a CPU profile (perf record).
#   bench/gateway/profile.sh [DURATION_S]
# BENCH_GATEWAY_GRAPPE=path/to/grappe profiles another build of the server.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
target=${CARGO_TARGET_DIR:-target}
grappe_bin=${BENCH_GATEWAY_GRAPPE:-$target/release/grappe}
admin_token=bench-gateway-admin-token-0123456789
scripts/build.sh --example gateway_upstream

work=$(mktemp -d)
upstream_pid= grappe_pid=
cleanup() {
  [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null
  [ -n "$grappe_pid" ] && kill "$grappe_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 1 600); do grep -qs "$2" "$1" && return 0; sleep 0.1; done; cat "$1" >&2; return 1; }

"$target/release/examples/gateway_upstream" 127.0.0.1:0 1 >"$work/upstream.out" 2>&1 &
upstream_pid=$!
wait_for "$work/upstream.out" "listening on"
upstream=$(awk '/listening on/ { print $3 }' "$work/upstream.out")
mkdir -p "$work/grappe"
GRAPPE_ADMIN_TOKEN=$admin_token GRAPPE_LOG=warn "$grappe_bin" serve --addr 127.0.0.1:0 \
  --database "sqlite://$work/grappe/grappe.db?mode=rwc" --data-dir "$work/grappe" >"$work/grappe.out" 2>&1 &
grappe_pid=$!
wait_for "$work/grappe.out" "listening on"
grappe=$(awk '/listening on/ { print $4 }' "$work/grappe.out")
api() {
  curl -sf -X "$1" -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' ${3:+-d "$3"} "$grappe$2"
}
project=$(api POST /api/v1/projects '{"name":"bench-gateway","gpu_hours":1000000,"cpu_hours":10}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
key=$(api POST "/api/v1/projects/$project/keys" \
  '{"name":"bench","limits":{"requests_per_minute":1000000000,"tokens_per_minute":1000000000}}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
api POST /api/v1/gateway/models "{\"name\":\"bench-model\",\"upstream\":\"$upstream\",\
\"input_gpu_ms_per_1k\":10,\"output_gpu_ms_per_1k\":40,\"max_output_tokens\":4096}" >/dev/null
BENCH_KEY=$key wrk -t1 -c4 -d2s -s bench/gateway/chat.lua "$grappe/v1/chat/completions" >/dev/null

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$grappe_pid/stat"; }
tick_hz=$(getconf CLK_TCK)
echo "| whole requests | req/s | p50 ms | p99 ms | server CPU ms / request | context switches / request | fsync+fdatasync / request | mean fsync ms | sleeps / request | mean sleep ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for connections in 1 32; do
  before=$(cpu_ticks)
  perf trace -s -p "$grappe_pid" -e fsync,fdatasync,clock_nanosleep,nanosleep -o "$work/trace.out" &
  trace_pid=$!
  perf stat -x, -e context-switches -p "$grappe_pid" -o "$work/stat.out" &
  stat_pid=$!
  out=$(BENCH_KEY=$key wrk -t1 -c"$connections" -d"${duration}s" -s bench/gateway/chat.lua \
    "$grappe/v1/chat/completions" | grep '^RESULT')
  kill -INT "$trace_pid" "$stat_pid"
  wait "$trace_pid" "$stat_pid" 2>/dev/null || true
  switches=$(awk -F, '$3 == "context-switches" { print $1 }' "$work/stat.out")
  after=$(cpu_ticks)
  read -r requests rps p50 p99 < <(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%d %.0f %.3f %.3f\n", v["requests"], v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000, v["p99_us"] / 1000 }' <<<"$out")
  # perf trace -s: per thread, "fsync  calls  errors  total(msec) ..."; summed over threads.
  read -r syncs sync_ms < <(awk '$1 == "fsync" || $1 == "fdatasync" { n += $2; t += $4 } END { printf "%d %.3f\n", n, t }' "$work/trace.out")
  # Sleeps: SQLite's busy handler waiting for the write lock (tokio's timers do not sleep).
  read -r sleeps sleep_ms < <(awk '$1 ~ /nanosleep$/ { n += $2; t += $4 } END { printf "%d %.3f\n", n, t }' "$work/trace.out")
  awk -v c="$connections" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v r="$requests" -v t="$((after - before))" \
    -v hz="$tick_hz" -v s="$syncs" -v sm="$sync_ms" -v cs="$switches" -v z="$sleeps" -v zm="$sleep_ms" 'BEGIN {
      printf "| %d connection(s) | %s | %s | %s | %.3f | %.1f | %.2f | %.3f | %.3f | %.2f |\n", c, rps, p50, p99,
        t * 1000 / hz / r, cs / r, s / r, s ? sm / s : 0, z / r, z ? zm / z : 0 }'
done

echo
echo "CPU profile, whole requests, 32 connections, ${duration} s (perf record -g): by thread, then the top symbols by self time"
perf record -q -g -o "$work/perf.data" -p "$grappe_pid" -- sleep "$duration" 2>/dev/null &
record_pid=$!
BENCH_KEY=$key wrk -t1 -c32 -d"${duration}s" -s bench/gateway/chat.lua "$grappe/v1/chat/completions" >/dev/null
wait "$record_pid" || true
echo
perf report -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
  grep -E '^ +[0-9.]+%' | head -8 | sed -E 's/ +$//'
echo
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
  grep -E '^ +[0-9.]+%' | head -25 | cut -c1-140 | sed -E 's/ +$//'
