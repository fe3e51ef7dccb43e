//! A call's decisions and its audit trail hold: a batch of decisions killed with -9 is all
//! there or not at all, with its projects and commitments; a call's events are in the audit
//! chain, and one rewritten in the database breaks it where it was rewritten.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::calls::{
    DAY_MS, apply, call_body, call_manager, close_now, committed, decide, juror, open_call, review_body,
};
use crate::harness::{ADMIN_TOKEN, AUDIT_KEY, Backend, Client, Server, ServerOptions, TempDir, TestDb, backends};

const APPLICATIONS: usize = 80;
const BATCH: usize = 5;
const KILLS: usize = 8;

/// The decision planned for the n-th application: two in three selected, amounts cut a little
/// differently each.
fn planned(n: usize, application: i64) -> Value {
    if n.is_multiple_of(3) {
        return json!({ "application": application, "selected": false });
    }
    let amount = 500_000_000 - (n as i64 % 4) * 10_000_000;
    json!({ "application": application, "selected": true, "amount_cents": amount, "gpu_hours": 1000 + n })
}

/// A small deterministic generator for the kills' moments (xorshift), seeded from the clock.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// After a restart: each batch decided whole or not at all; a decision selected iff its
/// project exists (with its GPU-hours), and the budget line's commitment moved by the selected
/// amounts exactly. Returns which batches are decided.
fn check_state(client: &Client, manager: &str, call: i64, batches: &[Vec<Value>], baseline: i64) -> Vec<bool> {
    let decisions = client.get(&format!("/api/v1/calls/{call}/decisions"), Some(manager)).body;
    let decided: HashMap<i64, Value> = decisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["application"].as_i64().unwrap(), d.clone()))
        .collect();
    let projects = client.get("/api/v1/projects", Some(ADMIN_TOKEN)).body;
    let projects: HashMap<String, Value> = projects["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect();
    let mut selected_cents = 0;
    let mut done = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let in_batch: Vec<bool> =
            batch.iter().map(|plan| decided.contains_key(&plan["application"].as_i64().unwrap())).collect();
        assert!(in_batch.iter().all(|d| *d == in_batch[0]), "batch {b} half decided: {in_batch:?}");
        done.push(in_batch[0]);
        for plan in batch {
            let application = plan["application"].as_i64().unwrap();
            let project = projects.get(&format!("lots-{application}"));
            match decided.get(&application) {
                Some(decision) => {
                    assert_eq!(decision["selected"], plan["selected"], "{decision}");
                    if plan["selected"] == true {
                        assert_eq!(decision["amount_cents"], plan["amount_cents"], "{decision}");
                        let project = project.unwrap_or_else(|| panic!("selected without a project: {decision}"));
                        assert_eq!(decision["project"], project["id"], "{decision}");
                        assert_eq!(project["gpu_hours"], plan["gpu_hours"], "{project}");
                        selected_cents += decision["amount_cents"].as_i64().unwrap();
                    } else {
                        assert!(project.is_none() && decision["project"].is_null(), "{decision}");
                    }
                }
                None => assert!(project.is_none(), "a project without its decision: {application}"),
            }
        }
    }
    assert_eq!(committed(client) - baseline, selected_cents, "the budget line's commitments");
    done
}

/// Decisions in batches while the server is killed with SIGKILL at random moments, on both
/// databases: after each restart, no batch is half decided, and decisions, projects and the
/// budget line's commitments agree.
#[test]
fn a_batch_of_decisions_survives_kill_9_whole_or_not_at_all() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let data = TempDir::new("decisions");
        let demo = ServerOptions { demo: true, ..ServerOptions::default() };
        let mut server = Server::start_in(&db.url, &demo, data.path());
        let mut client = server.client();
        let manager = call_manager(&client);
        let call = open_call(&client, &manager, &call_body("lots", Some(DAY_MS)));
        let (_, applicant) = client.new_user("porteur@example.org");
        let plans: Vec<Value> =
            (0..APPLICATIONS).map(|n| planned(n, apply(&client, &applicant, call, &format!("Dossier {n}")))).collect();
        let batches: Vec<Vec<Value>> = plans.chunks(BATCH).map(<[Value]>::to_vec).collect();
        close_now(&client, &manager, call);
        let baseline = committed(&client);
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
        let mut moments = Moments(seed);
        // Kills while a batch's request was out, and of those batches, how many were found
        // decided after the restart (the kill came after the commit).
        let (mut kills, mut cut, mut cut_but_committed) = (0, 0, 0);
        let mut was_cut: Option<usize> = None;
        loop {
            let done = check_state(&client, &manager, call, &batches, baseline);
            if let Some(batch) = was_cut.take() {
                cut += 1;
                cut_but_committed += usize::from(done[batch]);
            }
            let pending: Vec<(usize, Vec<Value>)> =
                batches.iter().cloned().enumerate().filter(|(b, _)| !done[*b]).collect();
            if pending.is_empty() {
                break;
            }
            if kills == KILLS {
                for (_, batch) in pending {
                    assert_eq!(decide(&client, &manager, call, json!(batch)).status, 200);
                }
                continue;
            }
            // The writer sends the pending batches one after another; it answers the batch whose
            // request the kill cut, if any.
            let started = Arc::new(AtomicBool::new(false));
            let writer = {
                let (base, manager, started) = (server.base.clone(), manager.clone(), started.clone());
                std::thread::spawn(move || {
                    let client = Client::new(&base);
                    let path = format!("/api/v1/calls/{call}/decisions");
                    for (b, batch) in pending {
                        let body = json!({ "decisions": batch }).to_string().into_bytes();
                        started.store(true, Ordering::SeqCst);
                        match client.try_request("POST", &path, Some(&manager), Some(("application/json", body))) {
                            Ok(reply) => assert_eq!(reply.status, 200, "{}", reply.text),
                            Err(_) => return Some(b),
                        }
                    }
                    None
                })
            };
            // Once the writer is at it, a random moment within a batch's time or so.
            crate::harness::eventually(Duration::from_secs(10), "a batch sent", || {
                started.load(Ordering::SeqCst).then_some(())
            });
            std::thread::sleep(Duration::from_millis(moments.next_ms(20)));
            server.kill9();
            kills += 1;
            was_cut = writer.join().unwrap();
            server = Server::start_in(&db.url, &ServerOptions::default(), data.path());
            client = server.client();
        }
        let audit = client.get("/api/v1/audit", Some(ADMIN_TOKEN));
        assert_eq!(audit.body["chain_ok"], true, "{backend:?}: {}", audit.text);
        eprintln!(
            "{backend:?}: {kills} kills, {cut} during a batch's request ({cut_but_committed} of those batches committed \
             before it, {} not); {} batches, none half decided (seed {seed})",
            cut - cut_but_committed,
            batches.len()
        );
    }
}

/// `grappe audit verify` over the database, as an operator runs it.
fn verify(db: &TestDb, data: &TempDir) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(["audit", "verify", "--database", &db.url, "--data-dir"])
        .arg(data.path())
        .env("GRAPPE_AUDIT_KEY", AUDIT_KEY)
        .output()
        .unwrap()
}

fn run_sql(backend: Backend, db: &TestDb, sql: &str) {
    let status = match backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://").split('?').next().unwrap();
            std::process::Command::new("sqlite3").arg(path).arg(sql).status().unwrap()
        }
        Backend::Postgres => std::process::Command::new("psql").args([&db.url, "-q", "-c", sql]).status().unwrap(),
    };
    assert!(status.success(), "{sql}");
}

/// A call's steps (jurors, conflicts, assignment, dates, reviews and an edit, a message,
/// decisions) are in the audit chain, which verifies; a decision's event rewritten in the
/// database (a larger amount) breaks the chain at that event.
#[test]
fn a_rewritten_decision_breaks_the_audit_chain_at_its_event() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let data = TempDir::new("call-audit");
        let server = Server::start_in(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() }, data.path());
        let client = server.client();
        let manager = call_manager(&client);
        let mut body = call_body("audite", Some(DAY_MS));
        body["reviewers_per_application"] = json!(1);
        let call = open_call(&client, &manager, &body);
        let (_, alice) = client.new_user("alice@example.org");
        let app = apply(&client, &alice, call, "Pôle audité");
        let (ana, ana_token) = juror(&client, &manager, call, "ana@juges.example", &["santé"]);
        let (ben, ben_token) = juror(&client, &manager, call, "ben@juges.example", &["santé"]);
        let set = json!({ "application": app, "juror": ana, "active": true, "why": "co-auteure du porteur" });
        assert_eq!(client.post(&format!("/api/v1/calls/{call}/conflicts"), Some(&manager), &set).status, 200);
        let lift = json!({ "application": app, "juror": ana, "active": false, "why": "vérifié : homonyme" });
        assert_eq!(client.post(&format!("/api/v1/calls/{call}/conflicts"), Some(&manager), &lift).status, 200);
        let declared = client.post(
            &format!("/api/v1/applications/{app}/conflict"),
            Some(&ana_token),
            &json!({ "reason": "collaboration récente" }),
        );
        assert_eq!(declared.status, 200, "{}", declared.text);
        let assigned = client.post(&format!("/api/v1/calls/{call}/assignment"), Some(&manager), &json!({}));
        assert_eq!(assigned.status, 200, "{}", assigned.text);
        assert_eq!(assigned.body["assignment"][0]["juror"], ben, "the unconflicted juror: {}", assigned.text);
        close_now(&client, &manager, call);
        for score in [3.0, 4.0] {
            let reply =
                client.post(&format!("/api/v1/applications/{app}/review"), Some(&ben_token), &review_body(score));
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let message = json!({ "body": "Dossier solide, avis unanime." });
        assert_eq!(
            client.post(&format!("/api/v1/applications/{app}/discussion"), Some(&manager), &message).status,
            201
        );
        let grant =
            json!([{ "application": app, "selected": true, "amount_cents": 1_000_000_000i64, "gpu_hours": 10 }]);
        assert_eq!(decide(&client, &manager, call, grant).status, 200);

        let checked = verify(&db, &data);
        assert!(checked.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&checked.stderr));
        let events = client.get("/api/v1/audit?limit=1000", Some(ADMIN_TOKEN)).body;
        let ours: Vec<&Value> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["object"] == format!("call:{call}") || e["object"] == format!("application:{app}"))
            .collect();
        let actions: HashSet<&str> = ours.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for action in [
            "call.create",
            "application.create",
            "juror.invite",
            "conflict.change",
            "assignment.replace",
            "call.dates",
            "review.submit",
            "review.edit",
            "application.message",
            "decision.record",
        ] {
            assert!(actions.contains(action), "{backend:?}: no {action} in the call's events: {actions:?}");
        }
        let decision = ours.iter().find(|e| e["action"] == "decision.record").unwrap();
        let seq = decision["seq"].as_i64().unwrap();
        let detail = decision["detail"].as_str().unwrap();
        assert!(detail.contains("1000000000 cents"), "{detail}");
        let rewritten = detail.replace("1000000000 cents", "9000000000 cents").replace('\'', "''");
        run_sql(backend, &db, &format!("UPDATE audit_events SET detail = '{rewritten}' WHERE seq = {seq}"));

        let broken = verify(&db, &data);
        let stderr = String::from_utf8_lossy(&broken.stderr);
        assert!(!broken.status.success(), "{backend:?}: the rewritten chain verified");
        assert!(stderr.contains(&format!("broken at event {seq}")), "{backend:?}: {stderr}");
        let audit = client.get("/api/v1/audit", Some(ADMIN_TOKEN)).body;
        assert_eq!((audit["chain_ok"].clone(), audit["chain_break_seq"].clone()), (json!(false), json!(seq)));
    }
}

/// Two batches of one call sent at the same moment, each within the envelope, together past
/// it: one is refused, whatever the database; the commitments are those granted.
#[test]
fn simultaneous_batches_never_pass_the_envelope() {
    const CALLS: usize = 6;
    for backend in backends() {
        let db = TestDb::new(backend);
        let (server, client, manager) = crate::calls::demo_server(&db);
        let (_, applicant) = client.new_user("porteur@example.org");
        let mut pairs = Vec::new();
        for n in 0..CALLS {
            let mut body = call_body(&format!("course-{n}"), Some(DAY_MS));
            body["envelope_cents"] = json!(6_000_000_000i64);
            let call = open_call(&client, &manager, &body);
            for title in ["Premier", "Second"] {
                pairs.push((call, apply(&client, &applicant, call, title)));
            }
            close_now(&client, &manager, call);
        }
        let before = committed(&client);
        let statuses = at_once(&server.base, &pairs, |client, &(call, application)| {
            let grant = json!([{ "application": application, "selected": true, "amount_cents": 4_000_000_000i64, "gpu_hours": 10 }]);
            decide(client, &manager, call, grant).status
        });
        assert!(statuses.iter().all(|status| [200, 409].contains(status)), "{backend:?}: {statuses:?}");
        let mut granted = 0;
        let mut over = Vec::new();
        for call in pairs.iter().map(|(call, _)| *call).collect::<std::collections::BTreeSet<_>>() {
            let decisions = client.get(&format!("/api/v1/calls/{call}/decisions"), Some(&manager)).body;
            let sum: i64 =
                decisions["items"].as_array().unwrap().iter().map(|d| d["amount_cents"].as_i64().unwrap()).sum();
            if sum > 6_000_000_000 {
                over.push(format!("call {call}: {sum} cents granted of 6000000000"));
            }
            granted += sum;
        }
        assert!(over.is_empty(), "{backend:?}: envelopes passed by simultaneous batches: {over:?} ({statuses:?})");
        assert_eq!(committed(&client) - before, granted, "{backend:?}");
    }
}

/// Runs `send` for every item at the same moment, each from its own thread and client; the
/// answers in the items' order.
fn at_once<T: Sync, R: Send>(base: &str, items: &[T], send: impl Fn(&Client, &T) -> R + Sync) -> Vec<R> {
    let barrier = std::sync::Barrier::new(items.len());
    std::thread::scope(|scope| {
        let senders: Vec<_> = items
            .iter()
            .map(|item| {
                let (barrier, send) = (&barrier, &send);
                scope.spawn(move || {
                    let client = Client::new(base);
                    barrier.wait();
                    send(&client, item)
                })
            })
            .collect();
        senders.into_iter().map(|sender| sender.join().unwrap()).collect()
    })
}

/// A double click, at the same moment: the same decision sent twice records one decision and
/// one project, and a review sent twice is one review; the second answer is a 200 or a 409,
/// never an error of the server.
#[test]
fn the_same_decision_or_review_sent_twice_at_once_is_recorded_once() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let (server, client, manager) = crate::calls::demo_server(&db);
        let (_, applicant) = client.new_user("porteur@example.org");
        let mut body = call_body("double-clic", Some(DAY_MS));
        body["reviewers_per_application"] = json!(1);
        let call = open_call(&client, &manager, &body);
        let application = apply(&client, &applicant, call, "Cliqué deux fois");
        let (_, juror_token) = juror(&client, &manager, call, "ana@juges.example", &["santé"]);
        assert_eq!(client.post(&format!("/api/v1/calls/{call}/assignment"), Some(&manager), &json!({})).status, 200);
        close_now(&client, &manager, call);

        let review = format!("/api/v1/applications/{application}/review");
        let statuses = at_once(&server.base, &[3.0, 4.0, 5.0], |client, score| {
            client.post(&review, Some(&juror_token), &review_body(*score)).status
        });
        assert!(statuses.iter().all(|status| [200, 409].contains(status)), "{backend:?}: reviews {statuses:?}");
        let reviews = client.get(&format!("/api/v1/applications/{application}/reviews"), Some(&manager)).body;
        assert_eq!(reviews["items"].as_array().unwrap().len(), 1, "{backend:?}: {reviews}");

        let before = committed(&client);
        let grant = json!([{ "application": application, "selected": true, "amount_cents": 1_000_000_000i64, "gpu_hours": 10 }]);
        let statuses =
            at_once(&server.base, &[(), (), ()], |client, _| decide(client, &manager, call, grant.clone()).status);
        assert!(statuses.iter().all(|status| [200, 409].contains(status)), "{backend:?}: decisions {statuses:?}");
        assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 1, "{backend:?}: {statuses:?}");
        let decisions = client.get(&format!("/api/v1/calls/{call}/decisions"), Some(&manager)).body;
        assert_eq!(decisions["items"].as_array().unwrap().len(), 1, "{backend:?}: {decisions}");
        let projects = client.get("/api/v1/projects", Some(ADMIN_TOKEN)).body;
        let named = format!("double-clic-{application}");
        let made = projects["items"].as_array().unwrap().iter().filter(|p| p["name"] == named.as_str()).count();
        assert_eq!(made, 1, "{backend:?}: {projects}");
        assert_eq!(committed(&client) - before, 1_000_000_000, "{backend:?}");
    }
}
