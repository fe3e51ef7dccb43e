//! The account and programme API, on SQLite and on PostgreSQL.

use serde_json::json;

use crate::harness::{ADMIN_TOKEN, Server, ServerOptions, TestDb, backends};

fn each_backend(test: impl Fn(&Server)) {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
        test(&server);
    }
}

#[test]
fn programme_is_public_and_in_euro_cents() {
    each_backend(|server| {
        let reply = server.client().get("/api/v1/programme", None);
        assert_eq!(reply.status, 200, "{}", reply.text);
        let lines: Vec<_> = reply.body["instruments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["budget_lines"].as_array().unwrap().clone())
            .collect();
        let envelope =
            |code: &str| lines.iter().find(|l| l["code"] == code).unwrap()["envelope_cents"].as_i64().unwrap();
        assert_eq!(envelope("ia_cluster"), 50_000_000_000);
        assert_eq!(envelope("open_datasets"), 4_000_000_000);
        assert_eq!(envelope("ia_booster"), 2_500_000_000);
        assert_eq!(envelope("strategy_public"), 150_000_000_000);
        assert_eq!(envelope("strategy_private"), 50_600_000_000);
        // The demo's decided call (`ia-cluster-2024`) committed its selected amounts on the
        // IA-cluster line; nothing else is committed, nothing disbursed.
        let decisions = server.client().get("/api/v1/calls/2/decisions", None).body;
        let selected: i64 =
            decisions["items"].as_array().unwrap().iter().map(|d| d["amount_cents"].as_i64().unwrap()).sum();
        assert!(selected > 0, "{decisions}");
        let calls = server.client().get("/api/v1/calls", None).body;
        let phases: Vec<(&str, &str)> = calls["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["phase"].as_str().unwrap()))
            .collect();
        assert_eq!(
            phases,
            [("ia-booster", "open"), ("ia-cluster-2024", "decided"), ("ia-cluster", "open")],
            "newest first"
        );
        // The demo paid a first 30 % to three of them: disbursed comes from those payments.
        let paid: i64 = server.client().get("/api/v1/opendata/payments.json", None).body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["amount_cents"].as_i64().unwrap())
            .sum();
        assert!(paid > 0 && paid < selected, "{paid} of {selected}");
        for line in &lines {
            let (committed, disbursed) = if line["code"] == "ia_cluster" { (selected, paid) } else { (0, 0) };
            assert_eq!(line["committed_cents"], committed, "{line}");
            assert_eq!(line["disbursed_cents"], disbursed, "{line}");
        }
        let total =
            reply.body["kpis"].as_array().unwrap().iter().find(|k| k["code"] == "strategy_total").unwrap().clone();
        assert_eq!(total["value"], 220_000_000_000_i64);
        assert_eq!(total["approximate"], true);
        assert_eq!(total["unit"], "cents");
        assert!(total["source"].as_str().unwrap().contains("2,2 milliards"), "{total}");
        assert_eq!(reply.body["programme"]["code"], "france-2030-ia");
    });
}

#[test]
fn accounts_lifecycle_users_tokens_grants_and_audit() {
    each_backend(|server| {
        let client = server.client();
        let (ada_id, ada) = client.new_user("ada@example.org");

        let me = client.get("/api/v1/me", Some(&ada));
        assert_eq!(me.status, 200);
        assert_eq!(me.body["email"], "ada@example.org");
        assert_eq!(me.body["roles"], json!([]));

        let duplicate = client.post(
            "/api/v1/users",
            Some(ADMIN_TOKEN),
            &json!({ "name": "Ada again", "email": "ADA@example.org", "password": "another long password" }),
        );
        duplicate.assert_envelope(409);

        // A user without the admin role may not create users; an admin grant changes that.
        let attempt = json!({ "name": "Bob", "email": "bob@example.org", "password": "bob's long password" });
        client.post("/api/v1/users", Some(&ada), &attempt).assert_envelope(403);
        let grant =
            client.post(&format!("/api/v1/users/{ada_id}/grants"), Some(ADMIN_TOKEN), &json!({ "role": "admin" }));
        assert_eq!(grant.status, 201, "{}", grant.text);
        assert_eq!(client.post("/api/v1/users", Some(&ada), &attempt).status, 201);
        // A grant over a project that does not exist is refused; over one that does, given.
        let over = |scope: &str| {
            client.post(
                &format!("/api/v1/users/{ada_id}/grants"),
                Some(ADMIN_TOKEN),
                &json!({ "role": "project_member", "scope": scope }),
            )
        };
        over("project:12").assert_envelope(404);
        let project = client.post(
            "/api/v1/projects",
            Some(ADMIN_TOKEN),
            &json!({ "name": "twelve", "gpu_hours": 0, "cpu_hours": 10 }),
        );
        let scope = format!("project:{}", project.body["id"]);
        assert_eq!(over(&scope).status, 201);
        let roles = client.get("/api/v1/me", Some(&ada)).body["roles"].clone();
        assert_eq!(roles.as_array().unwrap().len(), 2);
        assert!(roles.as_array().unwrap().iter().any(|r| r["role"] == "project_member" && r["scope"] == scope));

        // Revoking the admin grant takes the right away at once.
        let grant_id = grant.body["id"].as_i64().unwrap();
        assert_eq!(client.delete(&format!("/api/v1/users/{ada_id}/grants/{grant_id}"), Some(ADMIN_TOKEN)).status, 204);
        let attempt = json!({ "name": "Cy", "email": "cy@example.org", "password": "cy's long password!" });
        client.post("/api/v1/users", Some(&ada), &attempt).assert_envelope(403);

        // Tokens: listed without their secret, revocable, dead once revoked.
        let second = client.post("/api/v1/tokens", Some(&ada), &json!({ "name": "laptop" }));
        assert_eq!(second.status, 201);
        let second_token = second.body["token"].as_str().unwrap().to_owned();
        assert!(second_token.starts_with("grp_"));
        let listed = client.get("/api/v1/tokens", Some(&ada));
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
        assert!(!listed.text.contains(&second_token), "a token is shown once, at creation");
        let second_id = second.body["id"].as_i64().unwrap();
        assert_eq!(client.delete(&format!("/api/v1/tokens/{second_id}"), Some(&ada)).status, 204);
        client.get("/api/v1/me", Some(&second_token)).assert_envelope(401);
        assert_eq!(client.get("/api/v1/me", Some(&ada)).status, 200);

        // Someone else's token is not found, not forbidden: its existence is not disclosed.
        let (_, bob) = client.new_user("bob2@example.org");
        let ada_tokens = client.get("/api/v1/tokens", Some(&ada)).body["items"].clone();
        let ada_token_id = ada_tokens[0]["id"].as_i64().unwrap();
        client.delete(&format!("/api/v1/tokens/{ada_token_id}"), Some(&bob)).assert_envelope(404);
        assert_eq!(client.get("/api/v1/me", Some(&ada)).status, 200);

        // A user reads itself, not others.
        assert_eq!(client.get(&format!("/api/v1/users/{ada_id}"), Some(&ada)).status, 200);
        client.get(&format!("/api/v1/users/{ada_id}"), Some(&bob)).assert_envelope(403);

        // Every grant and revocation is in the audit log, and the chain holds.
        let audit = client.get("/api/v1/audit?limit=100", Some(ADMIN_TOKEN));
        assert_eq!(audit.status, 200);
        assert_eq!(audit.body["chain_ok"], true, "{}", audit.text);
        let actions: Vec<&str> =
            audit.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert!(
            actions.contains(&"role.grant") && actions.contains(&"role.revoke") && actions.contains(&"token.revoke")
        );
        client.get("/api/v1/audit", Some(&bob)).assert_envelope(403);
    });
}

#[test]
fn credentials_are_checked() {
    each_backend(|server| {
        let client = server.client();
        client.get("/api/v1/me", None).assert_envelope(401);
        client.get("/api/v1/me", Some("grp_not-a-token")).assert_envelope(401);
        // A wrong token is refused even on a public route, so a caller learns its token is bad.
        client.get("/api/v1/programme", Some("grp_not-a-token")).assert_envelope(401);
        let me = client.get("/api/v1/me", Some(ADMIN_TOKEN));
        assert_eq!(me.body["roles"][0]["role"], "admin");
        let (email, password) = server.demo_password("juror");
        let wrong = json!({ "email": email, "password": "wrong password!" });
        client.post("/api/v1/auth/token", None, &wrong).assert_envelope(401);
        let unknown = json!({ "email": "nobody@example.org", "password": password });
        client.post("/api/v1/auth/token", None, &unknown).assert_envelope(401);
        let token = client.token_for(&email, &password);
        assert_eq!(client.get("/api/v1/me", Some(&token)).body["email"], email);
    });
}

/// Ten wrong passwords used to lock any account, the admin's included, for 15 minutes, even
/// against the right password from anywhere. Now each account is slowed down from the address
/// that fails only: the owner logs in from another address at once.
#[test]
fn ten_wrong_passwords_do_not_lock_the_owner_out() {
    for backend in backends() {
        let db = TestDb::new(backend);
        // Behind a trusted proxy, so that the test can speak from several addresses.
        let options = ServerOptions {
            demo: true,
            env: vec![("GRAPPE_TRUSTED_PROXY".into(), "1".into())],
            ..ServerOptions::default()
        };
        let server = Server::start(&db.url, &options);
        let (email, password) = server.demo_password("admin");
        let from = |address: &str, password: &str| {
            let body = json!({ "email": email, "password": password }).to_string().into_bytes();
            let request = ureq::http::Request::builder()
                .method("POST")
                .uri(format!("{}/api/v1/auth/token", server.base))
                .header("Content-Type", "application/json")
                .header("X-Forwarded-For", address)
                .body(body)
                .unwrap();
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let response = agent.run(request).unwrap();
            (response.status().as_u16(), response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()))
        };
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(from("203.0.113.9", "wrong password!").0);
        }
        assert_eq!(&statuses[..3], [401, 401, 401], "{backend:?}: the first failures are answered at once");
        assert!(statuses[3..].contains(&429), "{backend:?}: then the attacker waits: {statuses:?}");
        let (status, retry_after) = from("203.0.113.9", "wrong password!");
        assert_eq!(status, 429);
        assert!(retry_after.is_some());
        // The owner, from elsewhere, with the right password: at once.
        assert_eq!(from("198.51.100.7", &password).0, 201, "{backend:?}");
        // And a wrong password from that other address is only a 401.
        assert_eq!(from("198.51.100.8", "wrong password!").0, 401);
    }
}

#[test]
fn health_metrics_and_openapi() {
    each_backend(|server| {
        let client = server.client();
        let health = client.get("/healthz", None);
        assert_eq!(health.status, 200);
        assert_eq!(health.body["status"], "ok");
        let metrics = client.get("/metrics", None);
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.text.contains("grappe_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1")
        );
        assert!(metrics.text.contains("grappe_lease_held"));
        let openapi = client.get("/api/v1/openapi.json", None);
        assert_eq!(openapi.body["openapi"], "3.1.0");
        assert_eq!(openapi.body["paths"]["/api/v1/users"]["post"]["x-grappe-access"], "role:admin");
        assert_eq!(openapi.body["paths"]["/api/v1/programme"]["get"]["x-grappe-access"], "public");
    });
}

#[test]
fn organisations_carry_kind_and_size_class() {
    each_backend(|server| {
        let client = server.client();
        let sme = json!({ "name": "Petite IA SAS", "kind": "company", "size_class": "sme" });
        let created = client.post("/api/v1/organisations", Some(ADMIN_TOKEN), &sme);
        assert_eq!(created.status, 201, "{}", created.text);
        client.post("/api/v1/organisations", Some(ADMIN_TOKEN), &sme).assert_envelope(409);
        let no_size = json!({ "name": "Big Corp", "kind": "company" });
        client.post("/api/v1/organisations", Some(ADMIN_TOKEN), &no_size).assert_envelope(422);
        let (_, user) = client.new_user("org-reader@example.org");
        let listed = client.get("/api/v1/organisations", Some(&user));
        let names: Vec<&str> =
            listed.body["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"Petite IA SAS") && names.contains(&"Inria"));
        client.post("/api/v1/organisations", Some(&user), &json!({ "name": "X", "kind": "lab" })).assert_envelope(403);
    });
}

/// Regression: a grant reads then writes in one transaction; on SQLite a deferred transaction
/// failed at once with SQLITE_BUSY (a 500) when the lease ticker wrote in between.
#[test]
fn read_then_write_transactions_wait_for_concurrent_writers() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let options = ServerOptions {
            demo: false,
            env: vec![("GRAPPE_LEASE_TTL_MS".into(), "1000".into()), ("GRAPPE_LEASE_TICK_MS".into(), "5".into())],
            ..ServerOptions::default()
        };
        let server = Server::start(&db.url, &options);
        let (user_id, _) = server.client().new_user("busy@example.org");
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let base = server.base.clone();
                std::thread::spawn(move || {
                    let client = crate::harness::Client::new(&base);
                    for n in 0..40 {
                        let name = format!("busy-{thread}-{n}");
                        let project = json!({ "name": name, "gpu_hours": 0, "cpu_hours": 1 });
                        let created = client.post("/api/v1/projects", Some(ADMIN_TOKEN), &project);
                        assert_eq!(created.status, 201, "{}", created.text);
                        let scope = format!("project:{}", created.body["id"]);
                        let body = json!({ "role": "project_member", "scope": scope });
                        let reply = client.post(&format!("/api/v1/users/{user_id}/grants"), Some(ADMIN_TOKEN), &body);
                        assert_eq!(reply.status, 201, "{}", reply.text);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no request failed");
        }
    }
}
