//! Jobs see only what they may: a table of escape attempts, each a job that must fail to do it,
//! on SQLite and PostgreSQL; the limits on memory, processes and CPUs; every process of a job
//! ending with it; a server that is not root; a machine without a sandbox.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::compute::{options, project_with_member, submit, wait_log, wait_state};
use crate::harness::{ADMIN_TOKEN, Backend, Client, Server, TestDb, backends, eventually};

const ENDED: [&str; 4] = ["completed", "failed", "cancelled", "timeout"];

/// Runs `script` with `sh -c` in a project and waits for its end: (job, log).
fn run(client: &Client, token: &str, project: i64, script: &str, extra: Value) -> (Value, String) {
    let mut body = json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let job = submit(client, token, body);
    let id = job["id"].as_i64().unwrap();
    let job = wait_state(client, token, id, &ENDED);
    let log = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(token)).text;
    (job, log)
}

/// The processes on this machine whose command line starts with `start` (not the shells,
/// shims and sandboxes whose arguments merely mention it).
fn processes_with(start: &str) -> Vec<String> {
    let output = std::process::Command::new("pgrep").args(["-a", "-f", &format!("^{start}")]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

/// Whether the job printed a line that ends with `-OK` (a probe that should have failed).
fn any_ok(log: &str) -> bool {
    log.lines().any(|line| line.ends_with("-OK") && !line.contains(' '))
}

fn sqlite_path(url: &str) -> Option<String> {
    url.strip_prefix("sqlite://").map(|rest| rest.split('?').next().unwrap_or(rest).to_owned())
}

#[test]
fn escape_attempts_fail() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (a, a_token) = project_with_member(&client, &format!("alpha-{backend:?}"), 100);
        let (b, b_token) = project_with_member(&client, &format!("beta-{backend:?}"), 100);
        let data = server.data_dir().display().to_string();
        let tag = format!("{backend:?}");

        // A job of project A leaves a secret in its log and its checkpoint, then keeps running.
        let secret = format!("secret-of-alpha-{}", std::process::id());
        let script = format!("echo {secret}; echo {secret} > \"$GRAPPE_CHECKPOINT_DIR/state\"; exec sleep 4141");
        let alpha =
            submit(&client, &a_token, json!({ "project": a, "command": ["sh", "-c", script], "time_limit_s": 60 }));
        let alpha_id = alpha["id"].as_i64().unwrap();
        wait_log(&client, &a_token, alpha_id, &secret);
        let alpha_dir = format!("{data}/jobs/{alpha_id}");
        let alpha_sleep_pid: u32 = eventually(Duration::from_secs(10), "A's sleep to appear", || {
            processes_with("sleep 4141").first().and_then(|line| line.split_whitespace().next()?.parse().ok())
        });

        // 1. The server's environment: nothing of it, only the allowlist and what the job declared.
        let (job, log) = run(
            &client,
            &b_token,
            b,
            "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'",
            json!({ "env": { "MY_SETTING": "on" } }),
        );
        assert_eq!(job["state"], "completed", "{tag}: {job}");
        assert!(
            !log.contains(ADMIN_TOKEN) && !log.contains("GRAPPE_LOG") && !log.contains("GRAPPE_TEST"),
            "{tag}: {log}"
        );
        let allowed = [
            "PATH",
            "HOME",
            "TMPDIR",
            "LANG",
            "TZ",
            "PWD",
            "GRAPPE_JOB_ID",
            "GRAPPE_PROJECT_ID",
            "GRAPPE_CHECKPOINT_DIR",
            "GRAPPE_RESTART_COUNT",
            "GRAPPE_RUN",
            "GRAPPE_GPU_IDS",
            // The run's own proof for a model server it may start (the gateway's replicas).
            "GRAPPE_REPLICA_TOKEN",
            // Where the server is (a batch's job sends its requests there): no secret.
            "GRAPPE_SERVER_URL",
            "CUDA_VISIBLE_DEVICES",
            "MY_SETTING",
        ];
        for line in log.lines().filter(|line| line.contains('=')) {
            let key = line.split('=').next().unwrap();
            assert!(allowed.contains(&key), "{tag}: the job saw `{key}`: {log}");
        }
        assert!(log.contains("MY_SETTING=on\n"), "{tag}: {log}");

        // 2. The database file and the data directory: out of sight, neither readable nor
        // writable; of the jobs' directories, only its own exists.
        let mut targets = vec![format!("{data}/grappe.db")];
        targets.extend(sqlite_path(&db.url));
        let probe: String = targets
            .iter()
            .map(|path| {
                format!(
                    "cat '{path}' >/dev/null 2>&1 && echo READ-OK; (echo x >> '{path}') 2>/dev/null && echo WRITE-OK; "
                )
            })
            .collect();
        let (job, log) = run(&client, &b_token, b, &format!("{probe}echo probed; ls {data} {data}/jobs"), json!({}));
        let own = job["id"].to_string();
        assert!(log.contains("probed") && !any_ok(&log), "{tag}: {log}");
        let listed: Vec<&str> = log.lines().skip_while(|line| *line != "probed").skip(1).collect();
        assert_eq!(listed, [&format!("{data}:"), "jobs", "", &format!("{data}/jobs:"), own.as_str()], "{tag}: {log}");

        // 3. Another project's log and checkpoint.
        let script = format!(
            "cat {alpha_dir}/output.log {alpha_dir}/checkpoints/state 2>&1; ls {alpha_dir} 2>&1; \
             grep -rs {secret} /tmp {data} /dev/shm; echo searched"
        );
        let (_, log) = run(&client, &b_token, b, &script, json!({}));
        assert!(log.contains("searched") && !log.contains(&secret), "{tag}: {log}");

        // 4. Writing outside its own directories; its own directories and /tmp are writable.
        let script = "for path in /usr/x /etc/x /x /opt/x \"$HOME/../x\" /proc/sys/kernel/hostname; do \
                      (echo x > \"$path\") 2>/dev/null && echo \"WROTE $path\"; done; \
                      echo a > \"$HOME/a\" && echo b > \"$GRAPPE_CHECKPOINT_DIR/b\" && echo c > /tmp/c && echo OWN-OK";
        let (_, log) = run(&client, &b_token, b, script, json!({}));
        assert!(log.contains("OWN-OK") && !log.contains("WROTE"), "{tag}: {log}");

        // 5. The server's processes and other jobs' processes: invisible, and beyond signals.
        let script = format!(
            "ps ax; kill -0 {server} 2>/dev/null && echo SIGNAL-SERVER-OK; kill -9 {alpha_sleep_pid} 2>/dev/null \
             && echo SIGNAL-JOB-OK; echo looked",
            server = server.pid()
        );
        let (_, log) = run(&client, &b_token, b, &script, json!({}));
        assert!(log.contains("looked") && !any_ok(&log), "{tag}: {log}");
        assert!(!log.contains("sleep 4141") && !log.contains("grappe serve"), "{tag}: {log}");
        assert_eq!(processes_with("sleep 4141").len(), 1, "{tag}: A's job still runs");

        // 6. No network: not even the loopback to the server; with the network, the server answers.
        let port = server.base.rsplit(':').next().unwrap().to_owned();
        let connect = format!(
            "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\" 2>&1"
        );
        let (_, log) = run(&client, &b_token, b, &connect, json!({ "network": false }));
        assert!(!log.contains("CONNECTED") && log.contains("Error"), "{tag}: {log}");
        let (_, log) = run(&client, &b_token, b, &connect, json!({ "network": true }));
        assert!(log.contains("CONNECTED"), "{tag}: {log}");

        // A still ran through all of it, unharmed.
        let alpha = client.get(&format!("/api/v1/jobs/{alpha_id}"), Some(&a_token)).body;
        assert_eq!(alpha["state"], "running", "{tag}: {alpha}");
        client.post(&format!("/api/v1/jobs/{alpha_id}/cancel"), Some(&a_token), &json!({}));
        wait_state(&client, &a_token, alpha_id, &["cancelled"]);
        assert!(processes_with("sleep 4141").is_empty());
    }
}

#[test]
fn cancel_and_time_limit_end_every_process_of_a_job() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "escapers", 100);
        for (marker, time_limit_s, cancel) in [("3131", 600, true), ("3232", 2, false)] {
            // A process in a new session, one double-forked to the top, and the main one.
            let script = format!("setsid sleep {marker}1 & (sleep {marker}2 &); echo started; sleep {marker}3");
            let job = submit(
                &client,
                &token,
                json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": time_limit_s }),
            );
            let id = job["id"].as_i64().unwrap();
            wait_log(&client, &token, id, "started");
            eventually(Duration::from_secs(10), "all three processes", || {
                (processes_with(&format!("sleep {marker}")).len() == 3).then_some(())
            });
            if cancel {
                client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
            }
            let job = wait_state(&client, &token, id, &ENDED);
            assert_eq!(job["state"], if cancel { "cancelled" } else { "timeout" }, "{backend:?}: {job}");
            assert!(processes_with(&format!("sleep {marker}")).is_empty(), "{backend:?}: {:?}", processes_with(marker));
        }
    }
}

#[test]
fn memory_processes_and_cpus_are_limited() {
    for backend in backends() {
        memory_processes_and_cpus_are_limited_on(backend);
    }
}

fn memory_processes_and_cpus_are_limited_on(backend: Backend) {
    let db = TestDb::new(backend);
    let mut opts = options(2);
    opts.env.push(("GRAPPE_JOB_MAX_PROCS".into(), "40".into()));
    // Uids of its own, so that other tests' jobs are not counted below.
    opts.env.push(("GRAPPE_JOB_UID_BASE".into(), "310000".into()));
    let server = Server::start(&db.url, &opts);
    let client = server.client();
    let (project, token) = project_with_member(&client, "greedy", 100);

    // Memory: 300 MB written under a 64 MB limit ends `out of memory`.
    let (job, _) = run(
        &client,
        &token,
        project,
        "python3 -c \"x = b'x' * (300 * 1024 * 1024); print('survived')\"",
        json!({ "memory_mb": 64 }),
    );
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["reason"].as_str().unwrap().contains("out of memory"), "{job}");

    // A fork bomb hits the process limit; the server stays healthy; nothing is left after.
    let bomb = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "echo armed; bomb() { bomb | bomb & }; bomb; sleep 3"], "time_limit_s": 4 }),
    );
    let id = bomb["id"].as_i64().unwrap();
    wait_log(&client, &token, id, "armed");
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(client.get("/healthz", None).status, 200);
        assert!(started.elapsed() < Duration::from_secs(2), "health answered in {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_state(&client, &token, id, &ENDED);
    let uid = 310_000 + project;
    let left = std::process::Command::new("pgrep").args(["-u", &uid.to_string()]).output().unwrap();
    assert!(left.stdout.is_empty(), "processes left by the bomb: {}", String::from_utf8_lossy(&left.stdout));

    // CPUs: two busy loops for three seconds in a 1-CPU job use about three CPU-seconds, not six.
    let script = "spin() { while :; do :; done; }; spin & a=$!; spin & b=$!; sleep 3; kill $a $b";
    let (job, _) = run(&client, &token, project, script, json!({ "cpus": 1 }));
    let cpu_time_s = job["cpu_time_s"].as_f64().unwrap();
    assert!((1.0..=3.6).contains(&cpu_time_s), "CPU time {cpu_time_s} s: {job}");
}

#[test]
fn grappe_itself_is_on_a_sandboxed_jobs_path_read_only() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "tools", 100);
    let script =
        "command -v grappe; grappe --version; { echo x > /run/grappe/bin/grappe; } 2>/dev/null || echo read-only";
    let (job, log) = run(&client, &token, project, script, json!({}));
    assert_eq!(job["state"], "completed", "{job}");
    assert!(log.starts_with("/run/grappe/bin/grappe\ngrappe 0.0.0\n") && log.ends_with("read-only\n"), "{log}");
    let (job, log) = run(&client, &token, project, "ls /run/grappe/bin", json!({}));
    assert_eq!((job["state"].as_str(), log.as_str()), (Some("completed"), "grappe\n"), "nothing else of its folder");
}

/// An upgrade replaces `grappe` while the server runs (the file is removed and a new one put in
/// its place, as packages and `cargo build` do): the kernel then names the running program
/// `PATH (deleted)`, and jobs must still find `grappe`, the new one at PATH.
#[test]
fn jobs_find_grappe_after_an_upgrade_replaced_it() {
    let dir = crate::harness::TempDir::new("upgrade");
    let (built, built_shim) = (env!("CARGO_BIN_EXE_grappe"), env!("CARGO_BIN_EXE_grappe-shim"));
    let (program, shim) = (dir.path().join("grappe"), dir.path().join("grappe-shim"));
    let place = |from: &str, to: &std::path::Path| {
        std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(drop)).unwrap();
    };
    place(built, &program);
    place(built_shim, &shim);
    let db = TestDb::new(Backend::Sqlite);
    let server =
        Server::start(&db.url, &crate::harness::ServerOptions { program: Some(program.clone()), ..options(1) });
    let client = server.client();
    let (project, token) = project_with_member(&client, "upgraded", 100);
    std::fs::remove_file(&program).unwrap();
    place(built, &program);
    let running = std::fs::read_link(format!("/proc/{}/exe", server.pid())).unwrap();
    assert!(running.to_string_lossy().ends_with(" (deleted)"), "{}", running.display());
    let (job, log) = run(&client, &token, project, "grappe --version", json!({}));
    assert_eq!((job["state"].as_str(), log.as_str()), (Some("completed"), "grappe 0.0.0\n"), "{job}");
}

#[test]
fn a_server_that_is_not_root_sandboxes_jobs_in_a_user_namespace() {
    let db = TestDb::new(Backend::Sqlite);
    let mut opts = options(1);
    opts.run_as = Some(65_534);
    // Its database must be its own too.
    let dir = std::path::Path::new(sqlite_path(&db.url).as_deref().unwrap()).parent().unwrap().to_path_buf();
    let status = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(&dir).status().unwrap();
    assert!(status.success());
    let server = Server::start(&db.url, &opts);
    let client = server.client();
    let (project, token) = project_with_member(&client, "userns", 100);
    let (job, log) = run(&client, &token, project, "id -u; env; ls /tmp", json!({}));
    assert_eq!(job["state"], "completed", "{job}");
    assert!(!log.contains(ADMIN_TOKEN), "{log}");
    // No control group can be made by this user here: the log and the timeline say so.
    assert!(log.contains("no writable control group"), "{log}");
    let events = client.get(&format!("/api/v1/jobs/{}/events", job["id"]), Some(&token)).body.to_string();
    assert!(events.contains("user namespace") && events.contains("rlimits only"), "{events}");
}

#[test]
fn without_a_sandbox_the_server_refuses_to_start_unless_told_otherwise() {
    let db = TestDb::new(Backend::Sqlite);
    let data = crate::harness::TempDir::new("nosandbox");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(["serve", "--addr", "127.0.0.1:0", "--database", &db.url, "--data-dir"])
        .arg(data.path())
        .env("GRAPPE_BWRAP", "/nonexistent/bwrap")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("jobs cannot be sandboxed")
            && stderr.contains("apt install bubblewrap")
            && stderr.contains("--unsafe-unsandboxed-jobs"),
        "{stderr}"
    );
    // Told otherwise, it runs jobs unsandboxed, and says so on the compute page.
    let mut opts = options(1);
    opts.env.push(("GRAPPE_BWRAP".into(), "/nonexistent/bwrap".into()));
    opts.args.push("--unsafe-unsandboxed-jobs".into());
    let server = Server::start(&db.url, &opts);
    let client = server.client();
    let (project, token) = project_with_member(&client, "unsafe", 100);
    let (job, log) = run(&client, &token, project, "echo ran; env; grappe --version", json!({}));
    assert_eq!(job["state"], "completed", "{job}");
    assert!(log.contains("ran") && !log.contains(ADMIN_TOKEN), "the environment is still cleaned: {log}");
    assert!(log.contains("\ngrappe 0.0.0\n"), "grappe is on the PATH: {log}");
    let page = client.get("/compute", Some(&token)).text;
    assert!(page.contains("id=\"unsafe-executor\""), "{page}");
}

#[test]
fn a_running_job_is_charged_as_it_runs() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, token) = project_with_member(&client, "meter", 100);
    let job = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sleep", "30"], "cpus": 2, "time_limit_s": 600 }),
    );
    let id = job["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["running"]);
    let running =
        |key: &str| client.get(&format!("/api/v1/projects/{project}"), Some(&token)).body[key].as_f64().unwrap();
    let first = running("running_cpu_hours");
    std::thread::sleep(Duration::from_millis(1500));
    let second = running("running_cpu_hours");
    assert!(second > first, "usage grows while it runs: {first} then {second}");
    assert!(running("reserved_cpu_hours") > 0.3, "the rest of its time limit is reserved");
    assert_eq!(running("used_cpu_hours"), 0.0, "nothing is charged before it ends");
    client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
    wait_state(&client, &token, id, &["cancelled"]);
    assert!(running("used_cpu_hours") > 0.0);
    assert_eq!(running("running_cpu_hours"), 0.0);
    assert_eq!(running("reserved_cpu_hours"), 0.0);
}

/// The groups in `parent` of the memory hierarchy (cgroup v1's own, or the unified v2 tree).
fn memory_groups_in(parent: &str) -> Vec<String> {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    let root = if v1.is_dir() { v1.to_path_buf() } else { std::path::PathBuf::from("/sys/fs/cgroup") };
    let Ok(entries) = std::fs::read_dir(root.join(parent)) else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into())
        .collect()
}

/// Every empty control group costs each later CPU-limit write (the kernel checks them all): a
/// server that stops removes its installation's group, and another server of the installation
/// still running makes it again for its next job. One backend: the database plays no part.
#[test]
fn a_stopped_server_leaves_no_control_group_and_another_makes_it_again() {
    let db = TestDb::new(Backend::Sqlite);
    let parent = format!("grappe-test/parents-{}", std::process::id());
    let mut opts = options(2);
    opts.env.push(("GRAPPE_CGROUP_PARENT".into(), parent.clone()));
    let mut first = Server::start(&db.url, &opts);
    let second = Server::start(&db.url, &opts);
    let client = first.client();
    let (project, token) = project_with_member(&client, "tidy", 100);
    let (job, _) = run(&client, &token, project, "echo ran", json!({}));
    assert_eq!(job["state"], "completed", "{job}");
    let installations = memory_groups_in(&parent);
    assert_eq!(installations.len(), 1, "{installations:?}");

    first.stop();
    assert!(memory_groups_in(&parent).is_empty(), "left behind: {:?}", memory_groups_in(&parent));

    // The second server takes the lease over and makes the group again for its job.
    let (job, _) = run(&second.client(), &token, project, "echo ran again", json!({ "memory_mb": 64 }));
    assert_eq!(job["state"], "completed", "{job}");
    assert!(job["memory_peak_mb"].as_i64().is_some(), "no control group counted it: {job}");
    assert_eq!(memory_groups_in(&parent), installations);
}
