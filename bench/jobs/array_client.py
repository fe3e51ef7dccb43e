"""bench/jobs/array.sh, Grappe's side: submit one array of N trivial tasks (`true`) in one HTTP
call, wait until every task has ended, and print one JSON line of figures.
Usage: array_client.py BASE_URL TOKEN PROJECT N"""
import http.client, json, sys, time, urllib.parse

base, token, project, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

def call(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None

body = {"project": project, "command": ["true"], "time_limit_s": 60, "memory_mb": 100, "array": f"0-{count - 1}"}
started = time.monotonic()
status, first = call("POST", "/api/v1/jobs", body)
assert status == 201, (status, first)
submitted = time.monotonic()
ids = set(range(first["id"], first["id"] + count))
ended, failed = set(), 0
while len(ended) < count:
    before = max(ids - ended) + 1
    status, page = call("GET", f"/api/v1/jobs?project={project}&limit=500&before={before}")
    for job in page["items"]:
        if job["id"] in ids and job["id"] not in ended and job["state"] in ("completed", "failed", "cancelled", "timeout"):
            ended.add(job["id"])
            failed += job["state"] != "completed"
    time.sleep(0.2)
drained = time.monotonic()
print(json.dumps({
    "tasks": count, "failed": failed, "submit_s": submitted - started,
    "drain_s": drained - started, "tasks_per_s": count / (drained - started),
}))
