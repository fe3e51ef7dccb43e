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

-- The jury of a call: who, from which country and organisation, with which expertise.
CREATE TABLE call_jurors (
    call_id BIGINT NOT NULL REFERENCES calls (id),
    user_id BIGINT NOT NULL,
    country TEXT NOT NULL,
    organisation TEXT NOT NULL,
    -- JSON array of strings.
    keywords TEXT NOT NULL,
    invited_by BIGINT,
    invited_at BIGINT NOT NULL,
    PRIMARY KEY (call_id, user_id)
);

-- Conflicts of interest between a juror and an application: declared by the juror, detected by
-- the server (same organisation, same e-mail domain, the juror's organisation a partner), or
-- added by a manager; a manager may lift one, saying why. Never deleted: lifted ones stay.
CREATE TABLE call_conflicts (
    call_id BIGINT NOT NULL REFERENCES calls (id),
    application_id BIGINT NOT NULL REFERENCES applications (id),
    user_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    active BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    why TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (application_id, user_id)
);

CREATE TABLE call_assignments (
    call_id BIGINT NOT NULL REFERENCES calls (id),
    application_id BIGINT NOT NULL REFERENCES applications (id),
    user_id BIGINT NOT NULL,
    affinity DOUBLE PRECISION NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, user_id)
);

-- A juror's review of an application: a score and a justification per criterion (JSON objects
-- keyed by the criterion's key), a confidence from 1 to 5. One per juror and application.
CREATE TABLE call_reviews (
    call_id BIGINT NOT NULL REFERENCES calls (id),
    application_id BIGINT NOT NULL REFERENCES applications (id),
    user_id BIGINT NOT NULL,
    scores TEXT NOT NULL,
    justifications TEXT NOT NULL,
    confidence BIGINT NOT NULL,
    submitted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, user_id)
);

-- The decision on an application: selected or not, with the amount and GPU-hours granted, the
-- compute project it became and the budget line it was committed on. Recorded once, in the
-- transaction that creates the project, grants its members and commits the amount.
CREATE TABLE call_decisions (
    application_id BIGINT PRIMARY KEY REFERENCES applications (id),
    call_id BIGINT NOT NULL REFERENCES calls (id),
    selected BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    gpu_hours BIGINT NOT NULL,
    project_id BIGINT,
    budget_line TEXT,
    decided_by TEXT NOT NULL,
    decided_at BIGINT NOT NULL
);
