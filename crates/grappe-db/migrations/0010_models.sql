-- The model registry: models owned by a project, and their versions, each with its lineage
-- taken from the server's own records (the job that made it, the dataset versions that job
-- read, its charged compute and its last metrics), never from what the registering user says.
-- The files are in the store, named by the store's version id.
CREATE TABLE models (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    public BIGINT NOT NULL,
    card TEXT NOT NULL DEFAULT '',
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    CHECK (public IN (0, 1))
);

CREATE TABLE model_versions (
    id {{id}},
    model_id BIGINT NOT NULL REFERENCES models (id),
    seq BIGINT NOT NULL,
    job_id BIGINT REFERENCES jobs (id),
    base_version_id BIGINT REFERENCES model_versions (id),
    -- The job's inputs as it read them: a JSON array of {"dataset", "version"}.
    inputs TEXT NOT NULL DEFAULT '[]',
    -- The job's last value of each metric: a JSON object.
    metrics TEXT NOT NULL DEFAULT '{}',
    cpu_ms BIGINT NOT NULL DEFAULT 0,
    gpu_ms BIGINT NOT NULL DEFAULT 0,
    store_version TEXT NOT NULL,
    files BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    card TEXT NOT NULL DEFAULT '',
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (model_id, seq)
);
