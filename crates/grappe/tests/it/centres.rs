//! The IA-cluster centres (issue 11): every selected application of an `ia_cluster` call is a
//! centre with a public profile and a training offer, kept by its project's coordinators only;
//! the students enrolled are the programme's "specialists trained". SQLite and PostgreSQL.

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TestDb, backends};

/// The demo's three centres with an offer: 4 programmes, 2 years.
const DEMO_ENROLLED: i64 = 3 * (24 + 29 + 52 + 58 + 18 + 22 + 64 + 97);

/// A new user who coordinates `project`; their token.
pub(crate) fn coordinator(client: &Client, email: &str, project: i64) -> String {
    let (id, token) = client.new_user(email);
    let grant = json!({ "role": "project_coordinator", "scope": format!("project:{project}") });
    let reply = client.post(&format!("/api/v1/users/{id}/grants"), Some(ADMIN_TOKEN), &grant);
    assert_eq!(reply.status, 201, "{}", reply.text);
    token
}

fn training(level: &str, year: i64, places: i64, enrolled: i64) -> Value {
    json!({ "level": level, "title": "Licence IA", "year": year, "places": places, "enrolled": enrolled })
}

#[test]
fn centres_are_public_and_kept_by_their_coordinators_only() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
        let client = server.client();
        let list = client.get("/api/v1/centres", None);
        assert_eq!(list.status, 200);
        let items = list.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 9, "the demo call's nine selected applications");
        assert_eq!(list.body["enrolled"], DEMO_ENROLLED);
        let indicators = client.get("/api/v1/opendata/indicators.json", None).body;
        let trained =
            indicators["items"].as_array().unwrap().iter().find(|i| i["code"] == "specialists_trained").unwrap();
        assert_eq!(trained["value"], DEMO_ENROLLED);

        // A centre without an offer yet; the decision's project is the one its coordinators keep.
        let centre = items.iter().find(|c| c["enrolled"] == 0).unwrap();
        let id = centre["id"].as_i64().unwrap();
        let decision = client.get(&format!("/api/v1/applications/{id}/decision"), Some(ADMIN_TOKEN)).body;
        let project = decision["project"].as_i64().unwrap_or_else(|| panic!("{decision}"));
        let keeper = coordinator(&client, "keeper@example.org", project);
        let (_, outsider) = client.new_user("outsider@example.org");
        let other_project = items.iter().find(|c| c["id"] != id).unwrap()["id"].as_i64().unwrap();
        let other_decision =
            client.get(&format!("/api/v1/applications/{other_project}/decision"), Some(ADMIN_TOKEN)).body;
        let neighbour = coordinator(&client, "neighbour@example.org", other_decision["project"].as_i64().unwrap());

        let path = format!("/api/v1/centres/{id}/trainings");
        let ok = training("bachelor", 2025, 40, 35);
        assert_eq!(client.post(&path, None, &ok).status, 401);
        for stranger in [&outsider, &neighbour] {
            client.post(&path, Some(stranger), &ok).assert_envelope(403);
            client
                .post(&format!("/api/v1/centres/{id}"), Some(stranger), &json!({ "city": "Ailleurs" }))
                .assert_envelope(403);
        }
        // Bad figures: refused, named, nothing saved.
        for (bad, field) in [
            (training("bachelor", 2025, 40, 41), "enrolled"),
            (training("doctorate", 2025, 40, 1), "level"),
            (training("bachelor", 1999, 40, 1), "year"),
            (training("bachelor", 2025, -3, 0), "places"),
            (json!({ "level": "master", "title": "  ", "year": 2025, "places": 1, "enrolled": 1 }), "title"),
        ] {
            let reply = client.post(&path, Some(&keeper), &bad);
            assert!(reply.status == 400 || reply.status == 422, "{}", reply.text);
            assert!(reply.body["detail"].as_str().unwrap().contains(field), "{field}: {}", reply.text);
        }
        client.post(&path, Some(&keeper), &json!({ "level": "master", "titel": "x" })).assert_envelope(422);
        assert_eq!(client.get(&format!("/api/v1/centres/{id}"), None).body["trainings"], json!([]));

        // Recorded, then updated in place (same programme, same year).
        let saved = client.post(&path, Some(&keeper), &ok);
        assert_eq!(saved.status, 201, "{}", saved.text);
        let again = client.post(&path, Some(&keeper), &training("bachelor", 2025, 40, 38));
        assert_eq!(again.body["trainings"].as_array().unwrap().len(), 1);
        assert_eq!(again.body["enrolled"], 38);
        assert_eq!(client.get("/api/v1/centres", None).body["enrolled"], DEMO_ENROLLED + 38);

        let profile = json!({ "city": "Lille", "summary_fr": "Un pôle.", "summary_en": "A centre.", "partners": ["Inria", " "], "themes": ["Vision"] });
        let written = client.post(&format!("/api/v1/centres/{id}"), Some(&keeper), &profile);
        assert_eq!(written.status, 200, "{}", written.text);
        assert_eq!(written.body["partners"], json!(["Inria"]));
        let page = client.get(&format!("/centres/{id}"), None);
        assert_eq!(page.status, 200);
        assert!(page.text.contains("Lille") && page.text.contains("Licence IA"), "{}", page.text);
        assert!(!page.text.contains("id=\"training-form\""), "no form for the public");
        let keeper_page = client.get(&format!("/centres/{id}"), Some(&keeper));
        assert!(keeper_page.text.contains("id=\"training-form\""), "its coordinator gets the forms");
        assert!(!client.get(&format!("/centres/{id}"), Some(&neighbour)).text.contains("id=\"training-form\""));

        // Not a centre: an application the call did not select, and ids that are nothing.
        let rejected = client.get("/api/v1/calls/2/decisions", None).body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["selected"] == false)
            .map(|d| d["application"].as_i64().unwrap());
        for missing in rejected.into_iter().chain([999_999]) {
            client.get(&format!("/api/v1/centres/{missing}"), None).assert_envelope(404);
            client.post(&format!("/api/v1/centres/{missing}/trainings"), Some(ADMIN_TOKEN), &ok).assert_envelope(404);
        }
        let list_page = client.get("/centres", None);
        assert!(list_page.text.contains("id=\"centres-chart\""), "students by level as a chart");
    }
}
