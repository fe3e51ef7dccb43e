#!/usr/bin/env bash
# Idempotently create bench/simulate/.venv with the AccaSim peer simulator.
# Only PyPI is used (via pip). Safe to re-run: does nothing if already installed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
ACCASIM_VERSION="1.1.3"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi

if "$VENV/bin/python" - "$ACCASIM_VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("accasim") == sys.argv[1] else 1)
PYEOF
then
  echo "accasim $ACCASIM_VERSION already installed in $VENV" >&2
  exit 0
fi

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "accasim==$ACCASIM_VERSION" \
  "numpy<3" "scipy" "matplotlib" "psutil" "sortedcontainers"
echo "installed accasim $ACCASIM_VERSION into $VENV" >&2
