-- When a pending job is estimated to start (Unix milliseconds): the live engine's passes replayed
-- forward with every running job ending at its time limit (`grappe_sched::estimate`), written
-- by the scheduler as reasons are; none when no replayed pass starts it.
ALTER TABLE jobs ADD COLUMN estimated_start_at BIGINT;
