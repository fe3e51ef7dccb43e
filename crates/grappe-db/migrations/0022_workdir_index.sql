-- The jobs that name a working directory, for the daily sweep of archives no job needs.
CREATE INDEX jobs_workdir ON jobs (workdir) WHERE workdir <> '';
