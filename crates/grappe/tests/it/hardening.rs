//! The server stays up and fair under abuse: one regression test per finding of the audit, named
//! after what broke, on SQLite and PostgreSQL where the database matters.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::compute::{options, project_with_member, submit, wait_log, wait_state};
use crate::harness::{ADMIN_TOKEN, AUDIT_KEY, Backend, Client, Server, ServerOptions, TestDb, backends, eventually};

fn with(mut options: ServerOptions, pairs: &[(&str, &str)]) -> ServerOptions {
    options.env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    options
}

/// A TCP connection to `server` from the loopback address `from` (127.0.0.2, say), so that it
/// counts against another client than the test's own requests.
fn connect_from(from: &str, server: &str) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into())?;
    let remote: SocketAddr = server.trim_start_matches("http://").parse().unwrap();
    socket.connect_timeout(&remote.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// `/healthz` answers fast while the abuse goes on: the slowest of `probes` answers.
fn slowest_health(client: &Client, probes: usize) -> Duration {
    (0..probes)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(client.get("/healthz", None).status, 200);
            let took = started.elapsed();
            std::thread::sleep(Duration::from_millis(20));
            took
        })
        .max()
        .unwrap()
}

#[test]
fn half_sent_requests_and_idle_sockets_do_not_take_the_server_down() {
    let db = TestDb::new(Backend::Sqlite);
    let opts = with(
        ServerOptions::default(),
        &[("GRAPPE_HEADER_READ_TIMEOUT_MS", "1500"), ("GRAPPE_MAX_CONNECTIONS_PER_CLIENT", "100")],
    );
    let server = Server::start(&db.url, &opts);
    let client = server.client();
    // 400 connections from one client: half send part of a request's head, half nothing.
    let mut sockets = Vec::new();
    for n in 0..400 {
        let Ok(mut socket) = connect_from("127.0.0.2", &server.base) else { continue };
        if n % 2 == 0 {
            let _ = socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        }
        sockets.push(socket);
    }
    let slowest = slowest_health(&client, 20);
    assert!(slowest < Duration::from_millis(100), "/healthz took {slowest:?} under the slowloris");
    // Past 100 the client's connections are closed at once; the others after the header-read
    // time, whether half-sent or idle.
    std::thread::sleep(Duration::from_millis(2500));
    let mut closed = 0;
    for socket in &mut sockets {
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut byte = [0u8; 1];
        // Closed: end of file, a reset, or a 408 before closing; open: a timeout.
        match socket.read(&mut byte) {
            Ok(_) => closed += 1,
            Err(error)
                if error.kind() != std::io::ErrorKind::WouldBlock && error.kind() != std::io::ErrorKind::TimedOut =>
            {
                closed += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, sockets.len(), "every abusive connection is closed");
    assert_eq!(client.get("/healthz", None).status, 200);
}

#[test]
fn thousands_of_log_followers_are_capped_per_user_and_in_all() {
    let db = TestDb::new(Backend::Sqlite);
    let opts = with(options(2), &[("GRAPPE_MAX_LOG_STREAMS_PER_USER", "4"), ("GRAPPE_MAX_LOG_STREAMS", "10")]);
    let server = Server::start(&db.url, &opts);
    let client = server.client();
    let (project, token) = project_with_member(&client, "followed", 100);
    let others: Vec<String> = (0..3)
        .map(|n| {
            let (user, token) = client.new_user(&format!("watcher{n}@example.org"));
            let member = json!({ "user_id": user });
            assert_eq!(
                client.post(&format!("/api/v1/projects/{project}/members"), Some(ADMIN_TOKEN), &member).status,
                201
            );
            token
        })
        .collect();
    let job = submit(
        &client,
        &token,
        json!({ "project": project, "command": ["sh", "-c", "echo started; sleep 60"], "time_limit_s": 600 }),
    );
    let id = job["id"].as_i64().unwrap();
    wait_log(&client, &token, id, "started");
    // Each stream is a raw connection that reads its first bytes and stays open.
    let follow = |token: &str| -> (u16, Option<TcpStream>) {
        let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
        let request = format!(
            "GET /api/v1/jobs/{id}/logs?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        let status: u16 = String::from_utf8_lossy(&head[9..12]).parse().unwrap();
        (status, (status == 200).then_some(stream))
    };
    let mut open = Vec::new();
    let mut refused = 0;
    for token in std::iter::once(&token).chain(&others) {
        for _ in 0..6 {
            match follow(token) {
                (200, Some(stream)) => open.push(stream),
                (429, _) => refused += 1,
                (status, _) => panic!("a follow answered {status}"),
            }
        }
    }
    assert_eq!(open.len(), 10, "four per user, ten in all");
    assert_eq!(refused, 14);
    let slowest = slowest_health(&client, 20);
    assert!(slowest < Duration::from_millis(100), "/healthz took {slowest:?} with the streams open");
    // Closed streams give their places back.
    open.clear();
    eventually(Duration::from_secs(10), "a place to follow again", || (follow(&token).0 == 200).then_some(()));
    client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), &json!({}));
}

#[test]
fn a_big_log_is_read_in_pieces_and_by_range() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, token) = project_with_member(&client, "talkative", 100);
    // 4 MB of numbered lines.
    let script = "seq 1 500000 | sed 's/^/line /'";
    let job =
        submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 600 }));
    let id = job["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["completed"]);
    let whole = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&token));
    assert!(whole.text.starts_with("line 1\nline 2\n") && whole.text.ends_with("line 500000\n"));
    let size = whole.text.len();
    let range = |value: &str| {
        let request = ureq::http::Request::builder()
            .uri(format!("{}/api/v1/jobs/{id}/logs", server.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Range", value)
            .body(())
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.run(request).unwrap();
        let content_range = response.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), content_range, response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(range("bytes=0-6"), (206, Some(format!("bytes 0-6/{size}")), "line 1\n".to_owned()));
    let (status, _, tail) = range("bytes=-12");
    assert_eq!((status, tail.as_str()), (206, "line 500000\n"));
    let (status, _, middle) = range(&format!("bytes={}-", size - 24));
    assert_eq!((status, middle.len()), (206, 24));
    let (status, content_range, _) = range(&format!("bytes={size}-"));
    assert_eq!((status, content_range), (416, Some(format!("bytes */{size}"))));
    // 30 readers that ask for the whole log and read nothing: the server holds a piece of it
    // for each, not the whole (the audit saw 2.2 GB for 30 readers of 64 MiB).
    let before = rss_mib(server.child.id());
    let readers: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
            let request =
                format!("GET /api/v1/jobs/{id}/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss_mib(server.child.id()) - before;
    assert!(grown < 32.0, "30 readers of a {size}-byte log grew the server by {grown:.1} MiB");
    drop(readers);
}

#[test]
fn a_member_flooding_submissions_is_stopped_by_the_queue_quotas() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let opts =
            with(options(1), &[("GRAPPE_MAX_QUEUED_JOBS_PER_USER", "5"), ("GRAPPE_MAX_QUEUED_JOBS_PER_PROJECT", "8")]);
        let server = Server::start(&db.url, &opts);
        let client = server.client();
        let (project, flooder) = project_with_member(&client, "flooded", 100);
        let (user, colleague) = client.new_user("colleague@example.org");
        client.post(&format!("/api/v1/projects/{project}/members"), Some(ADMIN_TOKEN), &json!({ "user_id": user }));
        let body = json!({ "project": project, "command": ["sleep", "60"], "time_limit_s": 600 });
        // One runs, five wait: the sixth waiting one is refused.
        let mut accepted = 0;
        let mut refusal = None;
        for _ in 0..20 {
            let reply = client.post("/api/v1/jobs", Some(&flooder), &body);
            match reply.status {
                201 => accepted += 1,
                429 => {
                    refusal = Some(reply);
                    break;
                }
                other => panic!("{other}: {}", reply.text),
            }
        }
        let refusal = refusal.expect("a refusal");
        refusal.assert_envelope(429);
        assert!(
            refusal.body["detail"].as_str().unwrap().contains("the most one user may queue (5)"),
            "{}",
            refusal.text
        );
        assert!((5..=6).contains(&accepted), "{backend:?}: {accepted}");
        // The project's own quota stops the colleague too.
        let mut colleague_accepted = 0;
        loop {
            let reply = client.post("/api/v1/jobs", Some(&colleague), &body);
            if reply.status == 429 {
                assert!(reply.body["detail"].as_str().unwrap().contains("the most one project may queue (8)"));
                break;
            }
            assert_eq!(reply.status, 201, "{}", reply.text);
            colleague_accepted += 1;
            assert!(colleague_accepted <= 8);
        }
        // Concurrent submissions are counted one after the other: 8 at a time, exactly 5 queue.
        let (other, racer) = project_with_member(&client, "raced", 100);
        let body = json!({ "project": other, "command": ["sleep", "60"], "time_limit_s": 600 });
        let accepted: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..4).filter(|_| client.post("/api/v1/jobs", Some(&racer), &body).status == 201).count()
                    })
                })
                .collect();
            threads.into_iter().map(|thread| thread.join().unwrap()).sum()
        });
        assert_eq!(accepted, 5, "{backend:?}");
        assert_eq!(client.get("/healthz", None).status, 200);
    }
}

#[test]
fn inside_a_project_members_act_on_their_own_jobs_and_coordinators_on_all() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (pi, pi_token) = client.new_user("pi@example.org");
        let (alice, alice_token) = client.new_user("alice@example.org");
        let (bob, bob_token) = client.new_user("bob@example.org");
        let created = client.post(
            "/api/v1/projects",
            Some(ADMIN_TOKEN),
            &json!({ "name": "lab", "gpu_hours": 0, "cpu_hours": 100, "members": [alice, bob], "principal_investigator": pi }),
        );
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["principal_investigator"], pi);
        let project = created.body["id"].as_i64().unwrap();
        let job = submit(
            &client,
            &alice_token,
            json!({ "project": project, "command": ["sleep", "60"], "time_limit_s": 600 }),
        );
        let id = job["id"].as_i64().unwrap();
        let cancel = |token: &str| client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(token), &json!({}));
        let metrics = json!({ "metrics": [{ "key": "x", "value": 1.0 }] });
        // Bob sees Alice's job but may not act on it.
        assert_eq!(client.get(&format!("/api/v1/jobs/{id}"), Some(&bob_token)).status, 200);
        cancel(&bob_token).assert_envelope(403);
        client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&bob_token), &metrics).assert_envelope(403);
        // Only the principal investigator (or an admin) names coordinators.
        let name = |token: &str, user: i64| {
            client.post(&format!("/api/v1/projects/{project}/coordinators"), Some(token), &json!({ "user_id": user }))
        };
        name(&bob_token, bob).assert_envelope(403);
        assert_eq!(name(&pi_token, bob).status, 201);
        let (outsider, _) = client.new_user("outsider@example.org");
        name(&pi_token, outsider).assert_envelope(409);
        // Now Bob coordinates: he may.
        assert_eq!(client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&bob_token), &metrics).status, 200);
        assert_eq!(cancel(&bob_token).status, 200, "{backend:?}");
        wait_state(&client, &alice_token, id, &["cancelled", "completed"]);
    }
}

#[test]
fn an_allocation_runs_only_within_its_period() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(1));
        let client = server.client();
        let (user, token) = client.new_user("dated@example.org");
        let project = |name: &str, from: Option<i64>, until: Option<i64>| {
            let body = json!({ "name": name, "gpu_hours": 0, "cpu_hours": 100, "members": [user], "valid_from": from, "valid_until": until });
            let reply = client.post("/api/v1/projects", Some(ADMIN_TOKEN), &body);
            assert_eq!(reply.status, 201, "{}", reply.text);
            reply.body["id"].as_i64().unwrap()
        };
        let now = grappe_db::now_ms();
        // Expired in 1970; starting next year.
        let old = project("old", Some(0), Some(1000));
        let refused = client.post(
            "/api/v1/jobs",
            Some(&token),
            &json!({ "project": old, "command": ["true"], "time_limit_s": 60 }),
        );
        refused.assert_envelope(409);
        assert!(refused.body["detail"].as_str().unwrap().contains("ended on 1970-01-01"), "{}", refused.text);
        let future = project("future", Some(now + 365 * 86_400_000), None);
        let refused = client.post(
            "/api/v1/jobs",
            Some(&token),
            &json!({ "project": future, "command": ["true"], "time_limit_s": 60 }),
        );
        assert!(refused.body["detail"].as_str().unwrap().contains("starts on"), "{}", refused.text);
        // Ending while a job waits: it does not start after the end.
        let short = project("short", None, Some(now + 3000));
        let blocker =
            submit(&client, &token, json!({ "project": short, "command": ["sleep", "60"], "time_limit_s": 600 }));
        let blocker = blocker["id"].as_i64().unwrap();
        wait_state(&client, &token, blocker, &["running"]);
        let waiting = submit(&client, &token, json!({ "project": short, "command": ["true"], "time_limit_s": 60 }));
        let waiting = waiting["id"].as_i64().unwrap();
        std::thread::sleep(Duration::from_millis(3500));
        client.post(&format!("/api/v1/jobs/{blocker}/cancel"), Some(&token), &json!({}));
        wait_state(&client, &token, blocker, &["cancelled"]);
        let job = eventually(Duration::from_secs(10), "the reason", || {
            let job = client.get(&format!("/api/v1/jobs/{waiting}"), Some(&token)).body;
            (job["reason"] == "AllocationPeriod").then_some(job)
        });
        assert_eq!(job["state"], "pending", "{backend:?}: {job}");
    }
}

#[test]
fn every_answer_carries_security_headers_and_private_ones_are_not_cached() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let get = |path: &str, token: Option<&str>| {
        let mut request = agent.get(&format!("{}{path}", server.base));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        request.call().unwrap()
    };
    let public = get("/api/v1/programme", None);
    assert!(public.headers().get("cache-control").is_none_or(|v| v != "no-store"), "public data may be cached");
    for (path, token) in [
        ("/", None),
        ("/login", None),
        ("/api/v1/programme", None),
        ("/api/v1/me", Some(ADMIN_TOKEN)),
        ("/nowhere", None),
    ] {
        let response = get(path, token);
        let header =
            |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{path}");
        assert!(header("content-security-policy").contains("script-src 'self'"), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        let private = token.is_some() || response.headers().contains_key("set-cookie");
        assert_eq!(header("cache-control") == "no-store", private, "{path}: {}", header("cache-control"));
    }
}

#[test]
fn the_data_directory_and_its_files_are_the_servers_alone() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Backend::Sqlite);
    let data = crate::harness::TempDir::new("private");
    let server =
        Server::start_in(&format!("sqlite://{}/grappe.db?mode=rwc", data.path().display()), &options(1), data.path());
    let client = server.client();
    let (project, token) = project_with_member(&client, "private", 100);
    let job = submit(&client, &token, json!({ "project": project, "command": ["echo", "hi"], "time_limit_s": 60 }));
    wait_state(&client, &token, job["id"].as_i64().unwrap(), &["completed"]);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.path()), 0o700);
    assert_eq!(mode(&data.path().join("grappe.db")), 0o600);
    let job_dir = data.path().join(format!("jobs/{}", job["id"]));
    assert_eq!(mode(&job_dir.join("output.log")), 0o600);
    assert_eq!(mode(&job_dir), 0o700);
    drop(db);
}

#[test]
fn grants_are_within_their_roles_reach_and_over_what_exists() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions::default());
        let client = server.client();
        let (user, _) = client.new_user("granted@example.org");
        let project =
            client.post("/api/v1/projects", Some(ADMIN_TOKEN), &json!({ "name": "p", "gpu_hours": 0, "cpu_hours": 1 }));
        let project = project.body["id"].as_i64().unwrap();
        let grant = |role: &str, scope: &str| {
            client.post(
                &format!("/api/v1/users/{user}/grants"),
                Some(ADMIN_TOKEN),
                &json!({ "role": role, "scope": scope }),
            )
        };
        for (role, scope, status) in [
            ("project_member", "", 422),
            ("project_member", "global", 422),
            ("project_coordinator", "", 422),
            ("admin", &format!("project:{project}") as &str, 422),
            ("project_member", "call:1", 422),
            ("project_member", "project:9999", 404),
            ("juror", "call:1", 404),
            ("project_member", &format!("project:{project}"), 201),
            ("call_manager", "global", 201),
        ] {
            let reply = grant(role, scope);
            assert_eq!(reply.status, status, "{backend:?} {role} {scope}: {}", reply.text);
        }
    }
}

#[test]
fn a_project_not_yours_and_no_project_answer_alike() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    project_with_member(&client, "secret-name", 100);
    let (_, outsider) = client.new_user("guesser@example.org");
    let exists = client.post(
        "/api/v1/jobs",
        Some(&outsider),
        &json!({ "project": "secret-name", "command": ["true"], "time_limit_s": 60 }),
    );
    let missing = client.post(
        "/api/v1/jobs",
        Some(&outsider),
        &json!({ "project": "no-such-name", "command": ["true"], "time_limit_s": 60 }),
    );
    assert_eq!((exists.status, &exists.body), (missing.status, &missing.body));
    assert_eq!(exists.status, 404);
}

#[test]
fn look_alike_names_and_direction_overrides_are_refused() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    let create = |name: &str, email: &str| {
        client.post(
            "/api/v1/users",
            Some(ADMIN_TOKEN),
            &json!({ "name": name, "email": email, "password": "a long enough password" }),
        )
    };
    create("Adminа", "lookalike@example.org").assert_envelope(422);
    create("Léa \u{202E}txt.exe", "rtl@example.org").assert_envelope(422);
    create("Léa", "lеa@example.org").assert_envelope(422);
    let folded = create("Ｌéa", "lea@example.org");
    assert_eq!(folded.status, 201, "{}", folded.text);
    assert_eq!(folded.body["name"], "Léa", "full-width letters are folded");
    assert_eq!(create("Дмитрий", "dmitri@example.org").status, 201, "one script is fine");
}

/// The audit chain is keyed: a database rewritten by someone without the server's key, even with
/// the chain recomputed with plain hashes, does not verify; and its head is published daily.
#[test]
fn a_rewritten_audit_chain_is_caught() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let data = crate::harness::TempDir::new("audit");
        let server = Server::start_in(&db.url, &ServerOptions::default(), data.path());
        let client = server.client();
        for n in 0..3 {
            client.new_user(&format!("audited{n}@example.org"));
        }
        assert_eq!(client.get("/api/v1/audit", Some(ADMIN_TOKEN)).body["chain_ok"], true);
        let anchor = eventually(Duration::from_secs(10), "the day's anchor", || {
            let anchor = client.get("/api/v1/programme", None).body["audit_anchor"].clone();
            (!anchor.is_null()).then_some(anchor)
        });
        assert!(anchor["hash"].as_str().unwrap().len() == 64, "{anchor}");
        // Rewrite event 2 and recompute every hash from there with plain SHA-256, as one who can
        // write the database but has not the server's key would.
        let mut events =
            client.get("/api/v1/audit?limit=1000", Some(ADMIN_TOKEN)).body["items"].as_array().unwrap().clone();
        events.reverse();
        let mut sql = String::new();
        let mut prev_hash = events[0]["hash"].as_str().unwrap().to_owned();
        for event in &mut events[1..] {
            if event["seq"] == 2 {
                event["detail"] = json!("rewritten");
            }
            let hash = plain_hash(event, &prev_hash);
            sql += &format!(
                "UPDATE audit_events SET detail = '{}', prev_hash = '{prev_hash}', hash = '{hash}', keyed = 0 WHERE seq = {};\n",
                event["detail"].as_str().unwrap().replace('\'', "''"),
                event["seq"]
            );
            prev_hash = hash;
        }
        sql += &format!("UPDATE audit_head SET hash = '{prev_hash}' WHERE id = 1;");
        let status = match backend {
            Backend::Sqlite => {
                let path = db.url.trim_start_matches("sqlite://").split('?').next().unwrap();
                std::process::Command::new("sqlite3").arg(path).arg(&sql).status().unwrap()
            }
            Backend::Postgres => std::process::Command::new("psql").args([&db.url, "-q", "-c", &sql]).status().unwrap(),
        };
        assert!(status.success());
        let audit = client.get("/api/v1/audit", Some(ADMIN_TOKEN)).body;
        assert_eq!(
            (audit["chain_ok"].clone(), audit["chain_break_seq"].clone()),
            (json!(false), json!(2)),
            "{backend:?}"
        );
        let verify = std::process::Command::new(env!("CARGO_BIN_EXE_grappe"))
            .args(["audit", "verify", "--database", &db.url, "--data-dir"])
            .arg(data.path())
            .env("GRAPPE_AUDIT_KEY", AUDIT_KEY)
            .output()
            .unwrap();
        assert!(!verify.status.success());
        assert!(
            String::from_utf8_lossy(&verify.stderr).contains("broken at event 2"),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

/// An audit event's hash as the chain computed it before it was keyed: SHA-256 over the
/// length-prefixed fields.
fn plain_hash(event: &serde_json::Value, prev_hash: &str) -> String {
    use sha2::Digest;
    let text = |name: &str| event[name].as_str().map(str::to_owned).unwrap_or_else(|| event[name].to_string());
    let mut hasher = sha2::Sha256::new();
    for field in
        [text("seq"), text("at"), text("actor"), text("action"), text("object"), text("detail"), prev_hash.to_owned()]
    {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kib / 1024.0
}

/// The audit's 300 queued jobs of ~950 KB commands held ~2 GB, and one list answered 279 MB.
/// Commands are now at most 128 KiB, the queue the scheduler keeps holds none, and a list page
/// ends past 4 MiB.
#[test]
fn a_queue_of_long_commands_costs_the_server_little_and_lists_in_bounded_pages() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "verbose", 10_000);
    let blocker =
        submit(&client, &token, json!({ "project": project, "command": ["sleep", "60"], "time_limit_s": 600 }));
    wait_state(&client, &token, blocker["id"].as_i64().unwrap(), &["running"]);
    let too_long = client.post(
        "/api/v1/jobs",
        Some(&token),
        &json!({ "project": project, "command": ["echo", "x".repeat(200_000)], "time_limit_s": 60 }),
    );
    too_long.assert_envelope(422);
    let long = "x".repeat(60_000);
    let queue = |count: usize| {
        for _ in 0..count {
            submit(
                &client,
                &token,
                json!({ "project": project, "command": ["echo", &long, &long], "time_limit_s": 60 }),
            );
        }
        std::thread::sleep(Duration::from_secs(2)); // the scheduler has read the queue
    };
    // The first 150 warm the allocator and the database's page cache up; the next 150 (18 MB of
    // commands) cost 7 to 11 MiB more here (the database's caches), and 22 to 24 MiB when the
    // scheduler kept the commands of its queue.
    queue(150);
    let before = rss_mib(server.child.id());
    queue(150);
    let grown = rss_mib(server.child.id()) - before;
    assert!(grown < 16.0, "18 MB more of queued commands grew the server by {grown:.1} MiB");
    let page = client.get("/api/v1/jobs?limit=500", Some(&token));
    let items = page.body["items"].as_array().unwrap();
    assert!(page.text.len() < 5 * 1024 * 1024 && items.len() < 300, "{} bytes, {} items", page.text.len(), items.len());
    // Paging on: every job, once.
    let mut seen = items.len();
    let mut last = items.last().unwrap()["id"].as_i64().unwrap();
    loop {
        let next = client.get(&format!("/api/v1/jobs?limit=500&before={last}"), Some(&token)).body;
        let items = next["items"].as_array().unwrap();
        let Some(item) = items.last() else { break };
        seen += items.len();
        last = item["id"].as_i64().unwrap();
    }
    assert_eq!(seen, 301);
    eprintln!("18 MB more of queued commands: the server grew by {grown:.1} MiB");
    client.post(&format!("/api/v1/jobs/{}/cancel", blocker["id"]), Some(&token), &json!({}));
}
