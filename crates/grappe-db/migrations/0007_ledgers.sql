-- Running totals, kept in the transaction of every change they sum, so that a submission costs
-- the same whatever the history and the queue: what each project was charged in all
-- (`usage_records` stays the itemised ledger), and its pending jobs (how many, and the
-- resource-milliseconds they may use up to their time limits); each user's pending jobs.
ALTER TABLE projects ADD COLUMN used_gpu_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN used_cpu_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN queued_jobs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN queued_gpu_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN queued_cpu_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN queued_jobs BIGINT NOT NULL DEFAULT 0;
UPDATE projects SET
    used_gpu_ms = COALESCE((SELECT SUM(gpu_ms) FROM usage_records WHERE usage_records.project_id = projects.id), 0),
    used_cpu_ms = COALESCE((SELECT SUM(cpu_ms) FROM usage_records WHERE usage_records.project_id = projects.id), 0),
    queued_jobs = (SELECT COUNT(*) FROM jobs WHERE jobs.project_id = projects.id AND jobs.state = 'pending'),
    queued_gpu_ms = COALESCE((SELECT SUM(gpus * nodes * time_limit_s * 1000) FROM jobs
        WHERE jobs.project_id = projects.id AND jobs.state = 'pending'), 0),
    queued_cpu_ms = COALESCE((SELECT SUM(cpus * nodes * time_limit_s * 1000) FROM jobs
        WHERE jobs.project_id = projects.id AND jobs.state = 'pending'), 0);
UPDATE users SET queued_jobs = (SELECT COUNT(*) FROM jobs WHERE jobs.user_id = users.id AND jobs.state = 'pending');
