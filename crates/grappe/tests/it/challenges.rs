//! The international challenge through a server: a challenge from creation to its private
//! board (teams, invitations and merges, limits, the Ladder, final choices, baselines, CSV), and
//! code submissions run as jobs that try to read the hidden labels.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::commons::{CARD, Cli, write};
use crate::compute::project_with_member;
use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TempDir, TestDb, backends, eventually};

/// Labels no prediction guesses by chance, so that a leak is seen.
fn label(i: usize) -> &'static str {
    if i.is_multiple_of(3) { "zorglub" } else { "plumeau" }
}

const ROWS: usize = 60;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The hidden labels, as the organiser uploads them.
fn labels() -> String {
    let mut csv = String::from("id,label\n");
    for i in 0..ROWS {
        csv.push_str(&format!("t{i},{}\n", label(i)));
    }
    csv
}

/// Predictions right on the rows `right` accepts, wrong elsewhere.
fn predictions(right: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut csv = String::from("id,label\n");
    for i in 0..ROWS {
        let value = if right(i) {
            label(i)
        } else if label(i) == "zorglub" {
            "plumeau"
        } else {
            "zorglub"
        };
        csv.push_str(&format!("t{i},{value}\n"));
    }
    csv.into_bytes()
}

/// An organiser (a member of a project, with the global organiser role) and the public dataset
/// the challenge is on.
fn organiser_and_data(server: &Server, client: &Client) -> (i64, String) {
    let (project, token) = project_with_member(client, "organisers", 100);
    let me = client.get("/api/v1/me", Some(&token)).body;
    let grant = client.post(
        &format!("/api/v1/users/{}/grants", me["id"]),
        Some(ADMIN_TOKEN),
        &json!({ "role": "challenge_organiser" }),
    );
    assert_eq!(grant.status, 201, "{}", grant.text);
    let work = TempDir::new("challenge-data");
    let mut train = String::from("id,text,label\n");
    for i in 0..20 {
        train.push_str(&format!("r{i},texte {i},{}\n", label(i)));
    }
    let mut test = String::from("id,text\n");
    for i in 0..ROWS {
        test.push_str(&format!("t{i},texte {i}\n"));
    }
    write(work.path(), "data/train.csv", train.as_bytes());
    write(work.path(), "data/test.csv", test.as_bytes());
    write(work.path(), "card.md", CARD.as_bytes());
    let cli = Cli::login(server, "organisers@example.org");
    let data = work.path().join("data");
    let card = work.path().join("card.md");
    cli.ok(&[
        "dataset",
        "push",
        data.to_str().unwrap(),
        "--name",
        "defi-data",
        "--card",
        card.to_str().unwrap(),
        "--project",
        "organisers",
        "--public",
    ]);
    (project, token)
}

fn challenge_body(name: &str, closes_in_ms: i64, extra: Value) -> Value {
    let now = now_ms();
    let mut body = json!({
        "name": name,
        "title": "Défi de classification",
        "description": "Classez les **textes**.",
        "dataset": "defi-data",
        "metric": "accuracy",
        "labels": labels(),
        "public_percent": 30,
        "phases": [{ "name": "unique", "starts_at": now - 60_000, "ends_at": now + closes_in_ms }],
        "per_day": 3,
        "total": 10,
        "team_size": 3,
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

fn submit_csv(client: &Client, challenge: i64, token: &str, csv: Vec<u8>) -> crate::harness::Reply {
    client.request("POST", &format!("/api/v1/challenges/{challenge}/submissions"), Some(token), Some(("text/csv", csv)))
}

/// Every answer of this test, so that none can be shown to hold the labels.
fn no_labels(text: &str) {
    let lines: Vec<String> = (0..ROWS).map(|i| format!("t{i},{}", label(i))).collect();
    assert!(!lines.iter().take(5).all(|line| text.contains(line.as_str())), "the labels leaked: {text}");
    assert!(!text.contains("zorglub"), "a label leaked: {text}");
}

#[test]
fn a_challenge_runs_from_creation_to_its_private_board() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions::default());
        let client = server.client();
        let (_, organiser) = organiser_and_data(&server, &client);
        let (_, alice) = client.new_user("alice@example.org");
        let (_, bob) = client.new_user("bob@example.org");
        let (_, carol) = client.new_user("carol@example.org");

        // Only organisers create challenges; bad settings are named.
        let body = challenge_body("defi", 25_000, json!({ "ladder_step": 0.05 }));
        assert_eq!(client.post("/api/v1/challenges", Some(&alice), &body).status, 403);
        let bad = client.post("/api/v1/challenges", Some(&organiser), &json!({ "metric": "accuracy" }));
        assert_eq!(bad.status, 422, "{}", bad.text);
        let wrong_metric = challenge_body("defi", 25_000, json!({ "metric": "bogus" }));
        let reply = client.post("/api/v1/challenges", Some(&organiser), &wrong_metric);
        assert_eq!(reply.status, 422, "{}", reply.text);
        let created = client.post("/api/v1/challenges", Some(&organiser), &body);
        assert_eq!(created.status, 201, "{}", created.text);
        no_labels(&created.text);
        let id = created.body["id"].as_i64().unwrap();
        assert_eq!(created.body["status"], "open");
        assert_eq!(created.body["test_rows"], ROWS);

        // No team, no submission.
        let reply = submit_csv(&client, id, &alice, predictions(|_| true));
        assert_eq!(reply.status, 409, "{}", reply.text);
        for (token, team) in [(&alice, "Les Alphas"), (&bob, "Team Bob"), (&carol, "Carol")] {
            let reply = client.post(&format!("/api/v1/challenges/{id}/teams"), Some(token), &json!({ "name": team }));
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let again = client.post(&format!("/api/v1/challenges/{id}/teams"), Some(&alice), &json!({ "name": "Autre" }));
        assert_eq!(again.status, 409, "one team per person: {}", again.text);

        // A file with a missing, unknown or duplicated id is refused, names it, and does not count.
        let mut missing = predictions(|_| true);
        missing.truncate(missing.len() - "t59,zorglub\n".len());
        let reply = submit_csv(&client, id, &alice, missing);
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert!(reply.text.contains("t59"), "names the id: {}", reply.text);
        no_labels(&reply.text);
        let mut unknown = predictions(|_| true);
        unknown.extend_from_slice(b"t999,plumeau\n");
        let reply = submit_csv(&client, id, &alice, unknown);
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert!(reply.text.contains("t999"), "{}", reply.text);

        // Alice: three submissions a day; the fourth is refused. Bob: one, better.
        let first = submit_csv(&client, id, &alice, predictions(|i| i % 2 == 0));
        assert_eq!(first.status, 201, "{}", first.text);
        assert!(first.body["private_score"].is_null(), "the private score is hidden: {}", first.text);
        let first_id = first.body["id"].as_i64().unwrap();
        let small_gain = submit_csv(&client, id, &alice, predictions(|i| i % 2 == 0 || i == 1));
        assert_eq!(small_gain.status, 201, "{}", small_gain.text);
        let best = submit_csv(&client, id, &alice, predictions(|i| i % 5 != 0));
        assert_eq!(best.status, 201, "{}", best.text);
        let over = submit_csv(&client, id, &alice, predictions(|_| true));
        assert_eq!(over.status, 429, "{}", over.text);
        assert!(over.text.contains("00:00 UTC"), "{}", over.text);
        let bob_reply = submit_csv(&client, id, &bob, predictions(|_| true));
        assert_eq!(bob_reply.status, 201, "{}", bob_reply.text);
        assert_eq!(bob_reply.body["public_score"], 1.0);
        let carol_reply = submit_csv(&client, id, &carol, predictions(|i| i % 4 == 0));
        assert_eq!(carol_reply.status, 201, "{}", carol_reply.text);

        // The Ladder: a step of 0.05 shows a score rounded to it, and the team's best again for
        // a gain of one row out of 18 public rows (0.056 at most over the first: not shown if
        // it is under the step).
        let shown = |reply: &crate::harness::Reply| reply.body["public_score"].as_f64().unwrap();
        let first_score = shown(&first);
        assert!(((first_score / 0.05).round() * 0.05 - first_score).abs() < 1e-9, "rounded to the step: {first_score}");
        assert!(shown(&small_gain) >= first_score);

        // The public board: Bob first, then Alice; the private one is the organiser's until the end.
        let board = client.get(&format!("/api/v1/challenges/{id}/leaderboard"), None).body;
        let teams: Vec<&str> = board["rows"].as_array().unwrap().iter().map(|r| r["team"].as_str().unwrap()).collect();
        assert_eq!(teams[0], "Team Bob", "{board}");
        assert_eq!(board["rows"][0]["rank"], 1);
        no_labels(&board.to_string());
        let private = client.get(&format!("/api/v1/challenges/{id}/leaderboard?board=private"), Some(&alice));
        assert_eq!(private.status, 409, "{}", private.text);
        let private = client.get(&format!("/api/v1/challenges/{id}/leaderboard?board=private"), Some(&organiser));
        assert_eq!(private.status, 200, "{}", private.text);

        // Others' submissions are not visible; the team's own are.
        let path = format!("/api/v1/challenges/{id}/submissions/{first_id}");
        assert_eq!(client.get(&path, Some(&bob)).status, 404);
        assert_eq!(client.get(&path, Some(&alice)).status, 200);

        // Merges: Carol's team into Alice's would pass the day's limit (3 + 1); into Bob's, not.
        let invite = |from: &str, to: &str| {
            let reply =
                client.post(&format!("/api/v1/challenges/{id}/team/invitations"), Some(from), &json!({ "email": to }));
            assert_eq!(reply.status, 202, "{}", reply.text);
        };
        invite(&alice, "carol@example.org");
        invite(&bob, "carol@example.org");
        let mine = client.get(&format!("/api/v1/challenges/{id}/team"), Some(&carol)).body;
        let invitations = mine["invitations"].as_array().unwrap().clone();
        assert_eq!(invitations.len(), 2, "{mine}");
        let team_of = |name: &str| invitations.iter().find(|i| i["name"] == name).unwrap()["team"].as_i64().unwrap();
        let join =
            |team: i64| client.post(&format!("/api/v1/challenges/{id}/teams/{team}/join"), Some(&carol), &json!({}));
        let refused = join(team_of("Les Alphas"));
        assert_eq!(refused.status, 409, "{}", refused.text);
        assert!(refused.text.contains("today"), "{}", refused.text);
        let merged = join(team_of("Team Bob"));
        assert_eq!(merged.status, 200, "{}", merged.text);
        let bobs = client.get(&format!("/api/v1/challenges/{id}/team"), Some(&carol)).body;
        assert_eq!(bobs["team"]["name"], "Team Bob");
        assert_eq!(bobs["submissions"].as_array().unwrap().len(), 2, "Carol's submission moved: {bobs}");
        let left = client.post(&format!("/api/v1/challenges/{id}/team/leave"), Some(&carol), &json!({}));
        assert_eq!(left.status, 409, "a team that submitted cannot be left: {}", left.text);

        // Final choice: Alice picks her first submission; at most two.
        let finals = |ids: Value| {
            client.post(&format!("/api/v1/challenges/{id}/finals"), Some(&alice), &json!({ "submissions": ids }))
        };
        assert_eq!(finals(json!([1, 2, 3])).status, 422);
        let bob_id = bob_reply.body["id"].as_i64().unwrap();
        assert_eq!(finals(json!([bob_id])).status, 404, "not her team's");
        assert_eq!(finals(json!([first_id])).status, 200);

        // A baseline: shown, not ranked.
        let baseline = client.post(
            &format!("/api/v1/challenges/{id}/teams"),
            Some(&organiser),
            &json!({ "name": "Référence", "baseline": true }),
        );
        assert_eq!(baseline.status, 201, "{}", baseline.text);
        let reply = client.request(
            "POST",
            &format!("/api/v1/challenges/{id}/submissions?note=tout-plumeau"),
            Some(&organiser),
            Some(("text/csv", predictions(|i| label(i) == "plumeau"))),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
        let board = client.get(&format!("/api/v1/challenges/{id}/leaderboard"), None).body;
        let base = board["rows"].as_array().unwrap().iter().find(|r| r["baseline"] == true).unwrap();
        assert!(base["rank"].is_null() && base["team"] == "tout-plumeau", "{board}");

        // The page shows the board, in French, and never the labels.
        let page = client.request("GET", &format!("/challenges/{id}"), None, None);
        assert_eq!(page.status, 200);
        assert!(page.text.contains("Team Bob") && page.text.contains("history-chart"), "{}", page.text);
        no_labels(&page.text);

        // After the close: the private board for everyone, CSV, no more submissions.
        let closes = created.body["closes_at"].as_i64().unwrap();
        std::thread::sleep(Duration::from_millis((closes - now_ms() + 200).max(0) as u64));
        let private = client.get(&format!("/api/v1/challenges/{id}/leaderboard?board=private"), None);
        assert_eq!(private.status, 200, "{}", private.text);
        let rows = private.body["rows"].as_array().unwrap();
        let alice_row = rows.iter().find(|r| r["team"] == "Les Alphas").unwrap();
        assert_eq!(alice_row["submission"], first_id, "her chosen final counts: {private:?}", private = private.text);
        let csv = client.get(&format!("/api/v1/challenges/{id}/leaderboard.csv?board=private"), None);
        assert!(csv.text.starts_with("rank,team,score"), "{}", csv.text);
        assert!(csv.text.contains("Team Bob"), "{}", csv.text);
        no_labels(&csv.text);
        let late = submit_csv(&client, id, &bob, predictions(|_| true));
        assert_eq!(late.status, 409, "{}", late.text);
        let mine = client.get(&path, Some(&alice)).body;
        assert!(mine["private_score"].is_number(), "revealed to the team after the close: {mine}");
    }
}

/// A code submission that tries to read the labels every way it can: the database, the
/// server's data directory, other jobs' directories, its environment, the network. It sees
/// none of them, writes predictions from the test inputs, and is scored outside the job.
#[test]
fn code_submissions_run_without_network_and_cannot_read_the_labels() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    let (project, organiser) = organiser_and_data(&server, &client);
    let code = json!({ "project": project, "cpus": 1, "memory_mb": 256, "time_limit_s": 60 });
    let body = challenge_body("defi-code", 3_600_000, json!({ "code": code, "per_day": 10 }));
    let created = client.post("/api/v1/challenges", Some(&organiser), &body);
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_i64().unwrap();
    let (_, dan) = client.new_user("dan@example.org");
    let reply = client.post(&format!("/api/v1/challenges/{id}/teams"), Some(&dan), &json!({ "name": "Dan" }));
    assert_eq!(reply.status, 201, "{}", reply.text);

    let database = db.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
    let data_dir = server.data_dir().display().to_string();
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let script = format!(
        r#"for f in "{database}" "{data_dir}/grappe.db" "{data_dir}"/jobs/*/work/*; do cat "$f" 2>&1 | head -c 200; done
ls -la "{data_dir}" /proc/1/root 2>&1 | head -5
env
(exec 3<>/dev/tcp/127.0.0.1/{port} && echo NETWORK-OPEN) 2>&1
echo id,label > predictions.csv
tail -n +2 "$GRAPPE_INPUTS/defi-data/test.csv" | cut -d, -f1 | sed 's/$/,plumeau/' >> predictions.csv
echo wrote"#
    );
    let submit = |command: Value| {
        client.post(&format!("/api/v1/challenges/{id}/submissions/code"), Some(&dan), &json!({ "command": command }))
    };
    let reply = submit(json!(["bash", "-c", script]));
    assert_eq!(reply.status, 201, "{}", reply.text);
    let submission = reply.body["id"].as_i64().unwrap();
    let job = reply.body["job"].as_i64().unwrap();
    let ended = eventually(Duration::from_secs(60), "the code submission to end", || {
        let s = client.get(&format!("/api/v1/challenges/{id}/submissions/{submission}"), Some(&dan)).body;
        (s["state"] != "running").then_some(s)
    });
    assert_eq!(ended["state"], "scored", "{ended}");
    let expected = (0..ROWS).filter(|i| label(*i) == "plumeau").count() as f64 / ROWS as f64;
    assert!(ended["public_score"].as_f64().unwrap() > 0.0, "{ended}");
    // The job's output (its project's members read it) holds none of the labels.
    let log = client.get(&format!("/api/v1/jobs/{job}/logs"), Some(&organiser)).text;
    assert!(log.contains("wrote"), "{log}");
    assert!(!log.contains("NETWORK-OPEN"), "no network: {log}");
    assert!(!log.contains("GRAPPE_ADMIN_TOKEN") && !log.contains("AUDIT"), "no server variable: {log}");
    no_labels(&log);
    // The organiser sees the exact score: all "plumeau" is right on 2 rows in 3 over the whole
    // test set, so the public part (30 %, drawn at random) and the private part average to it.
    let exact = client.get(&format!("/api/v1/challenges/{id}/submissions/{submission}"), Some(&organiser)).body;
    let public = exact["exact_public_score"].as_f64().unwrap();
    let private = exact["private_score"].as_f64().unwrap();
    assert!((0.3 * public + 0.7 * private - expected).abs() < 0.02, "{exact}");

    // Code that fails counts; a link instead of a file is refused.
    let reply = submit(json!(["sh", "-c", "exit 3"]));
    assert_eq!(reply.status, 201, "{}", reply.text);
    let failed = reply.body["id"].as_i64().unwrap();
    let reply = submit(json!(["sh", "-c", "ln -s /etc/passwd predictions.csv"]));
    let linked = reply.body["id"].as_i64().unwrap();
    for (submission, words) in [(failed, "exit code 3"), (linked, "not a regular file")] {
        let ended = eventually(Duration::from_secs(60), "the submission to end", || {
            let s = client.get(&format!("/api/v1/challenges/{id}/submissions/{submission}"), Some(&dan)).body;
            (s["state"] != "running").then_some(s)
        });
        assert_eq!(ended["state"], "failed", "{ended}");
        assert_eq!(ended["counts"], true, "{ended}");
        assert!(ended["reason"].as_str().unwrap().contains(words), "{ended}");
    }
    // Cancelled by the platform (here an administrator): it does not count.
    let reply = submit(json!(["sleep", "30"]));
    let (cancelled, cancelled_job) = (reply.body["id"].as_i64().unwrap(), reply.body["job"].as_i64().unwrap());
    let reply = client.post(&format!("/api/v1/jobs/{cancelled_job}/cancel"), Some(ADMIN_TOKEN), &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let ended = eventually(Duration::from_secs(60), "the cancelled submission to end", || {
        let s = client.get(&format!("/api/v1/challenges/{id}/submissions/{cancelled}"), Some(&dan)).body;
        (s["state"] != "running").then_some(s)
    });
    assert_eq!((ended["state"].as_str(), ended["counts"].as_bool()), (Some("failed"), Some(false)), "{ended}");

    // The CLI: a file, the team and the board.
    let cli = Cli::login(&server, "dan@example.org");
    let work = TempDir::new("challenge-cli");
    let file = work.path().join("predictions.csv");
    std::fs::write(&file, predictions(|i| i % 2 == 0)).unwrap();
    let id_text = id.to_string();
    let scored = cli.ok(&["challenge", "submit", &id_text, file.to_str().unwrap(), "--note", "à la main"]);
    assert_eq!(scored["state"], "scored", "{scored}");
    assert_eq!(scored["note"], "à la main");
    let team = cli.ok(&["challenge", "team", &id_text]);
    assert_eq!(team["submissions"].as_array().unwrap().len(), 5, "{team}");
    let board = cli.ok(&["challenge", "board", &id_text]);
    assert_eq!(board["rows"][0]["team"], "Dan", "{board}");
    // A challenge without code submissions says so.
    let files_only =
        client.post("/api/v1/challenges", Some(&organiser), &challenge_body("defi-fichiers", 3_600_000, json!({})));
    let files_id = files_only.body["id"].as_i64().unwrap();
    let reply = client.post(
        &format!("/api/v1/challenges/{files_id}/submissions/code"),
        Some(&dan),
        &json!({ "command": ["true"] }),
    );
    assert_eq!(reply.status, 422, "{}", reply.text);
}
