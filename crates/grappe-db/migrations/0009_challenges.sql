-- The international challenge: challenges on a dataset version of the data commons, teams,
-- submissions and their scores. The hidden test labels live here, in `challenge_labels`, and
-- nowhere else: not in the store, not in any file a job can see.
CREATE TABLE challenges (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The dataset version participants train on and predict for (train split, test inputs).
    dataset_id BIGINT NOT NULL REFERENCES datasets (id),
    dataset_version TEXT NOT NULL,
    metric TEXT NOT NULL,
    -- The share of the test rows scored on the public board (percent); the rest is private.
    public_percent BIGINT NOT NULL,
    -- The key that draws the public rows (hex, 32 bytes), and the largest hash among them.
    split_key TEXT NOT NULL,
    split_threshold TEXT NOT NULL,
    test_rows BIGINT NOT NULL,
    -- Phases as JSON: [{"name", "starts_at", "ends_at"}], in order, not overlapping (UTC ms).
    phases TEXT NOT NULL,
    opens_at BIGINT NOT NULL,
    closes_at BIGINT NOT NULL,
    per_day BIGINT NOT NULL,
    total BIGINT NOT NULL,
    team_size BIGINT NOT NULL,
    -- The Ladder (Blum and Hardt, 2015): a step > 0 shows only improvements larger than it.
    ladder_step DOUBLE PRECISION,
    -- Code submissions: the project whose allocation runs them, and their resources.
    code_project_id BIGINT REFERENCES projects (id),
    code_cpus BIGINT NOT NULL DEFAULT 1,
    code_memory_mb BIGINT NOT NULL DEFAULT 1024,
    code_time_limit_s BIGINT NOT NULL DEFAULT 600,
    created_by BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE challenge_labels (
    challenge_id BIGINT PRIMARY KEY REFERENCES challenges (id),
    body TEXT NOT NULL
);

CREATE TABLE challenge_teams (
    id {{id}},
    challenge_id BIGINT NOT NULL REFERENCES challenges (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Organisers' baselines: shown on the boards, never ranked.
    baseline BIGINT NOT NULL DEFAULT 0,
    -- Merged into another team: its submissions moved there.
    merged_into BIGINT,
    UNIQUE (challenge_id, name)
);

-- One team per person per challenge.
CREATE TABLE challenge_members (
    challenge_id BIGINT NOT NULL REFERENCES challenges (id),
    user_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL REFERENCES challenge_teams (id),
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (challenge_id, user_id)
);

CREATE TABLE challenge_invites (
    team_id BIGINT NOT NULL REFERENCES challenge_teams (id),
    user_id BIGINT NOT NULL,
    invited_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);

CREATE TABLE challenge_submissions (
    id {{id}},
    challenge_id BIGINT NOT NULL REFERENCES challenges (id),
    team_id BIGINT NOT NULL REFERENCES challenge_teams (id),
    user_id BIGINT,
    phase TEXT NOT NULL,
    -- 'file' or 'code'.
    kind TEXT NOT NULL,
    -- 'running' (code: its job), 'scored' or 'failed'.
    state TEXT NOT NULL,
    -- 0 when it failed through the platform's fault: it does not count against the limits.
    counts BIGINT NOT NULL,
    job_id BIGINT,
    -- When a running submission is given up (its lease).
    deadline BIGINT,
    reason TEXT NOT NULL DEFAULT '',
    public_score DOUBLE PRECISION,
    private_score DOUBLE PRECISION,
    -- What the public board shows (the Ladder may show the team's previous best instead).
    shown_score DOUBLE PRECISION,
    final BIGINT NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX challenge_submissions_team ON challenge_submissions (team_id, created_at);
CREATE INDEX challenge_submissions_running ON challenge_submissions (state);
