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

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
