-- Metric limits: each job counts the metric points it holds (a quota is checked against this
-- count in the same transaction as every insert) and the metric lines of its output that were
-- dropped (unreadable, a value out of range, or past the quota).
ALTER TABLE jobs ADD COLUMN metric_points BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN metrics_dropped BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET metric_points = (SELECT COUNT(*) FROM job_metrics WHERE job_metrics.job_id = jobs.id);
