#!/usr/bin/env bash
# bench/http: the dashboard page and one authenticated API read (GET /api/v1/me with a user's
# API token: token lookup, grants, JSON) under concurrent load from wrk in a second process, on
# SQLite and on PostgreSQL. Prints one table: requests/s and p50 / p99 latency.
#   bench/http/run.sh [DURATION_S] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
connections=${2:-32}

scripts/install-test-deps.sh
eval "$(scripts/test-services.sh start)"
scripts/build.sh
binary=target/release/grappe
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

pg_db=grappe_bench_http
psql "$GRAPPE_TEST_POSTGRES" -q -c "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db"
pg_url=${GRAPPE_TEST_POSTGRES%/*}/$pg_db

# wrk prints latency in us/ms/s; convert to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

run_wrk() {
  local label=$1 url=$2 header=$3 out
  out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency ${header:+-H "$header"} "$url")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  errors=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  printf "| %-9s | %-28s | %9s | %8s | %8s | %6s |\n" "$backend" "$label" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo "bench/http: wrk -t1 -c$connections -d${duration}s, server and wrk on the same $(nproc)-core machine"
echo
echo "| backend   | request                      | req/s     | p50 ms   | p99 ms   | non-2xx |"
echo "|-----------|------------------------------|-----------|----------|----------|--------|"
for backend in sqlite postgres; do
  case $backend in
    sqlite) database="sqlite://$work/bench.db?mode=rwc" ;;
    postgres) database=$pg_url ;;
  esac
  GRAPPE_LOG=warn "$binary" serve --demo --addr 127.0.0.1:0 --database "$database" --data-dir "$work" >"$work/server.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
  base=$(awk '/listening on/ { print $4 }' "$work/server.out")
  read -r email password < <(awk '$1 == "admin" && $2 ~ /@demo/ { print $2, $3 }' "$work/server.out")
  token=$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\",\"name\":\"bench\"}" "$base/api/v1/auth/token" |
    sed -E 's/.*"token":"([^"]+)".*/\1/')
  run_wrk "GET / (dashboard, HTML+SVG)" "$base/" ""
  run_wrk "GET /api/v1/me (bearer)" "$base/api/v1/me" "Authorization: Bearer $token"
  run_wrk "GET /api/v1/programme" "$base/api/v1/programme" ""
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=
done
