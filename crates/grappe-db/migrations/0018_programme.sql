-- The programme as data (issue 11): the programme's own row, loaded from its file; budget lines
-- without stored committed and disbursed sums (decisions commit, payments disburse: both are
-- summed from their records); payments; the sources of the headline figures; the IA-cluster
-- centres' public profiles and training offer.
CREATE TABLE programme (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    code TEXT NOT NULL,
    name_fr TEXT NOT NULL,
    name_en TEXT NOT NULL,
    source TEXT NOT NULL,
    loaded_by TEXT NOT NULL,
    loaded_at BIGINT NOT NULL
);

CREATE TABLE budget_lines_new (
    id {{id}},
    instrument_id BIGINT NOT NULL REFERENCES instruments (id),
    code TEXT NOT NULL UNIQUE,
    position BIGINT NOT NULL,
    label_fr TEXT NOT NULL,
    label_en TEXT NOT NULL,
    envelope_cents BIGINT NOT NULL CHECK (envelope_cents >= 0)
);
INSERT INTO budget_lines_new (instrument_id, code, position, label_fr, label_en, envelope_cents)
    SELECT instrument_id, code, position, label_fr, label_en, envelope_cents FROM budget_lines;
DROP TABLE budget_lines;
ALTER TABLE budget_lines_new RENAME TO budget_lines;

ALTER TABLE kpis ADD COLUMN source TEXT NOT NULL DEFAULT '';

CREATE INDEX call_decisions_line ON call_decisions (budget_line);

-- A payment on a selected application's grant; its reference (the transfer's) is unique, so a
-- payment recorded twice is refused rather than paid twice.
CREATE TABLE payments (
    id {{id}},
    application_id BIGINT NOT NULL REFERENCES call_decisions (application_id),
    budget_line TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    paid_on TEXT NOT NULL,
    reference TEXT NOT NULL UNIQUE,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX payments_application ON payments (application_id);
CREATE INDEX payments_line ON payments (budget_line);

-- A centre selected by an IA-cluster call: its public profile, kept by its project's
-- coordinators. Partners and themes: one per line.
CREATE TABLE centres (
    application_id BIGINT PRIMARY KEY REFERENCES call_decisions (application_id),
    city TEXT NOT NULL,
    summary_fr TEXT NOT NULL,
    summary_en TEXT NOT NULL,
    partners TEXT NOT NULL,
    themes TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A centre's training programme in one academic year (`year`: the year it starts).
CREATE TABLE centre_trainings (
    id {{id}},
    application_id BIGINT NOT NULL REFERENCES call_decisions (application_id),
    level TEXT NOT NULL,
    title TEXT NOT NULL,
    year BIGINT NOT NULL,
    places BIGINT NOT NULL CHECK (places >= 0),
    enrolled BIGINT NOT NULL CHECK (enrolled >= 0),
    UNIQUE (application_id, level, title, year)
);
