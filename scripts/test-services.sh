#!/usr/bin/env bash
# Starts (or stops) the services the tests talk to, on private ports and directories, so that
# nothing else on the machine is touched: a PostgreSQL server for the tests.
#   scripts/test-services.sh start   # idempotent; prints the variables to export
#   scripts/test-services.sh stop
set -euo pipefail

state_dir=${GRAPPE_TEST_STATE:-/tmp/grappe-test-services}
pg_port=${GRAPPE_TEST_PG_PORT:-54329}
pg_dir=$state_dir/postgres
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pg_bin" ] || { echo "PostgreSQL is not installed: run scripts/install-test-deps.sh" >&2; exit 1; }

# PostgreSQL refuses to run as root: run it as the `postgres` user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  mkdir -p "$state_dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$state_dir"; fi
  if [ ! -s "$pg_dir/PG_VERSION" ]; then
    as_pg "$pg_bin/initdb" -D "$pg_dir" -U grappe --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_pg "$pg_bin/pg_ctl" -D "$pg_dir" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w -t 60 \
      -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
  fi
  echo "export GRAPPE_TEST_POSTGRES=postgres://grappe@127.0.0.1:$pg_port/postgres"
}

stop() {
  if [ -s "$pg_dir/PG_VERSION" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
