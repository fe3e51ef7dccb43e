-- Job arrays (`"array": "0-999%50"`, grappe_domain::array): every task is a job of its own,
-- with the array's id (its first task's job id), its task number, and how many of the array's
-- tasks may run at once (none: no limit but the scheduler's).
ALTER TABLE jobs ADD COLUMN array_job_id BIGINT;
ALTER TABLE jobs ADD COLUMN array_task_id BIGINT;
ALTER TABLE jobs ADD COLUMN array_limit BIGINT;
CREATE INDEX jobs_array ON jobs (array_job_id);
