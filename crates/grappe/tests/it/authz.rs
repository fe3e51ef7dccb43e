//! Every route of the router, called by every kind of caller, against this test's own table of
//! who may call what. A route added to the server without a line here fails the test.

use std::collections::BTreeMap;

use grappe_server::routes::{Kind, table};

use crate::harness::{ADMIN_TOKEN, Server, ServerOptions, TestDb, backends};

/// Who a route admits, as this test expects it; written by hand, not read from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admits {
    Anyone,
    SignedIn,
    Admins,
    /// Programme managers (who record payments) and administrators.
    ProgrammeStaff,
    /// A project's gateway key, and nothing else (which a key opens nothing else of).
    ProjectKey,
}

fn expected() -> BTreeMap<(&'static str, &'static str), Admits> {
    use Admits::*;
    BTreeMap::from([
        (("GET", "/healthz"), Anyone),
        (("GET", "/metrics"), Anyone),
        (("GET", "/api/v1/openapi.json"), Anyone),
        (("GET", "/api/v1/programme"), Anyone),
        (("POST", "/api/v1/programme"), Admins),
        (("GET", "/api/v1/programme/lines/{code}"), Anyone),
        (("POST", "/api/v1/programme/payments"), ProgrammeStaff),
        (("GET", "/api/v1/opendata/{file}"), Anyone),
        (("GET", "/programme/lines/{code}"), Anyone),
        (("GET", "/programme/report/{year}"), Anyone),
        (("POST", "/api/v1/auth/token"), Anyone),
        (("GET", "/api/v1/me"), SignedIn),
        (("GET", "/api/v1/tokens"), SignedIn),
        (("POST", "/api/v1/tokens"), SignedIn),
        (("DELETE", "/api/v1/tokens/{id}"), SignedIn),
        (("GET", "/api/v1/users"), Admins),
        (("POST", "/api/v1/users"), Admins),
        (("GET", "/api/v1/users/{id}"), SignedIn),
        (("POST", "/api/v1/users/{id}/grants"), Admins),
        (("DELETE", "/api/v1/users/{id}/grants/{grant_id}"), Admins),
        (("GET", "/api/v1/organisations"), SignedIn),
        (("POST", "/api/v1/organisations"), Admins),
        (("GET", "/api/v1/audit"), Admins),
        (("GET", "/api/v1/system/leases"), Admins),
        (("POST", "/api/v1/projects"), Admins),
        (("GET", "/api/v1/projects"), SignedIn),
        (("GET", "/api/v1/projects/{id}"), SignedIn),
        (("POST", "/api/v1/projects/{id}/members"), Admins),
        (("POST", "/api/v1/projects/{id}/coordinators"), SignedIn),
        (("GET", "/api/v1/projects/{id}/usage.csv"), SignedIn),
        (("POST", "/api/v1/jobs"), SignedIn),
        (("POST", "/api/v1/workdirs"), SignedIn),
        (("GET", "/api/v1/jobs"), SignedIn),
        (("GET", "/api/v1/jobs/{id}"), SignedIn),
        (("GET", "/api/v1/jobs/{id}/logs"), SignedIn),
        (("GET", "/api/v1/jobs/{id}/events"), SignedIn),
        (("POST", "/api/v1/jobs/{id}/cancel"), SignedIn),
        (("POST", "/api/v1/jobs/{id}/metrics"), SignedIn),
        (("GET", "/api/v1/jobs/{id}/metrics"), SignedIn),
        (("GET", "/api/v1/datasets"), Anyone),
        (("POST", "/api/v1/datasets"), SignedIn),
        (("GET", "/api/v1/datasets/{name}"), Anyone),
        (("POST", "/api/v1/datasets/{name}/chunks/missing"), SignedIn),
        (("POST", "/api/v1/datasets/{name}/chunks"), SignedIn),
        (("POST", "/api/v1/datasets/{name}/versions"), SignedIn),
        (("GET", "/api/v1/datasets/{name}/versions/{version}"), Anyone),
        (("GET", "/api/v1/datasets/{name}/versions/{version}/manifest"), Anyone),
        (("GET", "/api/v1/datasets/{name}/versions/{version}/files/{*path}"), Anyone),
        (("GET", "/api/v1/opendata/catalog"), Anyone),
        (("GET", "/api/v1/models"), Anyone),
        (("POST", "/api/v1/models"), SignedIn),
        (("GET", "/api/v1/models/{name}"), Anyone),
        (("POST", "/api/v1/models/{name}/versions"), SignedIn),
        (("GET", "/api/v1/models/{name}/versions/{version}"), Anyone),
        (("GET", "/api/v1/models/{name}/versions/{version}/files/{*path}"), Anyone),
        (("GET", "/data/{name}"), Anyone),
        (("GET", "/"), Anyone),
        (("GET", "/login"), Anyone),
        (("POST", "/login"), Anyone),
        (("POST", "/logout"), SignedIn),
        (("GET", "/lang/{code}"), Anyone),
        (("GET", "/account"), SignedIn),
        (("POST", "/account/tokens/{id}/revoke"), SignedIn),
        (("GET", "/admin"), Admins),
        (("POST", "/admin/users"), Admins),
        (("POST", "/admin/grants"), Admins),
        (("POST", "/admin/organisations"), Admins),
        (("POST", "/admin/projects"), Admins),
        (("GET", "/static/app.css"), Anyone),
        (("GET", "/static/job.js"), Anyone),
        (("GET", "/calls"), Anyone),
        (("GET", "/calls/{id}"), Anyone),
        (("POST", "/calls/{id}/applications"), SignedIn),
        (("POST", "/calls/{id}/assignment"), SignedIn),
        (("POST", "/calls/{id}/decisions"), SignedIn),
        (("GET", "/calls/{id}/applications/{application}/letter"), SignedIn),
        (("POST", "/calls/{id}/reviews/{application}"), SignedIn),
        (("GET", "/calls/{id}/applications/{application}"), SignedIn),
        (("POST", "/calls/{id}/applications/{application}/attachments"), SignedIn),
        (("POST", "/calls/{id}/applications/{application}/attachments/{name}/remove"), SignedIn),
        (("POST", "/calls/{id}/applications/{application}/discussion"), SignedIn),
        (("POST", "/calls/{id}/applications/{application}/conflict"), SignedIn),
        (("POST", "/calls/{id}/jurors"), SignedIn),
        (("POST", "/calls/{id}/conflicts"), SignedIn),
        (("POST", "/calls/{id}/dates"), SignedIn),
        (("POST", "/api/v1/projects/{id}/keys"), SignedIn),
        (("GET", "/api/v1/projects/{id}/keys"), SignedIn),
        (("DELETE", "/api/v1/projects/{id}/keys/{key_id}"), SignedIn),
        (("GET", "/api/v1/projects/{id}/gateway-usage"), SignedIn),
        (("GET", "/api/v1/projects/{id}/gateway-usage.csv"), SignedIn),
        (("POST", "/api/v1/projects/{id}/gateway-limits"), Admins),
        (("GET", "/v1/usage"), ProjectKey),
        (("POST", "/v1/responses"), ProjectKey),
        (("POST", "/v1/files"), ProjectKey),
        (("GET", "/v1/files"), ProjectKey),
        (("GET", "/v1/files/{id}"), ProjectKey),
        (("GET", "/v1/files/{id}/content"), ProjectKey),
        (("POST", "/v1/batches"), ProjectKey),
        (("GET", "/v1/batches"), ProjectKey),
        (("GET", "/v1/batches/{id}"), ProjectKey),
        (("POST", "/v1/batches/{id}/cancel"), ProjectKey),
        (("POST", "/v1/fine_tuning/jobs"), ProjectKey),
        (("GET", "/v1/fine_tuning/jobs"), ProjectKey),
        (("GET", "/v1/fine_tuning/jobs/{id}"), ProjectKey),
        (("POST", "/v1/fine_tuning/jobs/{id}/start"), ProjectKey),
        (("POST", "/v1/fine_tuning/jobs/{id}/cancel"), ProjectKey),
        (("GET", "/v1/fine_tuning/jobs/{id}/events"), ProjectKey),
        (("GET", "/v1/fine_tuning/jobs/{id}/checkpoints"), ProjectKey),
        (("POST", "/api/v1/gateway/models"), SignedIn),
        (("POST", "/api/v1/gateway/models/{name}/serve"), SignedIn),
        (("GET", "/ai"), Anyone),
        (("POST", "/ai/projects/{id}/keys"), SignedIn),
        (("POST", "/ai/projects/{id}/keys/{key_id}/revoke"), SignedIn),
        (("POST", "/ai/playground"), SignedIn),
        (("GET", "/static/gateway.js"), Anyone),
        (("GET", "/v1/models"), ProjectKey),
        (("POST", "/v1/chat/completions"), ProjectKey),
        (("POST", "/v1/completions"), ProjectKey),
        (("POST", "/v1/embeddings"), ProjectKey),
        (("GET", "/api/v1/calls"), Anyone),
        (("POST", "/api/v1/calls"), SignedIn),
        (("GET", "/api/v1/calls/{id}"), Anyone),
        (("POST", "/api/v1/calls/{id}/applications"), SignedIn),
        (("GET", "/api/v1/calls/{id}/applications"), SignedIn),
        (("GET", "/api/v1/applications/{id}"), SignedIn),
        (("POST", "/api/v1/applications/{id}"), SignedIn),
        (("GET", "/api/v1/applications/{id}/versions"), SignedIn),
        (("POST", "/api/v1/calls/{id}/dates"), SignedIn),
        (("GET", "/api/v1/applications/{id}/attachments"), SignedIn),
        (("POST", "/api/v1/applications/{id}/attachments"), SignedIn),
        (("GET", "/api/v1/applications/{id}/attachments/{name}"), SignedIn),
        (("DELETE", "/api/v1/applications/{id}/attachments/{name}"), SignedIn),
        (("GET", "/api/v1/applications/{id}/discussion"), SignedIn),
        (("POST", "/api/v1/applications/{id}/discussion"), SignedIn),
        (("POST", "/api/v1/calls/{id}/jurors"), SignedIn),
        (("GET", "/api/v1/calls/{id}/jurors"), SignedIn),
        (("GET", "/api/v1/calls/{id}/conflicts"), SignedIn),
        (("POST", "/api/v1/calls/{id}/conflicts"), SignedIn),
        (("POST", "/api/v1/applications/{id}/conflict"), SignedIn),
        (("POST", "/api/v1/calls/{id}/assignment"), SignedIn),
        (("GET", "/api/v1/calls/{id}/assignment"), SignedIn),
        (("GET", "/api/v1/calls/{id}/assigned"), SignedIn),
        (("POST", "/api/v1/applications/{id}/review"), SignedIn),
        (("GET", "/api/v1/applications/{id}/reviews"), SignedIn),
        (("POST", "/api/v1/calls/{id}/decisions"), SignedIn),
        (("GET", "/api/v1/calls/{id}/ranking"), SignedIn),
        (("GET", "/api/v1/calls/{id}/decisions"), Anyone),
        (("GET", "/api/v1/calls/{id}/decisions.csv"), Anyone),
        (("GET", "/api/v1/applications/{id}/decision"), SignedIn),
        (("GET", "/compute"), Anyone),
        (("GET", "/compute/projects/{id}"), SignedIn),
        (("POST", "/compute/projects/{id}/jobs"), SignedIn),
        (("GET", "/compute/jobs/{id}"), SignedIn),
        (("POST", "/compute/jobs/{id}/cancel"), SignedIn),
        (("GET", "/data"), Anyone),
        (("GET", "/models"), Anyone),
        (("GET", "/models/{name}"), Anyone),
        (("GET", "/challenges"), Anyone),
        (("GET", "/challenges/{id}"), Anyone),
        (("POST", "/challenges/{id}/teams"), SignedIn),
        (("POST", "/challenges/{id}/submissions"), SignedIn),
        (("GET", "/api/v1/challenges"), Anyone),
        (("POST", "/api/v1/challenges"), SignedIn),
        (("GET", "/api/v1/challenges/{id}"), Anyone),
        (("GET", "/api/v1/challenges/{id}/leaderboard"), Anyone),
        (("GET", "/api/v1/challenges/{id}/leaderboard.csv"), Anyone),
        (("POST", "/api/v1/challenges/{id}/teams"), SignedIn),
        (("GET", "/api/v1/challenges/{id}/team"), SignedIn),
        (("POST", "/api/v1/challenges/{id}/team/invitations"), SignedIn),
        (("POST", "/api/v1/challenges/{id}/teams/{team}/join"), SignedIn),
        (("POST", "/api/v1/challenges/{id}/team/leave"), SignedIn),
        (("POST", "/api/v1/challenges/{id}/submissions"), SignedIn),
        (("POST", "/api/v1/challenges/{id}/submissions/code"), SignedIn),
        (("GET", "/api/v1/challenges/{id}/submissions/{submission}"), SignedIn),
        (("POST", "/api/v1/challenges/{id}/finals"), SignedIn),
        (("GET", "/api/v1/booster/questions"), Anyone),
        (("POST", "/api/v1/booster/companies"), SignedIn),
        (("GET", "/api/v1/booster/companies"), SignedIn),
        (("GET", "/api/v1/booster/companies/{id}"), SignedIn),
        (("POST", "/api/v1/booster/companies/{id}/diagnostics"), SignedIn),
        (("GET", "/api/v1/booster/diagnostics/{id}"), SignedIn),
        (("POST", "/api/v1/booster/companies/{id}/support"), SignedIn),
        (("POST", "/api/v1/booster/companies/{id}/outcomes"), SignedIn),
        (("POST", "/api/v1/booster/companies/{id}/members"), SignedIn),
        (("GET", "/api/v1/booster/benchmark"), Anyone),
        (("GET", "/booster"), Anyone),
        (("POST", "/booster/companies"), SignedIn),
        (("GET", "/booster/companies/{id}"), SignedIn),
        (("GET", "/booster/companies/{id}/diagnostic"), SignedIn),
        (("POST", "/booster/companies/{id}/diagnostic"), SignedIn),
        (("GET", "/booster/diagnostics/{id}"), SignedIn),
        (("POST", "/booster/companies/{id}/support"), SignedIn),
        (("POST", "/booster/companies/{id}/outcomes"), SignedIn),
        (("POST", "/booster/companies/{id}/members"), SignedIn),
        (("GET", "/centres"), Anyone),
        (("GET", "/centres/{id}"), Anyone),
        (("POST", "/centres/{id}/profile"), SignedIn),
        (("POST", "/centres/{id}/trainings"), SignedIn),
        (("GET", "/api/v1/centres"), Anyone),
        (("GET", "/api/v1/centres/{id}"), Anyone),
        (("POST", "/api/v1/centres/{id}"), SignedIn),
        (("POST", "/api/v1/centres/{id}/trainings"), SignedIn),
    ])
}

/// A concrete path: ids that exist nowhere, so that allowed writes change nothing.
fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace("{grant_id}", "999999")
        .replace("{key_id}", "999999")
        .replace("{team}", "999999")
        .replace("{application}", "999999")
        .replace("{submission}", "999999")
        .replace("{code}", "en")
        .replace("{name}", "no-such-dataset")
        .replace("{version}", "latest")
        .replace("{*path}", "a.csv")
        .replace("{year}", "2026")
        .replace("{file}", "budget-lines.csv")
}

#[test]
fn every_route_times_every_role() {
    let routes = table();
    let expected = expected();
    let in_router: Vec<(&str, &str)> = routes.iter().map(|r| (r.method.as_str(), r.path)).collect();
    for route in &in_router {
        assert!(expected.contains_key(route), "route {route:?} has no line in this test's table");
    }
    for route in expected.keys() {
        assert!(in_router.contains(route), "this test's table names {route:?}, which the router lacks");
    }

    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
        let client = server.client();
        // Callers: nobody, each demo role, the admin token.
        let mut callers: Vec<(String, Option<String>, bool)> = vec![("anonymous".into(), None, false)];
        for (role, email, password) in &server.demo_accounts {
            callers.push((role.clone(), Some(client.token_for(email, password)), role == "admin"));
        }
        callers.push(("admin-token".into(), Some(ADMIN_TOKEN.to_owned()), true));
        let project = client.get("/api/v1/projects", Some(ADMIN_TOKEN)).body["items"][0]["id"].as_i64().unwrap();
        let key = client.post(
            &format!("/api/v1/projects/{project}/keys"),
            Some(ADMIN_TOKEN),
            &serde_json::json!({ "name": "authz" }),
        );
        callers.push(("project-key".into(), Some(key.body["key"].as_str().unwrap().to_owned()), false));
        assert_eq!(callers.len(), 13, "ten demo roles, anonymous, the admin token and a project key");

        let mut checked = 0;
        for route in &routes {
            let admits = expected[&(route.method.as_str(), route.path)];
            for (name, token, is_admin) in &callers {
                let is_key = name == "project-key";
                let allowed = match admits {
                    Admits::Anyone => !is_key,
                    Admits::SignedIn => token.is_some() && !is_key,
                    Admits::Admins => *is_admin,
                    Admits::ProgrammeStaff => *is_admin || name == "programme_manager",
                    Admits::ProjectKey => is_key,
                };
                let body = (route.method.as_str() == "POST").then(|| match route.kind {
                    Kind::Api | Kind::OpenAi => ("application/json", b"{}".to_vec()),
                    Kind::Page => ("application/x-www-form-urlencoded", Vec::new()),
                });
                let reply = client
                    .try_request(route.method.as_str(), &concrete(route.path), token.as_deref(), body)
                    .unwrap_or_else(|e| panic!("{backend:?} {name} {} {}: {e:?}", route.method.as_str(), route.path));
                let context = format!(
                    "{backend:?} {name} {} {} -> {} {}",
                    route.method.as_str(),
                    route.path,
                    reply.status,
                    reply.text
                );
                assert!(reply.status < 500, "{context}");
                if allowed {
                    assert!(!reply.denied_by_policy, "should be allowed: {context}");
                    assert_ne!(reply.status, 401, "{context}");
                } else {
                    assert!(reply.denied_by_policy, "should be denied: {context}");
                    // A key outside the gateway, or anything but a key in it, counts as no credentials.
                    let credentials = token.is_some() && !is_key && admits != Admits::ProjectKey;
                    let expected_status = match (route.kind, credentials) {
                        (Kind::Api | Kind::OpenAi, false) => 401,
                        (Kind::Page, false) => 303,
                        (_, true) => 403,
                    };
                    assert_eq!(reply.status, expected_status, "{context}");
                    if route.kind == Kind::OpenAi {
                        assert!(reply.body["error"]["type"].is_string(), "OpenAI's error shape: {context}");
                    }
                    if route.kind == Kind::Page && !credentials {
                        assert!(reply.location.as_deref().is_some_and(|l| l.starts_with("/login?next=")), "{context}");
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, routes.len() * callers.len());
    }
}

/// Cookie sessions must carry the CSRF token on API writes; bearer tokens need not. The token
/// is bound to the session: a token from before the login, or from another session, fits not;
/// and a browser write from another origin is refused whatever it carries.
#[test]
fn cookie_sessions_need_a_token_bound_to_the_session() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let (email, password) = server.demo_password("juror");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    // The login form sets a pre-session cookie; its token is bound to it.
    let mut form_page = agent.get(&format!("{}/login", server.base)).call().unwrap();
    let presession = set_cookie(&form_page, "grappe_presession");
    let html = form_page.body_mut().read_to_string().unwrap();
    let form_token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_ne!(form_token, presession, "the token is a keyed hash of the cookie, not the cookie");
    let login = |cookie: &str, csrf: &str, origin: Option<&str>| {
        let mut request = agent
            .post(&format!("{}/login", server.base))
            .header("Cookie", &format!("grappe_presession={cookie}"))
            .content_type("application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request
            .send(format!("email={}&password={}&csrf={csrf}&next=%2Faccount", email.replace('@', "%40"), password))
            .unwrap()
    };
    assert_eq!(login(&presession, "forged", None).status().as_u16(), 403, "a wrong token is refused");
    // Login CSRF: another page of this host planted its own pre-session cookie and token.
    let planted = "a".repeat(64);
    assert_eq!(login(&planted, &form_token, None).status().as_u16(), 403, "a token of another pre-session");
    let other_port = server.base.replace("127.0.0.1:", "127.0.0.1:1");
    assert_eq!(login(&presession, &form_token, Some(&other_port)).status().as_u16(), 403, "another origin");
    let ok = login(&presession, &form_token, Some(&server.base));
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers().get("location").unwrap(), "/account");
    let session = set_cookie(&ok, "grappe_session");
    let cookies = format!("grappe_session={session}");
    let mut me = agent.get(&format!("{}/api/v1/me", server.base)).header("Cookie", &cookies).call().unwrap();
    assert_eq!(me.status().as_u16(), 200);
    let me: serde_json::Value = serde_json::from_str(&me.body_mut().read_to_string().unwrap()).unwrap();
    let token = me["csrf_token"].as_str().unwrap().to_owned();
    let write = |csrf: Option<&str>, origin: Option<&str>| {
        let mut request = agent.post(&format!("{}/api/v1/tokens", server.base)).header("Cookie", &cookies);
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.content_type("application/json").send(r#"{"name":"from the browser"}"#).unwrap().status().as_u16()
    };
    assert_eq!(write(None, None), 403);
    assert_eq!(write(Some("wrong"), None), 403);
    assert_eq!(write(Some(&form_token), None), 403, "the pre-session's token does not fit the session");
    assert_eq!(write(Some(&token), Some(&other_port)), 403, "another origin, even with the right token");
    assert_eq!(write(Some(&token), Some(&server.base)), 201);
    assert_eq!(write(Some(&token), None), 201);
}

/// The value a response sets for cookie `name`.
fn set_cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&prefix).map(|rest| rest.split(';').next().unwrap().to_owned()))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
}
