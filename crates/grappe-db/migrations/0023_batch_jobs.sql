-- A gateway batch runs as a compute job of its project: the job that runs it. Batches made
-- before have none, and are given one by the ticker.
ALTER TABLE gateway_batches ADD COLUMN job_id BIGINT REFERENCES jobs (id);
CREATE INDEX gateway_batches_job ON gateway_batches (job_id);
