//! Calls for proposals through a server: who opens them, applications saved as versions until
//! the server's deadline, and who reads what.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TestDb, backends};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

pub(crate) fn call_manager(client: &Client) -> String {
    let (id, token) = client.new_user("gestion@example.org");
    let grant =
        client.post(&format!("/api/v1/users/{id}/grants"), Some(ADMIN_TOKEN), &json!({ "role": "call_manager" }));
    assert_eq!(grant.status, 201, "{}", grant.text);
    token
}

pub(crate) fn call_body(name: &str, closes_in_ms: Option<i64>) -> Value {
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

pub(crate) fn application(title: &str) -> Value {
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

pub(crate) fn review_body(score: f64) -> Value {
    json!({
        "scores": { "teaching": score, "research": score },
        "justifications": { "teaching": "Solide.", "research": "Remarquable." },
        "confidence": 4,
    })
}

/// Jurors, conflicts (detected, declared, lifted), an optimal assignment without conflicted
/// pairs, and reviews that only assigned, unconflicted jurors write and read.
#[test]
fn a_jury_is_assigned_without_conflicts_and_reviews_only_what_it_may() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
        let client = server.client();
        let manager = call_manager(&client);
        let mut body = call_body("jury", Some(5000));
        body["reviewers_per_application"] = json!(2);
        let call = client.post("/api/v1/calls", Some(&manager), &body);
        assert_eq!(call.status, 201, "{}", call.text);
        let id = call.body["id"].as_i64().unwrap();
        let (_, applicant) = client.new_user("porteur@saclay.fr");
        let mut apps = Vec::new();
        for (title, keywords) in [
            ("IA et santé", ["santé", "imagerie"]),
            ("Robots", ["robotique", "industrie"]),
            ("Langues", ["langues", "traduction"]),
        ] {
            let mut body = application(title);
            body["keywords"] = json!(keywords);
            let reply = client.post(&format!("/api/v1/calls/{id}/applications"), Some(&applicant), &body);
            assert_eq!(reply.status, 201, "{}", reply.text);
            apps.push(reply.body["id"].as_i64().unwrap());
        }
        // Four jurors; the second from the applicant's organisation, the third a partner's.
        let jurors: Vec<(i64, String)> = [
            ("ada@ethz.ch", "ETH Zürich", vec!["santé", "imagerie"]),
            ("bea@universite-paris-saclay.fr", "Université Paris-Saclay", vec!["robotique"]),
            ("carl@inria.fr", "Inria", vec!["langues"]),
            ("dora@kth.se", "KTH", vec!["robotique", "industrie", "traduction"]),
        ]
        .into_iter()
        .map(|(email, organisation, keywords)| {
            let (user, token) = client.new_user(email);
            let body = json!({ "email": email, "country": "EU", "organisation": organisation, "keywords": keywords });
            let reply = client.post(&format!("/api/v1/calls/{id}/jurors"), Some(&manager), &body);
            assert_eq!(reply.status, 201, "{}", reply.text);
            (user, token)
        })
        .collect();
        assert_eq!(
            client
                .post(
                    &format!("/api/v1/calls/{id}/jurors"),
                    Some(&jurors[0].1),
                    &json!({ "email": "x@y.z", "country": "FR", "organisation": "X" })
                )
                .status,
            403
        );
        let conflicts = client.get(&format!("/api/v1/calls/{id}/conflicts"), Some(&manager)).body;
        let active: Vec<(i64, String)> = conflicts["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["juror"].as_i64().unwrap(), c["reason"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            active.iter().filter(|(juror, _)| *juror == jurors[1].0).count(),
            3,
            "same organisation: {active:?}"
        );
        assert!(active.iter().any(|(juror, reason)| *juror == jurors[2].0 && reason.contains("partner")), "{active:?}");

        // Carl is conflicted with everything (a partner), Bea too: two jurors, two per
        // application, three applications at most each: feasible only with L = 3.
        let tight = client.post(&format!("/api/v1/calls/{id}/assignment"), Some(&manager), &json!({ "max_load": 1 }));
        assert_eq!(tight.status, 409, "{}", tight.text);
        // Lift Carl's conflict with the languages application, saying why.
        let lift = json!({ "application": apps[2], "juror": jurors[2].0, "active": false, "why": "Inria n'est partenaire que pour la santé" });
        assert_eq!(client.post(&format!("/api/v1/calls/{id}/conflicts"), Some(&manager), &lift).status, 200);
        let assigned = client.post(&format!("/api/v1/calls/{id}/assignment"), Some(&manager), &json!({}));
        assert_eq!(assigned.status, 200, "{}", assigned.text);
        let pairs: Vec<(i64, i64)> = assigned.body["assignment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["application"].as_i64().unwrap(), p["juror"].as_i64().unwrap()))
            .collect();
        assert_eq!(pairs.len(), 6, "{pairs:?}");
        for app in &apps {
            assert_eq!(pairs.iter().filter(|(a, _)| a == app).count(), 2, "two each: {pairs:?}");
        }
        assert!(!pairs.iter().any(|(_, juror)| *juror == jurors[1].0), "Bea is conflicted with all: {pairs:?}");
        assert!(!pairs.iter().any(|(a, juror)| *juror == jurors[2].0 && *a != apps[2]), "Carl only on languages");
        assert!(pairs.contains(&(apps[0], jurors[0].0)), "Ada, health, on health: {pairs:?}");

        // Reviews wait for the deadline; then only assigned, unconflicted jurors see and review.
        let closes = call.body["closes_at"].as_i64().unwrap();
        std::thread::sleep(Duration::from_millis((closes - now_ms() + 100).max(0) as u64));
        let health = apps[0];
        let reviewer = jurors.iter().find(|(user, _)| pairs.contains(&(health, *user))).unwrap();
        let outsider = &jurors[1];
        assert_eq!(client.get(&format!("/api/v1/applications/{health}"), Some(&outsider.1)).status, 404);
        assert_eq!(
            client.post(&format!("/api/v1/applications/{health}/review"), Some(&outsider.1), &review_body(4.0)).status,
            404
        );
        assert_eq!(client.get(&format!("/api/v1/applications/{health}"), Some(&reviewer.1)).status, 200);
        let bad = client.post(&format!("/api/v1/applications/{health}/review"), Some(&reviewer.1), &review_body(9.0));
        assert_eq!(bad.status, 422, "{}", bad.text);
        for _ in 0..2 {
            let reply =
                client.post(&format!("/api/v1/applications/{health}/review"), Some(&reviewer.1), &review_body(4.0));
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let other = jurors.iter().find(|(user, _)| *user != reviewer.0 && pairs.contains(&(health, *user))).unwrap();
        let before = client.get(&format!("/api/v1/applications/{health}/reviews"), Some(&other.1)).body;
        assert_eq!(before["items"].as_array().unwrap().len(), 0, "no peeking before one's own: {before}");
        let reply = client.post(&format!("/api/v1/applications/{health}/review"), Some(&other.1), &review_body(3.0));
        assert_eq!(reply.status, 200, "{}", reply.text);
        let after = client.get(&format!("/api/v1/applications/{health}/reviews"), Some(&other.1)).body;
        assert_eq!(
            after["items"].as_array().unwrap().len(),
            2,
            "both, once one's own is in (the double save is one): {after}"
        );
        // Reassigning now would drop reviews: refused.
        assert_eq!(client.post(&format!("/api/v1/calls/{id}/assignment"), Some(&manager), &json!({})).status, 409);
        // A juror who declares a conflict loses the application.
        let declared = client.post(
            &format!("/api/v1/applications/{health}/conflict"),
            Some(&other.1),
            &json!({ "reason": "ancien directeur de thèse" }),
        );
        assert_eq!(declared.status, 200, "{}", declared.text);
        assert_eq!(client.get(&format!("/api/v1/applications/{health}"), Some(&other.1)).status, 404);
        assert_eq!(client.get(&format!("/api/v1/applications/{health}/reviews"), Some(&other.1)).status, 404);
        // The applicant sees neither the jury nor the reviews.
        assert_eq!(client.get(&format!("/api/v1/applications/{health}/reviews"), Some(&applicant)).status, 404);
        assert_eq!(client.get(&format!("/api/v1/calls/{id}/assignment"), Some(&applicant)).status, 403);

        // The ranking counts the reviews of unconflicted jurors: the health application's 4
        // (the 3 of the juror who then declared a conflict does not count).
        let ranking = client.get(&format!("/api/v1/calls/{id}/ranking"), Some(&manager));
        assert_eq!(ranking.status, 200, "{}", ranking.text);
        let first = &ranking.body["items"][0];
        assert_eq!(first["application"], health, "{}", ranking.text);
        assert_eq!(first["reviews"], 1);
        assert!((first["raw"].as_f64().unwrap() - 4.0).abs() < 1e-9, "{first}");
        assert_eq!(first["flagged"], false);
        assert_eq!(first["fits"], true);
        assert_eq!(client.get(&format!("/api/v1/calls/{id}/ranking"), Some(&reviewer.1)).status, 403);
        // Decisions, all or none: the first two applications selected (the first cut), the third
        // not; a batch naming a decided application records nothing.
        let decide = |decisions: Value| {
            client.post(&format!("/api/v1/calls/{id}/decisions"), Some(&manager), &json!({ "decisions": decisions }))
        };
        assert_eq!(
            decide(json!([{ "application": apps[0], "selected": true, "amount_cents": 4_000_000_001i64 }])).status,
            422,
            "more than asked"
        );
        // The demo's decided call committed its share of the line already.
        let committed_before = committed(&client);
        let taken = decide(json!([
            { "application": apps[0], "selected": true, "amount_cents": 3_000_000_000i64, "gpu_hours": 50_000 },
            { "application": apps[1], "selected": true, "amount_cents": 4_000_000_000i64, "gpu_hours": 100_000 },
        ]));
        assert_eq!(taken.status, 200, "{}", taken.text);
        let again = decide(json!([
            { "application": apps[2], "selected": false },
            { "application": apps[0], "selected": false },
        ]));
        assert_eq!(again.status, 409, "{}", again.text);
        let public = client.get(&format!("/api/v1/calls/{id}/decisions"), None).body;
        assert_eq!(public["items"].as_array().unwrap().len(), 2, "the third stays undecided: {public}");
        assert_eq!(decide(json!([{ "application": apps[2], "selected": false }])).status, 200);
        let public = client.get(&format!("/api/v1/calls/{id}/decisions"), None).body;
        assert_eq!(public["items"].as_array().unwrap().len(), 2, "only the selected are open data: {public}");
        let csv = client.get(&format!("/api/v1/calls/{id}/decisions.csv"), None).text;
        assert_eq!(csv.lines().count(), 3, "{csv}");
        // The selected became projects of the applicant, and the programme's commitment moved.
        let projects = client.get("/api/v1/projects", Some(&applicant)).body;
        let granted: Vec<i64> =
            projects["items"].as_array().unwrap().iter().map(|p| p["gpu_hours"].as_i64().unwrap()).collect();
        assert_eq!(granted.len(), 2, "{projects}");
        assert!(granted.contains(&50_000) && granted.contains(&100_000), "{projects}");
        assert_eq!(committed(&client) - committed_before, 7_000_000_000);
        // The applicant reads the decision and the reviews, without the jurors' names.
        let decision = client.get(&format!("/api/v1/applications/{health}/decision"), Some(&applicant));
        assert_eq!(decision.status, 200, "{}", decision.text);
        assert_eq!(decision.body["amount_cents"], 3_000_000_000i64);
        assert_eq!(decision.body["reviews"].as_array().unwrap().len(), 1, "the conflicted juror's does not count");
        assert!(!decision.text.contains("juror") && !decision.text.contains("ethz"), "{}", decision.text);
        assert_eq!(client.get(&format!("/api/v1/applications/{health}/decision"), Some(&outsider.1)).status, 404);
        // A conflicted juror reaches the application by no route: API, versions, reviews, its
        // review, its decision, its letter, the call's page.
        for path in [
            format!("/api/v1/applications/{health}"),
            format!("/api/v1/applications/{health}/versions"),
            format!("/api/v1/applications/{health}/reviews"),
            format!("/api/v1/applications/{health}/decision"),
            format!("/calls/{id}/applications/{health}/letter"),
        ] {
            assert_eq!(client.get(&path, Some(&outsider.1)).status, 404, "{path}");
        }
        let review =
            client.post(&format!("/api/v1/applications/{health}/review"), Some(&outsider.1), &review_body(5.0));
        assert_eq!(review.status, 404);
        let page = client.request("GET", &format!("/calls/{id}"), Some(&outsider.1), None);
        assert!(!page.text.contains("IA et santé"), "the call's page shows a conflicted juror the application");
    }
}

pub(crate) const DAY_MS: i64 = 86_400_000;

/// A server with the demo loaded (the programme, whose instruments calls spend), its client,
/// and a call manager's token.
pub(crate) fn demo_server(db: &TestDb) -> (Server, Client, String) {
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let client = server.client();
    let manager = call_manager(&client);
    (server, client, manager)
}

/// What the programme's IA-cluster budget line has committed, in cents.
pub(crate) fn committed(client: &Client) -> i64 {
    let programme = client.get("/api/v1/programme", None).body;
    programme["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["code"] == "ia_cluster")
        .flat_map(|i| i["budget_lines"].as_array().unwrap().iter())
        .map(|line| line["committed_cents"].as_i64().unwrap())
        .sum()
}

/// Opens a call as `manager`; its id.
pub(crate) fn open_call(client: &Client, manager: &str, body: &Value) -> i64 {
    let call = client.post("/api/v1/calls", Some(manager), body);
    assert_eq!(call.status, 201, "{}", call.text);
    call.body["id"].as_i64().unwrap()
}

/// Applies to a call; the application's id.
pub(crate) fn apply(client: &Client, token: &str, call: i64, title: &str) -> i64 {
    let reply = client.post(&format!("/api/v1/calls/{call}/applications"), Some(token), &application(title));
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_i64().unwrap()
}

/// A new account invited into the call's jury: (id, token).
pub(crate) fn juror(client: &Client, manager: &str, call: i64, email: &str, keywords: &[&str]) -> (i64, String) {
    let (id, token) = client.new_user(email);
    let organisation = format!("Organisation de {email}");
    let body = json!({ "email": email, "country": "DE", "organisation": organisation, "keywords": keywords });
    let reply = client.post(&format!("/api/v1/calls/{call}/jurors"), Some(manager), &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    (id, token)
}

/// Closes the call now through its dates, as its manager may: no waiting for a deadline.
pub(crate) fn close_now(client: &Client, manager: &str, call: i64) {
    let now = now_ms();
    let dates = json!({ "opens_at": now - 60_000, "closes_at": now - 1 });
    let reply = client.post(&format!("/api/v1/calls/{call}/dates"), Some(manager), &dates);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["phase"], "review", "{}", reply.text);
}

pub(crate) fn decide(client: &Client, manager: &str, call: i64, decisions: Value) -> crate::harness::Reply {
    client.post(&format!("/api/v1/calls/{call}/decisions"), Some(manager), &json!({ "decisions": decisions }))
}

pub(crate) fn upload(
    client: &Client,
    token: &str,
    app: i64,
    name: &str,
    version: i64,
    bytes: &[u8],
) -> crate::harness::Reply {
    let path = format!("/api/v1/applications/{app}/attachments?name={name}&version={version}");
    client.request("POST", &path, Some(token), Some(("application/octet-stream", bytes.to_vec())))
}

/// The names of an application's attachments, sorted.
fn attachment_names(client: &Client, token: &str, app: i64) -> Vec<String> {
    let reply = client.get(&format!("/api/v1/applications/{app}/attachments"), Some(token));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut names: Vec<String> =
        reply.body["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Attachments: sent, replaced by the same name, removed, each change a version naming its
/// set; a PDF that is not one, HTML and a file over 20 MiB refused with nothing stored; only
/// the author sends; after the deadline nothing changes, edits included.
#[test]
fn attachments_are_versioned_checked_and_locked_at_the_deadline() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (server, client, manager) = demo_server(&db);
        let call = open_call(&client, &manager, &call_body("pieces", Some(DAY_MS)));
        let (_, alice) = client.new_user("alice@example.org");
        let (_, bob) = client.new_user("bob@example.org");
        let app = apply(&client, &alice, call, "Pôle avec pièces jointes");

        let sent = upload(&client, &alice, app, "projet.pdf", 1, b"%PDF-1.4 premier");
        assert_eq!(sent.status, 200, "{}", sent.text);
        assert_eq!(sent.body["version"], 2);
        assert_eq!(upload(&client, &alice, app, "budget.csv", 2, b"poste,montant\nGPU,1\n").status, 200);
        assert_eq!(upload(&client, &alice, app, "projet.pdf", 1, b"%PDF-1.4 ancien").status, 409, "a stale version");
        assert_eq!(upload(&client, &alice, app, "projet.pdf", 3, b"%PDF-1.4 second").status, 200, "replaced");
        assert_eq!(attachment_names(&client, &alice, app), ["budget.csv", "projet.pdf"]);
        let download = client.get(&format!("/api/v1/applications/{app}/attachments/projet.pdf"), Some(&alice));
        assert_eq!((download.status, download.text.as_str()), (200, "%PDF-1.4 second"));
        let removed =
            client.delete(&format!("/api/v1/applications/{app}/attachments/budget.csv?version=4"), Some(&alice));
        assert_eq!(removed.status, 200, "{}", removed.text);
        assert_eq!(removed.body["version"], 5);
        assert_eq!(attachment_names(&client, &alice, app), ["projet.pdf"]);
        let versions = client.get(&format!("/api/v1/applications/{app}/versions"), Some(&alice)).body;
        let sets: Vec<Value> = versions["items"].as_array().unwrap().iter().map(|v| v["attachments"].clone()).collect();
        assert_eq!(sets.len(), 5, "{versions}");
        assert!(sets[0].is_null(), "the first version had no files: {versions}");
        for (i, set) in sets.iter().enumerate().skip(1) {
            assert!(set.is_string() && !sets[..i].contains(set), "version {} names its own set: {versions}", i + 1);
        }

        // Refused, and nothing stored: not a PDF, HTML, over 20 MiB; not by others.
        let stored_before = bytes_under(server.data_dir());
        let mut big = b"%PDF-1.4 ".to_vec();
        big.resize(21 * 1024 * 1024, b'x');
        for (name, bytes, status) in [
            ("faux.pdf", b"<html><script>alert(1)</script>".to_vec(), 422),
            ("page.html", b"<script>alert(1)</script>".to_vec(), 422),
            ("gros.pdf", big, 413),
        ] {
            let reply = upload(&client, &alice, app, name, 5, &bytes);
            assert_eq!(reply.status, status, "{name}: {}", reply.text);
        }
        assert_eq!(upload(&client, &bob, app, "x.pdf", 5, b"%PDF-1.4").status, 404, "another applicant");
        assert_eq!(upload(&client, &manager, app, "x.pdf", 5, b"%PDF-1.4").status, 403, "managers read only");
        assert_eq!(client.get(&format!("/api/v1/applications/{app}"), Some(&alice)).body["version"], 5);
        assert_eq!(attachment_names(&client, &alice, app), ["projet.pdf"]);
        let grown = bytes_under(server.data_dir()).saturating_sub(stored_before);
        assert!(grown < 1024 * 1024, "{grown} bytes stored by refused uploads");

        // After the deadline: no upload, no removal, no edit; the files as they were.
        close_now(&client, &manager, call);
        let late = upload(&client, &alice, app, "annexe.pdf", 5, b"%PDF-1.4 tard");
        assert_eq!(late.status, 409, "{}", late.text);
        assert!(late.text.contains("deadline"), "{}", late.text);
        let path = format!("/api/v1/applications/{app}/attachments/projet.pdf?version=5");
        assert_eq!(client.delete(&path, Some(&alice)).status, 409);
        let mut edit = application("Modifié après la date limite");
        edit["version"] = json!(5);
        assert_eq!(client.post(&format!("/api/v1/applications/{app}"), Some(&alice), &edit).status, 409);
        assert_eq!(attachment_names(&client, &alice, app), ["projet.pdf"]);
        let download = client.get(&format!("/api/v1/applications/{app}/attachments/projet.pdf"), Some(&manager));
        assert_eq!((download.status, download.text.as_str()), (200, "%PDF-1.4 second"));
        let now = client.get(&format!("/api/v1/applications/{app}"), Some(&alice)).body;
        assert_eq!((now["version"].clone(), now["title"].clone()), (json!(5), json!("Pôle avec pièces jointes")));
    }
}

/// Reviews wait for the call's close; a review saved twice is one; the discussion opens to a
/// juror once its review is in (403 before), and closes once the application is decided; the
/// call's dates are final once a decision exists.
#[test]
fn the_discussion_opens_after_ones_review_and_closes_with_the_decision() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (_server, client, manager) = demo_server(&db);
        let mut body = call_body("discussion", Some(DAY_MS));
        body["reviewers_per_application"] = json!(2);
        let call = open_call(&client, &manager, &body);
        let (_, alice) = client.new_user("alice@example.org");
        let app = apply(&client, &alice, call, "Pôle discuté");
        let (_, first) = juror(&client, &manager, call, "ana@uni-a.example", &["santé"]);
        let (_, second) = juror(&client, &manager, call, "ben@uni-b.example", &["apprentissage"]);
        assert_eq!(client.post(&format!("/api/v1/calls/{call}/assignment"), Some(&manager), &json!({})).status, 200);
        let review = format!("/api/v1/applications/{app}/review");
        let early = client.post(&review, Some(&first), &review_body(4.0));
        assert_eq!(early.status, 409, "reviews wait for the close: {}", early.text);
        close_now(&client, &manager, call);

        let discussion = format!("/api/v1/applications/{app}/discussion");
        let message = |text: &str| json!({ "body": text });
        assert_eq!(client.get(&discussion, Some(&first)).status, 403, "before its review");
        assert_eq!(client.post(&discussion, Some(&first), &message("Mon avis d'abord ?")).status, 403);
        let opened = client.post(&discussion, Some(&manager), &message("Les avis divergent : parlons-en."));
        assert_eq!(opened.status, 201, "{}", opened.text);
        assert_eq!(client.get(&discussion, Some(&alice)).status, 404, "the applicant sees no discussion");

        for score in [2.0, 4.0] {
            assert_eq!(client.post(&review, Some(&first), &review_body(score)).status, 200);
        }
        let reviews = client.get(&format!("/api/v1/applications/{app}/reviews"), Some(&manager)).body;
        assert_eq!(reviews["items"].as_array().unwrap().len(), 1, "twice saved, one review: {reviews}");
        assert_eq!(reviews["items"][0]["scores"]["teaching"], 4.0, "the second save: {reviews}");
        let read = client.get(&discussion, Some(&first));
        assert_eq!(read.status, 200, "{}", read.text);
        assert!(read.text.contains("Les avis divergent"), "{}", read.text);
        assert_eq!(client.post(&discussion, Some(&first), &message("Je maintiens 4.")).status, 201);
        assert_eq!(client.get(&discussion, Some(&second)).status, 403, "the second has not reviewed");
        let messages = client.get(&discussion, Some(&manager)).body;
        let bodies: Vec<&str> =
            messages["items"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
        assert_eq!(bodies, ["Les avis divergent : parlons-en.", "Je maintiens 4."]);

        // A decision closes the discussion and fixes the dates.
        let decided = decide(&client, &manager, call, json!([{ "application": app, "selected": false }]));
        assert_eq!(decided.status, 200, "{}", decided.text);
        for token in [&manager, &first] {
            let closed = client.post(&discussion, Some(token), &message("Encore un mot."));
            assert_eq!(closed.status, 409, "{}", closed.text);
        }
        assert_eq!(client.get(&discussion, Some(&first)).body["items"].as_array().unwrap().len(), 2);
        let before = client.get(&format!("/api/v1/calls/{call}"), None).body;
        let reopen = json!({ "opens_at": now_ms() - 1000, "closes_at": now_ms() + DAY_MS });
        assert_eq!(client.post(&format!("/api/v1/calls/{call}/dates"), Some(&alice), &reopen).status, 403);
        let refused = client.post(&format!("/api/v1/calls/{call}/dates"), Some(&manager), &reopen);
        assert_eq!(refused.status, 409, "{}", refused.text);
        assert_eq!(client.get(&format!("/api/v1/calls/{call}"), None).body, before, "the dates did not move");
    }
}

/// A rolling call (no deadline) is decided application by application while it stays open:
/// the others still apply and edit.
#[test]
fn a_rolling_call_is_decided_application_by_application_while_open() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (_server, client, manager) = demo_server(&db);
        let call = open_call(&client, &manager, &call_body("au-fil-de-leau", None));
        let shown = client.get(&format!("/api/v1/calls/{call}"), None).body;
        assert_eq!((shown["phase"].clone(), shown["rolling"].clone()), (json!("open"), json!(true)), "{shown}");
        let (_, alice) = client.new_user("alice@example.org");
        let (_, bob) = client.new_user("bob@example.org");
        let first = apply(&client, &alice, call, "Premier arrivé");
        let before = committed(&client);
        let grant =
            json!([{ "application": first, "selected": true, "amount_cents": 1_000_000_000i64, "gpu_hours": 10 }]);
        let decided = decide(&client, &manager, call, grant);
        assert_eq!(decided.status, 200, "{}", decided.text);
        assert_eq!(committed(&client) - before, 1_000_000_000);
        // Still open: Bob applies and edits, then is decided in turn.
        let second = apply(&client, &bob, call, "Second arrivé");
        let mut edit = application("Second arrivé, complété");
        edit["version"] = json!(1);
        assert_eq!(client.post(&format!("/api/v1/applications/{second}"), Some(&bob), &edit).status, 200);
        assert_eq!(client.get(&format!("/api/v1/calls/{call}"), None).body["phase"], "open");
        let refused = decide(&client, &manager, call, json!([{ "application": second, "selected": false }]));
        assert_eq!(refused.status, 200, "{}", refused.text);
        let all = client.get(&format!("/api/v1/calls/{call}/decisions"), Some(&manager)).body;
        assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
        let again = decide(&client, &manager, call, json!([{ "application": first, "selected": false }]));
        assert_eq!(again.status, 409, "decided once: {}", again.text);
    }
}

/// A decided application of a rolling call is what was decided: its author no longer edits
/// it, nor its attachments, though the call stays open.
#[test]
fn a_decided_application_of_a_rolling_call_is_locked() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (_server, client, manager) = demo_server(&db);
        let call = open_call(&client, &manager, &call_body("verrou", None));
        let (_, alice) = client.new_user("alice@example.org");
        let app = apply(&client, &alice, call, "Décidé tel quel");
        let grant =
            json!([{ "application": app, "selected": true, "amount_cents": 1_000_000_000i64, "gpu_hours": 10 }]);
        assert_eq!(decide(&client, &manager, call, grant).status, 200);
        let mut edit = application("Changé après la décision");
        edit["requested_cents"] = json!(30_000_000_000i64);
        edit["version"] = json!(1);
        let edited = client.post(&format!("/api/v1/applications/{app}"), Some(&alice), &edit);
        assert_eq!(edited.status, 409, "a decided application was edited: {}", edited.text);
        let attached = upload(&client, &alice, app, "ajout.pdf", 1, b"%PDF-1.4 ajout");
        assert_eq!(attached.status, 409, "a decided application took an attachment: {}", attached.text);
    }
}
