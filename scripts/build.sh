#!/usr/bin/env bash
# Builds the programs: `grappe`, and `grappe-shim` (started with every job) linked statically,
# which saves it the dynamic loader at each start (0.5 to 0.8 ms of CPU per job here; see
# bench/jobs/RESULTS.md). Where no static C library is installed, the shim stays dynamic, with a
# warning. A release build, or with GRAPPE_PROFILE=dev a debug one (the test suite checks
# scripts/run.sh so). Extra arguments go to `cargo build` (an example to build as well). Quiet
# unless something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${GRAPPE_PROFILE:-release}
build=(cargo build --profile "$profile" --locked -p grappe --bins "$@")
"${build[@]}" >/dev/null 2>&1 || "${build[@]}"
static=(cargo rustc --profile "$profile" --locked -p grappe --bin grappe-shim -- -C target-feature=+crt-static)
if ! "${static[@]}" >/dev/null 2>&1; then
  echo "warning: grappe-shim could not be linked statically (no static C library?); it stays dynamic" >&2
fi
