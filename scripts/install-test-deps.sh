#!/usr/bin/env bash
# Installs what the test suite needs, once: from Debian's packages PostgreSQL (server and psql),
# Chromium with its WebDriver, munge and Slurm (a single-node test cluster), and wrk for the
# benchmarks; from the Rust registry the S3 test server s3s-fs (cargo install: 2 minutes on
# 2 shared cores, measured 2026-11-29). Idempotent: installed packages are not fetched again,
# the package lists are refreshed only when something is missing, and s3s-fs is built only
# when absent.
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

# s3s-fs 0.14.1 is the newest that builds with rustc 1.95 (0.17 needs 1.96).
s3s_version=0.14.1
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if ! "$cargo_bin/s3s-fs" --version 2>/dev/null | grep -qF "$s3s_version"; then
  echo "installing: s3s-fs $s3s_version (cargo install)"
  cargo install --quiet --locked "s3s-fs@$s3s_version" --features binary --root "${CARGO_HOME:-$HOME/.cargo}"
fi
