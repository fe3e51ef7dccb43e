#!/usr/bin/env bash
# Installs what the test suite needs, once: from Debian's packages PostgreSQL (server and psql),
# Chromium with its WebDriver, munge and Slurm (a single-node test cluster), and wrk for the
# benchmarks; from the Rust registry the S3 test server s3s-fs (cargo install: 2 minutes on
# 2 shared cores, measured 2026-11-29). Idempotent: installed packages are not fetched again,
# the package lists are refreshed only when something is missing, and s3s-fs is built only
# when absent. The reference metrics (scikit-learn, sacrebleu) go into a Python virtual
# environment outside the clone, `${XDG_CACHE_HOME:-$HOME/.cache}/grappe/python`, rebuilt only
# when its pinned versions are not those below. axe-core, the accessibility engine that the
# browser tests inject into each page, comes from the npm registry into
# `${XDG_CACHE_HOME:-$HOME/.cache}/grappe/npm`, again only when its pinned version is not there.
set -euo pipefail

packages=(postgresql chromium chromium-driver wrk fonts-dejavu-core munge slurm-wlm bubblewrap sqlite3 python3 python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
apt_install() {
  echo "installing: $*"
  local sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }

# s3s-fs 0.14.1 is the newest that builds with rustc 1.95 (0.17 needs 1.96).
s3s_version=0.14.1
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if ! "$cargo_bin/s3s-fs" --version 2>/dev/null | grep -qF "$s3s_version"; then
  echo "installing: s3s-fs $s3s_version (cargo install)"
  cargo install --quiet --locked "s3s-fs@$s3s_version" --features binary --root "${CARGO_HOME:-$HOME/.cargo}"
fi

# grappe-eval's reference cases (crates/grappe-eval/tests/fixtures/generate.py) and the
# `bench/score` peer. numpy 2.4 is the newest for Debian 12's Python 3.11 (2.5 needs 3.12).
python_env=${XDG_CACHE_HOME:-$HOME/.cache}/grappe/python
python_pins=(scikit-learn==1.9.1 sacrebleu==2.6.0 numpy==2.4.6 pandas==3.1.1 scipy==1.17.1)
python_check='import importlib.metadata as m, sys
wanted = dict(pin.split("==") for pin in sys.argv[1:])
sys.exit(any(m.version(name) != version for name, version in wanted.items()))'
if ! "$python_env/bin/python" -c "$python_check" "${python_pins[@]}" 2>/dev/null; then
  echo "installing: ${python_pins[*]} into $python_env"
  /usr/bin/python3 -m venv "$python_env"
  "$python_env/bin/pip" install --quiet --disable-pip-version-check "${python_pins[@]}"
fi

# axe-core, injected by the browser tests through WebDriver (crates/grappe/tests/it/browser.rs).
# Debian's npm, unless a Node.js that brings its own is there already.
command -v npm >/dev/null || apt_install nodejs npm
npm_dir=${XDG_CACHE_HOME:-$HOME/.cache}/grappe/npm
axe_version=4.14.1
if ! grep -qs "\"version\": \"$axe_version\"" "$npm_dir/node_modules/axe-core/package.json"; then
  echo "installing: axe-core $axe_version into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" "axe-core@$axe_version"
fi
