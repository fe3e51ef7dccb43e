#!/usr/bin/env bash
# bench/http/abuse.sh: what well-behaved clients see while others abuse the server. Two
# well-behaved readers (the dashboard, GET /, and GET /api/v1/me with a bearer token) are
# measured with wrk alone ("quiet"), then again while, at the same time:
#   - 1,000 idle connections drip one byte of a request head every 5 s and reconnect when
#     closed (from 127.0.0.10-13, 250 each: many hosts, each under the per-client cap);
#   - 200 live log streams follow a job that prints ten lines a second (25 users, 8 each: the
#     per-user cap);
#   - one member floods job submissions on 2 connections (wrk -s flood.lua), into its queue
#     quota and then 429s.
# SQLite, the local executor sandboxed, the release build; abusers and wrk on the same machine.
#   bench/http/abuse.sh [DURATION_S] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-15}
connections=${2:-8}

scripts/install-test-deps.sh
scripts/build.sh
binary=target/release/grappe
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

admin=bench-admin-token-0123456789abcdef0123456789
GRAPPE_LOG=warn GRAPPE_ADMIN_TOKEN=$admin GRAPPE_CPUS=2 \
  "$binary" serve --demo --addr 127.0.0.1:0 --database "sqlite://$work/bench.db?mode=rwc" --data-dir "$work/data" \
  >"$work/server.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
base=$(awk '/listening on/ { print $4 }' "$work/server.out")

api() { # METHOD PATH TOKEN [BODY]
  curl -sf -X "$1" -H 'Content-Type: application/json' -H "Authorization: Bearer $3" ${4:+-d "$4"} "$base$2"
}
field() { grep -oE "\"$1\":\"?[^\",}]+" | head -1 | sed -E 's/.*:"?//'; }
user() { # EMAIL -> token
  api POST /api/v1/users "$admin" "{\"name\":\"Bench $1\",\"email\":\"$1\",\"password\":\"a long enough password\"}" | field id >>"$work/ids"
  curl -sf -H 'Content-Type: application/json' -d "{\"email\":\"$1\",\"password\":\"a long enough password\"}" \
    "$base/api/v1/auth/token" | field token
}
reader=$(user reader@bench.example)
flooder=$(user flooder@bench.example)
for n in $(seq 1 25); do user "watcher$n@bench.example"; done >"$work/watchers"
members=$(paste -sd, "$work/ids")
project=$(api POST /api/v1/projects "$admin" "{\"name\":\"abuse\",\"gpu_hours\":0,\"cpu_hours\":100000,\"members\":[$members]}" | field id)
job=$(api POST /api/v1/jobs "$reader" \
  "{\"project\":$project,\"command\":[\"sh\",\"-c\",\"while :; do echo tick; sleep 0.1; done\"],\"time_limit_s\":3600}" | field id)

to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
measure() { # LABEL: both readers, one after the other
  local label=$1 request url header out rps p50 p99 errors
  for request in dashboard me; do
    case $request in
      dashboard) url="$base/"; header="" ;;
      me) url="$base/api/v1/me"; header="Authorization: Bearer $reader" ;;
    esac
    out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency ${header:+-H "$header"} "$url")
    rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errors=$(awk '/Non-2xx/ { print $NF } /Socket errors/ { print }' <<<"$out" | paste -sd' ')
    printf "| %-7s | %-26s | %7s | %7s | %8s | %-8s |\n" "$label" "$request" "$rps" "$p50" "$p99" "${errors:-0}"
  done
}

echo "bench/http/abuse: wrk -t1 -c$connections -d${duration}s per reader, server, abusers and wrk on the same $(nproc)-core machine"
echo
echo "| run     | reader                     | req/s   | p50 ms  | p99 ms   | errors   |"
echo "|---------|----------------------------|---------|---------|----------|----------|"
measure quiet

python3 bench/http/abuse.py idle "$base" 1000 127.0.0.10 >"$work/idle.out" 2>&1 &
pids+=($!)
python3 bench/http/abuse.py follow "$base" "$job" "$work/watchers" 8 >"$work/follow.out" 2>&1 &
pids+=($!)
FLOOD_TOKEN=$flooder FLOOD_PROJECT=$project \
  wrk -t1 -c2 -d"$((2 * duration + 10))s" -s bench/http/flood.lua "$base/api/v1/jobs" >"$work/flood.out" 2>&1 &
flood=$!
pids+=($flood)
sleep 5
measure abused
kill "${pids[1]}" "${pids[2]}"
wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true
wait "$flood" 2>/dev/null || true

echo
echo "abusers:"
cat "$work/idle.out" "$work/follow.out"
echo "flood: $(awk '/requests in/ { print $1, "submissions" } /Non-2xx/ { print $NF, "refused" }' "$work/flood.out" | paste -sd, ), $(sqlite3 "$work/bench.db" "SELECT count(*) FROM jobs WHERE state = 'pending'") queued"
