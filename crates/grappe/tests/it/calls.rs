//! Calls for proposals through a server: who opens them, applications saved as versions until
//! the server's deadline, and who reads what.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TestDb, backends};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn call_manager(client: &Client) -> String {
    let (id, token) = client.new_user("gestion@example.org");
    let grant =
        client.post(&format!("/api/v1/users/{id}/grants"), Some(ADMIN_TOKEN), &json!({ "role": "call_manager" }));
    assert_eq!(grant.status, 201, "{}", grant.text);
    token
}

fn call_body(name: &str, closes_in_ms: Option<i64>) -> Value {
    let now = now_ms();
    json!({
        "name": name,
        "instrument": "ia_cluster",
        "title_fr": "Pôles d'IA",
        "title_en": "AI clusters",
        "text_fr": "Sélection de **5 à 10** pôles.",
        "text_en": "Selection of **5 to 10** clusters.",
        "criteria": [
            { "key": "teaching", "fr": "Formation", "en": "Teaching", "weight": 1 },
            { "key": "research", "fr": "Excellence de la recherche", "en": "Research excellence", "weight": 1.5 },
        ],
        "envelope_cents": 36_000_000_000i64,
        "opens_at": now - 1000,
        "closes_at": closes_in_ms.map(|ms| now + ms),
    })
}

fn application(title: &str) -> Value {
    json!({
        "organisation": "Université Paris-Saclay",
        "title": title,
        "summary": "Un pôle d'IA en Île-de-France.",
        "partners": ["Inria", " CNRS "],
        "keywords": ["apprentissage", "santé"],
        "requested_cents": 4_000_000_000i64,
        "requested_gpu_hours": 100_000,
    })
}

#[test]
fn applications_are_versioned_until_the_deadline_and_read_only_by_their_author_and_managers() {
    for backend in backends() {
        let db = TestDb::new(backend);
        // The demo loads the programme, whose instruments calls spend.
        let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
        let client = server.client();
        let manager = call_manager(&client);
        let (_, alice) = client.new_user("alice@example.org");
        let (_, bob) = client.new_user("bob@example.org");

        // Only call managers open calls; bad settings are named.
        assert_eq!(client.post("/api/v1/calls", Some(&alice), &call_body("poles", Some(6000))).status, 403);
        let mut bad = call_body("poles", Some(6000));
        bad["instrument"] = json!("nowhere");
        let reply = client.post("/api/v1/calls", Some(&manager), &bad);
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert!(reply.text.contains("ia_cluster"), "names the valid ones: {}", reply.text);
        let mut twice = call_body("poles", Some(6000));
        twice["criteria"][1]["key"] = json!("teaching");
        assert_eq!(client.post("/api/v1/calls", Some(&manager), &twice).status, 422);
        let call = client.post("/api/v1/calls", Some(&manager), &call_body("poles", Some(6000)));
        assert_eq!(call.status, 201, "{}", call.text);
        assert_eq!(call.body["phase"], "open");
        let id = call.body["id"].as_i64().unwrap();

        // Alice applies; a request above the envelope is refused.
        let mut greedy = application("Trop");
        greedy["requested_cents"] = json!(36_000_000_001i64);
        assert_eq!(client.post(&format!("/api/v1/calls/{id}/applications"), Some(&alice), &greedy).status, 422);
        let created =
            client.post(&format!("/api/v1/calls/{id}/applications"), Some(&alice), &application("Pôle Saclay"));
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["partners"], json!(["Inria", "CNRS"]));
        let app = created.body["id"].as_i64().unwrap();
        let bobs = client.post(&format!("/api/v1/calls/{id}/applications"), Some(&bob), &application("Pôle Bob"));
        assert_eq!(bobs.status, 201, "{}", bobs.text);

        // Who reads what: the author and the managers; others get 404.
        let path = format!("/api/v1/applications/{app}");
        assert_eq!(client.get(&path, Some(&alice)).status, 200);
        assert_eq!(client.get(&path, Some(&manager)).status, 200);
        assert_eq!(client.get(&path, Some(&bob)).status, 404);
        assert_eq!(client.get(&format!("{path}/versions"), Some(&bob)).status, 404);
        let own = client.get(&format!("/api/v1/calls/{id}/applications"), Some(&alice)).body;
        assert_eq!(own["items"].as_array().unwrap().len(), 1, "{own}");
        let all = client.get(&format!("/api/v1/calls/{id}/applications"), Some(&manager)).body;
        assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");

        // A new version over the one read; an edit over a newer one is refused; not by others.
        let mut edit = application("Pôle Saclay, version 2");
        edit["version"] = json!(1);
        let saved = client.post(&path, Some(&alice), &edit);
        assert_eq!(saved.status, 200, "{}", saved.text);
        assert_eq!(saved.body["version"], 2);
        let stale = client.post(&path, Some(&alice), &edit);
        assert_eq!(stale.status, 409, "{}", stale.text);
        assert!(stale.text.contains("version 2"), "{}", stale.text);
        edit["version"] = json!(2);
        assert_eq!(client.post(&path, Some(&manager), &edit).status, 403, "managers read, they do not write");
        let versions = client.get(&format!("{path}/versions"), Some(&alice)).body;
        let titles: Vec<&str> =
            versions["items"].as_array().unwrap().iter().map(|v| v["application"]["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["Pôle Saclay", "Pôle Saclay, version 2"]);

        // The page, in French, shows the call and the reader's own applications only.
        let page = client.request("GET", &format!("/calls/{id}"), Some(&alice), None);
        assert_eq!(page.status, 200);
        assert!(page.text.contains("Excellence de la recherche") && page.text.contains("Pôle Saclay, version 2"));
        assert!(!page.text.contains("Pôle Bob"), "another applicant's application shows");

        // After the deadline the server locks them.
        let closes = call.body["closes_at"].as_i64().unwrap();
        std::thread::sleep(Duration::from_millis((closes - now_ms() + 100).max(0) as u64));
        let late = client.post(&path, Some(&alice), &edit);
        assert_eq!(late.status, 409, "{}", late.text);
        assert!(late.text.contains("deadline"), "{}", late.text);
        let late_new = client.post(&format!("/api/v1/calls/{id}/applications"), Some(&bob), &application("Tard"));
        assert_eq!(late_new.status, 409);
        assert_eq!(client.get(&format!("/api/v1/calls/{id}"), None).body["phase"], "review");
    }
}
