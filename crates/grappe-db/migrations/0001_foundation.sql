-- Accounts, sessions, tokens, the programme, leases and the audit chain.
-- `{{id}}` is the dialect's auto-increment primary key; every integer is BIGINT and every
-- time is Unix milliseconds, so one set of statements serves SQLite and PostgreSQL.

CREATE TABLE organisations (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    size_class TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id {{id}},
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    organisation_id BIGINT REFERENCES organisations (id),
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE role_grants (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    scope_kind TEXT NOT NULL,
    scope_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, role, scope_kind, scope_id)
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE instruments (
    id {{id}},
    code TEXT NOT NULL UNIQUE,
    position BIGINT NOT NULL,
    name_fr TEXT NOT NULL,
    name_en TEXT NOT NULL,
    summary_fr TEXT NOT NULL,
    summary_en TEXT NOT NULL,
    module TEXT NOT NULL
);

CREATE TABLE budget_lines (
    id {{id}},
    instrument_id BIGINT NOT NULL REFERENCES instruments (id),
    code TEXT NOT NULL UNIQUE,
    position BIGINT NOT NULL,
    label_fr TEXT NOT NULL,
    label_en TEXT NOT NULL,
    envelope_cents BIGINT NOT NULL,
    committed_cents BIGINT NOT NULL DEFAULT 0,
    disbursed_cents BIGINT NOT NULL DEFAULT 0,
    CHECK (envelope_cents >= 0 AND committed_cents >= 0 AND disbursed_cents >= 0)
);

CREATE TABLE kpis (
    code TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    label_fr TEXT NOT NULL,
    label_en TEXT NOT NULL,
    value BIGINT NOT NULL,
    unit TEXT NOT NULL,
    approximate BIGINT NOT NULL
);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ticks BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
