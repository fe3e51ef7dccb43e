//! Every job runs exactly as often as it must, obeys its cancel, and is charged exactly: one
//! regression test per finding of the compute audit, on SQLite and PostgreSQL, driving the real
//! server with real processes; and a randomized workload checked against its own timelines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::compute::{options, project_with_member, submit, wait_log, wait_state};
use crate::harness::{ADMIN_TOKEN, Backend, Client, Server, ServerOptions, TempDir, TestDb, backends, eventually};

const ENDED: [&str; 4] = ["completed", "failed", "cancelled", "timeout"];

fn job(client: &Client, token: &str, body: Value) -> i64 {
    submit(client, token, body)["id"].as_i64().unwrap()
}

fn get(client: &Client, id: i64) -> Value {
    client.get(&format!("/api/v1/jobs/{id}"), Some(ADMIN_TOKEN)).body
}

fn log_of(client: &Client, id: i64) -> String {
    client.get(&format!("/api/v1/jobs/{id}/logs"), Some(ADMIN_TOKEN)).text
}

fn wait_end(client: &Client, id: i64) -> Value {
    wait_state(client, ADMIN_TOKEN, id, &ENDED)
}

/// One run of a job as its timeline tells it: number, start, end, and how it ended.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    number: i64,
    start: i64,
    end: Option<i64>,
    how: String,
}

fn runs(client: &Client, id: i64) -> Vec<Run> {
    let events = client.get(&format!("/api/v1/jobs/{id}/events"), Some(ADMIN_TOKEN)).body;
    let mut runs: Vec<Run> = Vec::new();
    for event in events["items"].as_array().unwrap() {
        let (at, state, detail) =
            (event["at"].as_i64().unwrap(), event["state"].as_str().unwrap(), event["detail"].as_str().unwrap());
        match state {
            "running" if detail.starts_with("run ") => {
                let number = detail[4..].split(',').next().unwrap().trim().parse().unwrap();
                assert!(runs.last().is_none_or(|run| run.end.is_some()), "job {id}: a run starts before the last ends");
                runs.push(Run { number, start: at, end: None, how: String::new() });
            }
            "preempted" | "completed" | "failed" | "cancelled" | "timeout" => {
                if let Some(run) = runs.last_mut().filter(|run| run.end.is_none()) {
                    run.end = Some(at);
                    run.how = state.to_owned();
                }
            }
            _ => {}
        }
    }
    runs
}

/// One charge, from the project's usage CSV.
#[derive(Debug, Clone, Copy)]
struct Charge {
    job: i64,
    run: i64,
    started: i64,
    at: i64,
    gpu_ms: i64,
    cpu_ms: i64,
}

fn charges(client: &Client, project: i64) -> Vec<Charge> {
    let csv = client.get(&format!("/api/v1/projects/{project}/usage.csv"), Some(ADMIN_TOKEN)).text;
    csv.lines()
        .skip(1)
        .map(|line| {
            // The machine columns come first; the job's name and the dates follow.
            let f: Vec<i64> = line.split(',').take(8).map(|field| field.parse::<f64>().unwrap() as i64).collect();
            Charge { at: f[0], job: f[1], run: f[4], started: f[5], gpu_ms: f[6], cpu_ms: f[7] }
        })
        .collect()
}

/// Each ended run of each job is charged once, from its own start to its own end, for its
/// resources, to the millisecond; nothing else is charged.
fn assert_charged_exactly(client: &Client, project: i64, jobs: &[i64]) {
    let charges = charges(client, project);
    let mut expected = 0;
    for id in jobs {
        let view = get(client, *id);
        let (cpus, gpus) = (view["cpus"].as_i64().unwrap(), view["gpus"].as_i64().unwrap());
        for run in runs(client, *id) {
            let Some(end) = run.end else { continue };
            expected += 1;
            let charge = charges
                .iter()
                .find(|charge| charge.job == *id && charge.run == run.number)
                .unwrap_or_else(|| panic!("job {id} run {} not charged: {charges:?}", run.number));
            assert_eq!((charge.started, charge.at), (run.start, end), "job {id} run {}", run.number);
            assert_eq!(charge.cpu_ms, (end - run.start) * cpus, "job {id} run {}", run.number);
            assert_eq!(charge.gpu_ms, (end - run.start) * gpus, "job {id} run {}", run.number);
        }
    }
    assert_eq!(charges.len(), expected, "one charge per ended run: {charges:?}");
    // The project's totals (kept beside the itemised charges) agree with them; once every job
    // has ended, nothing is running or reserved.
    let totals = client.get(&format!("/api/v1/projects/{project}"), Some(ADMIN_TOKEN)).body;
    let hours = |ms: i64| ms as f64 / 3_600_000.0;
    let close = |field: &str, expected: f64| {
        let value = totals[field].as_f64().unwrap();
        assert!(
            (value - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{field}: {value} for {expected}: {totals}"
        );
    };
    close("used_cpu_hours", hours(charges.iter().map(|charge| charge.cpu_ms).sum()));
    close("used_gpu_hours", hours(charges.iter().map(|charge| charge.gpu_ms).sum()));
    let ended = ["completed", "failed", "cancelled", "timeout"];
    if jobs.iter().all(|id| ended.contains(&get(client, *id)["state"].as_str().unwrap())) {
        for field in ["running_cpu_hours", "running_gpu_hours", "reserved_cpu_hours", "reserved_gpu_hours"] {
            close(field, 0.0);
        }
    }
}

/// How many times a job's command really started: its `start` lines.
fn starts(client: &Client, id: i64) -> usize {
    log_of(client, id).lines().filter(|line| line.starts_with("start")).count()
}

fn pgrep(start: &str) -> usize {
    let output = std::process::Command::new("pgrep").args(["-f", &format!("^{start}")]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).lines().count()
}

fn with_env(mut options: ServerOptions, pairs: &[(&str, &str)]) -> ServerOptions {
    options.env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    options
}

#[test]
fn preempting_for_a_job_that_ranks_below_its_victims_does_not_loop() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (a, token_a) = project_with_member(&client, "ranked-a", 100);
        let (b, token_b) = project_with_member(&client, "ranked-b", 100);
        let body = |project: i64, qos: &str| json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 0.5"], "cpus": 2, "qos": qos, "time_limit_s": 60 });
        let mut ids = vec![job(&client, &token_a, body(a, "dev"))];
        wait_state(&client, &token_a, ids[0], &["running"]);
        ids.push(job(&client, &token_a, body(a, "dev")));
        ids.push(job(&client, &token_a, body(a, "dev")));
        ids.push(job(&client, &token_b, body(b, "normal")));
        ids.push(job(&client, &token_b, body(b, "normal")));
        for id in &ids {
            let view = wait_end(&client, *id);
            assert_eq!(
                (view["state"].as_str(), view["run"].as_i64()),
                (Some("completed"), Some(1)),
                "{backend:?}: {view}"
            );
            assert_eq!(starts(&client, *id), 1, "{backend:?}: job {id} ran once");
        }
    }
    // With GPUs: a normal 2-GPU job ties with a 0-GPU dev job on size; the dev job preempts a long
    // job for its CPUs once, and the normal job is never started into them.
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &with_env(options(4), &[("GRAPPE_GPUS", "2")]));
    let client = server.client();
    let (user, token) = client.new_user("gpu-ranks@example.org");
    let project = client
        .post(
            "/api/v1/projects",
            Some(ADMIN_TOKEN),
            &json!({ "name": "gpu-ranks", "gpu_hours": 10, "cpu_hours": 100, "members": [user] }),
        )
        .body["id"]
        .as_i64()
        .unwrap();
    let script = "echo start; trap 'exit 143' TERM; sleep 2 & wait";
    let long = job(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", script], "cpus": 2, "qos": "long", "time_limit_s": 600 }),
    );
    wait_log(&client, &token, long, "start");
    let dev = job(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 0.3"], "cpus": 4, "qos": "dev", "time_limit_s": 60 }),
    );
    // It would fit beside the long job now, but not beside the dev job that preempts it.
    let normal = job(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 0.3"], "cpus": 2, "gpus": 2, "time_limit_s": 60 }),
    );
    for id in [long, normal, dev] {
        assert_eq!(wait_end(&client, id)["state"], "completed");
    }
    assert_eq!(
        [get(&client, long)["run"].as_i64(), get(&client, normal)["run"].as_i64(), get(&client, dev)["run"].as_i64()],
        [Some(2), Some(1), Some(1)]
    );
    assert!(runs(&client, normal)[0].start >= runs(&client, dev)[0].start, "the normal job did not jump the dev job");
}

#[test]
fn backfilling_into_the_space_a_preemption_is_freeing_is_refused() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(4));
        let client = server.client();
        let (project, token) = project_with_member(&client, "backfill", 100);
        // Two long jobs that take a second to stop after SIGTERM.
        let slow = "echo start; trap 'sleep 1; exit 143' TERM; sleep 600 & wait";
        let longs: Vec<i64> = (0..2)
            .map(|_| job(&client, &token, json!({ "project": project, "command": ["sh", "-c", slow], "cpus": 2, "qos": "long", "time_limit_s": 3600 })))
            .collect();
        for id in &longs {
            wait_log(&client, &token, *id, "start");
        }
        let dev = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 0.5"], "cpus": 4, "qos": "dev", "time_limit_s": 60 }),
        );
        let shorts: Vec<i64> = (0..3)
            .map(|_| {
                job(
                    &client,
                    &token,
                    json!({ "project": project, "command": ["sh", "-c", "echo start"], "cpus": 1, "time_limit_s": 5 }),
                )
            })
            .collect();
        let dev_view = wait_end(&client, dev);
        assert_eq!((dev_view["state"].as_str(), dev_view["run"].as_i64()), (Some("completed"), Some(1)), "{backend:?}");
        let dev_start = runs(&client, dev)[0].start;
        let dev_wait = dev_start - dev_view["submitted_at"].as_i64().unwrap();
        assert!(dev_wait < 3000, "{backend:?}: the dev job waited {dev_wait} ms (the victims take ~1 s to stop)");
        for id in &shorts {
            assert_eq!(wait_end(&client, *id)["state"], "completed");
            assert!(runs(&client, *id)[0].start >= dev_start, "{backend:?}: short job {id} started before the dev job");
            assert_eq!(get(&client, *id)["run"], 1);
        }
        for id in &longs {
            client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
            wait_end(&client, *id);
        }
        assert_charged_exactly(&client, project, &[longs.clone(), shorts, vec![dev]].concat());
    }
}

#[test]
fn over_preemption_while_victims_exit_is_refused() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(4));
        let client = server.client();
        let (project, token) = project_with_member(&client, "victims", 100);
        let slow = "echo start; trap 'sleep 1; exit 143' TERM; sleep 600 & wait";
        let normals: Vec<i64> = (0..4)
            .map(|_| {
                job(&client, &token, json!({ "project": project, "command": ["sh", "-c", slow], "time_limit_s": 3600 }))
            })
            .collect();
        for id in &normals {
            wait_log(&client, &token, *id, "start");
        }
        let dev = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start"], "qos": "dev", "time_limit_s": 60 }),
        );
        assert_eq!(wait_end(&client, dev)["state"], "completed");
        let restarts: i64 = normals.iter().map(|id| get(&client, *id)["restart_count"].as_i64().unwrap()).sum();
        assert_eq!(restarts, 1, "{backend:?}: one victim is enough for one CPU");
        for id in &normals {
            client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
        }
        for id in &normals {
            wait_end(&client, *id);
        }
    }
}

#[test]
fn a_job_ends_with_its_last_process_not_its_first() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "orphans", 100);
        // The main process exits at 0.3 s; a child would work until 10 s.
        let script = "(sleep 10.5; echo late) & echo start; sleep 0.3";
        let first = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", script], "cpus": 2, "time_limit_s": 60 }),
        );
        let second = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start"], "cpus": 2, "time_limit_s": 60 }),
        );
        let view = wait_end(&client, first);
        assert_eq!(view["state"], "completed");
        assert_eq!(pgrep("sleep 10.5"), 0, "{backend:?}: the child ended with the job");
        wait_end(&client, second);
        let (one, two) = (runs(&client, first)[0].clone(), runs(&client, second)[0].clone());
        assert!(two.start >= one.end.unwrap(), "{backend:?}: the second 2-CPU job waited for the first to end");
        let ran_ms = one.end.unwrap() - one.start;
        assert!((250..3000).contains(&ran_ms), "{backend:?}: the first ran {ran_ms} ms");
        assert!(!log_of(&client, first).contains("late"));
        assert_charged_exactly(&client, project, &[first, second]);
    }
}

#[test]
fn cancelled_pending_jobs_never_start() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(1));
        let client = server.client();
        let (project, token) = project_with_member(&client, "cancelled", 100);
        let blocker = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 2"], "time_limit_s": 60 }),
        );
        wait_state(&client, &token, blocker, &["running"]);
        let mut cancelled = Vec::new();
        for _ in 0..20 {
            let id = job(
                &client,
                &token,
                json!({ "project": project, "command": ["sh", "-c", "echo start"], "time_limit_s": 60 }),
            );
            let reply = client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
            assert_eq!(reply.body["state"], "cancelled", "{backend:?}: {}", reply.text);
            cancelled.push(id);
        }
        assert_eq!(wait_end(&client, blocker)["state"], "completed");
        std::thread::sleep(Duration::from_millis(500));
        for id in &cancelled {
            let view = get(&client, *id);
            assert_eq!(
                (view["state"].as_str(), view["run"].as_i64()),
                (Some("cancelled"), Some(0)),
                "{backend:?}: {view}"
            );
            assert_eq!(starts(&client, *id), 0, "{backend:?}: job {id} ran after its cancel");
        }
        assert_eq!(get(&client, blocker)["run"], 1);
        assert_charged_exactly(&client, project, &[cancelled, vec![blocker]].concat());
    }
}

#[test]
fn a_paused_lease_holder_cannot_end_a_run_it_lost() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let first = Server::start(&db.url, &options(1));
        let client = first.client();
        let (project, token) = project_with_member(&client, "paused", 100);
        let id = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start; exec sleep 5151"], "time_limit_s": 600 }),
        );
        wait_log(&client, &token, id, "start");
        let second = Server::start(&db.url, &options(1));
        let other = second.client();
        first.signal("STOP");
        // The second server takes the lease, kills the first's run (same machine, same
        // installation) and starts a second one; never two copies at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(pgrep("sleep 5151") <= 1, "{backend:?}: two copies of one job at once");
            let view = other.get(&format!("/api/v1/jobs/{id}"), Some(&token)).body;
            if view["run"] == 2 && view["state"] == "running" && pgrep("sleep 5151") == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "{backend:?}: the second server did not take over: {view}");
            std::thread::sleep(Duration::from_millis(50));
        }
        first.signal("CONT");
        // The first server finds it lost the lease; its end of run 1 is refused by the fence.
        std::thread::sleep(Duration::from_secs(2));
        let view = other.get(&format!("/api/v1/jobs/{id}"), Some(&token)).body;
        assert_eq!((view["state"].as_str(), view["run"].as_i64()), (Some("running"), Some(2)), "{backend:?}: {view}");
        assert_eq!(pgrep("sleep 5151"), 1, "{backend:?}");
        let run_list = runs(&other, id);
        assert_eq!(run_list.len(), 2, "{backend:?}: {run_list:?}");
        assert_eq!(run_list[0].how, "preempted", "{backend:?}: run 1 was requeued by the new holder: {run_list:?}");
        other.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
        assert_eq!(wait_end(&other, id)["state"], "cancelled");
        assert_eq!(pgrep("sleep 5151"), 0);
        assert_charged_exactly(&other, project, &[id]);
    }
}

#[test]
fn cancels_are_not_lost_on_requeue() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let mut server = Server::start(&db.url, &options(1));
        let client = server.client();
        let (project, token) = project_with_member(&client, "undo", 100);
        // Cancelled while it stops for a preemption: it ends cancelled, and is not run again.
        let slow = "echo start; trap 'sleep 1; exit 143' TERM; sleep 600 & wait";
        let victim = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", slow], "qos": "long", "time_limit_s": 3600 }),
        );
        wait_log(&client, &token, victim, "start");
        let dev =
            job(&client, &token, json!({ "project": project, "command": ["true"], "qos": "dev", "time_limit_s": 60 }));
        std::thread::sleep(Duration::from_millis(300));
        client.post(&format!("/api/v1/jobs/{victim}/cancel"), Some(&token), &json!({}));
        assert_eq!(wait_end(&client, victim)["state"], "cancelled", "{backend:?}");
        assert_eq!(wait_end(&client, dev)["state"], "completed");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            (get(&client, victim)["state"].as_str(), get(&client, victim)["run"].as_i64()),
            (Some("cancelled"), Some(1))
        );
        // Cancelled just before a graceful restart: cancelled after it, not run again.
        let job_id =
            job(&client, &token, json!({ "project": project, "command": ["sh", "-c", slow], "time_limit_s": 3600 }));
        wait_log(&client, &token, job_id, "start");
        client.post(&format!("/api/v1/jobs/{job_id}/cancel"), Some(&token), &json!({}));
        let data_dir = server.data_dir().to_path_buf();
        server.stop();
        let restarted = Server::start_in(&db.url, &options(1), &data_dir);
        let client = restarted.client();
        assert_eq!(wait_end(&client, job_id)["state"], "cancelled", "{backend:?}");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(get(&client, job_id)["run"], 1, "{backend:?}");
        assert_eq!(starts(&client, job_id), 1);
        assert_charged_exactly(&client, project, &[victim, dev, job_id]);
    }
}

#[test]
fn charges_are_exact_and_restarts_neither_charge_downtime_nor_rerun_ended_jobs() {
    for backend in backends() {
        let db = TestDb::new(backend);
        // 1,000 CPUs (the engine's view; the machine's quota follows): a 0.26 s run of all of
        // them is 260 CPU-seconds, not 1,000.
        let opts = options(1000);
        let mut server = Server::start(&db.url, &opts);
        let client = server.client();
        let (project, token) = project_with_member(&client, "meter", 1000);
        let wide = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sleep", "0.26"], "cpus": 1000, "memory_mb": 64, "time_limit_s": 60 }),
        );
        assert_eq!(wait_end(&client, wide)["state"], "completed");
        let charge = charges(&client, project)[0];
        assert!((250_000..2_000_000).contains(&charge.cpu_ms), "{backend:?}: {charge:?}");
        assert_charged_exactly(&client, project, &[wide]);

        // A server killed while a job runs: the run is charged up to its last heartbeat, not
        // through the downtime.
        let long = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 600"], "cpus": 2, "time_limit_s": 3600 }),
        );
        wait_log(&client, &token, long, "start");
        std::thread::sleep(Duration::from_millis(2500));
        let killed_at = grappe_db::now_ms();
        let data_dir = server.data_dir().to_path_buf();
        server.kill9();
        std::thread::sleep(Duration::from_secs(4));
        let restarted = Server::start_in(&db.url, &opts, &data_dir);
        let client = restarted.client();
        wait_log(&client, &token, long, "start\nstart");
        let first_run = runs(&client, long)[0].clone();
        assert_eq!(first_run.how, "preempted");
        assert!(first_run.end.unwrap() <= killed_at, "{backend:?}: charged past the server's death: {first_run:?}");
        client.post(&format!("/api/v1/jobs/{long}/cancel"), Some(&token), &json!({}));
        wait_end(&client, long);

        // A job that ends while its server is frozen, which is then killed: its end is read from
        // what its shim wrote, and it is not run again.
        let mut server = restarted;
        let client = server.client();
        let quick = job(
            &client,
            &token,
            json!({ "project": project, "command": ["sh", "-c", "echo start; sleep 1"], "time_limit_s": 60 }),
        );
        wait_log(&client, &token, quick, "start");
        server.signal("STOP");
        std::thread::sleep(Duration::from_secs(2));
        server.kill9();
        let again = Server::start_in(&db.url, &opts, &data_dir);
        let client = again.client();
        let view = wait_end(&client, quick);
        assert_eq!((view["state"].as_str(), view["run"].as_i64()), (Some("completed"), Some(1)), "{backend:?}: {view}");
        assert_eq!(starts(&client, quick), 1, "{backend:?}: a completed job is not run again");
        assert_charged_exactly(&client, project, &[wide, long, quick]);
    }
}

#[test]
fn gpu_only_allocations_run_gpu_jobs() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &with_env(options(2), &[("GRAPPE_GPUS", "2")]));
        let client = server.client();
        let (user, token) = client.new_user("gpu-grant@example.org");
        let reply = client.post(
            "/api/v1/projects",
            Some(ADMIN_TOKEN),
            &json!({ "name": "gpu-grant", "gpu_hours": 1, "cpu_hours": 0, "members": [user] }),
        );
        let project = reply.body["id"].as_i64().unwrap();
        for _ in 0..2 {
            let id = job(
                &client,
                &token,
                json!({ "project": project, "command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES; sleep 0.2"], "gpus": 1, "cpus": 2, "time_limit_s": 60 }),
            );
            assert_eq!(wait_end(&client, id)["state"], "completed", "{backend:?}");
        }
        let view = client.get(&format!("/api/v1/projects/{project}"), Some(&token)).body;
        let used = view["allocation_used"].as_f64().unwrap();
        assert!(used > 0.0 && used < 0.01, "{backend:?}: {view}");
        assert!(view["used_cpu_hours"].as_f64().unwrap() > 0.0, "CPU time recorded");
        let refused = client.post(
            "/api/v1/jobs",
            Some(&token),
            &json!({ "project": project, "command": ["true"], "time_limit_s": 60 }),
        );
        refused.assert_envelope(409);
        assert!(refused.body["detail"].as_str().unwrap().contains("GPU-hours only"));
    }
}

#[test]
fn jobs_that_no_longer_fit_wait_as_too_large() {
    for backend in backends() {
        jobs_that_no_longer_fit_wait_as_too_large_on(backend);
    }
}

fn jobs_that_no_longer_fit_wait_as_too_large_on(backend: Backend) {
    let db = TestDb::new(backend);
    let mut server = Server::start(&db.url, &options(4));
    let client = server.client();
    let (project, token) = project_with_member(&client, "shrunk", 100);
    let blocker = job(
        &client,
        &token,
        json!({ "project": project, "command": ["sleep", "600"], "cpus": 4, "time_limit_s": 3600 }),
    );
    wait_state(&client, &token, blocker, &["running"]);
    let waiting =
        job(&client, &token, json!({ "project": project, "command": ["true"], "cpus": 3, "time_limit_s": 60 }));
    let data_dir = server.data_dir().to_path_buf();
    server.kill9();
    let smaller = Server::start_in(&db.url, &options(2), &data_dir);
    let client = smaller.client();
    // About 3 s alone (the dead server's lease expires, its run is recovered and requeued); the
    // whole suite on two cores once took more than 20 s.
    for id in [blocker, waiting] {
        eventually(Duration::from_secs(60), "the reason TooLarge", || {
            (get(&client, id)["reason"] == "TooLarge").then_some(())
        });
    }
    let small = job(&client, &token, json!({ "project": project, "command": ["true"], "cpus": 1, "time_limit_s": 60 }));
    assert_eq!(wait_end(&client, small)["state"], "completed", "jobs too large block nobody");
}

/// A few hundred jobs of random shapes and lengths, with cancels, a kill -9 and a graceful
/// restart of the server; then, from the timelines alone: every run is explained (one end
/// for each start, none after a cancel), the CPUs are never over-committed, and the charges
/// equal the runs to the millisecond.
#[test]
fn random_workloads_explain_every_run_respect_capacity_and_charge_exactly() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let opts = options(8);
        // The test owns the data directory: each server replaced below would remove it with
        // itself, under the server that follows.
        let data = TempDir::new("random");
        let data_dir = data.path().to_path_buf();
        let mut server = Server::start_in(&db.url, &opts, &data_dir);
        let (project, token) = project_with_member(&server.client(), "random", 10_000);
        let mut seed: u64 = 0x5eed_1234_abcd_0001 ^ backend as u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut ids = Vec::new();
        let mut cancels = HashMap::new();
        let total = 240;
        for n in 0..total {
            let client = server.client();
            let sleep = format!("0.{}", next(40));
            let script = if next(8) == 0 {
                format!("echo start; trap 'sleep 0.3; exit 143' TERM; sleep {sleep} & wait")
            } else {
                format!("echo start; sleep {sleep}")
            };
            let qos = ["dev", "normal", "normal", "long"][next(4) as usize];
            let body = json!({ "project": project, "command": ["sh", "-c", script], "cpus": 1 + next(4), "qos": qos, "time_limit_s": 1 + next(5) });
            let id = job(&client, &token, body);
            ids.push(id);
            if next(5) == 0 {
                let reply = client.post(
                    &format!("/api/v1/jobs/{}/cancel", ids[next(ids.len() as u64) as usize]),
                    Some(&token),
                    &json!({}),
                );
                cancels.insert(reply.body["id"].as_i64().unwrap(), grappe_db::now_ms());
            }
            if n == total / 3 {
                server.kill9();
                server = Server::start_in(&db.url, &opts, &data_dir);
            }
            if n == 2 * total / 3 {
                server.stop();
                server = Server::start_in(&db.url, &opts, &data_dir);
            }
            std::thread::sleep(Duration::from_millis(next(30)));
        }
        let client = server.client();
        for id in &ids {
            eventually(Duration::from_secs(120), "every job to end", || {
                ENDED.contains(&get(&client, *id)["state"].as_str().unwrap_or("")).then_some(())
            });
        }
        let mut intervals: Vec<(i64, i64, i64)> = Vec::new();
        for id in &ids {
            let view = get(&client, *id);
            let list = runs(&client, *id);
            assert_eq!(list.len() as i64, view["run"].as_i64().unwrap(), "{backend:?}: job {id} runs");
            for (i, run) in list.iter().enumerate() {
                assert_eq!(run.number, i as i64 + 1, "{backend:?}: job {id}");
                let end = run.end.unwrap_or_else(|| panic!("{backend:?}: job {id} run {} never ended", run.number));
                assert!(end >= run.start);
                intervals.push((run.start, end, view["cpus"].as_i64().unwrap()));
            }
            assert!(starts(&client, *id) <= list.len(), "{backend:?}: job {id} ran more often than recorded");
            if let Some(cancelled_at) = cancels.get(id) {
                assert!(
                    list.iter().all(|run| run.start <= *cancelled_at + 50),
                    "{backend:?}: job {id} started after its cancel"
                );
            }
        }
        // Sweep: at no instant more than 8 CPUs in runs.
        let mut points: Vec<(i64, i64)> = intervals.iter().flat_map(|(s, e, c)| [(*s, *c), (*e, -*c)]).collect();
        points.sort_by_key(|(at, delta)| (*at, *delta));
        let mut load = 0;
        for (at, delta) in points {
            load += delta;
            assert!(load <= 8, "{backend:?}: {load} CPUs in use at {at}");
        }
        assert_charged_exactly(&client, project, &ids);
    }
}
