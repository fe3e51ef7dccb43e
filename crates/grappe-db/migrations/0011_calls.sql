-- Calls for proposals and their applications. A call has criteria with weights on one score
-- scale, a budget envelope, and dates: applications are edited until the deadline (a rolling
-- call has none), then locked by the server; every saved state of an application is kept.
CREATE TABLE calls (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    -- The programme's budget line it spends (an instrument's code).
    instrument TEXT NOT NULL,
    title_fr TEXT NOT NULL,
    title_en TEXT NOT NULL,
    text_fr TEXT NOT NULL DEFAULT '',
    text_en TEXT NOT NULL DEFAULT '',
    -- JSON: [{"key", "fr", "en", "weight"}].
    criteria TEXT NOT NULL,
    scale_max BIGINT NOT NULL,
    envelope_cents BIGINT NOT NULL,
    reviewers_per_application BIGINT NOT NULL,
    opens_at BIGINT NOT NULL,
    -- None: a rolling call, decided application by application.
    closes_at BIGINT,
    review_ends_at BIGINT,
    created_by BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE applications (
    id {{id}},
    call_id BIGINT NOT NULL REFERENCES calls (id),
    submitted_by BIGINT NOT NULL,
    organisation TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- JSON arrays of strings.
    partners TEXT NOT NULL,
    keywords TEXT NOT NULL,
    requested_cents BIGINT NOT NULL,
    requested_gpu_hours BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX applications_call ON applications (call_id, id);

-- Every saved state of an application, as JSON, with who saved it and when.
CREATE TABLE application_versions (
    application_id BIGINT NOT NULL REFERENCES applications (id),
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    saved_by BIGINT NOT NULL,
    saved_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, version)
);
