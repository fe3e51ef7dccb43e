-- IA Booster: companies (an organisation of kind `company`, with its size class, plus its SIREN
-- and NAF rev. 2 code), their AI-maturity diagnostics (answers and scores, every one kept),
-- their support requests (an application to the Booster's rolling call, decided through the
-- calls' decisions) and the outcomes their members report. A company's members are the users
-- holding the `company_member` role over its organisation (`role_grants`).
CREATE TABLE booster_companies (
    organisation_id BIGINT PRIMARY KEY REFERENCES organisations (id),
    siren TEXT NOT NULL UNIQUE,
    naf_code TEXT NOT NULL,
    -- The NAF section (A to U): with the size class, the company's peer group.
    naf_section TEXT NOT NULL,
    registered_by BIGINT NOT NULL REFERENCES users (id),
    registered_at BIGINT NOT NULL
);
CREATE INDEX booster_companies_section ON booster_companies (naf_section);

CREATE TABLE booster_diagnostics (
    id {{id}},
    organisation_id BIGINT NOT NULL REFERENCES booster_companies (organisation_id),
    submitted_by BIGINT NOT NULL REFERENCES users (id),
    -- The EU AI Act class the company gave: unacceptable, high, limited, minimal, unknown.
    ai_act_class TEXT NOT NULL,
    -- The rubric's scores (grappe-booster), 0 to 100, as computed at submission.
    score_data BIGINT NOT NULL,
    score_skills BIGINT NOT NULL,
    score_use_cases BIGINT NOT NULL,
    score_infrastructure BIGINT NOT NULL,
    score_governance BIGINT NOT NULL,
    submitted_at BIGINT NOT NULL,
    CHECK (score_data BETWEEN 0 AND 100 AND score_skills BETWEEN 0 AND 100 AND score_use_cases BETWEEN 0 AND 100
        AND score_infrastructure BETWEEN 0 AND 100 AND score_governance BETWEEN 0 AND 100)
);
CREATE INDEX booster_diagnostics_company ON booster_diagnostics (organisation_id, id);

-- A diagnostic's answers, one per question (0 to 3).
CREATE TABLE booster_answers (
    diagnostic_id BIGINT NOT NULL REFERENCES booster_diagnostics (id),
    question TEXT NOT NULL,
    answer BIGINT NOT NULL,
    PRIMARY KEY (diagnostic_id, question)
);

-- A support request is an application to the Booster's rolling call, for this company.
CREATE TABLE booster_support (
    application_id BIGINT PRIMARY KEY REFERENCES applications (id),
    organisation_id BIGINT NOT NULL REFERENCES booster_companies (organisation_id),
    requested_by BIGINT NOT NULL REFERENCES users (id),
    requested_at BIGINT NOT NULL
);
CREATE INDEX booster_support_company ON booster_support (organisation_id);

-- What came of the support, as the company's members report it.
CREATE TABLE booster_outcomes (
    id {{id}},
    organisation_id BIGINT NOT NULL REFERENCES booster_companies (organisation_id),
    -- prototype, product or jobs.
    kind TEXT NOT NULL,
    -- 1 for a prototype or a product; for jobs, how many were created.
    quantity BIGINT NOT NULL,
    -- The day it happened, YYYY-MM-DD.
    occurred_on TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    recorded_by BIGINT NOT NULL REFERENCES users (id),
    recorded_at BIGINT NOT NULL,
    CHECK (quantity >= 1)
);
CREATE INDEX booster_outcomes_company ON booster_outcomes (organisation_id, id);
