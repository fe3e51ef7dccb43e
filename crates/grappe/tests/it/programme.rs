//! The programme as data (issue 11): its file loaded and updated by administrators (API and
//! CLI), committed figures from decisions and disbursed ones from payments, the public
//! dashboard, the open data and its catalogue, and the yearly report, on SQLite and PostgreSQL.

use serde_json::{Value, json};

use crate::cli::{grappe, text};
use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TempDir, TestDb, backends};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programmes/france-2030-ia.toml");

/// The shipped file as the JSON the API takes.
fn shipped() -> Value {
    let text = std::fs::read_to_string(FILE).unwrap();
    let programme: toml::Value = toml::from_str(&text).unwrap();
    serde_json::to_value(programme).unwrap()
}

fn line<'a>(programme: &'a Value, code: &str) -> &'a Value {
    programme["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["budget_lines"].as_array().unwrap().iter())
        .find(|line| line["code"] == code)
        .unwrap_or_else(|| panic!("no line {code} in {programme}"))
}

#[test]
fn a_programme_file_is_loaded_updated_and_refused_whole_when_bad() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions::default());
        let client = server.client();
        // A fresh server has no programme, and its dashboard says how to load one.
        let empty = client.get("/api/v1/programme", None);
        assert_eq!(empty.body["programme"], Value::Null);
        assert_eq!(empty.body["instruments"], json!([]));
        let page = client.get("/", None);
        assert!(page.text.contains("grappe programme load programmes/france-2030-ia.toml"), "{}", page.text);

        // Only administrators load.
        let (_, member) = client.new_user("lea@example.org");
        assert_eq!(client.post("/api/v1/programme", Some(&member), &shipped()).status, 403);
        let loaded = client.post("/api/v1/programme", Some(ADMIN_TOKEN), &shipped());
        assert_eq!(loaded.status, 200, "{}", loaded.text);
        assert_eq!(loaded.body["instruments"], 7);
        assert_eq!(loaded.body["budget_lines"], 5);
        let programme = client.get("/api/v1/programme", None).body;
        assert_eq!(programme["programme"]["code"], "france-2030-ia");
        assert_eq!(line(&programme, "ia_booster")["envelope_cents"], 2_500_000_000_i64);

        // Bad files change nothing, and say where they are wrong.
        let mut twice = shipped();
        twice["instruments"][1]["code"] = json!("ia_cluster");
        let mut negative = shipped();
        negative["instruments"][4]["budget_lines"][0]["envelope_eur"] = json!(-5);
        let mut unknown_module = shipped();
        unknown_module["instruments"][0]["module"] = json!("bank");
        let mut no_english = shipped();
        no_english["kpis"][0]["label"] = json!({ "fr": "Seul" });
        let mut extra = shipped();
        extra["instruments"][0]["colour"] = json!("blue");
        for (bad, says) in [
            (twice, "instruments[1].code: `ia_cluster` is used by two instruments"),
            (negative, "instruments[4].budget_lines[0].envelope_eur: must be between 0 and"),
            (unknown_module, "instruments[0].module: `bank` is not a module"),
            (no_english, "missing field `en`"),
            (extra, "unknown field `colour`"),
            (json!("a string"), "not a programme"),
        ] {
            let reply = client.post("/api/v1/programme", Some(ADMIN_TOKEN), &bad);
            reply.assert_envelope(422);
            assert!(reply.body["detail"].as_str().unwrap().contains(says), "{}: {says}", reply.text);
        }
        assert_eq!(client.get("/api/v1/programme", None).body, programme, "nothing changed");

        // An update: a new envelope, a line removed (no record stands on it), a figure gone.
        let mut update = shipped();
        update["instruments"][4]["budget_lines"][0]["envelope_eur"] = json!(30_000_000);
        update["instruments"][6]["budget_lines"].as_array_mut().unwrap().pop();
        update["kpis"].as_array_mut().unwrap().pop();
        let reply = client.post("/api/v1/programme", Some(ADMIN_TOKEN), &update);
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["removed"], json!(["budget line strategy_private", "figure ia_cluster_centres_max"]));
        let programme = client.get("/api/v1/programme", None).body;
        assert_eq!(line(&programme, "ia_booster")["envelope_cents"], 3_000_000_000_i64);
        assert_eq!(programme["kpis"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn the_cli_checks_the_file_then_loads_it_as_an_administrator() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    let check = grappe(&["programme", "load", "--check", FILE], &[], "");
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("france-2030-ia: 7 instruments, 5 budget lines, 3 figures: the file is valid"));
    // A mistake in the file is named by its line, before anything is sent.
    let dir = TempDir::new("programme");
    let bad = dir.path().join("bad.toml");
    let shipped = std::fs::read_to_string(FILE).unwrap();
    std::fs::write(&bad, shipped.replace("envelope_eur = 40_000_000", "envelope_eur = \"40 M€\"")).unwrap();
    let refused = grappe(&["programme", "load", "--check", bad.to_str().unwrap()], &[], "");
    assert!(!refused.status.success());
    assert!(text(&refused).contains("line 35"), "{}", text(&refused));

    // Loaded through the server, by an administrator logged in with the CLI.
    let admin = client.post(
        "/api/v1/users",
        Some(ADMIN_TOKEN),
        &json!({ "name": "Ada", "email": "ada@example.org", "password": "a long enough password" }),
    );
    let grant = json!({ "role": "admin", "scope": "global" });
    let id = admin.body["id"].as_i64().unwrap();
    assert_eq!(client.post(&format!("/api/v1/users/{id}/grants"), Some(ADMIN_TOKEN), &grant).status, 201);
    let config = TempDir::new("config");
    let env = [("XDG_CONFIG_HOME", config.path().to_str().unwrap()), ("GRAPPE_PASSWORD", "a long enough password")];
    let login = grappe(&["login", "--url", &server.base, "--email", "ada@example.org"], &env, "");
    assert!(login.status.success(), "{}", text(&login));
    let load = grappe(&["programme", "load", FILE], &env, "");
    assert!(load.status.success(), "{}", text(&load));
    assert!(text(&load).contains("france-2030-ia: 7 instruments, 5 budget lines, 3 figures loaded"), "{}", text(&load));
    assert_eq!(client.get("/api/v1/programme", None).body["instruments"].as_array().unwrap().len(), 7);
}

/// A demo server, its client, a programme manager's token, and the IA-cluster line's selected
/// applications (id, amount) as the open data lists them.
fn demo(db: &TestDb) -> (Server, Client, String, Vec<(i64, i64)>) {
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let client = server.client();
    let (email, password) = server.demo_password("programme_manager");
    let manager = client.token_for(&email, &password);
    let commitments = client.get("/api/v1/opendata/commitments.json", None).body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["application"].as_i64().unwrap(), c["amount_cents"].as_i64().unwrap()))
        .collect();
    (server, client, manager, commitments)
}

fn payment(application: i64, amount_cents: i64, paid_on: &str, reference: &str) -> Value {
    json!({ "application": application, "amount_cents": amount_cents, "paid_on": paid_on, "reference": reference })
}

#[test]
fn payments_disburse_within_the_grant_once_per_reference_and_decisions_commit() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (_server, client, manager, commitments) = demo(&db);
        assert_eq!(commitments.len(), 9, "the demo's nine centres");
        let (application, granted) = commitments[0];
        let before = client.get("/api/v1/programme", None).body;
        let disbursed = line(&before, "ia_cluster")["disbursed_cents"].as_i64().unwrap();
        let committed = line(&before, "ia_cluster")["committed_cents"].as_i64().unwrap();
        assert_eq!(committed, commitments.iter().map(|c| c.1).sum::<i64>(), "committed is the decisions' sum");
        let paid_already: i64 = client.get("/api/v1/programme/lines/ia_cluster", None).body["commitments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["application"] == application)
            .unwrap()["paid_cents"]
            .as_i64()
            .unwrap();

        // Refused, each with nothing recorded.
        let (_, applicant) = client.new_user("someone@example.org");
        let ok = payment(application, 100_000, "2026-01-15", "VIR-2026-0001");
        assert_eq!(client.post("/api/v1/programme/payments", Some(&applicant), &ok).status, 403);
        assert_eq!(client.post("/api/v1/programme/payments", None, &ok).status, 401);
        for (bad, status, says) in [
            (payment(application, 0, "2026-01-15", "A"), 422, "amount_cents"),
            (payment(application, 5, "2026-02-30", "A"), 422, "paid_on"),
            (payment(application, 5, "2999-01-01", "A"), 422, "after today"),
            (payment(application, 5, "0202-05-01", "A"), 422, "before 2018"),
            (payment(application, 5, "2026-01-15", " "), 422, "reference"),
            (payment(999_999, 5, "2026-01-15", "A"), 404, "no grant"),
            (payment(application, granted - paid_already + 1, "2026-01-15", "A"), 409, "would pass it"),
        ] {
            let reply = client.post("/api/v1/programme/payments", Some(&manager), &bad);
            reply.assert_envelope(status);
            assert!(reply.body["detail"].as_str().unwrap().contains(says), "{}: {says}", reply.text);
        }
        let unknown =
            client.post("/api/v1/programme/payments", Some(&manager), &json!({ "application": 1, "amont": 5 }));
        unknown.assert_envelope(422);

        // Recorded once: the same transfer again is refused.
        let paid = client.post("/api/v1/programme/payments", Some(&manager), &ok);
        assert_eq!(paid.status, 201, "{}", paid.text);
        assert_eq!(paid.body["reference"], "VIR-2026-0001");
        let again = client.post("/api/v1/programme/payments", Some(&manager), &ok);
        again.assert_envelope(409);
        let after = client.get("/api/v1/programme", None).body;
        assert_eq!(line(&after, "ia_cluster")["disbursed_cents"], disbursed + 100_000);
        assert_eq!(line(&after, "ia_cluster")["committed_cents"], committed);

        // The line's records show it; the public never sees the transfer's reference.
        let records = client.get("/api/v1/programme/lines/ia_cluster", None).body;
        assert!(records["payments"].as_array().unwrap().iter().any(|p| p["paid_on"] == "2026-01-15"));
        let csv = client.get("/api/v1/opendata/payments.csv", None).text;
        assert!(csv.contains(",ia_cluster,100000,2026-01-15"), "{csv}");
        for public in [csv, client.get("/api/v1/opendata/payments.json", None).text, records.to_string()] {
            assert!(!public.contains("VIR-2026-0001"), "{public}");
        }
        let page = client.get("/programme/lines/ia_cluster", None);
        assert_eq!(page.status, 200);
        assert!(page.text.contains("2026-01-15"), "{}", page.text);
        assert_eq!(client.get("/programme/lines/nothing", None).status, 404);

        // A programme file without the IA-cluster line is refused: decisions stand on it.
        let mut without = shipped();
        without["instruments"][0]["budget_lines"] = json!([]);
        let refused = client.post("/api/v1/programme", Some(ADMIN_TOKEN), &without);
        refused.assert_envelope(409);
        assert!(refused.body["detail"].as_str().unwrap().contains("budget line `ia_cluster`"), "{}", refused.text);
        assert_eq!(client.get("/api/v1/programme", None).body["instruments"], after["instruments"]);
    }
}

#[test]
fn the_dashboard_catalogue_and_tables_show_the_whole_platform_to_anyone() {
    let db = TestDb::new(crate::harness::Backend::Postgres);
    let (_server, client, _, commitments) = demo(&db);
    // The dashboard: every module's figures, each a link to its records; French number format.
    let page = client.get("/", None).text;
    for expected in [
        "href=\"/programme/lines/ia_cluster\"",
        "Heures GPU allouées",
        "Jeux de données publics",
        "Dossiers retenus",
        "Entreprises diagnostiquées",
        "href=\"/api/v1/opendata/catalog\"",
        "id=\"months-chart\"",
        "Source :",
        "500\u{a0}M€",
    ] {
        assert!(page.contains(expected), "{expected} not on the dashboard");
    }

    // The catalogue: the commons' public datasets and the programme's tables, without login.
    let catalog = client.get("/api/v1/opendata/catalog", None);
    assert_eq!(catalog.status, 200);
    assert!(catalog.content_type.starts_with("application/ld+json"));
    let datasets = catalog.body["dcat:dataset"].as_array().unwrap();
    let ids: Vec<&str> = datasets.iter().map(|d| d["dct:identifier"].as_str().unwrap()).collect();
    for id in [
        "communes-france",
        "programme-budget-lines",
        "programme-commitments",
        "programme-payments",
        "programme-indicators",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let budget = datasets.iter().find(|d| d["dct:identifier"] == "programme-budget-lines").unwrap();
    let urls: Vec<&str> = budget["dcat:distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dcat:downloadURL"]["@id"].as_str().unwrap())
        .collect();
    assert!(urls.iter().any(|u| u.ends_with("/api/v1/opendata/budget-lines.csv")), "{urls:?}");

    // The tables, as CSV and JSON, agree with the programme.
    let csv = client.get("/api/v1/opendata/budget-lines.csv", None);
    assert!(csv.content_type.starts_with("text/csv"));
    assert!(csv.text.starts_with("instrument,code,label_fr,label_en,envelope_cents,committed_cents,disbursed_cents\n"));
    let committed: i64 = commitments.iter().map(|c| c.1).sum();
    assert!(csv.text.contains(&format!(",50000000000,{committed},")), "{}", csv.text);
    let indicators = client.get("/api/v1/opendata/indicators.json", None).body;
    let selected = indicators["items"].as_array().unwrap().iter().find(|i| i["code"] == "selected").unwrap();
    assert_eq!(selected["value"], 9);
    assert_eq!(selected["source"], "records");
    let diagnosed = indicators["items"].as_array().unwrap().iter().find(|i| i["code"] == "booster_companies_diagnosed");
    assert!(diagnosed.unwrap()["value"].as_i64().unwrap() >= 5, "the demo's companies: {indicators}");
    for missing in ["/api/v1/opendata/secrets.csv", "/api/v1/opendata/payments.xml", "/api/v1/opendata/payments"] {
        client.get(missing, None).assert_envelope(404);
    }
    // The yearly report: a page for any year of the programme, none outside it.
    let report = client.get("/programme/report/2026", None);
    assert_eq!(report.status, 200);
    assert!(report.text.contains("Rapport annuel 2026"));
    assert_eq!(client.get("/programme/report/1066", None).status, 404);
    assert_eq!(client.get("/programme/report/abc", None).status, 404);
}
