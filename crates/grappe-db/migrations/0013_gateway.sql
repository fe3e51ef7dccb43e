-- AI-as-a-Service: the gateway's models, the projects' keys to it, what requests in flight have
-- reserved of their project's GPU allocation, the rate windows shared by every server process on
-- the database, and one usage record per request (jobs' charges stay in `usage_records`; both
-- add to `projects.used_gpu_ms`).

-- A model the gateway serves: an upstream that speaks OpenAI's format (set by an
-- administrator; none for a model only served by jobs), its prices in GPU-milliseconds per
-- 1,000 tokens, and the most tokens one answer may have.
CREATE TABLE gateway_models (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    -- The upstream's base URL, up to and including `/v1`.
    upstream TEXT,
    -- None: every project may call it; else only this project's keys.
    project_id BIGINT REFERENCES projects (id),
    input_gpu_ms_per_1k BIGINT NOT NULL,
    output_gpu_ms_per_1k BIGINT NOT NULL,
    max_output_tokens BIGINT NOT NULL,
    -- The most requests one replica is sent at once; more wait, people before batches.
    max_concurrency BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A replica of a model served by a running job of the model's project, at the address the job
-- announced and proved (its answer carried the run's replica token). It serves while that run
-- of the job runs: the gateway reads replicas joined with the job's state and run.
CREATE TABLE gateway_replicas (
    model_id BIGINT NOT NULL REFERENCES gateway_models (id),
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    run BIGINT NOT NULL,
    url TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (model_id, job_id)
);

-- A project's key: SHA-256 of the key (shown once), its first characters to tell keys apart,
-- its own limits (none: only the project's).
CREATE TABLE gateway_keys (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    requests_per_minute BIGINT,
    tokens_per_minute BIGINT,
    requests_per_day BIGINT,
    tokens_per_day BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- The project's own gateway limits (none: unlimited but for its allocation), and what requests
-- in flight hold of its GPU allocation.
ALTER TABLE projects ADD COLUMN gateway_requests_per_minute BIGINT;
ALTER TABLE projects ADD COLUMN gateway_tokens_per_minute BIGINT;
ALTER TABLE projects ADD COLUMN gateway_requests_per_day BIGINT;
ALTER TABLE projects ADD COLUMN gateway_tokens_per_day BIGINT;
ALTER TABLE projects ADD COLUMN reserved_gpu_ms BIGINT NOT NULL DEFAULT 0;

-- A request's reservation: its most cost and tokens, until the request settles; one whose
-- server died is released by the reaper once expired.
CREATE TABLE gateway_reservations (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    key_id BIGINT NOT NULL REFERENCES gateway_keys (id),
    gpu_ms BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    -- The minute its request and tokens were counted in (and so its day).
    window_start BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX gateway_reservations_expiry ON gateway_reservations (expires_at);

-- Requests and tokens per key or project and minute (`key:ID`, `project:ID`) or UTC day
-- (`key:ID:day`, `project:ID:day`).
CREATE TABLE gateway_windows (
    scope TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    PRIMARY KEY (scope, window_start)
);

CREATE TABLE gateway_usage (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    key_id BIGINT NOT NULL REFERENCES gateway_keys (id),
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    gpu_ms BIGINT NOT NULL,
    -- ok, upstream_error, client_gone, ...
    status TEXT NOT NULL,
    first_token_ms BIGINT,
    duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX gateway_usage_project ON gateway_usage (project_id, id);

-- Files sent to the gateway (`/v1/files`: a batch's input, a batch's output), each kept in the
-- data store (`store_version`, one file named `content`), readable by its project's keys.
CREATE TABLE gateway_files (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    store_version TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A batch (`/v1/batches`): its input file's requests, run one after the other through the
-- gateway by the process holding the ticker lease, each paid by the batch's key as any
-- request; `done` lines of the input have their answers in DATA_DIR/gateway/batches/ID.jsonl,
-- so that a restarted server goes on from there. status: in_progress, completed, cancelled,
-- failed.
CREATE TABLE gateway_batches (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    key_id BIGINT NOT NULL REFERENCES gateway_keys (id),
    endpoint TEXT NOT NULL,
    input_file_id BIGINT NOT NULL REFERENCES gateway_files (id),
    status TEXT NOT NULL,
    total BIGINT NOT NULL,
    done BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    output_file_id BIGINT REFERENCES gateway_files (id),
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);
