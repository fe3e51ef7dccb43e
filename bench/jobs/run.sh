#!/usr/bin/env bash
# bench/jobs: 1,000 trivial jobs (`true`) through Grappe's HTTP API (one keep-alive connection;
# local executor sandboxed, local executor with --unsafe-unsandboxed-jobs, then Grappe on Slurm),
# and 1,000 through the same single-node Slurm with sbatch, in one run. Prints one table; ratios
# against Slurm alone, and what the sandbox costs per job start in CPU time (server, shims,
# sandboxes and jobs together, from the server's own and its reaped children's CPU time).
#   bench/jobs/run.sh [N]
# BENCH_JOBS_ARRAY=1: the N jobs as one array submitted in one call, on both sides (`"array"`,
# `sbatch --array`; N at most the test Slurm's MaxArraySize - 1, 1,000).
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-1000}
mode=
[ "${BENCH_JOBS_ARRAY:-}" = 1 ] && mode=array
here=bench/jobs
scripts/install-test-deps.sh
eval "$(scripts/test-services.sh start 2>/dev/null)"
scripts/build.sh
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

grappe_run() { # binary executor label [serve flags...]
  local binary=$1 executor=$2 dir=$work/$3 token=bench-admin-token-0123456789
  shift 3
  mkdir -p "$dir"
  GRAPPE_LOG=warn GRAPPE_ADMIN_TOKEN=$token GRAPPE_EXECUTOR=$executor GRAPPE_CPUS=$(nproc) GRAPPE_SCHEDULER_TICK_MS=100 \
    GRAPPE_MAX_QUEUED_JOBS_PER_USER=$((count + 100)) GRAPPE_MAX_QUEUED_JOBS_PER_PROJECT=$((count + 100)) \
    "$binary" serve --addr 127.0.0.1:0 --data-dir "$dir" "$@" >"$dir/server.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do grep -qs "listening on" "$dir/server.out" && break; sleep 0.1; done
  local base
  base=$(awk '/listening on/ { print $4 }' "$dir/server.out")
  local project
  project=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench","gpu_hours":0,"cpu_hours":100000}' "$base/api/v1/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  local figures ticks
  figures=$(python3 "$here/grappe_client.py" "$base" "$token" "$project" "$count" $mode)
  # utime + stime + cutime + cstime of the server: itself and every shim it reaped, with theirs.
  ticks=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$server_pid/stat")
  python3 -c 'import json, os, sys; r = json.loads(sys.argv[1]); jobs = r["jobs"] + 50; r["cpu_ms_per_job"] = int(sys.argv[2]) * 1000 / os.sysconf("SC_CLK_TCK") / jobs; print(json.dumps(r))' "$figures" "$ticks"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=
}

local_out=$(grappe_run target/release/grappe local sandboxed)
unsandboxed_out=$(grappe_run target/release/grappe local unsandboxed --unsafe-unsandboxed-jobs)
# An earlier build of Grappe for comparison, if given (BENCH_JOBS_BASELINE=path/to/grappe).
baseline_out='null'
if [ -n "${BENCH_JOBS_BASELINE:-}" ]; then baseline_out=$(grappe_run "$BENCH_JOBS_BASELINE" local baseline); fi
if [ "${BENCH_JOBS_GRAPPE_ONLY:-}" = 1 ]; then echo "$local_out"; echo "$unsandboxed_out"; echo "$baseline_out"; exit 0; fi
slurm_out=$(python3 "$here/slurm_client.py" "$count" $mode)
on_slurm_out=$(grappe_run target/release/grappe slurm slurm)

python3 - "$local_out" "$slurm_out" "$on_slurm_out" "$unsandboxed_out" "$baseline_out" <<'PY'
import json, sys
local, slurm, on_slurm, unsandboxed, baseline = (json.loads(arg) for arg in sys.argv[1:6])
rows = [("Grappe, local executor, sandboxed", local), ("Grappe, local executor, unsandboxed", unsandboxed),
        ("Slurm 22.05 (sbatch)", slurm), ("Grappe on Slurm", on_slurm)]
if baseline:
    rows.append(("earlier Grappe build (BENCH_JOBS_BASELINE), local, no sandbox", baseline))
shape = " as one array" if __import__("os").environ.get("BENCH_JOBS_ARRAY") == "1" else ""
print(f"{slurm['jobs']} trivial jobs each{shape}; Slurm: single node, batch_sched_delay=0,sched_min_interval=0")
print()
print("| path | submissions/s | drain s | end-to-end jobs/s | submit-to-start p50 ms | p99 ms | failed | CPU ms/job |")
print("|---|---|---|---|---|---|---|---|")
for name, r in rows:
    print(f"| {name} | {r['submissions_per_s']:.1f} | {r['drain_s']:.2f} | {r['jobs_per_s_end_to_end']:.2f} | "
          f"{r['submit_to_start_ms_p50']:.0f} | {r['submit_to_start_ms_p99']:.0f} | {r['failed']} | "
          f"{r.get('cpu_ms_per_job', float('nan')):.2f} |")
print()
for name, r in rows:
    if "idle_submit_to_start_ms_p50" in r:
        print(f"{name}, one job at a time on an idle queue (50 jobs): submit-to-start p50 {r['idle_submit_to_start_ms_p50']} ms, max {r['idle_submit_to_start_ms_p99']} ms")
print()
print(f"Grappe local (sandboxed) / Slurm: submissions {local['submissions_per_s'] / slurm['submissions_per_s']:.1f}x, "
      f"end-to-end throughput {local['jobs_per_s_end_to_end'] / slurm['jobs_per_s_end_to_end']:.1f}x")
print(f"CPU time per job, server and everything it started: sandboxed {local['cpu_ms_per_job']:.2f} ms, "
      f"unsandboxed {unsandboxed['cpu_ms_per_job']:.2f} ms: the sandbox costs "
      f"{local['cpu_ms_per_job'] - unsandboxed['cpu_ms_per_job']:.2f} ms of CPU per job start")
PY
