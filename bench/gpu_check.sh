#!/usr/bin/env bash
# bench/gpu_check.sh, for a machine with NVIDIA GPUs and a release build of grappe: the local
# executor runs two jobs of one GPU each and a third that waits; each sees only its own GPU
# (its `nvidia-smi -L`), and the third starts when one ends. Prints what it saw and exits
# non-zero if any of that does not hold. Needs at least two GPUs; uses the first two.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${GRAPPE_BIN:-target/release/grappe}
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi on this machine" >&2; exit 2; }
gpus=$(nvidia-smi -L | grep -c '^GPU ')
[ "$gpus" -ge 2 ] || { echo "found $gpus GPU(s); this check needs 2" >&2; exit 2; }
work=$(mktemp -d)
token=gpu-check-admin-token-0123
GRAPPE_LOG=warn GRAPPE_ADMIN_TOKEN=$token GRAPPE_GPUS=2 GRAPPE_JOB_GRACE_S=1 \
  "$binary" serve --addr 127.0.0.1:0 --data-dir "$work" >"$work/server.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
base=$(awk '/listening on/ { print $4 }' "$work/server.out")
api() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
project=$(api -d '{"name":"gpu-check","gpu_hours":10,"cpu_hours":10}' "$base/api/v1/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
submit() {
  api -d "{\"project\":$project,\"gpus\":1,\"time_limit_s\":300,\"command\":[\"sh\",\"-c\",\"echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES; nvidia-smi -L; sleep $1\"]}" \
    "$base/api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
a=$(submit 10); b=$(submit 10); c=$(submit 1)
sleep 3
state() { api "$base/api/v1/jobs/$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j["reason"], j["gpu_ids"])'; }
echo "after 3 s: job $a: $(state "$a") | job $b: $(state "$b") | job $c: $(state "$c")"
third_waited=$(state "$c" | grep -c '^pending' || true)
for _ in $(seq 1 60); do state "$c" | grep -q '^completed' && break; sleep 1; done
for job in "$a" "$b" "$c"; do
  for _ in $(seq 1 60); do state "$job" | grep -q '^completed' && break; sleep 1; done
  echo "--- job $job ($(state "$job")) saw:"; api "$base/api/v1/jobs/$job/logs"
done
seen() { api "$base/api/v1/jobs/$1/logs" | grep -c '^GPU ' || true; }
ok=1
for job in "$a" "$b" "$c"; do [ "$(seen "$job")" = 1 ] || { echo "job $job saw $(seen "$job") GPUs, not 1"; ok=0; }; done
[ "$third_waited" = 1 ] || { echo "the third job did not wait"; ok=0; }
[ "$(api "$base/api/v1/jobs/$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gpu_ids"])')" != \
  "$(api "$base/api/v1/jobs/$b" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gpu_ids"])')" ] || { echo "jobs $a and $b shared a GPU"; ok=0; }
[ $ok = 1 ] && echo "GPU check: passed" || { echo "GPU check: FAILED"; exit 1; }
