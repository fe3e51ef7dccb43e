"""bench/jobs, Slurm's side: sbatch N trivial jobs (`--wrap true`; with `array`, one
`sbatch --array` of N tasks), wait until Slurm has run them all, and print one JSON line.
Slurm's times have one-second resolution.
Usage: slurm_client.py N [array]"""
import json, subprocess, sys, time
from datetime import datetime

count = int(sys.argv[1])
as_array = sys.argv[2:] == ["array"]
sbatch = ["sbatch", "--parsable", "--mem=100", "--time=1", "--output=/dev/null", "--wrap", "true"]
started = time.monotonic()
ids = []
for _ in range(1 if as_array else count):
    extra = [f"--array=0-{count - 1}"] if as_array else []
    out = subprocess.run(sbatch[:1] + extra + sbatch[1:], check=True, capture_output=True, text=True).stdout
    ids.append(out.strip().split(";")[0])
submitted = time.monotonic()
wanted = set(ids)
states = {}
while True:
    out = subprocess.run(["scontrol", "show", "job", "-o"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = dict(token.split("=", 1) for token in line.split() if "=" in token)
        # An array's tasks are told by their array's id.
        if fields.get("ArrayJobId" if as_array else "JobId") in wanted:
            states[fields.get("JobId"), fields.get("ArrayTaskId")] = fields
    done = [f for f in states.values() if f["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")]
    if len(done) == count:
        break
    time.sleep(0.2)
drained = time.monotonic()
def ts(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
# Only the records of jobs that ran (an array's pending remainder has no start).
states = {key: f for key, f in states.items() if f["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")}
latencies = sorted((ts(f["StartTime"]) - ts(f["SubmitTime"])) * 1000 for f in states.values())
def pct(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
print(json.dumps({
    "jobs": count, "failed": sum(1 for f in states.values() if f["JobState"] != "COMPLETED"),
    "submit_s": submitted - started, "submissions_per_s": count / (submitted - started),
    "drain_s": drained - started, "jobs_per_s_end_to_end": count / (drained - started),
    "submit_to_start_ms_p50": pct(50), "submit_to_start_ms_p99": pct(99),
}))
