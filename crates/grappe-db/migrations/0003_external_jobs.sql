-- A job handed to an outside scheduler (Slurm) carries that scheduler's id.
ALTER TABLE jobs ADD COLUMN external_id TEXT;
