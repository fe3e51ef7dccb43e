//! The OpenAPI 3.1 document, generated from the route table: every API route with its method,
//! summary, access rule, path parameters and request body schema.

use axum::Json;
use grappe_domain::policy::Access;
use serde_json::{Map, Value, json};

use crate::kit::route::Kind;
use crate::routes::table;

fn schemas() -> Value {
    let string = json!({ "type": "string" });
    json!({
        "LoginToken": {
            "type": "object", "required": ["email", "password"],
            "properties": { "email": string, "password": string, "name": string },
        },
        "NewToken": { "type": "object", "required": ["name"], "properties": { "name": string } },
        "NewUser": {
            "type": "object", "required": ["name", "email", "password"],
            "properties": {
                "name": string, "email": { "type": "string", "format": "email" },
                "password": { "type": "string", "minLength": 10 },
                "organisation_id": { "type": ["integer", "null"] },
            },
        },
        "NewGrant": {
            "type": "object", "required": ["role"],
            "properties": {
                "role": { "enum": ["admin", "call_manager", "juror", "applicant", "project_member", "challenge_organiser", "participant"] },
                "scope": { "type": "string", "description": "`global` (default) or `kind:id`, kind one of call, project, challenge, organisation" },
            },
        },
        "NewOrganisation": {
            "type": "object", "required": ["name", "kind"],
            "properties": {
                "name": string,
                "kind": { "enum": ["university", "lab", "company", "public_body"] },
                "size_class": { "enum": ["sme", "eti", "large", null] },
            },
        },
        "NewProject": {
            "type": "object", "required": ["name", "gpu_hours", "cpu_hours"],
            "properties": {
                "name": string, "gpu_hours": { "type": "integer", "minimum": 0 }, "cpu_hours": { "type": "integer", "minimum": 0 },
                "storage_gb": { "type": "integer", "minimum": 0 },
                "valid_from": { "type": ["integer", "null"] }, "valid_until": { "type": ["integer", "null"] },
                "members": { "type": "array", "items": { "type": "integer" } },
                "principal_investigator": { "type": ["integer", "null"] },
            },
        },
        "NewMember": { "type": "object", "required": ["user_id"], "properties": { "user_id": { "type": "integer" } } },
        "NewJob": {
            "type": "object", "required": ["project", "command", "time_limit_s"],
            "properties": {
                "project": { "type": ["integer", "string"] },
                "command": { "type": "array", "items": string, "minItems": 1 },
                "name": string, "cpus": { "type": "integer", "minimum": 1 }, "gpus": { "type": "integer", "minimum": 0 },
                "memory_mb": { "type": "integer", "minimum": 1 }, "time_limit_s": { "type": "integer", "minimum": 1 },
                "qos": { "enum": ["dev", "normal", "long"] }, "dry_run": { "type": "boolean" },
                "env": { "type": "object", "additionalProperties": string },
                "network": { "type": "boolean" }, "nodes": { "type": "integer", "minimum": 1 },
                "workdir": { "type": "string", "description": "the digest POST /api/v1/workdirs gave: the job starts in that directory" },
                "inputs": {
                    "type": "array", "maxItems": crate::data::inputs::MAX_INPUTS,
                    "items": { "type": "string", "description": "DATASET, DATASET@vN or DATASET@VERSION_ID: read-only at $GRAPPE_INPUTS/DATASET" },
                },
            },
        },
        "NewDataset": {
            "type": "object", "required": ["name"],
            "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$" },
                "project": { "type": ["integer", "null"], "description": "the owning project (only administrators may leave it out)" },
                "public": { "type": "boolean", "description": "listed for everyone and in the DCAT-AP catalogue; private to the project by default" },
            },
        },
        "NewCall": {
            "type": "object", "required": ["name", "instrument", "title_fr", "title_en", "criteria", "envelope_cents", "opens_at"],
            "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$" },
                "instrument": { "type": "string", "description": "the programme instrument whose budget line the call spends" },
                "title_fr": { "type": "string" }, "title_en": { "type": "string" },
                "text_fr": { "type": "string", "description": "Markdown" }, "text_en": { "type": "string", "description": "Markdown" },
                "criteria": { "type": "array", "items": { "type": "object", "required": ["key", "fr", "en", "weight"], "properties": {
                    "key": { "type": "string" }, "fr": { "type": "string" }, "en": { "type": "string" }, "weight": { "type": "number" } } } },
                "scale_max": { "type": "integer", "default": 5 },
                "envelope_cents": { "type": "integer" },
                "reviewers_per_application": { "type": "integer", "default": 3 },
                "opens_at": { "type": "integer", "description": "Unix ms, UTC" },
                "closes_at": { "type": ["integer", "null"], "description": "the deadline; none: a rolling call" },
                "review_ends_at": { "type": ["integer", "null"] },
            },
        },
        "Programme": {
            "type": "object", "required": ["programme"],
            "description": "the programme's file (`programmes/france-2030-ia.toml`) as JSON: `programme` {code, name {fr, en}, source}, `instruments` [{code, module, name, summary, budget_lines [{code, label, envelope_eur}]}], `kpis` [{code, label, value, unit, approximate, source}]",
        },
        "Payment": {
            "type": "object", "required": ["application", "amount_cents", "paid_on", "reference"],
            "properties": {
                "application": { "type": "integer", "description": "a selected application" },
                "amount_cents": { "type": "integer", "minimum": 1, "description": "with what was paid, at most the grant" },
                "paid_on": { "type": "string", "format": "date", "description": "not after today" },
                "reference": { "type": "string", "description": "the transfer's, unique; not published" },
            },
        },
        "CentreProfile": {
            "type": "object",
            "properties": {
                "city": { "type": "string" }, "summary_fr": { "type": "string" }, "summary_en": { "type": "string" },
                "partners": { "type": "array", "items": { "type": "string" }, "maxItems": 50 },
                "themes": { "type": "array", "items": { "type": "string" }, "maxItems": 50 },
            },
        },
        "Training": {
            "type": "object", "required": ["level", "title", "year", "places", "enrolled"],
            "properties": {
                "level": { "enum": ["technician", "bachelor", "master", "engineer", "phd", "continuing"] },
                "title": { "type": "string" }, "year": { "type": "integer", "description": "the academic year's start, 2018 to 2035" },
                "places": { "type": "integer", "minimum": 0 }, "enrolled": { "type": "integer", "minimum": 0, "description": "at most the places" },
            },
        },
        "Message": {
            "type": "object", "required": ["body"],
            "properties": { "body": { "type": "string", "description": "1 to 4,000 characters" } },
        },
        "NewKey": {
            "type": "object", "required": ["name"],
            "properties": {
                "name": { "type": "string" },
                "limits": { "$ref": "#/components/schemas/GatewayLimits", "description": "this key's limits besides the project's" },
            },
        },
        "GatewayLimits": {
            "type": "object",
            "properties": {
                "requests_per_minute": { "type": ["integer", "null"] }, "tokens_per_minute": { "type": ["integer", "null"] },
                "requests_per_day": { "type": ["integer", "null"], "description": "per UTC day" }, "tokens_per_day": { "type": ["integer", "null"] },
            },
        },
        "NewGatewayModel": {
            "type": "object", "required": ["name", "input_gpu_ms_per_1k", "output_gpu_ms_per_1k", "max_output_tokens"],
            "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$" },
                "upstream": { "type": ["string", "null"], "description": "the upstream's base URL, http://host:port/v1 (it speaks OpenAI's format; administrators only); none: served by the project's jobs" },
                "project": { "type": ["integer", "null"], "description": "only this project's keys may call it; none: every project's" },
                "input_gpu_ms_per_1k": { "type": "integer", "description": "GPU-milliseconds charged per 1,000 prompt tokens" },
                "output_gpu_ms_per_1k": { "type": "integer", "description": "GPU-milliseconds charged per 1,000 answer tokens" },
                "max_output_tokens": { "type": "integer" },
                "max_concurrency": { "type": "integer", "default": 32, "description": "the most requests one replica is sent at once; more wait, people before batches" },
                "version": { "type": ["string", "null"], "description": "the registry version (NAME@N) the project's jobs serve as this model, which may then be fine-tuned" },
                "recipe": {
                    "type": ["object", "null"],
                    "description": "how its versions are fine-tuned and served by jobs (administrators only, with version); none: the built-in language model's way",
                    "required": ["train", "serve", "cpus", "gpus", "memory_mb", "tokens_per_second"],
                    "properties": {
                        "train": { "type": "string", "description": "shell script: $1 the fine-tuned model's name, $2 epochs, $3 seed; reads $GRAPPE_INPUTS/training/content and $GRAPPE_INPUTS/base/, writes model/" },
                        "serve": { "type": "string", "description": "shell script serving $GRAPPE_INPUTS/model/ as the model named $1 (grappe model serve, or a server behind grappe model proxy)" },
                        "cpus": { "type": "integer" },
                        "gpus": { "type": "integer" },
                        "memory_mb": { "type": "integer" },
                        "tokens_per_second": { "type": "integer", "description": "bytes of examples trained per second: the quote's estimate" },
                    },
                },
            },
        },
        "CallDates": {
            "type": "object", "required": ["opens_at"],
            "properties": {
                "opens_at": { "type": "integer", "description": "Unix ms, UTC" },
                "closes_at": { "type": ["integer", "null"], "description": "the deadline; none: a rolling call" },
                "review_ends_at": { "type": ["integer", "null"] },
            },
        },
        "Application": {
            "type": "object", "required": ["organisation", "title", "summary", "requested_cents"],
            "properties": {
                "organisation": { "type": "string" }, "title": { "type": "string" }, "summary": { "type": "string" },
                "partners": { "type": "array", "items": { "type": "string" } },
                "keywords": { "type": "array", "items": { "type": "string" } },
                "requested_cents": { "type": "integer" }, "requested_gpu_hours": { "type": "integer" },
                "version": { "type": "integer", "description": "on a save: the version read (a save over a newer one is refused)" },
            },
        },
        "NewJuror": {
            "type": "object", "required": ["email", "country", "organisation"],
            "properties": { "email": { "type": "string" }, "country": { "type": "string" }, "organisation": { "type": "string" },
                "keywords": { "type": "array", "items": { "type": "string" }, "description": "expertise, for the affinity" } },
        },
        "Conflict": {
            "type": "object", "required": ["application", "juror", "active", "why"],
            "properties": { "application": { "type": "integer" }, "juror": { "type": "integer", "description": "the juror's user id" },
                "active": { "type": "boolean", "description": "true adds the conflict, false lifts it" }, "why": { "type": "string" } },
        },
        "Declaration": { "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } },
        "Assign": { "type": "object", "properties": { "max_load": { "type": "integer", "description": "L; by default the fewest that can work, plus one" } } },
        "Review": {
            "type": "object", "required": ["scores", "justifications", "confidence"],
            "properties": {
                "scores": { "type": "object", "additionalProperties": { "type": "number" }, "description": "by criterion key, 0 to the call's scale" },
                "justifications": { "type": "object", "additionalProperties": { "type": "string" } },
                "confidence": { "type": "integer", "minimum": 1, "maximum": 5 },
            },
        },
        "Decisions": {
            "type": "object", "required": ["decisions"],
            "properties": { "decisions": { "type": "array", "items": { "type": "object", "required": ["application", "selected"], "properties": {
                "application": { "type": "integer" }, "selected": { "type": "boolean" },
                "amount_cents": { "type": "integer", "description": "at most what was asked" }, "gpu_hours": { "type": "integer" } } } } },
        },
        "NewChallenge": {
            "type": "object", "required": ["name", "title", "dataset", "metric", "labels", "phases"],
            "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$" },
                "title": { "type": "string" },
                "description": { "type": "string", "description": "Markdown" },
                "dataset": { "type": "string", "description": "a public dataset: NAME, NAME@vN or NAME@VERSION_ID" },
                "metric": { "type": "string", "enum": ["accuracy", "f1_macro", "f1_micro", "precision_macro", "recall_macro", "mae", "rmse", "r2", "roc_auc", "log_loss", "bleu", "chrf", "exact_match"] },
                "labels": { "type": "string", "description": "the hidden test labels: CSV with an id column and one value column" },
                "public_percent": { "type": "integer", "minimum": 1, "maximum": 99, "default": 30 },
                "phases": { "type": "array", "items": { "type": "object", "required": ["name", "starts_at", "ends_at"], "properties": {
                    "name": { "type": "string" }, "starts_at": { "type": "integer", "description": "Unix ms, UTC" }, "ends_at": { "type": "integer" } } } },
                "per_day": { "type": "integer", "default": 5, "description": "submissions per team per UTC day" },
                "total": { "type": "integer", "default": 100 },
                "team_size": { "type": "integer", "default": 5 },
                "ladder_step": { "type": ["number", "null"], "description": "the Ladder: show only public gains larger than this step" },
                "code": { "type": ["object", "null"], "description": "accept code, run on this project", "properties": {
                    "project": { "type": "integer" }, "cpus": { "type": "integer" }, "memory_mb": { "type": "integer" }, "time_limit_s": { "type": "integer" } } },
            },
        },
        "NewCompany": {
            "type": "object", "required": ["name", "siren", "size_class", "naf"],
            "properties": {
                "name": { "type": "string" },
                "siren": { "type": "string", "description": "9 digits with a Luhn check digit; spaces allowed" },
                "size_class": { "enum": ["sme", "eti"] },
                "naf": { "type": "string", "description": "NAF rev. 2: 62.01Z or 6201Z" },
            },
        },
        "NewDiagnostic": {
            "type": "object", "required": ["answers", "ai_act_class"],
            "properties": {
                "answers": { "type": "object", "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 3 },
                    "description": "every question of GET /api/v1/booster/questions, by id" },
                "ai_act_class": { "enum": ["unacceptable", "high", "limited", "minimal", "unknown"] },
            },
        },
        "SupportRequest": {
            "type": "object", "required": ["title", "summary", "requested_cents", "requested_gpu_hours"],
            "properties": {
                "title": { "type": "string" }, "summary": { "type": "string" },
                "requested_cents": { "type": "integer", "minimum": 1 },
                "requested_gpu_hours": { "type": "integer", "minimum": 1, "maximum": crate::booster::MAX_SUPPORT_GPU_HOURS },
            },
        },
        "NewMember": { "type": "object", "required": ["email"], "properties": { "email": { "type": "string", "description": "a user of the platform" } } },
        "NewOutcome": {
            "type": "object", "required": ["kind", "occurred_on"],
            "properties": {
                "kind": { "enum": ["prototype", "product", "jobs"] },
                "quantity": { "type": "integer", "minimum": 1, "default": 1, "description": "1 for a prototype or a product; jobs created" },
                "occurred_on": { "type": "string", "format": "date" },
                "note": { "type": "string", "maxLength": 1000 },
            },
        },
        "NewTeam": {
            "type": "object", "required": ["name"],
            "properties": { "name": { "type": "string" }, "baseline": { "type": "boolean", "description": "organisers only" } },
        },
        "Invitation": { "type": "object", "required": ["email"], "properties": { "email": { "type": "string" } } },
        "CodeSubmission": {
            "type": "object", "required": ["command"],
            "properties": {
                "command": { "type": "array", "items": { "type": "string" }, "description": "writes predictions.csv in its working directory" },
                "inputs": { "type": "array", "items": { "type": "string" } },
                "note": { "type": "string" },
            },
        },
        "Finals": { "type": "object", "required": ["submissions"], "properties": { "submissions": { "type": "array", "items": { "type": "integer" }, "maxItems": 2 } } },
        "NewModel": {
            "type": "object", "required": ["name", "project"],
            "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$" },
                "project": { "type": "integer", "description": "the owning project" },
                "public": { "type": "boolean", "description": "listed for everyone; private to the project by default" },
                "card": { "type": "string", "description": "the model's card (Markdown)" },
            },
        },
        "NewModelVersion": {
            "type": "object", "required": ["job", "path"],
            "properties": {
                "job": { "type": "integer", "description": "a job that succeeded, which the caller may act on" },
                "path": { "type": "string", "description": "a folder under the job's working directory" },
                "base": { "type": "string", "description": "the version it was trained from: NAME@N" },
                "card": { "type": "string", "description": "the version's card (Markdown)" },
            },
        },
        "ChunkList": {
            "type": "object", "required": ["chunks"],
            "properties": { "chunks": { "type": "array", "items": { "type": "string", "pattern": "^[0-9a-f]{64}$" } } },
        },
        "LogBatch": {
            "type": "object", "required": ["metrics"],
            "properties": { "metrics": { "type": "array", "maxItems": crate::compute::METRIC_BATCH_MAX, "items": {
                "type": "object", "required": ["key", "value"],
                "properties": {
                    "key": { "type": "string", "minLength": 1, "maxLength": crate::compute::METRIC_KEY_MAX_BYTES },
                    "value": { "type": "number", "minimum": -crate::compute::METRIC_VALUE_MAX, "maximum": crate::compute::METRIC_VALUE_MAX },
                    "timestamp": { "type": "integer" }, "step": { "type": "integer" },
                },
            } } },
        },
        "Error": {
            "type": "object", "required": ["error", "detail"],
            "properties": { "error": string, "detail": string },
        },
    })
}

fn access_text(access: Access) -> String {
    match access {
        Access::Public => "public".to_owned(),
        Access::SignedIn => "signed_in".to_owned(),
        Access::GlobalRole(role) => format!("role:{}", role.as_str()),
        Access::ProjectKey => "project_key".to_owned(),
    }
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for route in table().into_iter().filter(|route| route.kind == Kind::Api) {
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                // Ids are integers; names, versions and file paths (`{*path}`, slashes allowed) text.
                let kind = if name == "id" || name.ends_with("_id") { "integer" } else { "string" };
                json!({ "name": name.trim_start_matches('*'), "in": "path", "required": true, "schema": { "type": kind } })
            })
            .collect();
        let error =
            json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{} {}", route.method.as_str(), route.path),
            "x-grappe-access": access_text(route.access),
            "parameters": parameters,
            "responses": { "2XX": { "description": "success" }, "4XX": error.clone(), "5XX": error },
        });
        operation["security"] = match route.access {
            Access::Public => json!([]),
            _ => json!([{ "bearer": [] }, { "session": [] }]),
        };
        if let Some(body) = route.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } },
            });
        }
        let entry = paths.entry(route.path.replace("{*", "{")).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Grappe API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "session": { "type": "apiKey", "in": "cookie", "name": crate::kit::caller::SESSION_COOKIE },
            },
        },
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented_with_its_access() {
        let document = document();
        for route in table().into_iter().filter(|route| route.kind == Kind::Api) {
            let operation = &document["paths"][route.path.replace("{*", "{")][route.method.as_str().to_lowercase()];
            assert_eq!(operation["x-grappe-access"], access_text(route.access), "{}", route.path);
            if let Some(body) = route.body {
                assert!(document["components"]["schemas"][body].is_object(), "schema {body}");
            }
        }
    }
}
