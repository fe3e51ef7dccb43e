#!/usr/bin/env bash
# The store benchmark: Grappe's local store and Grappe on S3 (the s3s-fs test server that
# scripts/test-services.sh starts) against cp, sha256sum and DVC, in one run.
# Usage: bench/store/run.sh [SIZE_MIB] (default 2048). Installs DVC into bench/store/.venv
# (not committed) on first use; set SKIP_DVC=1 to leave it out.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-2048}"
if [ "${SKIP_DVC:-0}" != 1 ] && [ ! -x bench/store/.venv/bin/dvc ]; then
  python3 -m venv bench/store/.venv
  bench/store/.venv/bin/pip install --quiet dvc
fi
scripts/install-test-deps.sh
eval "$(scripts/test-services.sh start)"
cargo bench -p grappe-store --bench store -- --size-mib "$size_mib" \
  --s3 "$GRAPPE_TEST_S3" --s3-dir "$GRAPPE_TEST_S3_DIR"
