#!/usr/bin/env bash
# Runs the platform with the demo programme and accounts on http://127.0.0.1:8080 (SQLite and
# the data store under ./grappe-data). Extra arguments go to `grappe serve`. GRAPPE_PROFILE=dev
# runs a debug build (as the test suite does to check this script).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
profile=${GRAPPE_PROFILE:-release}
echo "building grappe ($profile; the first build takes several minutes)" >&2
scripts/build.sh
dir=$profile
[ "$profile" = dev ] && dir=debug
exec "${CARGO_TARGET_DIR:-target}/$dir/grappe" serve --demo "$@"
