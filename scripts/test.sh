#!/usr/bin/env bash
# Runs every test of Grappe on a fresh Debian machine: installs what the tests need, starts a
# private PostgreSQL, checks formatting and lints, then runs all the tests (unit, integration on
# SQLite and PostgreSQL, CLI, crash, two-server and browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
eval "$(scripts/test-services.sh start)"
trap 'scripts/test-services.sh stop' EXIT
export GRAPPE_TEST_CHROMEDRIVER=/usr/bin/chromedriver
export GRAPPE_TEST_AXE=${XDG_CACHE_HOME:-$HOME/.cache}/grappe/npm/node_modules/axe-core/axe.min.js
# grappe-eval's reference cases, written by scikit-learn and sacrebleu for this run.
eval_fixtures=$(mktemp -d)
trap 'scripts/test-services.sh stop; rm -rf "$eval_fixtures"' EXIT
"${XDG_CACHE_HOME:-$HOME/.cache}/grappe/python/bin/python" crates/grappe-eval/tests/fixtures/generate.py "$eval_fixtures"
export GRAPPE_TEST_EVAL_FIXTURES=$eval_fixtures

# One cold build: incremental data would only fill the disk (it doubled the target folder).
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
