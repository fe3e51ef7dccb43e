"""bench/jobs, Grappe's side: submit N trivial jobs (`true`) through the HTTP API over one
keep-alive connection (or, with `array`, one array of N tasks in one call), wait until all have
ended, and print one JSON line of figures.
Usage: grappe_client.py BASE_URL TOKEN PROJECT N [array]"""
import http.client, json, sys, time, urllib.parse

base, token, project, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
as_array = sys.argv[5:] == ["array"]
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

def call(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None

body = {"project": project, "command": ["true"], "time_limit_s": 60, "memory_mb": 100}
started = time.monotonic()
ids = []
if as_array:
    status, first = call("POST", "/api/v1/jobs", {**body, "array": f"0-{count - 1}"})
    assert status == 201, (status, first)
    ids = list(range(first["id"], first["id"] + count))
for _ in range(0 if as_array else count):
    status, job = call("POST", "/api/v1/jobs", body)
    assert status == 201, (status, job)
    ids.append(job["id"])
submitted = time.monotonic()
pending = set(ids)
jobs = {}
while pending:
    status, page = call("GET", f"/api/v1/jobs?project={project}&limit=500&before={max(pending) + 1}")
    for job in page["items"]:
        if job["id"] in pending and job["state"] in ("completed", "failed", "cancelled", "timeout"):
            pending.discard(job["id"])
            jobs[job["id"]] = job
    if pending:
        time.sleep(0.05)
drained = time.monotonic()
latencies = sorted(job["started_at"] - job["submitted_at"] for job in jobs.values())
# Then one job at a time on an idle queue: the latency a user sees when resources are free.
idle = []
for _ in range(50):
    status, job = call("POST", "/api/v1/jobs", body)
    while True:
        status, job = call("GET", f"/api/v1/jobs/{job['id']}")
        if job["started_at"] is not None:
            break
        time.sleep(0.002)
    idle.append(job["started_at"] - job["submitted_at"])
idle.sort()
failed = sum(1 for job in jobs.values() if job["state"] != "completed")
def pct(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
print(json.dumps({
    "jobs": count, "failed": failed,
    "submit_s": submitted - started, "submissions_per_s": count / (submitted - started),
    "drain_s": drained - started, "jobs_per_s_end_to_end": count / (drained - started),
    "submit_to_start_ms_p50": pct(50), "submit_to_start_ms_p99": pct(99),
    "idle_submit_to_start_ms_p50": idle[len(idle) // 2], "idle_submit_to_start_ms_p99": idle[-1],
}))
