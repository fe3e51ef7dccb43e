-- Runs: each start of a job is a numbered run, and every write about a running job names its run
-- and its server (instance), so that a stale server can never end or charge another run. A
-- running job's server renews its heartbeat; a job whose server died is charged up to it.
-- Jobs declare their environment, network access and node count. Usage is charged per run,
-- exact to the millisecond, once (a unique key on job and run).
ALTER TABLE jobs ADD COLUMN run BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN heartbeat_at BIGINT;
ALTER TABLE jobs ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN network BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN nodes BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN cpu_time_ms BIGINT;
ALTER TABLE jobs ADD COLUMN memory_peak_mb BIGINT;
ALTER TABLE jobs DROP COLUMN pid;

ALTER TABLE usage_records ADD COLUMN run BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN started_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN gpu_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cpu_ms BIGINT NOT NULL DEFAULT 0;
-- Records from before runs were numbered: each its own (negative) run.
UPDATE usage_records SET gpu_ms = gpu_seconds * 1000, cpu_ms = cpu_seconds * 1000, run = -id, started_at = at;
ALTER TABLE usage_records DROP COLUMN gpu_seconds;
ALTER TABLE usage_records DROP COLUMN cpu_seconds;
CREATE UNIQUE INDEX usage_records_run ON usage_records (job_id, run);
CREATE INDEX jobs_running_instance ON jobs (instance, state);
CREATE INDEX jobs_project_state ON jobs (project_id, state);

-- One row: this installation's name, shared by every server on this database (job control
-- groups are named after it, so that servers on one machine and one database share them), and
-- its secret (the key of the CSRF tokens that every server must agree on).
CREATE TABLE installation (
    singleton BIGINT PRIMARY KEY CHECK (singleton = 1),
    id TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- A keyed hash of a fixed text under the audit key the database was first used with: a
    -- server with another key refuses to start rather than write links nobody can check.
    audit_key_check TEXT NOT NULL DEFAULT ''
);
