-- A project's principal investigator (who may name its coordinators).
ALTER TABLE projects ADD COLUMN principal_investigator BIGINT;

-- The audit chain keyed (HMAC under a key kept outside the database), marked per event so that
-- events from before it still verify; and the chain's head written down once a day, for the
-- public programme data, so that a rewritten chain does not match what was published.
ALTER TABLE audit_events ADD COLUMN keyed BIGINT NOT NULL DEFAULT 0;
CREATE TABLE audit_anchors (
    day TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL
);
-- Events up to here were chained unkeyed; with a key, a later unkeyed event is a break (no
-- downgrade of the chain to plain hashes).
ALTER TABLE audit_head ADD COLUMN legacy_until BIGINT NOT NULL DEFAULT 0;
UPDATE audit_head SET legacy_until = seq WHERE id = 1;
