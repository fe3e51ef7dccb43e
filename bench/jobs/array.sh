#!/usr/bin/env bash
# bench/jobs/array.sh: one array of N trivial tasks (`true`), submitted in one call and run to
# the end, through Grappe (local executor, sandboxed and not) and through the same single-node
# Slurm (`sbatch --array`), in one run. Prints one table; ratios against Slurm.
#   bench/jobs/array.sh [N]   (N at most the test Slurm's MaxArraySize - 1: 1,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-1000}
here=bench/jobs
scripts/install-test-deps.sh
eval "$(scripts/test-services.sh start 2>/dev/null)"
cargo build --release --locked -p grappe >/dev/null 2>&1 || cargo build --release --locked -p grappe
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

grappe_run() { # label [serve flags...]
  local dir=$work/$1 token=bench-admin-token-0123456789
  shift
  mkdir -p "$dir"
  GRAPPE_LOG=warn GRAPPE_ADMIN_TOKEN=$token GRAPPE_CPUS=$(nproc) GRAPPE_SCHEDULER_TICK_MS=100 \
    GRAPPE_MAX_QUEUED_JOBS_PER_USER=$((count + 10)) GRAPPE_MAX_QUEUED_JOBS_PER_PROJECT=$((count + 10)) \
    target/release/grappe serve --addr 127.0.0.1:0 --data-dir "$dir" "$@" >"$dir/server.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$dir/server.out" && break; sleep 0.1; done
  local base project
  base=$(awk '/listening on/ { print $4 }' "$dir/server.out")
  project=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench","gpu_hours":0,"cpu_hours":100000}' "$base/api/v1/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  python3 "$here/array_client.py" "$base" "$token" "$project" "$count"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=
}

sandboxed=$(grappe_run sandboxed)
unsandboxed=$(grappe_run unsandboxed --unsafe-unsandboxed-jobs)
slurm=$(python3 - "$count" <<'PY'
import json, subprocess, sys, time
count = int(sys.argv[1])
started = time.monotonic()
out = subprocess.run(["sbatch", "--parsable", f"--array=0-{count - 1}", "--mem=100", "--time=1", "--output=/dev/null",
                      "--wrap", "true"], check=True, capture_output=True, text=True).stdout
array = out.strip().split(";")[0]
submitted = time.monotonic()
while subprocess.run(["squeue", "-h", "-r", "-j", array], capture_output=True, text=True).stdout.strip():
    time.sleep(0.2)
drained = time.monotonic()
print(json.dumps({"tasks": count, "failed": None, "submit_s": submitted - started, "drain_s": drained - started,
                  "tasks_per_s": count / (drained - started)}))
PY
)

python3 - "$sandboxed" "$unsandboxed" "$slurm" <<'PY'
import json, sys
sandboxed, unsandboxed, slurm = (json.loads(arg) for arg in sys.argv[1:4])
print(f"one array of {slurm['tasks']} trivial tasks; {__import__('os').cpu_count()} cores; Slurm single node, no accounting")
print()
print("| path | submit s | drain s | tasks/s | vs Slurm | failed |")
print("|---|---|---|---|---|---|")
for name, row in [("Grappe, local, sandboxed", sandboxed), ("Grappe, local, unsandboxed", unsandboxed), ("Slurm 22.05 (sbatch --array)", slurm)]:
    print(f"| {name} | {row['submit_s']:.3f} | {row['drain_s']:.1f} | {row['tasks_per_s']:.1f} | "
          f"{row['tasks_per_s'] / slurm['tasks_per_s']:.2f} | {row['failed'] if row['failed'] is not None else '-'} |")
PY
