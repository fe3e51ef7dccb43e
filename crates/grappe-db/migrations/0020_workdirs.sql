-- Working directories sent with jobs (issue 15): each archive is stored once by its SHA-256
-- (`DATA_DIR/workdirs/DIGEST.tar`); who sent which, so that a job names only its user's own.
CREATE TABLE workdir_uploads (
    digest TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    files BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (digest, user_id)
);

-- The working directory a job starts in (its archive's digest; empty: an empty directory).
ALTER TABLE jobs ADD COLUMN workdir TEXT NOT NULL DEFAULT '';
