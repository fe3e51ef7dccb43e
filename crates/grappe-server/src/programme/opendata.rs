//! The programme's own tables as open data, CSV and JSON at `/api/v1/opendata/{table}.{csv|json}`,
//! and their entries in the DCAT-AP catalogue (`data/catalog.rs` lists them after the commons'
//! datasets). Everything here is public: budget lines, the decisions that committed money, the
//! payments (without their transfer reference) and the indicators.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use grappe_db::{CommitmentRow, PaymentRow, PlatformFigures, StoredProgramme};
use serde_json::{Value, json};

use crate::kit::error::{AppError, AppResult};
use crate::kit::page::{csv_download, csv_field, iso8601};
use crate::kit::state::AppState;
use crate::programme::{commitment_json, payment_json};

/// The tables, with their titles and descriptions in French and English.
pub const TABLES: [(&str, [&str; 2], [&str; 2]); 4] = [
    (
        "budget-lines",
        ["Lignes budgétaires du programme", "The programme's budget lines"],
        [
            "Enveloppe, montants engagés (décisions) et versés (paiements) de chaque ligne, en centimes d'euro.",
            "Each line's envelope, committed (decisions) and disbursed (payments) amounts, in euro cents.",
        ],
    ),
    (
        "commitments",
        ["Engagements : dossiers retenus", "Commitments: selected applications"],
        [
            "Chaque dossier retenu par un appel : montant engagé, montant versé, date de la décision.",
            "Every application a call selected: amount committed, amount paid, date of the decision.",
        ],
    ),
    (
        "payments",
        ["Paiements", "Payments"],
        ["Chaque paiement : dossier, ligne, montant, date.", "Every payment: application, line, amount, date."],
    ),
    (
        "indicators",
        ["Indicateurs du programme", "The programme's indicators"],
        [
            "Chiffres clés annoncés (avec leur source) et chiffres comptés dans les registres de la plateforme.",
            "Headline figures as announced (with their source) and figures counted from the platform's records.",
        ],
    ),
];

/// The programme's tables as `dcat:Dataset`s, each with its CSV and JSON distributions.
pub fn catalog_entries(base: &str, modified: &str) -> Vec<Value> {
    TABLES
        .iter()
        .map(|(name, title, description)| {
            let distribution = |format: &str, media: &str| {
                let url = format!("{base}/api/v1/opendata/{name}.{format}");
                json!({
                    "@type": "dcat:Distribution",
                    "dct:title": format!("{name}.{format}"),
                    "dcat:accessURL": { "@id": url },
                    "dcat:downloadURL": { "@id": url },
                    "dcat:mediaType": { "@id": format!("https://www.iana.org/assignments/media-types/{media}") },
                    "dct:format": format.to_uppercase(),
                })
            };
            json!({
                "@id": format!("{base}/api/v1/opendata/{name}"),
                "@type": "dcat:Dataset",
                "dct:identifier": format!("programme-{name}"),
                "dct:title": [
                    { "@value": title[0], "@language": "fr" },
                    { "@value": title[1], "@language": "en" },
                ],
                "dct:description": [
                    { "@value": description[0], "@language": "fr" },
                    { "@value": description[1], "@language": "en" },
                ],
                "dct:modified": { "@value": modified, "@type": "xsd:date" },
                "dcat:landingPage": { "@id": format!("{base}/") },
                "dct:license": { "@id": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/" },
                "dcat:keyword": ["France 2030", "intelligence artificielle", "budget"],
                "dcat:distribution": [distribution("csv", "text/csv"), distribution("json", "application/json")],
            })
        })
        .collect()
}

/// One row of the indicators table.
struct Indicator {
    code: String,
    label_fr: String,
    label_en: String,
    value: i64,
    unit: String,
    source: String,
}

/// The announced figures, then those the platform's records count (their source: `records`).
fn indicators(programme: &StoredProgramme, figures: &PlatformFigures) -> Vec<Indicator> {
    let mut rows: Vec<Indicator> = programme
        .kpis
        .iter()
        .map(|kpi| Indicator {
            code: kpi.code.clone(),
            label_fr: kpi.label_fr.clone(),
            label_en: kpi.label_en.clone(),
            value: kpi.value,
            unit: kpi.unit.clone(),
            source: kpi.source.clone(),
        })
        .collect();
    let counted = [
        ("projects", "Projets de calcul", "Compute projects", figures.projects, "projects"),
        ("gpu_hours_allocated", "Heures GPU allouées", "GPU-hours allocated", figures.gpu_hours_allocated, "gpu_hours"),
        (
            "gpu_hours_used",
            "Heures GPU consommées",
            "GPU-hours used",
            crate::programme::dashboard::hours(figures.gpu_ms_used),
            "gpu_hours",
        ),
        ("jobs_completed", "Tâches de calcul terminées", "Compute jobs completed", figures.jobs_completed, "jobs"),
        ("public_datasets", "Jeux de données publics", "Public datasets", figures.public_datasets, "datasets"),
        (
            "dataset_versions",
            "Versions de jeux publics",
            "Versions of public datasets",
            figures.dataset_versions,
            "versions",
        ),
        ("public_models", "Modèles publics", "Public models", figures.models, "models"),
        ("challenge_teams", "Équipes des défis", "Challenge teams", figures.teams, "teams"),
        ("challenge_submissions", "Soumissions aux défis", "Challenge submissions", figures.submissions, "submissions"),
        ("applications", "Dossiers déposés", "Applications submitted", figures.applications, "applications"),
        ("selected", "Dossiers retenus", "Applications selected", figures.selected, "applications"),
        (
            "specialists_trained",
            "Étudiants inscrits dans les formations des pôles",
            "Students enrolled in the centres' programmes",
            figures.specialists_trained,
            "students",
        ),
        (
            "gateway_requests",
            "Requêtes à la passerelle IA",
            "AI gateway requests",
            figures.gateway_requests,
            "requests",
        ),
        (
            "booster_companies_diagnosed",
            "Entreprises diagnostiquées (IA Booster)",
            "Companies diagnosed (IA Booster)",
            figures.booster.companies_diagnosed,
            "companies",
        ),
        (
            "booster_companies_supported",
            "Entreprises accompagnées (IA Booster)",
            "Companies supported (IA Booster)",
            figures.booster.companies_supported,
            "companies",
        ),
        (
            "booster_jobs_created",
            "Emplois créés déclarés (IA Booster)",
            "Jobs created, as reported (IA Booster)",
            figures.booster.jobs_created,
            "jobs",
        ),
    ];
    rows.extend(counted.into_iter().map(|(code, fr, en, value, unit)| Indicator {
        code: code.to_owned(),
        label_fr: fr.to_owned(),
        label_en: en.to_owned(),
        value,
        unit: unit.to_owned(),
        source: "records".to_owned(),
    }));
    rows
}

fn csv_of(header: &str, rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut csv = format!("{header}\n");
    for row in rows {
        let fields: Vec<String> = row.iter().map(|field| csv_field(field)).collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    csv
}

fn commitments_csv(rows: &[CommitmentRow]) -> String {
    csv_of(
        "application,call,title,organisation,amount_cents,paid_cents,project,decided_at",
        rows.iter().map(|c| {
            vec![
                c.application_id.to_string(),
                c.call_name.clone(),
                c.title.clone(),
                c.organisation.clone(),
                c.amount_cents.to_string(),
                c.paid_cents.to_string(),
                c.project_id.map(|id| id.to_string()).unwrap_or_default(),
                iso8601(c.decided_at),
            ]
        }),
    )
}

fn payments_csv(rows: &[PaymentRow]) -> String {
    csv_of(
        "id,application,budget_line,amount_cents,paid_on",
        rows.iter().map(|p| {
            vec![
                p.id.to_string(),
                p.application_id.to_string(),
                p.budget_line.clone(),
                p.amount_cents.to_string(),
                p.paid_on.clone(),
            ]
        }),
    )
}

pub async fn table(State(state): State<AppState>, UrlPath(file): UrlPath<String>) -> AppResult<Response> {
    let unknown = || {
        AppError::NotFound(format!(
            "no open data table `{file}`: budget-lines, commitments, payments or indicators, as .csv or .json"
        ))
    };
    let (name, format) = file.rsplit_once('.').ok_or_else(unknown)?;
    let csv = match format {
        "csv" => true,
        "json" => false,
        _ => return Err(unknown()),
    };
    match name {
        "budget-lines" => {
            let programme = state.db.programme().await?;
            let lines = programme.lines();
            if csv {
                let body = csv_of(
                    "instrument,code,label_fr,label_en,envelope_cents,committed_cents,disbursed_cents",
                    lines.map(|(instrument, line)| {
                        vec![
                            instrument.to_owned(),
                            line.code.clone(),
                            line.label_fr.clone(),
                            line.label_en.clone(),
                            line.envelope_cents.to_string(),
                            line.committed_cents.to_string(),
                            line.disbursed_cents.to_string(),
                        ]
                    }),
                );
                return Ok(csv_download("budget-lines.csv", body));
            }
            let rows: Vec<Value> = lines
                .map(|(instrument, line)| {
                    json!({
                        "instrument": instrument,
                        "code": line.code,
                        "label_fr": line.label_fr,
                        "label_en": line.label_en,
                        "envelope_cents": line.envelope_cents,
                        "committed_cents": line.committed_cents,
                        "disbursed_cents": line.disbursed_cents,
                    })
                })
                .collect();
            Ok(Json(json!({ "items": rows })).into_response())
        }
        "commitments" => {
            let rows = state.db.commitments(None).await?;
            if csv {
                return Ok(csv_download("commitments.csv", commitments_csv(&rows)));
            }
            Ok(Json(json!({ "items": rows.iter().map(commitment_json).collect::<Vec<_>>() })).into_response())
        }
        "payments" => {
            let rows = state.db.payments(None).await?;
            if csv {
                return Ok(csv_download("payments.csv", payments_csv(&rows)));
            }
            Ok(Json(json!({ "items": rows.iter().map(payment_json).collect::<Vec<_>>() })).into_response())
        }
        "indicators" => {
            let programme = state.db.programme().await?;
            let figures = state.db.platform_figures().await?;
            let rows = indicators(&programme, &figures);
            if csv {
                let body = csv_of(
                    "code,label_fr,label_en,value,unit,source",
                    rows.iter().map(|row| {
                        vec![
                            row.code.clone(),
                            row.label_fr.clone(),
                            row.label_en.clone(),
                            row.value.to_string(),
                            row.unit.clone(),
                            row.source.clone(),
                        ]
                    }),
                );
                return Ok(csv_download("indicators.csv", body));
            }
            let items: Vec<Value> = rows
                .iter()
                .map(|row| {
                    json!({
                        "code": row.code,
                        "label_fr": row.label_fr,
                        "label_en": row.label_en,
                        "value": row.value,
                        "unit": row.unit,
                        "source": row.source,
                    })
                })
                .collect();
            Ok(Json(json!({ "items": items })).into_response())
        }
        _ => Err(unknown()),
    }
}
