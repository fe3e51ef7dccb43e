-- Fine-tuning through the gateway (`/v1/fine_tuning/jobs`): a project's key asks for a model of
-- the registry served by the gateway to be trained further on one of its files; Grappe quotes
-- the run, runs it as a compute job of the project, and registers its output as a new version,
-- served under `ft:...`.

-- The registry version a gateway model serves, when it is one (a model the built-in recipe can
-- fine-tune); none for an administrator's upstream.
ALTER TABLE gateway_models ADD COLUMN version_id BIGINT REFERENCES model_versions (id);

-- status: validated (quoted, waiting for `start`), queued, running, registering (its job
-- completed, its output being registered), succeeded, failed, cancelled. `quote` is the JSON shown before the start; `time_limit_s` bounds what the job can
-- be charged. `job_id` is the compute job once started; the result is a registry version and the
-- gateway model named `fine_tuned_model`.
CREATE TABLE gateway_fine_tunes (
    id {{id}},
    project_id BIGINT NOT NULL REFERENCES projects (id),
    key_id BIGINT NOT NULL REFERENCES gateway_keys (id),
    base_model_id BIGINT NOT NULL REFERENCES gateway_models (id),
    training_file_id BIGINT NOT NULL REFERENCES gateway_files (id),
    epochs BIGINT NOT NULL,
    seed BIGINT NOT NULL,
    suffix TEXT,
    examples BIGINT NOT NULL,
    trained_tokens BIGINT NOT NULL,
    time_limit_s BIGINT NOT NULL,
    quote TEXT NOT NULL,
    status TEXT NOT NULL,
    job_id BIGINT REFERENCES jobs (id),
    fine_tuned_model TEXT,
    result_version_id BIGINT REFERENCES model_versions (id),
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX gateway_fine_tunes_project ON gateway_fine_tunes (project_id, id);
CREATE INDEX gateway_fine_tunes_status ON gateway_fine_tunes (status);

-- The energy estimate sums a model's tokens (`Db::serving_measure`).
CREATE INDEX gateway_usage_model ON gateway_usage (model);
