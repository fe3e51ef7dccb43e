//! The `grappe` command line as a person uses it: admin set-up from the shell, login, whoami,
//! logout; and `serve` stopping cleanly on SIGTERM.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Backend, Server, ServerOptions, TempDir, TestDb, eventually};

pub(crate) fn grappe(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(args)
        .envs(env.iter().copied())
        .env("GRAPPE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grappe");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait grappe")
}

pub(crate) fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// What a program wrote into a pipe has no terminal escapes (colours).
fn assert_plain(what: &str, written: &str) {
    assert!(!written.contains('\x1b'), "{what} wrote escapes into a pipe: {written:?}");
}

/// `grappe job list`'s table: a header, then rows whose cells start where their header starts
/// (left-aligned columns) or end where it ends (right-aligned ones), and no line ends in a space.
fn assert_lines_up(table: &str) {
    let lines: Vec<Vec<char>> = table.lines().map(|line| line.chars().collect()).collect();
    let header: String = lines[0].iter().collect();
    assert!(lines.len() > 1, "{table}");
    let at = |name: &str| header.find(name).unwrap_or_else(|| panic!("no {name} in {header:?}"));
    let blank = |line: &[char], i: usize| line.get(i).is_none_or(|c| *c == ' ');
    for line in &lines {
        assert!(line.last().is_some_and(|c| *c != ' '), "a trailing space in {table:?}");
        for name in [" NAME", " PROJECT", " USER", " STATE", " REASON"] {
            let start = at(name) + 1;
            assert!(blank(line, start - 1), "column{name} does not line up:\n{table}");
            assert!(line.len() <= start || line[start] != ' ', "column{name} does not line up:\n{table}");
        }
        for name in ["ID ", " TIME ", " TIME_LIMIT "] {
            let end = at(name) + name.trim_end().len();
            assert!(!blank(line, end - 1) && blank(line, end), "column {name} does not line up:\n{table}");
        }
    }
}

#[test]
fn admin_login_whoami_logout() {
    let db = TestDb::new(Backend::Sqlite);
    let config_home = TempDir::new("config");
    let config = config_home.path().to_str().unwrap();
    let database = ["--database", &db.url];

    let created = grappe(
        &[&["admin", "create-user", "--email", "lea@example.org", "--name", "Léa"][..], &database].concat(),
        &[],
        "a fine long password\n",
    );
    assert!(created.status.success(), "{}", text(&created));
    let duplicate = grappe(
        &[&["admin", "create-user", "--email", "lea@example.org", "--name", "Léa"][..], &database].concat(),
        &[],
        "a fine long password\n",
    );
    assert!(!duplicate.status.success());
    assert!(text(&duplicate).contains("already exists"), "{}", text(&duplicate));
    let short = grappe(
        &[&["admin", "create-user", "--email", "x@example.org", "--name", "X"][..], &database].concat(),
        &[],
        "short\n",
    );
    assert!(!short.status.success() && text(&short).contains("at least 10 characters"), "{}", text(&short));
    let granted = grappe(
        &[&["admin", "grant", "--email", "lea@example.org", "--role", "call-manager", "--json"][..], &database]
            .concat(),
        &[],
        "",
    );
    assert!(granted.status.success(), "{}", text(&granted));
    let grant: serde_json::Value = serde_json::from_slice(&granted.stdout).unwrap();
    assert_eq!(grant["role"], "call_manager");

    let server = Server::start(&db.url, &ServerOptions::default());
    let env = [("XDG_CONFIG_HOME", config), ("GRAPPE_PASSWORD", "a fine long password")];
    let login = grappe(&["login", "--url", &server.base, "--email", "lea@example.org"], &env, "");
    assert!(login.status.success(), "{}", text(&login));
    let stored = std::fs::metadata(config_home.path().join("grappe/cli.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(stored.permissions().mode() & 0o777, 0o600, "the token file is private");

    let whoami = grappe(&["whoami", "--json"], &env, "");
    assert!(whoami.status.success(), "{}", text(&whoami));
    let me: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!(me["email"], "lea@example.org");
    assert_eq!(me["roles"][0]["role"], "call_manager");
    let table = grappe(&["whoami"], &env, "");
    assert!(text(&table).contains("call_manager (global)") && text(&table).contains("Léa"), "{}", text(&table));

    // Logging in again replaces the CLI's token: one live token, not one per login.
    let again = grappe(&["login", "--url", &server.base, "--email", "lea@example.org"], &env, "");
    assert!(again.status.success(), "{}", text(&again));
    let lea = server.client().token_for("lea@example.org", "a fine long password");
    let tokens = server.client().get("/api/v1/tokens", Some(&lea)).body;
    let live_cli = tokens["items"].as_array().unwrap().iter().filter(|token| {
        token["name"].as_str().unwrap_or("").starts_with("grappe cli on") && token["revoked_at"].is_null()
    });
    assert_eq!(live_cli.count(), 1, "{tokens}");

    let wrong = grappe(
        &["login", "--url", &server.base, "--email", "lea@example.org"],
        &[("XDG_CONFIG_HOME", config), ("GRAPPE_PASSWORD", "not the password")],
        "",
    );
    assert!(!wrong.status.success() && text(&wrong).contains("401"), "{}", text(&wrong));

    let logout = grappe(&["logout"], &env, "");
    assert!(logout.status.success(), "{}", text(&logout));
    let after = grappe(&["whoami"], &env, "");
    assert!(!after.status.success() && text(&after).contains("not logged in"), "{}", text(&after));
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let db = TestDb::new(Backend::Sqlite);
    let mut server = Server::start(&db.url, &ServerOptions::default());
    assert_eq!(server.client().get("/healthz", None).status, 200);
    let status = Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "server still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}; output:\n{}", server.output.lock().unwrap());
    // The database opens again and holds what it held.
    let again = Server::start(&db.url, &ServerOptions::default());
    assert_eq!(again.client().get("/healthz", None).status, 200);
}

#[test]
fn serve_refuses_bad_settings_with_a_message() {
    let cases: [(&[&str], &str); 3] = [
        (&["serve", "--executor", "pbs", "--addr", "127.0.0.1:0"], "invalid value 'pbs'"),
        (&["serve", "--database", "mysql://x", "--addr", "127.0.0.1:0"], "unsupported database URL"),
        (&["serve", "--addr", "not-an-address"], "invalid value"),
    ];
    for (args, message) in cases {
        let output = grappe(args, &[], "");
        assert!(!output.status.success(), "{args:?}");
        assert!(text(&output).contains(message), "{args:?}: {}", text(&output));
    }
}

#[test]
fn job_submit_follow_list_show_cancel() {
    let db = TestDb::new(Backend::Sqlite);
    let config_home = TempDir::new("job-config");
    let config = config_home.path().to_str().unwrap();
    let mut options = ServerOptions::default();
    options.env.push(("GRAPPE_CPUS".into(), "2".into()));
    options.env.push(("GRAPPE_JOB_GRACE_S".into(), "1".into()));
    // Its log into a pipe, to check that it has no colours.
    options.env.push(("GRAPPE_LOG".into(), "info".into()));
    let server = Server::start(&db.url, &options);
    let client = server.client();
    let (user_id, _) = client.new_user("runner@example.org");
    let project = serde_json::json!({ "name": "cli-project", "gpu_hours": 0, "cpu_hours": 10, "members": [user_id] });
    let project = client.post("/api/v1/projects", Some(crate::harness::ADMIN_TOKEN), &project);
    assert_eq!(project.status, 201);
    let project_id = &project.body["id"];
    let env = [("XDG_CONFIG_HOME", config), ("GRAPPE_PASSWORD", "a long enough password")];
    assert!(grappe(&["login", "--url", &server.base, "--email", "runner@example.org"], &env, "").status.success());

    let dry = grappe(
        &[
            "job",
            "submit",
            "--project",
            "cli-project",
            "--cpus",
            "2",
            "--time",
            "1h",
            "--dry-run",
            "--json",
            "--",
            "true",
        ],
        &env,
        "",
    );
    assert!(dry.status.success(), "{}", text(&dry));
    let estimate: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(estimate["estimated_cpu_hours"], 2.0);
    let sentence = grappe(
        &["job", "submit", "--project", "cli-project", "--cpus", "2", "--time", "1h", "--dry-run", "--", "true"],
        &env,
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&sentence.stdout),
        "This job would cost at most 2 CPU-hours and 0 GPU-hours (if it runs to its time limit), leaving 8 \
         CPU-hours and 0 GPU-hours of project cli-project's allocation (20 % of it then committed). Nothing was \
         submitted.\n"
    );

    let submitted = grappe(
        &[
            "job",
            "submit",
            "--project",
            "cli-project",
            "--time",
            "2m",
            "--mem",
            "256M",
            "--name",
            "a-rather-long-training-run",
            "--json",
            "--",
            "sh",
            "-c",
            "echo one; sleep 1; echo two",
        ],
        &env,
        "",
    );
    assert!(submitted.status.success(), "{}", text(&submitted));
    let job: serde_json::Value = serde_json::from_slice(&submitted.stdout).unwrap();
    let id = job["id"].to_string();
    assert_eq!(job["memory_mb"], 256);
    assert_eq!(job["time_limit_s"], 120);
    let followed = grappe(&["job", "logs", "-f", &id], &env, "");
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "one\ntwo\n");
    let shown = grappe(&["job", "show", &id], &env, "");
    let labelled = String::from_utf8_lossy(&shown.stdout).to_string();
    let project_line = format!("Project      cli-project ({project_id})");
    for line in [
        "State        completed",
        project_line.as_str(),
        "Command      sh -c 'echo one; sleep 1; echo two'",
        "Resources    1 CPU, 0 GPU, 256 MB of memory",
        "Time limit   2 min",
        "Exit code    0",
    ] {
        assert!(labelled.lines().any(|shown| shown == line), "no line {line:?} in:\n{labelled}");
    }
    let listed = grappe(&["job", "list"], &env, "");
    let table = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_lines_up(&table);
    let row = table.lines().find(|line| line.trim_start().starts_with(&format!("{id} "))).unwrap_or_default();
    for cell in ["a-rather-long-train…", "cli-project", "User runner@exa…", "completed", "2:00"] {
        assert!(row.contains(cell), "no {cell:?} in {row:?}:\n{table}");
    }
    for output in [&listed, &shown] {
        assert_plain("grappe job", &text(output));
    }
    // A reader that goes away early (`grappe job list | head -1`): a quiet, successful end.
    for args in [&["job", "list"][..], &["job", "show", &id], &["job", "logs", &id]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grappe"))
            .args(args)
            .envs(env.iter().copied())
            .env("GRAPPE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn grappe");
        drop(child.stdout.take());
        let closed = child.wait_with_output().expect("wait grappe");
        let stderr = String::from_utf8_lossy(&closed.stderr);
        assert!(
            closed.status.success() && stderr.is_empty(),
            "{args:?} into a closed pipe: {:?}, {stderr}",
            closed.status
        );
    }

    let dir = TempDir::new("job-script");
    let script = dir.path().join("train.sh");
    std::fs::write(&script, "sleep 60\n").unwrap();
    let long = grappe(
        &["job", "submit", "--project", "cli-project", "--time", "10m", "--script", script.to_str().unwrap(), "--json"],
        &env,
        "",
    );
    let long: serde_json::Value = serde_json::from_slice(&long.stdout).unwrap();
    let long_id = long["id"].to_string();
    eventually(Duration::from_secs(30), "the long job running", || {
        let shown = grappe(&["job", "show", &long_id, "--json"], &env, "");
        let job: serde_json::Value = serde_json::from_slice(&shown.stdout).ok()?;
        (job["state"] == "running").then_some(())
    });
    let cancelled = grappe(&["job", "cancel", &long_id], &env, "");
    assert_eq!(
        String::from_utf8_lossy(&cancelled.stdout),
        format!("Job {long_id}: cancellation requested; it is being stopped.\n"),
        "{}",
        text(&cancelled)
    );
    let ended = grappe(&["job", "cancel", &id], &env, "");
    assert_eq!(
        String::from_utf8_lossy(&ended.stdout),
        format!("Job {id} already ended (completed); nothing to cancel.\n")
    );
    let bad = grappe(&["job", "submit", "--project", "cli-project", "--time", "soon", "--", "true"], &env, "");
    assert!(!bad.status.success() && text(&bad).contains("time `soon`"), "{}", text(&bad));
    // clap's usage errors and help, and the server's log, into pipes: no colours.
    let usage = grappe(&["job", "submit", "--project", "cli-project", "--", "true"], &env, "");
    assert!(!usage.status.success() && text(&usage).contains("--time"), "{}", text(&usage));
    assert_plain("a usage error", &text(&usage));
    let help = grappe(&["job", "submit", "--help"], &env, "");
    assert!(text(&help).contains("dev (up to 2 h)"), "{}", text(&help));
    assert_plain("--help", &text(&help));
    let log = server.output.lock().unwrap().clone();
    assert!(log.contains("INFO"), "{log}");
    assert_plain("the server", &log);
    let refused =
        grappe(&["job", "submit", "--project", "cli-project", "--time", "3h", "--qos", "dev", "--", "true"], &env, "");
    assert!(!refused.status.success() && text(&refused).contains("over QoS `dev`'s cap"), "{}", text(&refused));
    // An array is one submission of several jobs: the sentence says how many.
    let array = grappe(
        &["job", "submit", "--project", "cli-project", "--time", "1m", "--array", "0-4:2", "--", "true"],
        &env,
        "",
    );
    let said = String::from_utf8_lossy(&array.stdout).to_string();
    assert!(said.starts_with("Submitted array job ") && said.contains(": 3 tasks ("), "{}", text(&array));
}
