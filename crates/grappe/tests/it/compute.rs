//! Compute through the API: projects, jobs on the local executor, logs, metrics, usage;
//! cancellation, time limits, preemption, outside kills, huge output, kill -9 of the server;
//! and who may see what.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Backend, Client, Server, ServerOptions, TestDb, backends, eventually};

pub fn options(cpus: u32) -> ServerOptions {
    ServerOptions {
        demo: false,
        env: vec![
            ("GRAPPE_CPUS".into(), cpus.to_string()),
            ("GRAPPE_GPUS".into(), "0".into()),
            ("GRAPPE_JOB_GRACE_S".into(), "1".into()),
            ("GRAPPE_LEASE_TTL_MS".into(), "2000".into()),
            ("GRAPPE_LEASE_TICK_MS".into(), "200".into()),
        ],
        ..ServerOptions::default()
    }
}

/// A project with one member; returns (project id, member token).
pub fn project_with_member(client: &Client, name: &str, cpu_hours: i64) -> (i64, String) {
    let (user_id, token) = client.new_user(&format!("{name}@example.org"));
    let body = json!({ "name": name, "gpu_hours": 10, "cpu_hours": cpu_hours, "storage_gb": 1, "members": [user_id] });
    let reply = client.post("/api/v1/projects", Some(ADMIN_TOKEN), &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    (reply.body["id"].as_i64().unwrap(), token)
}

pub fn submit(client: &Client, token: &str, body: Value) -> Value {
    let reply = client.post("/api/v1/jobs", Some(token), &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

pub fn wait_state(client: &Client, token: &str, id: i64, wanted: &[&str]) -> Value {
    eventually(Duration::from_secs(30), &format!("job {id} in {wanted:?}"), || {
        let job = client.get(&format!("/api/v1/jobs/{id}"), Some(token)).body;
        wanted.contains(&job["state"].as_str().unwrap_or("")).then_some(job)
    })
}

/// Waits until a job's output holds `text`: a job is recorded running before its process starts.
pub fn wait_log(client: &Client, token: &str, id: i64, text: &str) -> String {
    eventually(Duration::from_secs(30), &format!("job {id} to print {text:?}"), || {
        let log = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(token)).text;
        log.contains(text).then_some(log)
    })
}

pub fn states(client: &Client, token: &str, id: i64) -> Vec<String> {
    let events = client.get(&format!("/api/v1/jobs/{id}/events"), Some(token)).body;
    events["items"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_job_runs_logs_reports_metrics_and_is_charged() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "lifecycle", 100);
        let script = r#"echo "restart $GRAPPE_RESTART_COUNT in $GRAPPE_CHECKPOINT_DIR"; echo 'GRAPPE_METRIC {"key":"loss","value":0.25,"step":3}'; sleep 1; echo done"#;
        let job =
            submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 }));
        let id = job["id"].as_i64().unwrap();
        assert_eq!(job["state"], "pending");
        // Follow the log as it is written, to the job's end.
        let followed = client.get(&format!("/api/v1/jobs/{id}/logs?follow=true"), Some(&token));
        assert!(followed.text.contains("restart 0 in ") && followed.text.ends_with("done\n"), "{}", followed.text);
        let job = wait_state(&client, &token, id, &["completed"]);
        assert_eq!(job["exit_code"], 0);
        assert_eq!(states(&client, &token, id), ["pending", "running", "completed"]);
        let batch = json!({ "metrics": [{ "key": "accuracy", "value": 0.9, "step": 3, "timestamp": 1 }] });
        assert_eq!(client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&token), &batch).status, 200);
        let metrics = client.get(&format!("/api/v1/jobs/{id}/metrics"), Some(&token)).body;
        let keys: Vec<&str> = metrics["items"].as_array().unwrap().iter().map(|m| m["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["accuracy", "loss"], "{backend:?}: {metrics}");
        let usage = client.get(&format!("/api/v1/projects/{project}/usage.csv"), Some(&token));
        let header =
            "time_ms,job_id,gpu_hours,cpu_hours,run,started_ms,gpu_ms,cpu_ms,job_name,user,qos,start,end,elapsed_s\n";
        assert!(usage.text.starts_with(header) && usage.text.lines().count() == 2, "{}", usage.text);
        let line: Vec<&str> = usage.text.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(line[10], "normal", "{}", usage.text);
        assert!(line[11].ends_with('Z') && line[11].contains('T'), "ISO 8601: {}", usage.text);
        // As a French spreadsheet opens it: a byte order mark, `;`, a decimal comma.
        let excel = client.get(&format!("/api/v1/projects/{project}/usage.csv?dialect=excel-fr"), Some(&token)).text;
        assert!(excel.starts_with("\u{feff}time_ms;job_id;gpu_hours;"), "{excel}");
        let fields: Vec<&str> = excel.lines().nth(1).unwrap().split(';').collect();
        assert!(fields[3].contains(',') && !fields[3].contains('.'), "{excel}");
        let unknown = client.get(&format!("/api/v1/projects/{project}/usage.csv?dialect=xml"), Some(&token));
        assert_eq!(unknown.status, 422, "{}", unknown.text);
        let project_view = client.get(&format!("/api/v1/projects/{project}"), Some(&token)).body;
        assert!(project_view["used_cpu_hours"].as_f64().unwrap() > 0.0);
        // A failing command fails with its exit code; a missing program fails with a reason.
        let failing = submit(
            &client,
            &token,
            json!({ "project": "lifecycle", "command": ["sh", "-c", "exit 7"], "time_limit_s": 60 }),
        );
        let failed = wait_state(&client, &token, failing["id"].as_i64().unwrap(), &["failed"]);
        assert_eq!(failed["exit_code"], 7);
        let missing =
            submit(&client, &token, json!({ "project": project, "command": ["/no/such/program"], "time_limit_s": 60 }));
        let failed = wait_state(&client, &token, missing["id"].as_i64().unwrap(), &["failed"]);
        assert!(failed["reason"].as_str().unwrap().contains("could not be started"), "{failed}");
    }
}

#[test]
fn cancel_timeout_outside_kill_and_huge_output() {
    let db = TestDb::new(Backend::Sqlite);
    let mut opts = options(2);
    opts.env.push(("GRAPPE_LOG_CAP_BYTES".into(), "100000".into()));
    let server = Server::start(&db.url, &opts);
    let client = server.client();
    let (project, token) = project_with_member(&client, "limits", 100);
    // Cancel a running job.
    let sleeper =
        submit(&client, &token, json!({ "project": project, "command": ["sleep", "60"], "time_limit_s": 600 }));
    let id = sleeper["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["running"]);
    assert_eq!(client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({})).status, 200);
    wait_state(&client, &token, id, &["cancelled"]);
    // A time limit: SIGTERM first, which the job may use to save a checkpoint.
    let script = r#"trap 'echo saved > "$GRAPPE_CHECKPOINT_DIR/state"; exit 0' TERM; sleep 30 & wait"#;
    let timed =
        submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 1 }));
    let id = timed["id"].as_i64().unwrap();
    let job = wait_state(&client, &token, id, &["timeout"]);
    assert_eq!(job["reason"], "time limit reached");
    let checkpoint = server_data_file(&server, id, "checkpoints/state");
    assert_eq!(checkpoint.trim(), "saved");
    // Killed from outside Grappe: failed, with the reason.
    let marker = format!("grappe-outside-kill-{}", std::process::id());
    let victim = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", format!("sleep 60; : {marker}")], "time_limit_s": 600 }),
    );
    let id = victim["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["running"]);
    eventually(Duration::from_secs(10), "the process to appear", || {
        std::process::Command::new("pkill").args(["-KILL", "-f", &marker]).status().unwrap().success().then_some(())
    });
    let job = wait_state(&client, &token, id, &["failed"]);
    assert!(job["reason"].as_str().unwrap().contains("killed by signal 9"), "{job}");
    // 50 MB of output: capped at 100 kB, the server still well.
    let loud = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x"], "time_limit_s": 600 }),
    );
    let id = loud["id"].as_i64().unwrap();
    let job = wait_state(&client, &token, id, &["completed"]);
    assert!(job["reason"].as_str().unwrap().contains("49900000 bytes dropped"), "{job}");
    let log = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&token));
    assert!(log.text.len() < 100_200 && log.text.contains("output capped"));
    assert_eq!(client.get("/healthz", None).status, 200);
}

pub fn server_data_file(server: &Server, job: i64, file: &str) -> String {
    let path = server.data_dir().join("jobs").join(job.to_string()).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn a_higher_qos_preempts_and_the_victim_runs_again() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "preempt", 100);
    let script = r#"echo "run $GRAPPE_RESTART_COUNT"; trap 'exit 143' TERM; if [ "$GRAPPE_RESTART_COUNT" = 0 ]; then sleep 60 & wait; fi"#;
    let long = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 3600, "qos": "long" }),
    );
    let long_id = long["id"].as_i64().unwrap();
    wait_log(&client, &token, long_id, "run 0\n");
    let dev =
        submit(&client, &token, json!({ "project": project, "command": ["true"], "time_limit_s": 60, "qos": "dev" }));
    wait_state(&client, &token, dev["id"].as_i64().unwrap(), &["completed"]);
    let long = wait_state(&client, &token, long_id, &["completed"]);
    assert_eq!(long["restart_count"], 1);
    assert_eq!(
        states(&client, &token, long_id),
        ["pending", "running", "preempted", "pending", "running", "completed"]
    );
    let log = client.get(&format!("/api/v1/jobs/{long_id}/logs"), Some(&token)).text;
    assert_eq!(log, "run 0\nrun 1\n");
}

#[test]
fn kill_9_of_the_server_loses_no_job_and_runs_none_twice() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let mut server = Server::start(&db.url, &options(1));
        let client = server.client();
        let (project, token) = project_with_member(&client, "crash", 100);
        // flock fails at once if an earlier run of the same job still holds the lock.
        let script = r#"exec flock -n "$GRAPPE_CHECKPOINT_DIR/lock" sh -c 'echo "run $GRAPPE_RESTART_COUNT"; sleep 2'"#;
        let ids: Vec<i64> = (0..3)
            .map(|_| {
                submit(
                    &client,
                    &token,
                    json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 600 }),
                )["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        wait_state(&client, &token, ids[0], &["running"]);
        let data_dir = server.data_dir().to_path_buf();
        server.kill9();
        let restarted = Server::start_in(&db.url, &options(1), &data_dir);
        let client = restarted.client();
        for id in &ids {
            let job = wait_state(&client, &token, *id, &["completed", "failed", "cancelled", "timeout"]);
            assert_eq!(job["state"], "completed", "{backend:?}: {job}");
        }
        let first = client.get(&format!("/api/v1/jobs/{}", ids[0]), Some(&token)).body;
        assert_eq!(first["restart_count"], 1, "{backend:?}: the running job was requeued once");
        let events = client.get(&format!("/api/v1/jobs/{}/events", ids[0]), Some(&token)).body;
        assert!(events.to_string().contains("node_restart"), "{events}");
    }
}

/// A shim whose server died before the shim could tie its life to it (the kill -9 above, landing
/// just after the job was recorded running) starts nothing and leaves no status: the server
/// that recovers the run then requeues it, where a status saying "not started" ended it failed.
#[test]
fn a_shim_whose_server_is_gone_starts_nothing_and_leaves_no_status() {
    let dir = crate::harness::TempDir::new("orphan-shim");
    let (status, ran) = (dir.0.join("status"), dir.0.join("ran"));
    // Process 1 is never the parent of a process this test starts.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_grappe-shim"))
        .args(["--parent", "1", "--status"])
        .arg(&status)
        .args(["--", "touch"])
        .arg(&ran)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the server is gone"), "{output:?}");
    assert!(!status.exists(), "a status was written");
    assert!(!ran.exists(), "the command ran");
}

#[test]
fn bad_submissions_are_refused_with_reasons() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, token) = project_with_member(&client, "strict", 100);
    let (_, outsider) = client.new_user("outsider@example.org");
    let base = json!({ "project": project, "command": ["true"], "time_limit_s": 60 });
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("cpus", json!(-1)), 422),
        (with("cpus", json!(1000)), 422),
        (with("gpus", json!(1)), 422),
        (with("memory_mb", json!(1_000_000_000)), 422),
        (with("time_limit_s", json!(0)), 422),
        (with("qos", json!("gold")), 422),
        (json!({ "project": project, "command": ["true"], "time_limit_s": 3 * 3600, "qos": "dev" }), 422),
        (with("command", json!("true")), 422),
        (with("command", json!([])), 422),
        (with("nodes", json!(2)), 422),
        (with("env", json!({ "GRAPPE_ADMIN_TOKEN": "x" })), 422),
        (with("env", json!({ "BAD NAME": "x" })), 422),
        (with("project", json!(4242)), 404),
        (with("project", json!("no-such-project")), 404),
    ];
    for (body, status) in cases {
        client.post("/api/v1/jobs", Some(&token), &body).assert_envelope(status);
    }
    let multi = client.post("/api/v1/jobs", Some(&token), &with("nodes", json!(2)));
    assert!(
        multi.body["detail"].as_str().unwrap().contains("multi-node jobs need the Slurm executor"),
        "{}",
        multi.text
    );
    // A field the API does not know is refused, by its name: a Slurm option it does not take, or
    // a misspelt time limit, must not run one job with the defaults.
    // Nor may a caller set what only the server sets (`pays_as_requests`, a batch's job).
    for (field, value) in [("partition", json!("gpu")), ("time_limt_s", json!(60)), ("pays_as_requests", json!(true))] {
        let unknown = client.post("/api/v1/jobs", Some(&token), &with(field, value));
        unknown.assert_envelope(422);
        let detail = unknown.body["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("unknown field `{field}`")), "{}", unknown.text);
    }
    // Not a member: the same answer as for a project that does not exist.
    client.post("/api/v1/jobs", Some(&outsider), &base).assert_envelope(404);
    // A dry run answers the cost and submits nothing.
    let dry = client.post(
        "/api/v1/jobs",
        Some(&token),
        &json!({ "project": project, "command": ["true"], "time_limit_s": 7200, "cpus": 2, "dry_run": true }),
    );
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.body["estimated_cpu_hours"], 4.0);
    assert_eq!(dry.body["cpu_hours_left_after"], 96.0);
    assert_eq!(client.get("/api/v1/jobs", Some(&token)).body["items"].as_array().unwrap().len(), 0);
}

#[test]
fn past_its_allocation_a_project_is_refused() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    // One CPU-hour: 125 % is 4,500 CPU-seconds, counting what running and queued jobs may use.
    let (project, token) = project_with_member(&client, "broke", 1);
    let job = |seconds: i64| json!({ "project": project, "command": ["sleep", "30"], "time_limit_s": seconds });
    let first = submit(&client, &token, job(2400));
    wait_state(&client, &token, first["id"].as_i64().unwrap(), &["running"]);
    let refused = client.post("/api/v1/jobs", Some(&token), &job(2400));
    refused.assert_envelope(409);
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("would be 133 % committed") && detail.contains("submissions stop past 125 %"), "{detail}");
    // What fits beside the running job's reservation is accepted.
    submit(&client, &token, job(2000));
    let view = client.get(&format!("/api/v1/projects/{project}"), Some(&token)).body;
    assert!(view["running_cpu_hours"].as_f64().unwrap() > 0.0, "{view}");
    assert!((view["allocation_committed"].as_f64().unwrap() - 4400.0 / 3600.0).abs() < 0.01, "{view}");
}

#[test]
fn only_members_and_admins_see_a_projects_jobs() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, member) = project_with_member(&client, "private", 100);
    let (_, outsider) = client.new_user("nosy@example.org");
    let job = submit(&client, &member, json!({ "project": project, "command": ["true"], "time_limit_s": 60 }));
    let id = job["id"].as_i64().unwrap();
    wait_state(&client, &member, id, &["completed"]);
    let metrics = json!({ "metrics": [{ "key": "x", "value": 1.0 }] });
    let routes: [(&str, String, Option<&Value>); 8] = [
        ("GET", format!("/api/v1/jobs/{id}"), None),
        ("GET", format!("/api/v1/jobs/{id}/logs"), None),
        ("GET", format!("/api/v1/jobs/{id}/events"), None),
        ("GET", format!("/api/v1/jobs/{id}/metrics"), None),
        ("POST", format!("/api/v1/jobs/{id}/metrics"), Some(&metrics)),
        ("POST", format!("/api/v1/jobs/{id}/cancel"), Some(&json!({}))),
        ("GET", format!("/api/v1/projects/{project}"), None),
        ("GET", format!("/api/v1/projects/{project}/usage.csv"), None),
    ];
    for (method, path, body) in &routes {
        let send = |token: &str| {
            let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
            client.request(method, path, Some(token), body)
        };
        send(&outsider).assert_envelope(404);
        assert_eq!(send(&member).status, 200, "member {method} {path}");
        assert_eq!(send(ADMIN_TOKEN).status, 200, "admin {method} {path}");
    }
    assert_eq!(client.get("/api/v1/jobs", Some(&outsider)).body["items"].as_array().unwrap().len(), 0);
    assert_eq!(client.get("/api/v1/jobs", Some(&member)).body["items"].as_array().unwrap().len(), 1);
    assert_eq!(client.get("/api/v1/projects", Some(&outsider)).body["items"].as_array().unwrap().len(), 0);
}

/// The same API on a real single-node Slurm (`scripts/test-services.sh` starts it): Slurm runs
/// the jobs, Grappe follows them, keeps their logs and charges their usage.
/// Whether the real Slurm of `scripts/test-services.sh` is there; without it a Slurm test fails
/// unless told `GRAPPE_TEST_SKIP_SLURM=1`.
pub fn slurm_available() -> bool {
    if std::env::var("GRAPPE_TEST_SLURM").as_deref() != Ok("1") {
        assert_eq!(
            std::env::var("GRAPPE_TEST_SKIP_SLURM").as_deref(),
            Ok("1"),
            "GRAPPE_TEST_SLURM is not set: run the tests with scripts/test.sh, or set GRAPPE_TEST_SKIP_SLURM=1"
        );
        eprintln!("SKIPPED: Slurm test (GRAPPE_TEST_SKIP_SLURM=1)");
        return false;
    }
    true
}

pub fn slurm_options() -> ServerOptions {
    let mut opts = options(2);
    opts.env.push(("GRAPPE_EXECUTOR".into(), "slurm".into()));
    opts.env.push(("GRAPPE_SCHEDULER_TICK_MS".into(), "200".into()));
    opts
}

/// Slurm's id for a Grappe job, from its timeline, once it was handed over.
fn slurm_id(client: &Client, token: &str, id: i64) -> String {
    eventually(Duration::from_secs(30), &format!("job {id} handed to Slurm"), || {
        let events = client.get(&format!("/api/v1/jobs/{id}/events"), Some(token)).body.to_string();
        let after = events.split("submitted to Slurm as job ").nth(1)?;
        Some(after.chars().take_while(char::is_ascii_digit).collect())
    })
}

/// On Slurm, Grappe holds a job until what it waits for ended, then hands it over.
#[test]
fn dependencies_hold_jobs_on_slurm_too() {
    if !slurm_available() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &slurm_options());
    let client = server.client();
    let (project, token) = project_with_member(&client, "chaine-slurm", 100);
    let job = |command: &str, dependency: Option<String>| json!({ "project": project, "command": ["sh", "-c", command], "time_limit_s": 60, "memory_mb": 100, "dependency": dependency });
    let first = submit(&client, &token, job("sleep 2; exit 3", None))["id"].as_i64().unwrap();
    let after_ok = submit(&client, &token, job("true", Some(format!("afterok:{first}"))))["id"].as_i64().unwrap();
    let after_not_ok =
        submit(&client, &token, job("true", Some(format!("afternotok:{first}"))))["id"].as_i64().unwrap();
    let held = eventually(Duration::from_secs(30), "the reason Dependency", || {
        let job = client.get(&format!("/api/v1/jobs/{after_not_ok}"), Some(&token)).body;
        (job["reason"] == "Dependency").then_some(job)
    });
    assert_eq!(held["state"], "pending");
    wait_state(&client, &token, first, &["failed"]);
    let never = wait_state(&client, &token, after_ok, &["cancelled"]);
    assert!(never["reason"].as_str().unwrap().starts_with("DependencyNeverSatisfied"), "{never}");
    wait_state(&client, &token, after_not_ok, &["completed"]);
    slurm_id(&client, &token, after_not_ok);
}

/// On Slurm, an array's tasks are handed over up to its limit, each told its number.
#[test]
fn an_array_runs_on_slurm_within_its_limit() {
    if !slurm_available() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &slurm_options());
    let client = server.client();
    let (project, token) = project_with_member(&client, "tableau-slurm", 100);
    let array = json!({ "project": project, "command": ["sh", "-c", "echo task $GRAPPE_ARRAY_TASK_ID; sleep 1"], "time_limit_s": 60, "memory_mb": 100, "array": "0-2%1" });
    let first = submit(&client, &token, array)["id"].as_i64().unwrap();
    let ended: Vec<Value> = (first..first + 3).map(|id| wait_state(&client, &token, id, &["completed"])).collect();
    for (task, job) in ended.iter().enumerate() {
        let log = client.get(&format!("/api/v1/jobs/{}/logs", job["id"]), Some(&token)).text;
        assert_eq!(log, format!("task {task}\n"));
    }
    let spans: Vec<(i64, i64)> =
        ended.iter().map(|job| (job["started_at"].as_i64().unwrap(), job["ended_at"].as_i64().unwrap())).collect();
    for (start, _) in &spans {
        assert_eq!(spans.iter().filter(|(s, e)| s <= start && start < e).count(), 1, "one at a time: {spans:?}");
    }
}

#[test]
fn jobs_run_on_slurm() {
    if !slurm_available() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &slurm_options());
    let client = server.client();
    let (project, token) = project_with_member(&client, "on-slurm", 100);
    let failing = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "echo \"hi from $GRAPPE_JOB_ID\"; exit 3"], "time_limit_s": 60, "memory_mb": 100 }),
    );
    let id = failing["id"].as_i64().unwrap();
    let job = wait_state(&client, &token, id, &["failed"]);
    assert_eq!(job["exit_code"], 3, "{job}");
    assert_eq!(client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&token)).text, format!("hi from {id}\n"));
    let events = client.get(&format!("/api/v1/jobs/{id}/events"), Some(&token)).body.to_string();
    assert!(events.contains("submitted to Slurm as job"), "{events}");
    // Metric lines in the output file Slurm writes are read as the local executor reads its
    // pipes: while the job runs, and the rest at its end.
    let metric =
        |step: i64, value: f64| format!(r#"echo 'GRAPPE_METRIC {{"key": "loss", "value": {value}, "step": {step}}}'"#);
    let script = format!("{}; echo plain; sleep 1; {}", metric(1, 0.5), metric(2, 0.25));
    let ok = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60, "memory_mb": 100 }),
    );
    let ok = ok["id"].as_i64().unwrap();
    wait_state(&client, &token, ok, &["completed"]);
    let points = client.get(&format!("/api/v1/jobs/{ok}/metrics"), Some(&token)).body;
    let values: Vec<(i64, f64)> = points["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| (point["step"].as_i64().unwrap(), point["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(values, [(1, 0.5), (2, 0.25)], "{points}");
    let sleeper = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sleep", "60"], "time_limit_s": 600, "memory_mb": 100 }),
    );
    let id = sleeper["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["running"]);
    assert_eq!(client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({})).status, 200);
    wait_state(&client, &token, id, &["cancelled"]);
    let usage = client.get(&format!("/api/v1/projects/{project}/usage.csv"), Some(&token)).text;
    assert_eq!(usage.lines().count(), 4, "three jobs charged: {usage}");

    // Nothing of the server's environment reaches Slurm: not the job, not its batch script, not
    // Slurm's record of it.
    let snoop = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "env"], "time_limit_s": 60, "memory_mb": 100, "env": { "MINE": "yes" } }),
    );
    let id = snoop["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["completed"]);
    let log = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&token)).text;
    assert!(log.contains("MINE=yes") && log.contains(&format!("GRAPPE_JOB_ID={id}")), "{log}");
    assert!(!log.contains(ADMIN_TOKEN) && !log.contains("GRAPPE_LOG"), "{log}");
    let script = server_data_file(&server, id, "work/grappe.sbatch");
    assert!(script.contains("#SBATCH --export=NONE") && !script.contains(ADMIN_TOKEN), "{script}");
    let events = client.get(&format!("/api/v1/jobs/{id}/events"), Some(&token)).body.to_string();
    let slurm_id = events.split("submitted to Slurm as job ").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let record = std::process::Command::new("scontrol").args(["show", "job", "-dd", &slurm_id]).output().unwrap();
    let record = String::from_utf8_lossy(&record.stdout);
    assert!(record.contains(&format!("JobId={slurm_id}")) && !record.contains(ADMIN_TOKEN), "{record}");
    let batch =
        std::process::Command::new("scontrol").args(["write", "batch_script", &slurm_id, "-"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&batch.stdout).contains(ADMIN_TOKEN));

    // Two nodes on this one-node cluster: Slurm refuses it, and says why.
    let wide = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["hostname"], "nodes": 2, "gpus_per_node": 0, "time_limit_s": 60, "memory_mb": 100 }),
    );
    let id = wide["id"].as_i64().unwrap();
    assert_eq!(wide["nodes"], 2);
    let script_path = server.data_dir().join(format!("jobs/{id}/work/grappe.sbatch"));
    eventually(Duration::from_secs(30), "the batch script", || script_path.exists().then_some(()));
    let script = server_data_file(&server, id, "work/grappe.sbatch");
    let job = eventually(Duration::from_secs(30), "Slurm's answer", || {
        let job = client.get(&format!("/api/v1/jobs/{id}"), Some(&token)).body;
        let events = client.get(&format!("/api/v1/jobs/{id}/events"), Some(&token)).text;
        (job["state"] == "failed" || events.contains("submitted to Slurm")).then_some(job)
    });
    assert!(script.contains("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n"), "{script}");
    if job["state"] == "failed" {
        assert!(job["reason"].as_str().unwrap().contains("sbatch refused the job"), "{job}");
    } else {
        client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
    }
}

/// A Slurm job may rewrite free-text fields of its own record while it runs. One that named
/// itself `x JobId=<another> y` and set its comment to `JobState=COMPLETED ExitCode=0:0` made
/// `scontrol show job -o`, split on spaces, report the other job completed: Grappe then ended a
/// job that was still running. Slurm's states are now read from `squeue --json`.
#[test]
fn a_slurm_job_named_like_another_cannot_overwrite_its_state() {
    if !slurm_available() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &slurm_options());
    let client = server.client();
    let (project, token) = project_with_member(&client, "spoofed", 100);
    let victim = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sleep", "30"], "time_limit_s": 600, "memory_mb": 100 }),
    );
    let victim_id = victim["id"].as_i64().unwrap();
    wait_state(&client, &token, victim_id, &["running"]);
    let victim_slurm = slurm_id(&client, &token, victim_id);
    let conf = std::env::var("SLURM_CONF").unwrap();
    let script = format!(
        "SLURM_CONF={conf} scontrol update JobId=$SLURM_JOB_ID JobName='x JobId={victim_slurm} y' \
         Comment='c JobId={victim_slurm} JobState=COMPLETED ExitCode=0:0' && exit 5; exit 1"
    );
    let spoofer = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60, "memory_mb": 100 }),
    );
    let spoofer_id = spoofer["id"].as_i64().unwrap();
    let spoofer_slurm = slurm_id(&client, &token, spoofer_id);
    // Slurm's own record holds the forged tokens once the spoofer has ended.
    let record = eventually(Duration::from_secs(30), "the spoofer to end in Slurm", || {
        let out = std::process::Command::new("scontrol").args(["show", "job", "-o", &spoofer_slurm]).output().ok()?;
        let record = String::from_utf8_lossy(&out.stdout).into_owned();
        record.contains("JobState=FAILED").then_some(record)
    });
    assert!(record.contains(&format!("JobName=x JobId={victim_slurm} y")), "{record}");
    let spoofer = wait_state(&client, &token, spoofer_id, &["failed"]);
    assert_eq!(spoofer["exit_code"], 5, "{spoofer}");
    // Several passes later, the victim still runs.
    std::thread::sleep(Duration::from_secs(2));
    let victim = client.get(&format!("/api/v1/jobs/{victim_id}"), Some(&token)).body;
    assert_eq!(victim["state"], "running", "{victim}");
    assert_eq!(client.post(&format!("/api/v1/jobs/{victim_id}/cancel"), Some(&token), &json!({})).status, 200);
    wait_state(&client, &token, victim_id, &["cancelled"]);
}

/// Pending jobs get an estimated start, as `squeue --start` gives, from the engine's own passes
/// replayed with every running job ending at its time limit.
#[test]
fn pending_jobs_are_given_their_estimated_start_from_the_real_policy() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "estimates", 100);
    let job = |limit: i64| json!({ "project": project, "command": ["sleep", "300"], "time_limit_s": limit });
    let running = submit(&client, &token, job(120))["id"].as_i64().unwrap();
    wait_state(&client, &token, running, &["running"]);
    let started = client.get(&format!("/api/v1/jobs/{running}"), Some(&token)).body["started_at"].as_i64().unwrap();
    let second = submit(&client, &token, job(60))["id"].as_i64().unwrap();
    let third = submit(&client, &token, job(60))["id"].as_i64().unwrap();
    let estimate =
        |id: i64| client.get(&format!("/api/v1/jobs/{id}"), Some(&token)).body["estimated_start_at"].as_i64();
    let (second_at, third_at) =
        eventually(Duration::from_secs(30), "estimates", || estimate(second).zip(estimate(third)));
    // Seconds are the engine's unit: within a second of the running job's end, then 60 s later.
    assert!((second_at - (started + 120_000)).abs() <= 1000, "{second_at} vs {}", started + 120_000);
    assert_eq!(third_at - second_at, 60_000);
    let page = client.get(&format!("/compute/jobs/{third}"), Some(&token));
    assert!(page.text.contains("job-estimated-start"), "the job page shows it");
    // Once it runs, it has no estimate.
    assert_eq!(client.post(&format!("/api/v1/jobs/{running}/cancel"), Some(&token), &json!({})).status, 200);
    wait_state(&client, &token, second, &["running"]);
    assert_eq!(estimate(second), None);
}

/// `afterok`, `afterany` and `afternotok` as in Slurm: a job waits, says why, starts once what it
/// waits for ended as asked, and is cancelled when that can no longer happen; a job of another
/// project cannot be waited for.
#[test]
fn dependencies_hold_a_job_until_others_end_as_asked() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "chaine", 100);
        let (other_project, other_token) = project_with_member(&client, "voisine", 100);
        let job = |command: &str, dependency: Option<String>| json!({ "project": project, "command": ["sh", "-c", command], "time_limit_s": 60, "dependency": dependency });
        let first = submit(&client, &token, job("sleep 2; exit 3", None))["id"].as_i64().unwrap();
        let after_ok = submit(&client, &token, job("true", Some(format!("afterok:{first}"))))["id"].as_i64().unwrap();
        let after_not_ok = submit(&client, &token, job("echo rattrapage", Some(format!("afternotok:{first}"))));
        let after_not_ok = after_not_ok["id"].as_i64().unwrap();
        let both = submit(&client, &token, job("true", Some(format!("afterany:{first},afterok:{after_not_ok}"))));
        let both = both["id"].as_i64().unwrap();
        let waiting = eventually(Duration::from_secs(10), "the reason Dependency", || {
            let job = client.get(&format!("/api/v1/jobs/{both}"), Some(&token)).body;
            (job["reason"] == "Dependency").then_some(job)
        });
        assert_eq!(waiting["state"], "pending");
        assert_eq!(waiting["dependency"], format!("afterany:{first},afterok:{after_not_ok}"));
        assert_eq!(wait_state(&client, &token, first, &["failed"])["exit_code"], 3);
        let never = wait_state(&client, &token, after_ok, &["cancelled"]);
        assert_eq!(never["reason"], format!("DependencyNeverSatisfied: job {first} ended failed"), "{never}");
        let ran = wait_state(&client, &token, after_not_ok, &["completed"]);
        assert!(
            ran["started_at"].as_i64().unwrap()
                >= client.get(&format!("/api/v1/jobs/{first}"), Some(&token)).body["ended_at"].as_i64().unwrap()
        );
        wait_state(&client, &token, both, &["completed"]);
        // Another project's job, an unknown one, a wrong syntax: refused, naming the field.
        let theirs =
            submit(&client, &other_token, json!({ "project": other_project, "command": ["true"], "time_limit_s": 60 }));
        let refused =
            client.post("/api/v1/jobs", Some(&token), &job("true", Some(format!("afterok:{}", theirs["id"]))));
        assert_eq!(refused.status, 422, "{}", refused.text);
        assert!(refused.text.contains("is not a job of project chaine"), "{}", refused.text);
        assert_eq!(client.post("/api/v1/jobs", Some(&token), &job("true", Some("afterok:99999".into()))).status, 422);
        let syntax = client.post("/api/v1/jobs", Some(&token), &job("true", Some("after:1".into())));
        assert!(syntax.status == 422 && syntax.text.contains("`dependency`"), "{}", syntax.text);
    }
}

/// One submission of an array: a job per task, each told its number, never more running at once
/// than the array's `%N`, all counted against the queue's quota and the allocation.
#[test]
fn an_array_runs_each_task_once_and_never_more_at_once_than_its_limit() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(4));
        let client = server.client();
        let (project, token) = project_with_member(&client, "tableau", 100);
        let array = json!({ "project": project, "command": ["sh", "-c", "echo task $GRAPPE_ARRAY_TASK_ID of $GRAPPE_ARRAY_JOB_ID; sleep 1"], "time_limit_s": 60, "array": "0-5%2" });
        let first = submit(&client, &token, array);
        let array_id = first["array_job_id"].as_i64().unwrap();
        // Waiting on an array is waiting on every one of its tasks, as in Slurm.
        let after = json!({ "project": project, "command": ["true"], "time_limit_s": 60, "dependency": format!("afterok:{array_id}") });
        let after = submit(&client, &token, after)["id"].as_i64().unwrap();
        assert_eq!((first["id"].as_i64(), first["array_task_id"].as_i64()), (Some(array_id), Some(0)));
        let tasks: Vec<i64> = (array_id..array_id + 6).collect();
        let last_end =
            tasks.iter().map(|id| wait_state(&client, &token, *id, &["completed"])["ended_at"].as_i64().unwrap()).max();
        let after = wait_state(&client, &token, after, &["completed"]);
        assert!(after["started_at"].as_i64() >= last_end, "{after} began before the array's last task ended");
        let ended: Vec<Value> = tasks.iter().map(|id| wait_state(&client, &token, *id, &["completed"])).collect();
        for (task, job) in ended.iter().enumerate() {
            assert_eq!(job["array_task_id"], task as i64);
            let log = client.get(&format!("/api/v1/jobs/{}/logs", job["id"]), Some(&token)).text;
            assert_eq!(log, format!("task {task} of {array_id}\n"));
        }
        // Never three at once, though four CPUs were free.
        let spans: Vec<(i64, i64)> =
            ended.iter().map(|job| (job["started_at"].as_i64().unwrap(), job["ended_at"].as_i64().unwrap())).collect();
        for (start, _) in &spans {
            let at_once = spans.iter().filter(|(s, e)| s <= start && start < e).count();
            assert!(at_once <= 2, "{at_once} tasks at once: {spans:?}");
        }
        // An array past the queue's quota, or in bad syntax, is refused whole.
        let huge = json!({ "project": project, "command": ["true"], "time_limit_s": 60, "array": "0-9999" });
        let refused = client.post("/api/v1/jobs", Some(&token), &huge);
        assert!(refused.status == 429 || refused.status == 409, "{}", refused.text);
        let bad = json!({ "project": project, "command": ["true"], "time_limit_s": 60, "array": "5-1" });
        let bad = client.post("/api/v1/jobs", Some(&token), &bad);
        assert!(bad.status == 422 && bad.text.contains("`array`"), "{}", bad.text);
        let total = client.get("/api/v1/jobs", Some(&token)).body["items"].as_array().unwrap().len();
        assert_eq!(total, 7, "the array and the job after it; nothing of the refused arrays");
    }
}
