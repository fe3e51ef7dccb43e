//! IA Booster through a server, on SQLite and PostgreSQL: a company registers, diagnoses,
//! applies to the rolling call and is granted compute (a project with GPU-hours); a company's
//! answers reach nobody but its members and the programme's staff, on any route; the public
//! benchmark shows a group from 5 companies on and nothing under; bad input is a clear 400 that
//! saves nothing.

use grappe_db::{Db, PoolConfig};
use grappe_server::routes::{Method, table};
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TestDb, backends};

/// A SIREN with its Luhn check digit: `base` on 8 digits, then the digit that makes it valid.
fn siren(base: u32) -> String {
    let digits = format!("{base:08}");
    (0..10)
        .map(|check| format!("{digits}{check}"))
        .find(|candidate| {
            let sum: u32 = candidate
                .bytes()
                .rev()
                .enumerate()
                .map(|(i, byte)| {
                    let digit = u32::from(byte - b'0');
                    if i % 2 == 1 { if digit * 2 > 9 { digit * 2 - 9 } else { digit * 2 } } else { digit }
                })
                .sum();
            sum.is_multiple_of(10)
        })
        .unwrap()
}

fn question_ids(client: &Client) -> Vec<String> {
    let questions = client.get("/api/v1/booster/questions", None).body;
    questions["questions"].as_array().unwrap().iter().map(|q| q["id"].as_str().unwrap().to_owned()).collect()
}

/// Every question answered `value`.
fn answers(ids: &[String], value: i64) -> Value {
    Value::Object(ids.iter().map(|id| (id.clone(), json!(value))).collect())
}

fn register(client: &Client, token: &str, name: &str, siren: &str, size: &str, naf: &str) -> i64 {
    let body = json!({ "name": name, "siren": siren, "size_class": size, "naf": naf });
    let reply = client.post("/api/v1/booster/companies", Some(token), &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_i64().unwrap()
}

fn diagnose(client: &Client, token: &str, company: i64, answers: Value, class: &str) -> Value {
    let body = json!({ "answers": answers, "ai_act_class": class });
    let reply = client.post(&format!("/api/v1/booster/companies/{company}/diagnostics"), Some(token), &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

fn demo_server(db: &TestDb) -> Server {
    Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() })
}

fn totals(url: &str) -> grappe_db::BoosterTotals {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { Db::open(url, &PoolConfig::default()).await.unwrap().booster_totals().await.unwrap() })
}

#[test]
fn a_company_registers_diagnoses_applies_and_is_granted_compute() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = demo_server(&db);
        let client = server.client();
        let (_, alice) = client.new_user("alice@pme.example");
        let company = register(&client, &alice, "Alice Logiciels", "732 829 320", "sme", "6201Z");
        let mine = client.get("/api/v1/booster/companies", Some(&alice)).body;
        assert_eq!(mine["companies"][0]["naf"], "62.01Z", "{mine}");
        assert_eq!(mine["companies"][0]["naf_section"], "J");
        assert_eq!(mine["companies"][0]["siren"], "732829320");
        let ids = question_ids(&client);
        assert_eq!(ids.len(), 17);
        // Infrastructure weakest: the advice names compute first.
        let mut given = answers(&ids, 1);
        for id in ["infrastructure.tools", "infrastructure.compute", "infrastructure.security"] {
            given[id] = json!(0);
        }
        let result = diagnose(&client, &alice, company, given, "high");
        assert_eq!(
            (result["scores"]["infrastructure"].clone(), result["scores"]["overall"].clone()),
            (json!(0), json!(26)),
            "{result}"
        );
        assert_eq!(result["level"], "exploring");
        assert_eq!(result["answers"]["data.quality"], 1);
        let advice = result["recommendations"].as_array().unwrap();
        assert_eq!(advice.last().unwrap()["reason"], "ai_act:high");
        assert_eq!(advice[0]["reason"], "weak:infrastructure", "{result}");
        assert_eq!(advice[0]["resources"][0], "compute");
        // The demo's five software SMEs and this one: the peers show.
        assert_eq!(result["peers"]["companies"], 6, "{result}");
        assert!(result["peers"]["percentile"]["overall"].is_u64());

        let request = json!({
            "title": "Un assistant pour nos techniciens", "summary": "Un petit modèle affiné sur nos fiches.",
            "requested_cents": 4_000_000, "requested_gpu_hours": 300,
        });
        let applied = client.post(&format!("/api/v1/booster/companies/{company}/support"), Some(&alice), &request);
        assert_eq!(applied.status, 201, "{}", applied.text);
        let application = applied.body["id"].as_i64().unwrap();
        let call = applied.body["call"].as_i64().unwrap();
        let (email, password) = server.demo_password("call_manager");
        let manager = client.token_for(&email, &password);
        let decided = client.post(
            &format!("/api/v1/calls/{call}/decisions"),
            Some(&manager),
            &json!({ "decisions": [{ "application": application, "selected": true, "amount_cents": 4_000_000, "gpu_hours": 300 }] }),
        );
        assert_eq!(decided.status, 200, "{}", decided.text);
        let shown = client.get(&format!("/api/v1/booster/companies/{company}"), Some(&alice)).body;
        let support = &shown["support_requests"][0];
        assert_eq!((support["selected"].clone(), support["gpu_hours"].clone()), (json!(true), json!(300)), "{shown}");
        let project = support["project"].as_i64().unwrap();
        let project = client.get(&format!("/api/v1/projects/{project}"), Some(&alice));
        assert_eq!(project.status, 200, "{}", project.text);
        assert_eq!(project.body["gpu_hours"], 300);

        for outcome in [
            json!({ "kind": "prototype", "occurred_on": "2026-10-01" }),
            json!({ "kind": "jobs", "quantity": 3, "occurred_on": "2026-11-02", "note": "deux ingénieurs, une data scientist" }),
        ] {
            let reply = client.post(&format!("/api/v1/booster/companies/{company}/outcomes"), Some(&alice), &outcome);
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let figures = totals(&db.url);
        assert_eq!(
            (figures.companies_registered, figures.companies_diagnosed, figures.companies_supported),
            (8, 8, 1),
            "the demo's seven companies and this one"
        );
        assert_eq!((figures.prototypes, figures.products, figures.jobs_created), (1, 0, 3));

        let page = client.get(&format!("/booster/companies/{company}"), Some(&alice));
        assert_eq!(page.status, 200);
        assert!(page.text.contains("Alice Logiciels") && page.text.contains("732 829 320"), "{}", page.text);
        let diagnostic = result["id"].as_i64().unwrap();
        let page = client.get(&format!("/booster/diagnostics/{diagnostic}"), Some(&alice));
        assert_eq!(page.status, 200);
        assert!(page.text.contains("class=\"chart radar\"") && page.text.contains("id=\"peers\""), "{}", page.text);
        assert!(page.text.contains("href=\"/centres\""), "recommendations link to the centres");

        // The same through the pages' forms: register, then ask for support.
        let (_, bruno) = client.new_user("bruno@pme.example");
        let form = format!("name=Bruno+Conseil&siren={}&size_class=eti&naf=7022Z", siren(55_000_001));
        let (status, text) = post_form(&server, &bruno, "/booster", "/booster/companies", &form);
        assert_eq!(status, 303, "{text}");
        let company =
            client.get("/api/v1/booster/companies", Some(&bruno)).body["companies"][0]["id"].as_i64().unwrap();
        let page = format!("/booster/companies/{company}");
        let form = "title=Devis+automatiques&summary=Un+assistant&requested_euros=20000&requested_gpu_hours=100";
        let (status, text) = post_form(&server, &bruno, &page, &format!("{page}/support"), form);
        assert_eq!(status, 303, "{text}");
        let form = "kind=product&quantity=1&occurred_on=2026-09-15&note=lanc%C3%A9";
        assert_eq!(post_form(&server, &bruno, &page, &format!("{page}/outcomes"), form).0, 303);
        let shown = client.get(&format!("/api/v1/booster/companies/{company}"), Some(&bruno)).body;
        assert_eq!(shown["support_requests"][0]["requested_gpu_hours"], 100, "{shown}");
        assert_eq!(shown["support_requests"][0]["selected"], Value::Null, "pending");
        assert_eq!(shown["outcomes"][0]["kind"], "product");
    }
}

#[test]
fn no_route_shows_a_companys_answers_to_anyone_else() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = demo_server(&db);
        let client = server.client();
        let ids = question_ids(&client);
        let (_, alice) = client.new_user("alice@secret.example");
        let (_, bob) = client.new_user("bob@other.example");
        let (_, carol) = client.new_user("carol@nobody.example");
        let secret = register(&client, &alice, "Entreprise Secrète", &siren(31_000_001), "sme", "70.22Z");
        register(&client, &bob, "Autre Entreprise", &siren(31_000_002), "sme", "70.22Z");
        let diagnostic = diagnose(&client, &alice, secret, answers(&ids, 2), "limited")["id"].as_i64().unwrap();

        let outsiders: [(&str, Option<&str>); 3] = [("bob", Some(&bob)), ("carol", Some(&carol)), ("anonymous", None)];
        let mut checked = 0;
        // Every route that reads (each placeholder the company's or its diagnostic's id), and
        // every Booster route that writes.
        let booster = |path: &str| path.contains("booster");
        for route in table().iter().filter(|route| route.method == Method::Get || booster(route.path)) {
            let path = other_placeholders(
                &route
                    .path
                    .replace("/companies/{id}", &format!("/companies/{secret}"))
                    .replace("/diagnostics/{id}", &format!("/diagnostics/{diagnostic}"))
                    .replace("{id}", &secret.to_string()),
            );
            for (who, token) in outsiders {
                let reply = match route.method {
                    Method::Get => client.get(&path, token),
                    Method::Post if path.starts_with("/api/") => {
                        client.post(&path, token, &json!({ "answers": answers(&ids, 0), "ai_act_class": "minimal" }))
                    }
                    Method::Post => client.request(
                        "POST",
                        &path,
                        token,
                        Some(("application/x-www-form-urlencoded", b"csrf=x&name=y".to_vec())),
                    ),
                    Method::Delete => client.delete(&path, token),
                };
                let context = format!("{who} {} {path}: {} {}", route.method.as_str(), reply.status, reply.text);
                // The company's name is in the list of organisations, for the signed-in: its
                // answers and results are nowhere.
                if booster(route.path) {
                    assert!(!reply.text.contains("Entreprise Secrète"), "{context}");
                }
                assert!(!reply.text.contains("data.quality\":2"), "{context}");
                assert!(!reply.text.contains("Résultat du diagnostic"), "{context}");
                // Refused, or (a body of another route's shape) rejected before any lookup.
                if booster(route.path) && route.path.contains("{id}") {
                    assert!([303, 400, 401, 403, 404, 422].contains(&reply.status), "{context}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 3 * 100, "{checked}");
        // Nothing was written for the outsiders' posts.
        let shown = client.get(&format!("/api/v1/booster/companies/{secret}"), Some(&alice)).body;
        assert_eq!(shown["diagnostics"].as_array().unwrap().len(), 1, "{shown}");
        assert!(
            shown["support_requests"].as_array().unwrap().is_empty()
                && shown["outcomes"].as_array().unwrap().is_empty()
        );
        // Its member and the programme's staff read it.
        let own = client.get(&format!("/api/v1/booster/diagnostics/{diagnostic}"), Some(&alice));
        assert_eq!((own.status, own.body["answers"]["data.quality"].clone()), (200, json!(2)));
        let staff = client.get(&format!("/api/v1/booster/diagnostics/{diagnostic}"), Some(ADMIN_TOKEN));
        assert_eq!(staff.status, 200, "{}", staff.text);
        let (email, password) = server.demo_password("call_manager");
        let manager = client.token_for(&email, &password);
        assert_eq!(client.get(&format!("/booster/diagnostics/{diagnostic}"), Some(&manager)).status, 200);
        // A member of another company does not see this one among its own.
        let bobs = client.get("/api/v1/booster/companies", Some(&bob)).body;
        assert_eq!(bobs["companies"].as_array().unwrap().len(), 1, "{bobs}");
        // An outsider cannot make itself a member; a member adds someone, who then reads it.
        let members = format!("/api/v1/booster/companies/{secret}/members");
        client.post(&members, Some(&bob), &json!({ "email": "bob@other.example" })).assert_envelope(404);
        client.post(&members, Some(&alice), &json!({ "email": "nobody@nowhere.example" })).assert_envelope(404);
        let added = client.post(&members, Some(&alice), &json!({ "email": "carol@nobody.example" }));
        assert_eq!(added.status, 201, "{}", added.text);
        let read = client.get(&format!("/api/v1/booster/diagnostics/{diagnostic}"), Some(&carol));
        assert_eq!((read.status, read.body["answers"]["data.quality"].clone()), (200, json!(2)), "{}", read.text);
        let page = client.get(&format!("/booster/companies/{secret}"), Some(&carol)).text;
        assert!(page.contains("User carol@nobody.example") && page.contains("User alice@secret.example"), "{page}");
    }
}

#[test]
fn the_benchmark_shows_a_group_from_five_companies_and_nothing_under() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = demo_server(&db);
        let client = server.client();
        let ids = question_ids(&client);
        let group = |client: &Client| {
            let reply = client.get("/api/v1/booster/benchmark?size_class=eti&naf_section=C", None);
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body["groups"].as_array().unwrap().clone()
        };
        // The demo's two mid-sized manufacturers; then two more, one of them diagnosed twice.
        assert!(group(&client).is_empty());
        let mut last = Value::Null;
        for (i, naf) in ["10.71C", "28.99B"].iter().enumerate() {
            let (_, token) = client.new_user(&format!("eti{i}@industrie.example"));
            let company =
                register(&client, &token, &format!("Industrie {i}"), &siren(42_000_000 + i as u32), "eti", naf);
            diagnose(&client, &token, company, answers(&ids, 1), "minimal");
            last = diagnose(&client, &token, company, answers(&ids, 2), "minimal");
        }
        assert!(group(&client).is_empty(), "four companies, five diagnostics: still nothing");
        assert!(last["peers"].is_null(), "nor any position: {last}");
        let page = client.get("/booster", None).text;
        assert!(!page.contains("Industrie 1") && page.contains("id=\"benchmark\""), "the demo's SMEs show");
        let (_, token) = client.new_user("eti-5@industrie.example");
        let company = register(&client, &token, "Industrie 5", &siren(42_000_010), "eti", "25.62A");
        let fifth = diagnose(&client, &token, company, answers(&ids, 3), "unknown");
        let shown = group(&client);
        assert_eq!(shown.len(), 1, "{shown:?}");
        let keys: Vec<&String> = shown[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["companies", "median", "naf_section", "size_class"], "aggregates only");
        assert_eq!(shown[0]["companies"], 5);
        assert_eq!(shown[0]["median"]["overall"], 67.0, "{shown:?}");
        assert_eq!(fifth["peers"]["companies"], 5, "{fifth}");
        assert_eq!(fifth["peers"]["percentile"]["overall"], 90);
        let all = client.get("/api/v1/booster/benchmark", None).body;
        assert_eq!(all["groups"].as_array().unwrap().len(), 2, "J/sme of the demo and C/eti: {all}");
        assert_eq!(client.get("/api/v1/booster/benchmark?size_class=eti", None).status, 400);

        // One person who registers five companies of a new group learns nothing: the group counts
        // distinct people who registered its companies.
        let (_, sybil) = client.new_user("sybil@example.org");
        for i in 0..5 {
            let name = format!("Écran {i}");
            let company = register(&client, &sybil, &name, &siren(43_000_000 + i), "eti", "58.11Z");
            last = diagnose(&client, &sybil, company, answers(&ids, i64::from(i % 4)), "minimal");
        }
        assert!(last["peers"].is_null(), "five companies of one person: no position: {last}");
        let edition = client.get("/api/v1/booster/benchmark?size_class=eti&naf_section=J", None).body;
        assert_eq!(edition["groups"], serde_json::json!([]), "{edition}");
    }
}

#[test]
fn bad_input_is_a_clear_400_and_saves_nothing() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = demo_server(&db);
        let client = server.client();
        let ids = question_ids(&client);
        let (_, token) = client.new_user("dana@pme.example");
        let organisations = || client.get("/api/v1/organisations", Some(ADMIN_TOKEN)).body.to_string();
        let before = organisations();
        let refused = |body: Value, says: &str| {
            let reply = client.post("/api/v1/booster/companies", Some(&token), &body);
            reply.assert_envelope(400);
            assert!(reply.body["detail"].as_str().unwrap().contains(says), "{says}: {}", reply.text);
        };
        let company = |siren: &str, size: &str, naf: &str| json!({ "name": "Dana SAS", "siren": siren, "size_class": size, "naf": naf });
        refused(company("732 829 32", "sme", "62.01Z"), "a SIREN has 9 digits, this one has 8");
        refused(company("732 829 321", "sme", "62.01Z"), "fails its check digit");
        refused(company("732 829 32O", "sme", "62.01Z"), "only digits");
        refused(company("732 829 320", "sme", "62.01A"), "62.01A is not a NAF rev. 2 code");
        refused(company("732 829 320", "sme", "62-01"), "written like 62.01Z");
        refused(company("732 829 320", "large", "62.01Z"), "SMEs and mid-sized companies");
        refused(company("732 829 320", "medium", "62.01Z"), "must be sme or eti");
        refused(json!({ "name": "", "siren": "1", "size_class": "", "naf": "" }), "`name`");
        assert_eq!(organisations(), before, "no organisation was created");
        assert!(client.get("/api/v1/booster/companies", Some(&token)).body["companies"].as_array().unwrap().is_empty());

        // The form: the error in French next to its field, what was typed kept.
        let form = "name=Dana+SAS&siren=732+829+32&size_class=sme&naf=62.01A";
        let (status, text) = post_form(&server, &token, "/booster", "/booster/companies", form);
        let reply = Reply { status, text };
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(
            reply.text.contains("id=\"siren-error\">Un SIREN compte 9 chiffres ; celui-ci en a 8."),
            "{}",
            reply.text
        );
        assert!(
            reply.text.contains("id=\"naf-error\">Ce code n&#39;existe pas")
                || reply.text.contains("id=\"naf-error\">Ce code n'existe pas"),
            "{}",
            reply.text
        );
        assert!(
            reply.text.contains("value=\"732 829 32\"") && reply.text.contains("value=\"62.01A\""),
            "typed values kept"
        );
        assert_eq!(organisations(), before);

        let company = register(&client, &token, "Dana SAS", "732 829 320", "sme", "62.01Z");
        let submit = |answers: Value, class: &str| {
            client.post(
                &format!("/api/v1/booster/companies/{company}/diagnostics"),
                Some(&token),
                &json!({ "answers": answers, "ai_act_class": class }),
            )
        };
        let mut missing = answers(&ids, 1);
        missing.as_object_mut().unwrap().remove("governance.oversight");
        let mut high = answers(&ids, 1);
        high["data.quality"] = json!(4);
        let mut unknown = answers(&ids, 1);
        unknown["data.colour"] = json!(1);
        let mut half = answers(&ids, 1);
        half["skills.team"] = json!(2.5);
        for (answers, class, says) in [
            (missing, "minimal", "incomplete: no answer to governance.oversight"),
            (high, "minimal", "`data.quality`: the answer 4 is out of range (0 to 3)"),
            (unknown, "minimal", "`data.colour` is not a question"),
            (half, "minimal", "`skills.team`: the answer must be a whole number"),
            (answers(&ids, 1), "medium", "`ai_act_class` must be one of"),
        ] {
            let reply = submit(answers, class);
            reply.assert_envelope(400);
            assert!(reply.body["detail"].as_str().unwrap().contains(says), "{says}: {}", reply.text);
        }
        let shown = client.get(&format!("/api/v1/booster/companies/{company}"), Some(&token)).body;
        assert!(shown["diagnostics"].as_array().unwrap().is_empty(), "nothing saved: {shown}");

        // The questionnaire's form: the questions left unanswered marked, the answers kept.
        let page = client.get(&format!("/booster/companies/{company}/diagnostic"), Some(&token));
        assert_eq!(page.status, 200);
        assert_eq!(page.text.matches("<fieldset").count(), 5 + 17 + 1, "a group per theme, question and the AI Act");
        let questionnaire = format!("/booster/companies/{company}/diagnostic");
        let (status, text) =
            post_form(&server, &token, &questionnaire, &questionnaire, "data.inventory=2&data.quality=3");
        let reply = Reply { status, text };
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(reply.text.contains("16 questions sont sans réponse"), "{}", reply.text);
        assert!(reply.text.contains("name=\"data.quality\" value=\"3\" required checked"), "answers kept");
        assert!(reply.text.contains("id=\"q-data-history-error\""), "the unanswered question marked");
        let shown = client.get(&format!("/api/v1/booster/companies/{company}"), Some(&token)).body;
        assert!(shown["diagnostics"].as_array().unwrap().is_empty(), "nothing saved: {shown}");

        // Support and outcomes.
        let support = json!({ "title": "t", "summary": "s", "requested_cents": 100, "requested_gpu_hours": 5_000 });
        let reply = client.post(&format!("/api/v1/booster/companies/{company}/support"), Some(&token), &support);
        reply.assert_envelope(400);
        let support = json!({ "title": "t", "summary": "s", "requested_cents": 0, "requested_gpu_hours": 10 });
        client
            .post(&format!("/api/v1/booster/companies/{company}/support"), Some(&token), &support)
            .assert_envelope(400);
        for outcome in [
            json!({ "kind": "patent", "occurred_on": "2026-01-01" }),
            json!({ "kind": "jobs", "quantity": 0, "occurred_on": "2026-01-01" }),
            json!({ "kind": "product", "occurred_on": "2026-02-30" }),
            json!({ "kind": "product", "occurred_on": "2999-01-01" }),
        ] {
            client
                .post(&format!("/api/v1/booster/companies/{company}/outcomes"), Some(&token), &outcome)
                .assert_envelope(400);
        }
        let shown = client.get(&format!("/api/v1/booster/companies/{company}"), Some(&token)).body;
        assert!(
            shown["support_requests"].as_array().unwrap().is_empty()
                && shown["outcomes"].as_array().unwrap().is_empty()
        );
        // A SIREN registered twice is a conflict.
        let again = client.post("/api/v1/booster/companies", Some(&token), &company_body("Dana Bis", "732829320"));
        again.assert_envelope(409);
    }
}

/// A path's placeholders other than ids, with values that name nothing.
fn other_placeholders(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |end| start + end + 1);
        out.push_str(if rest[start..].starts_with("{*") { "a.csv" } else { "999999" });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A page's reply, as far as these tests read it.
struct Reply {
    status: u16,
    text: String,
}

/// Posts a page's form as `token`'s holder, with the pre-session cookie and the CSRF token that
/// a GET of `page` handed out (a browser's way).
fn post_form(server: &Server, token: &str, page: &str, action: &str, fields: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let bearer = format!("Bearer {token}");
    let mut got = agent.get(&format!("{}{page}", server.base)).header("Authorization", &bearer).call().unwrap();
    let cookie = got
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("grappe_presession="))
        .map(|value| value.split(';').next().unwrap().to_owned())
        .expect("a pre-session cookie");
    let html = got.body_mut().read_to_string().unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let mut reply = agent
        .post(&format!("{}{action}", server.base))
        .header("Authorization", &bearer)
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}&{fields}"))
        .unwrap();
    (reply.status().as_u16(), reply.body_mut().read_to_string().unwrap())
}

fn company_body(name: &str, siren: &str) -> Value {
    json!({ "name": name, "siren": siren, "size_class": "sme", "naf": "62.01Z" })
}
