-- The open data commons' catalogue: who owns each dataset, who may see it, the card's headline
-- fields (for search and filters) and the versions published. The bytes are in the store,
-- named by version id; a version is published once its row is here.
CREATE TABLE datasets (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    -- The owning project, whose members may push; none: the programme's own (admins).
    project_id BIGINT REFERENCES projects (id),
    public BIGINT NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    licence TEXT NOT NULL DEFAULT '',
    -- Space-separated codes, with a space at each end, so that ` fr ` finds French.
    languages TEXT NOT NULL DEFAULT '',
    tasks TEXT NOT NULL DEFAULT '',
    latest_version TEXT,
    -- The latest version's size: what the dataset counts against its project's storage.
    latest_bytes BIGINT NOT NULL DEFAULT 0,
    CHECK (public IN (0, 1))
);

CREATE TABLE dataset_versions (
    id {{id}},
    dataset_id BIGINT NOT NULL REFERENCES datasets (id),
    version TEXT NOT NULL,
    seq BIGINT NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    files BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    -- What validation found (JSON): per-file schema and statistics, split checks, card warnings.
    report TEXT NOT NULL DEFAULT '{}',
    -- Its first files (JSON: path, size, media type, digest), for the catalogue and harvesters,
    -- so that listing datasets never reads their manifests from the store.
    listing TEXT NOT NULL DEFAULT '[]',
    UNIQUE (dataset_id, seq)
);

-- A job's declared inputs, resolved at submission to exact versions: a JSON array of
-- {"dataset", "version"}.
ALTER TABLE jobs ADD COLUMN inputs TEXT NOT NULL DEFAULT '[]';

-- Which projects may use a stored chunk without sending it: those that sent it, or whose
-- versions use it; project 0 stands for public versions (anyone's). The store deduplicates
-- across datasets; this keeps "does the server have this chunk" from telling one project about
-- another's private data, and a version from naming chunks its project never had.
CREATE TABLE dataset_chunks (
    project_id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (project_id, digest)
);
