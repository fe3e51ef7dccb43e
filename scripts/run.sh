#!/usr/bin/env bash
# Runs the platform with the demo programme and accounts on http://127.0.0.1:8080 (SQLite and
# the data store under ./grappe-data). Extra arguments go to `grappe serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
echo "building grappe (release; the first build takes several minutes)" >&2
scripts/build.sh
exec target/release/grappe serve --demo "$@"
