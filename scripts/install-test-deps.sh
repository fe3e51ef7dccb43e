#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages, once: PostgreSQL (server and psql),
# Chromium with its WebDriver, munge and Slurm (a single-node test cluster), and wrk for the
# benchmarks. Idempotent: installed packages are
# not fetched again, and the package lists are refreshed only when something is missing.
set -euo pipefail

packages=(postgresql chromium chromium-driver wrk fonts-dejavu-core munge slurm-wlm bubblewrap sqlite3)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
