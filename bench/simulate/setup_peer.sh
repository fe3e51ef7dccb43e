#!/usr/bin/env bash
# Idempotently create bench/simulate/.venv with the AccaSim peer simulator.
# Only PyPI is used (via pip). Safe to re-run: does nothing if already installed.
# Dependencies are pinned to the versions this was verified with (Python 3.11).
# AccaSim 1.1.3 needs a collections.Mapping shim on Python >= 3.10; accasim_run.py
# applies it at import time (the installed package is not modified).
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
  "numpy==2.4.6" "scipy==1.17.1" "matplotlib==3.11.2" "psutil==7.2.2" \
  "sortedcontainers==2.4.0"
echo "installed accasim $ACCASIM_VERSION into $VENV" >&2
