-- Compute: projects and their allocations, jobs with their event timelines, metrics and usage.

CREATE TABLE projects (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    gpu_hours BIGINT NOT NULL,
    cpu_hours BIGINT NOT NULL,
    storage_gb BIGINT NOT NULL DEFAULT 0,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT,
    created_at BIGINT NOT NULL,
    CHECK (gpu_hours >= 0 AND cpu_hours >= 0 AND storage_gb >= 0)
);

CREATE TABLE jobs (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    user_id BIGINT,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    qos TEXT NOT NULL,
    cpus BIGINT NOT NULL,
    gpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    time_limit_s BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    exit_code BIGINT,
    restart_count BIGINT NOT NULL DEFAULT 0,
    submitted_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    instance TEXT,
    pid BIGINT,
    gpu_ids TEXT NOT NULL DEFAULT '',
    cancel_requested BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_project ON jobs (project_id, id);

CREATE TABLE job_events (
    id {{id}},
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    at BIGINT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE job_metrics (
    id {{id}},
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    step BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX job_metrics_job ON job_metrics (job_id, key, step);

CREATE TABLE usage_records (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    at BIGINT NOT NULL,
    gpu_seconds BIGINT NOT NULL,
    cpu_seconds BIGINT NOT NULL
);
CREATE INDEX usage_records_project ON usage_records (project_id, at);
