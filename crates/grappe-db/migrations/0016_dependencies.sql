-- The jobs a job waits for, in Slurm's syntax (`afterok:12,afterany:14`; empty: none), checked
-- by the scheduler before it is considered (grappe_domain::dependency).
ALTER TABLE jobs ADD COLUMN dependencies TEXT NOT NULL DEFAULT '';
