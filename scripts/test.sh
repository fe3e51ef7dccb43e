#!/usr/bin/env bash
# Runs every test of Grappe on a fresh Debian machine: installs what the tests need, starts a
# private PostgreSQL, checks formatting and lints, then runs all the tests (unit, integration on
# SQLite and PostgreSQL, CLI, crash, two-server and browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
eval "$(scripts/test-services.sh start)"
# The control groups that test servers killed with their jobs left under `grappe-test` (each
# empty group makes every later job start a little slower: the kernel checks them all when a
# CPU limit is written): removed before and after the tests, deepest first, those still in use
# kept.
sweep_test_cgroups() {
  find /sys/fs/cgroup/grappe-test /sys/fs/cgroup/*/grappe-test -depth -mindepth 1 -type d -exec rmdir {} + \
    2>/dev/null || true
}
sweep_test_cgroups
trap 'scripts/test-services.sh stop; sweep_test_cgroups' EXIT
export GRAPPE_TEST_CHROMEDRIVER=/usr/bin/chromedriver
export GRAPPE_TEST_AXE=${XDG_CACHE_HOME:-$HOME/.cache}/grappe/npm/node_modules/axe-core/axe.min.js
# grappe-eval's reference cases, written by scikit-learn and sacrebleu for this run.
eval_fixtures=$(mktemp -d)
trap 'scripts/test-services.sh stop; sweep_test_cgroups; rm -rf "$eval_fixtures"' EXIT
"${XDG_CACHE_HOME:-$HOME/.cache}/grappe/python/bin/python" crates/grappe-eval/tests/fixtures/generate.py "$eval_fixtures"
export GRAPPE_TEST_EVAL_FIXTURES=$eval_fixtures

# One cold build: incremental data would only fill the disk (it doubled the target folder).
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The README's first command as a newcomer runs it, on the debug build the tests just made: the
# demo platform starts, answers and stops.
run_dir=$(mktemp -d)
GRAPPE_PROFILE=dev scripts/run.sh --addr 127.0.0.1:0 --data-dir "$run_dir/data" >"$run_dir/out" 2>&1 &
run_pid=$!
for _ in $(seq 1 600); do grep -qs "listening on" "$run_dir/out" && break; sleep 0.2; done
run_url=$(awk '/listening on/ { print $4 }' "$run_dir/out")
if [ -z "$run_url" ] || ! curl -sf "$run_url/healthz" | grep -q '"ok"' || ! curl -sf -o /dev/null "$run_url/"; then
  echo "scripts/run.sh did not start a platform that answers:" >&2
  cat "$run_dir/out" >&2
  kill "$run_pid" 2>/dev/null || true
  exit 1
fi
kill "$run_pid"
wait "$run_pid" || true
rm -rf "$run_dir"
echo "scripts/run.sh: the demo platform started at $run_url and answered"
