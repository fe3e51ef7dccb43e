//! Who reaches what of a call: every route that names an application or a call's private data,
//! for every role, as one table. The call has two applications (Alice's, the subject, and
//! Bob's), a juror assigned to both who reviewed Alice's, a juror assigned to both who reviewed
//! Alice's and then declared a conflict with it, a juror invited after the assignment, a
//! discussion message, an attachment, and decisions (Alice's selected, Bob's not).

use serde_json::{Value, json};

use crate::calls::{DAY_MS, apply, call_body, close_now, decide, demo_server, juror, open_call, review_body, upload};
use crate::harness::{ADMIN_TOKEN, AUDIT_KEY, Server, TestDb, backends};

/// The roles, in the table's column order.
const ROLES: [&str; 8] = [
    "author",
    "other applicant",
    "assigned juror",
    "unassigned juror",
    "conflicted juror",
    "manager",
    "other call's manager",
    "anonymous",
];

/// What a role gets: the status, and whether the route's secret (the subject's title, its
/// file, its reviews' text...) is in the body.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Sees(u16),
    Blind(u16),
}
use Expect::{Blind, Sees};

/// Reached and read.
const OK: Expect = Sees(200);
/// Answered, without the secret (an empty list, the public part).
const EMPTY: Expect = Blind(200);
/// Reached the check of the body (the tests send an invalid one, so nothing changes).
const CHECKED: Expect = Blind(422);
const NOT_FOUND: Expect = Blind(404);
const FORBIDDEN: Expect = Blind(403);
const SIGN_IN: Expect = Blind(401);
const TO_LOGIN: Expect = Blind(303);

/// A route: method, path (`{call}`, `{app}`: the subject's call and application), a body for
/// POSTs, and the secret it must show only to whom it may.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    secret: &'static str,
}

const fn get(path: &'static str, secret: &'static str) -> Route {
    Route { method: "GET", path, body: None, secret }
}

const fn post(path: &'static str, body: &'static str) -> Route {
    Route { method: "POST", path, body: Some(body), secret: TITLE }
}

const TITLE: &str = "Projet confidentiel Alice";
const OTHER_TITLE: &str = "Projet non retenu Bob";
const PDF: &str = "%PDF-1.4 contenu du projet Alice";
const JUSTIFICATION: &str = "Justification confidentielle";
const MESSAGE: &str = "Message confidentiel du jury";
const CONFLICT_REASON: &str = "Ancienne collègue de la porteuse";
const JUROR_EMAIL: &str = "assignee@juges.example";

/// The table: for each route, what each role of `ROLES` gets.
#[rustfmt::skip]
const TABLE: [(Route, [Expect; 8]); 22] = [
    //                                                                      author     other app. assigned   unassigned conflicted manager    other mgr  anonymous
    (get("/api/v1/applications/{app}", TITLE),                            [OK,        NOT_FOUND, OK,        NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (get("/api/v1/applications/{app}/versions", TITLE),                   [OK,        NOT_FOUND, OK,        NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (get("/api/v1/applications/{app}/attachments", "projet.pdf"),         [OK,        NOT_FOUND, OK,        NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (get("/api/v1/applications/{app}/attachments/projet.pdf", PDF),       [OK,        NOT_FOUND, OK,        NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (get("/api/v1/applications/{app}/reviews", JUSTIFICATION),            [NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (get("/api/v1/applications/{app}/discussion", MESSAGE),               [NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (get("/api/v1/applications/{app}/decision", TITLE),                   [OK,        NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, SIGN_IN]),
    (post("/api/v1/applications/{app}/review", r#"{"scores":{},"justifications":{},"confidence":9}"#),
                                                                           [NOT_FOUND, NOT_FOUND, CHECKED,   NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, SIGN_IN]),
    (post("/api/v1/applications/{app}/discussion", r#"{"body":"  "}"#),   [NOT_FOUND, NOT_FOUND, CHECKED,   NOT_FOUND, NOT_FOUND, CHECKED,   NOT_FOUND, SIGN_IN]),
    // Any juror of the call may declare a conflict with any of its applications (it learns
    // nothing of it by that).
    (post("/api/v1/applications/{app}/conflict", r#"{"reason":" "}"#),    [NOT_FOUND, NOT_FOUND, CHECKED,   CHECKED,   CHECKED,   NOT_FOUND, NOT_FOUND, SIGN_IN]),
    (get("/api/v1/calls/{call}/applications", TITLE),                     [OK,        EMPTY,     EMPTY,     EMPTY,     EMPTY,     OK,        EMPTY,     SIGN_IN]),
    (get("/api/v1/calls/{call}/jurors", JUROR_EMAIL),                     [FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK,        FORBIDDEN, SIGN_IN]),
    (get("/api/v1/calls/{call}/conflicts", CONFLICT_REASON),              [FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK,        FORBIDDEN, SIGN_IN]),
    (get("/api/v1/calls/{call}/assignment", "total_affinity"),            [FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK,        FORBIDDEN, SIGN_IN]),
    (get("/api/v1/calls/{call}/assigned", TITLE),                         [EMPTY,     EMPTY,     OK,        EMPTY,     EMPTY,     EMPTY,     EMPTY,     SIGN_IN]),
    (get("/api/v1/calls/{call}/ranking", TITLE),                          [FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK,        FORBIDDEN, SIGN_IN]),
    // The selected are open data; the others are the managers' (their authors read their own).
    (get("/api/v1/calls/{call}/decisions", OTHER_TITLE),                  [EMPTY,     EMPTY,     EMPTY,     EMPTY,     EMPTY,     OK,        EMPTY,     EMPTY]),
    (get("/api/v1/calls/{call}/decisions.csv", OTHER_TITLE),              [EMPTY,     EMPTY,     EMPTY,     EMPTY,     EMPTY,     OK,        EMPTY,     EMPTY]),
    (get("/api/v1/calls/{call}/decisions", TITLE),                        [OK,        OK,        OK,        OK,        OK,        OK,        OK,        OK]),
    // The call's page lists the reader's own, all for managers, and a juror's to review.
    (get("/calls/{call}", TITLE),                                         [OK,        EMPTY,     OK,        EMPTY,     EMPTY,     OK,        EMPTY,     EMPTY]),
    (get("/calls/{call}", OTHER_TITLE),                                   [EMPTY,     OK,        OK,        EMPTY,     OK,        OK,        EMPTY,     EMPTY]),
    (get("/calls/{call}/applications/{app}/letter", TITLE),               [OK,        NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK,        NOT_FOUND, TO_LOGIN]),
];

#[test]
fn every_role_reaches_only_what_it_may_of_a_call() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (server, client, manager) = demo_server(&db);
        let mut body = call_body("isolement", Some(DAY_MS));
        body["reviewers_per_application"] = json!(2);
        let call = open_call(&client, &manager, &body);
        let other_call = open_call(&client, &manager, &call_body("autre-appel", Some(DAY_MS)));
        let (_, other_manager) = client.new_user("gestion-autre@example.org");
        grant_over_call(&server, &db, "gestion-autre@example.org", other_call);
        let theirs = client.get(&format!("/api/v1/calls/{other_call}/jurors"), Some(&other_manager));
        assert_eq!(theirs.status, 200, "the other call's manager manages it: {}", theirs.text);

        let (_, alice) = client.new_user("alice@example.org");
        let (_, bob) = client.new_user("bob@example.org");
        let app = apply(&client, &alice, call, TITLE);
        apply(&client, &bob, call, OTHER_TITLE);
        assert_eq!(upload(&client, &alice, app, "projet.pdf", 1, PDF.as_bytes()).status, 200);
        let (_, assigned) = juror(&client, &manager, call, JUROR_EMAIL, &["santé"]);
        let (_, conflicted) = juror(&client, &manager, call, "conflit@juges.example", &["santé"]);
        let assignment = client.post(&format!("/api/v1/calls/{call}/assignment"), Some(&manager), &json!({}));
        assert_eq!(assignment.status, 200, "{}", assignment.text);
        assert_eq!(assignment.body["assignment"].as_array().unwrap().len(), 4, "both on both: {}", assignment.text);
        let (_, unassigned) = juror(&client, &manager, call, "tard@juges.example", &["santé"]);
        close_now(&client, &manager, call);

        let mut review = review_body(4.0);
        review["justifications"]["teaching"] = json!(JUSTIFICATION);
        for token in [&assigned, &conflicted] {
            let reply = client.post(&format!("/api/v1/applications/{app}/review"), Some(token), &review);
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let message = json!({ "body": MESSAGE });
        assert_eq!(
            client.post(&format!("/api/v1/applications/{app}/discussion"), Some(&assigned), &message).status,
            201
        );
        // Assigned, reviewed, then conflicted: it loses the application by every route.
        let declared = json!({ "reason": CONFLICT_REASON });
        let reply = client.post(&format!("/api/v1/applications/{app}/conflict"), Some(&conflicted), &declared);
        assert_eq!(reply.status, 200, "{}", reply.text);
        let others = client.get(&format!("/api/v1/calls/{call}/applications"), Some(&manager)).body;
        let other_app = others["items"].as_array().unwrap().iter().find(|a| a["id"] != app).unwrap()["id"].clone();
        let decisions = json!([
            { "application": app, "selected": true, "amount_cents": 1_000_000_000i64, "gpu_hours": 100 },
            { "application": other_app, "selected": false },
        ]);
        assert_eq!(decide(&client, &manager, call, decisions).status, 200);

        let tokens: [Option<&str>; 8] = [
            Some(&alice),
            Some(&bob),
            Some(&assigned),
            Some(&unassigned),
            Some(&conflicted),
            Some(&manager),
            Some(&other_manager),
            None,
        ];
        let mut failures = Vec::new();
        for (route, expected) in &TABLE {
            let path = route.path.replace("{call}", &call.to_string()).replace("{app}", &app.to_string());
            for ((role, token), expect) in ROLES.iter().zip(tokens).zip(expected) {
                let body = route.body.map(|body| ("application/json", body.as_bytes().to_vec()));
                let reply = client.request(route.method, &path, token, body);
                let (status, shown) = match expect {
                    Sees(status) => (*status, true),
                    Blind(status) => (*status, false),
                };
                let secret_in = reply.text.contains(route.secret);
                if reply.status != status || secret_in != shown {
                    failures.push(format!(
                        "{} {path} as {role}: {} {}, expected {expect:?} ({})",
                        route.method,
                        reply.status,
                        if secret_in { "with the secret" } else { "without the secret" },
                        route.secret
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{backend:?}:\n{}", failures.join("\n"));
        // The table's POSTs changed nothing: the conflicted juror's conflict is the only one
        // declared, the assigned juror's review is as written.
        let conflicts = client.get(&format!("/api/v1/calls/{call}/conflicts"), Some(&manager)).body;
        let declared: Vec<&Value> =
            conflicts["items"].as_array().unwrap().iter().filter(|c| c["source"] == "declared").collect();
        assert_eq!(declared.len(), 1, "{conflicts}");
    }
}

/// The call-manager role over one call, granted by the operator's CLI: the API refuses roles
/// over a call (see `a_role_over_one_call_is_granted_through_the_api`).
fn grant_over_call(server: &Server, db: &TestDb, email: &str, call: i64) {
    let scope = format!("call:{call}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(["admin", "grant", "--email", email, "--role", "call-manager", "--scope", &scope])
        .args(["--database", &db.url, "--data-dir"])
        .arg(server.data_dir())
        .env("GRAPPE_AUDIT_KEY", AUDIT_KEY)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// An administrator makes someone the manager of one call (or a juror of it) through the API,
/// as over one project. `Db::scope_exists` answers false for every call and challenge, so the
/// grant is refused with "call:N not found".
#[test]
fn a_role_over_one_call_is_granted_through_the_api() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (_server, client, manager) = demo_server(&db);
        let call = open_call(&client, &manager, &call_body("co-gestion", Some(DAY_MS)));
        let (user, token) = client.new_user("co-gestion@example.org");
        let grant = json!({ "role": "call_manager", "scope": format!("call:{call}") });
        let granted = client.post(&format!("/api/v1/users/{user}/grants"), Some(ADMIN_TOKEN), &grant);
        assert_eq!(granted.status, 201, "{backend:?}: {}", granted.text);
        assert_eq!(client.get(&format!("/api/v1/calls/{call}/jurors"), Some(&token)).status, 200);
    }
}
