//! The public datasets as a DCAT-AP catalogue in JSON-LD, the format that national portals
//! (data.gouv.fr, data.europa.eu) harvest: one `dcat:Dataset` per public dataset, its latest
//! version's files as `dcat:Distribution`s with their download URL, media type and size; then
//! the programme's own tables (`programme/opendata.rs`).

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use grappe_domain::policy::Actor;
use serde_json::{Value, json};

use crate::data::{CatalogQuery, search};
use crate::kit::error::AppResult;
use crate::kit::page::iso_date;
use crate::kit::state::AppState;

/// ISO 639-1 codes to the EU's language authority, which DCAT-AP asks for.
fn language_uri(code: &str) -> Option<String> {
    let authority = match code {
        "fr" => "FRA",
        "en" => "ENG",
        "de" => "DEU",
        "es" => "SPA",
        "it" => "ITA",
        "nl" => "NLD",
        "pt" => "POR",
        "br" => "BRE",
        "oc" => "OCI",
        "eu" => "EUS",
        "ca" => "CAT",
        "co" => "COS",
        "ar" => "ARA",
        _ => return None,
    };
    Some(format!("http://publications.europa.eu/resource/authority/language/{authority}"))
}

/// A licence identifier (as cards give it) to the URI portals recognise.
pub(crate) fn licence_uri(licence: &str) -> Option<String> {
    let uri = match licence.to_ascii_lowercase().as_str() {
        "" | "other" | "unknown" => return None,
        "etalab-2.0" | "lo-2.0" => "https://www.etalab.gouv.fr/licence-ouverte-open-licence/".to_owned(),
        "cc-by-4.0" => "https://creativecommons.org/licenses/by/4.0/".to_owned(),
        "cc-by-sa-4.0" => "https://creativecommons.org/licenses/by-sa/4.0/".to_owned(),
        "cc0-1.0" => "https://creativecommons.org/publicdomain/zero/1.0/".to_owned(),
        "odbl" | "odbl-1.0" => "https://opendatacommons.org/licenses/odbl/1-0/".to_owned(),
        _ => format!("https://spdx.org/licenses/{licence}.html"),
    };
    Some(uri)
}

pub async fn catalog(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let base = crate::kit::page::base_url(&state, &headers);
    // Public datasets only, whoever asks: this is what portals publish.
    let query = CatalogQuery::default();
    let mut datasets = Vec::new();
    for dataset in search(&state, &Actor::Anonymous, &query).await? {
        let versions = state.db.dataset_versions(dataset.id).await?;
        let Some(latest) = versions.first() else { continue };
        let page = format!("{base}/data/{}", dataset.name);
        let api = format!("{base}/api/v1/datasets/{}/versions/{}", dataset.name, latest.version);
        // From the catalogue's own record of the version: no manifest is read from the store.
        let listing: Vec<Value> = serde_json::from_str(&latest.listing).unwrap_or_default();
        let distributions: Vec<Value> = listing
            .iter()
            .map(|file| {
                let path = file["path"].as_str().unwrap_or_default();
                json!({
                    "@type": "dcat:Distribution",
                    "dct:title": path,
                    "dcat:accessURL": { "@id": api },
                    "dcat:downloadURL": { "@id": format!("{api}/files/{path}") },
                    "dcat:mediaType": { "@id": format!("https://www.iana.org/assignments/media-types/{}", file["media_type"].as_str().unwrap_or_default()) },
                    "dcat:byteSize": { "@value": file["size_bytes"].to_string(), "@type": "xsd:nonNegativeInteger" },
                    "spdx:checksum": {
                        "@type": "spdx:Checksum",
                        "spdx:algorithm": "blake3",
                        "spdx:checksumValue": file["digest"],
                    },
                })
            })
            .collect();
        let report: Value = serde_json::from_str(&latest.report).unwrap_or(Value::Null);
        let mut entry = json!({
            "@id": page,
            "@type": "dcat:Dataset",
            "dct:identifier": dataset.name,
            "dct:title": dataset.title,
            "dct:description": report["description"].as_str().unwrap_or_default(),
            "dct:issued": { "@value": iso_date(dataset.created_at), "@type": "xsd:date" },
            "dct:modified": { "@value": iso_date(latest.created_at), "@type": "xsd:date" },
            "owl:versionInfo": format!("v{} ({})", latest.seq, latest.version),
            "dcat:landingPage": { "@id": page },
            "dcat:keyword": dataset.tasks,
            "dct:language": dataset.languages.iter().filter_map(|code| language_uri(code)).map(|uri| json!({ "@id": uri })).collect::<Vec<_>>(),
            "dcat:distribution": distributions,
        });
        if let Some(uri) = licence_uri(&dataset.licence) {
            entry["dct:license"] = json!({ "@id": uri });
        }
        datasets.push(entry);
    }
    // The programme's own tables (budget lines, commitments, payments, indicators).
    datasets.extend(crate::programme::opendata::catalog_entries(&base, &iso_date(grappe_db::now_ms())));
    let document = json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "owl": "http://www.w3.org/2002/07/owl#",
            "spdx": "http://spdx.org/rdf/terms#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
        },
        "@id": format!("{base}/api/v1/opendata/catalog"),
        "@type": "dcat:Catalog",
        "dct:title": [
            { "@value": "Grappe : données ouvertes", "@language": "fr" },
            { "@value": "Grappe: open data", "@language": "en" },
        ],
        "dct:description": [
            { "@value": "Jeux de données ouverts pour entraîner et évaluer des modèles d'IA, et les données du programme", "@language": "fr" },
            { "@value": "Open datasets for training and testing AI models, and the programme's own data", "@language": "en" },
        ],
        "foaf:homepage": { "@id": format!("{base}/data") },
        "dcat:dataset": datasets,
    });
    Ok(([(header::CONTENT_TYPE, "application/ld+json")], document.to_string()).into_response())
}

#[cfg(test)]
mod tests {
    use super::{language_uri, licence_uri};

    #[test]
    fn languages_and_licences_become_the_uris_portals_know() {
        assert_eq!(
            language_uri("fr").as_deref(),
            Some("http://publications.europa.eu/resource/authority/language/FRA")
        );
        assert_eq!(language_uri("xx"), None);
        assert_eq!(
            licence_uri("etalab-2.0").as_deref(),
            Some("https://www.etalab.gouv.fr/licence-ouverte-open-licence/")
        );
        assert_eq!(licence_uri("MIT").as_deref(), Some("https://spdx.org/licenses/MIT.html"));
        assert_eq!(licence_uri("other"), None);
    }
}
