#!/usr/bin/env bash
# bench/gpu_check.sh, for a machine with NVIDIA GPUs and a release build of grappe (run as root,
# so that jobs are sandboxed with per-project uids): each 1-GPU job sees exactly one GPU inside
# its sandbox (`nvidia-smi -L`, `CUDA_VISIBLE_DEVICES=0`), a job without GPUs sees none, and with
# two GPUs or more, two GPU jobs get different GPUs while a third one waits. Prints what it saw
# and exits non-zero if any of that does not hold.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${GRAPPE_BIN:-target/release/grappe}
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi on this machine" >&2; exit 2; }
gpus=$(nvidia-smi -L | grep -c '^GPU ')
[ "$gpus" -ge 1 ] || { echo "no GPU found" >&2; exit 2; }
used=$(( gpus >= 2 ? 2 : 1 ))
work=$(mktemp -d)
token=gpu-check-admin-token-0123
GRAPPE_LOG=warn GRAPPE_ADMIN_TOKEN=$token GRAPPE_GPUS=$used GRAPPE_JOB_GRACE_S=1 \
  "$binary" serve --addr 127.0.0.1:0 --data-dir "$work" >"$work/server.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
base=$(awk '/listening on/ { print $4 }' "$work/server.out")
api() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
project=$(api -d '{"name":"gpu-check","gpu_hours":10,"cpu_hours":10}' "$base/api/v1/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
submit() { # GPUs, seconds
  api -d "{\"project\":$project,\"gpus\":$1,\"time_limit_s\":300,\"command\":[\"sh\",\"-c\",\"echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES; ls /dev | grep nvidia; nvidia-smi -L; sleep $2\"]}" \
    "$base/api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
state() { api "$base/api/v1/jobs/$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j["reason"], j["gpu_ids"])'; }
wait_end() { for _ in $(seq 1 120); do state "$1" | grep -qE '^(completed|failed|cancelled|timeout)' && break; sleep 1; done; }
seen() { api "$base/api/v1/jobs/$1/logs" | grep -c '^GPU ' || true; }
ok=1
none=$(submit 0 0); wait_end "$none"
echo "--- job $none, no GPU ($(state "$none")), saw:"; api "$base/api/v1/jobs/$none/logs" || true
[ "$(seen "$none")" = 0 ] || { echo "the job without GPUs saw $(seen "$none")"; ok=0; }
jobs=()
for _ in $(seq 1 "$used"); do jobs+=("$(submit 1 10)"); done
extra=
if [ "$used" = 2 ]; then extra=$(submit 1 1); sleep 3; state "$extra" | grep -q '^pending' || { echo "the third GPU job did not wait"; ok=0; }; jobs+=("$extra"); fi
for job in "${jobs[@]}"; do
  wait_end "$job"
  echo "--- job $job ($(state "$job")) saw:"; api "$base/api/v1/jobs/$job/logs"
  [ "$(seen "$job")" = 1 ] || { echo "job $job saw $(seen "$job") GPUs, not 1"; ok=0; }
  api "$base/api/v1/jobs/$job/logs" | grep -q '^CUDA_VISIBLE_DEVICES=0$' || { echo "job $job: CUDA_VISIBLE_DEVICES is not 0"; ok=0; }
done
if [ "$used" = 2 ]; then
  [ "$(api "$base/api/v1/jobs/${jobs[0]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gpu_ids"])')" != \
    "$(api "$base/api/v1/jobs/${jobs[1]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gpu_ids"])')" ] || { echo "two jobs shared a GPU"; ok=0; }
fi
[ $ok = 1 ] && echo "GPU check: passed" || { echo "GPU check: FAILED"; exit 1; }
