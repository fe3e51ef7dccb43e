//! Code sent with a job (issue 15): `grappe job submit --workdir DIR` and `POST /api/v1/workdirs`
//! give the job a working directory that starts as a copy of the folder, so `-- sh run.sh` finds
//! `run.sh`; an archive that would write outside it, hold links or pass the bounds is refused,
//! and a job names only an archive its own user sent.

use std::process::Command;

use serde_json::json;

use crate::cli::{grappe, text};
use crate::compute::{options, project_with_member, submit, wait_log, wait_state};
use crate::harness::{Server, TempDir, TestDb, backends};

/// `tar --format=ustar` of `dir`, as a person would make it.
fn gnu_tar(dir: &std::path::Path) -> Vec<u8> {
    let out = Command::new("tar").args(["--format=ustar", "-C"]).arg(dir).args(["-cf", "-", "."]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn upload(client: &crate::harness::Client, token: &str, archive: Vec<u8>) -> crate::harness::Reply {
    client.request("POST", "/api/v1/workdirs", Some(token), Some(("application/x-tar", archive)))
}

#[test]
fn a_job_starts_in_the_folder_it_was_sent_with_and_nothing_else_gets_in() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "coder", 100);
        let (_, stranger) = project_with_member(&client, "stranger", 100);

        let folder = TempDir::new("workdir");
        std::fs::create_dir_all(folder.path().join("data")).unwrap();
        std::fs::write(folder.path().join("data/entrée.txt"), "bonjour\n").unwrap();
        std::fs::write(
            folder.path().join("run.sh"),
            "cat data/entrée.txt; echo task=${GRAPPE_ARRAY_TASK_ID:-none}; pwd\n",
        )
        .unwrap();
        let sent = upload(&client, &token, gnu_tar(folder.path()));
        assert_eq!(sent.status, 201, "{}", sent.text);
        assert_eq!(sent.body["files"], 2);
        let digest = sent.body["workdir"].as_str().unwrap().to_owned();
        assert_eq!(digest.len(), 64);
        // The same archive again: the same digest.
        assert_eq!(upload(&client, &token, gnu_tar(folder.path())).body["workdir"], digest.as_str());

        let job = |extra: serde_json::Value| {
            let mut body =
                json!({ "project": project, "command": ["sh", "run.sh"], "time_limit_s": 60, "workdir": digest });
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let id = submit(&client, &token, job(json!({})))["id"].as_i64().unwrap();
        let log = wait_log(&client, &token, id, "task=none");
        assert!(log.contains("bonjour"), "{log}");
        assert_eq!(wait_state(&client, &token, id, &["completed", "failed"])["state"], "completed");
        // Each task of an array starts from its own copy.
        let array = submit(&client, &token, job(json!({ "array": "0-1" })))["id"].as_i64().unwrap();
        let log = wait_log(&client, &token, array + 1, "task=1");
        assert!(log.contains("bonjour"), "{log}");

        // Another user cannot name it; nor a digest nobody sent, nor a malformed one.
        let theirs = json!({ "project": "stranger", "command": ["true"], "time_limit_s": 60, "workdir": digest });
        client.post("/api/v1/jobs", Some(&stranger), &theirs).assert_envelope(422);
        for bad in ["0".repeat(64), "not-a-digest".to_owned(), format!("../{digest}")] {
            client.post("/api/v1/jobs", Some(&token), &job(json!({ "workdir": bad }))).assert_envelope(422);
        }
        assert_eq!(
            client.request("POST", "/api/v1/workdirs", None, Some(("application/x-tar", vec![0; 1024]))).status,
            401
        );

        // Archives that would write outside, link, or are not archives: refused, named.
        let outside = TempDir::new("outside");
        std::fs::write(outside.path().join("x"), "x").unwrap();
        let absolute = Command::new("tar")
            .args(["--format=ustar", "-P", "-cf", "-"])
            .arg(outside.path().join("x"))
            .output()
            .unwrap()
            .stdout;
        std::os::unix::fs::symlink("/etc/passwd", outside.path().join("passwd")).unwrap();
        let linked = gnu_tar(outside.path());
        for (archive, says) in [
            (absolute, "an absolute path"),
            (linked, "a link"),
            (b"#!/bin/sh\necho not a tar\n".to_vec(), "archive"),
            (Vec::new(), "archive"),
        ] {
            let reply = upload(&client, &token, archive);
            reply.assert_envelope(422);
            assert!(reply.body["detail"].as_str().unwrap().contains(says), "{says}: {}", reply.text);
        }
        // An announced length past the bound: a 413 with its reason, not a reset connection.
        crate::bad_input::assert_oversized_is_refused_at(
            &server.base,
            "/api/v1/workdirs",
            &token,
            "application/x-tar",
            true,
        );
    }
}

#[test]
fn the_cli_sends_a_folder_with_the_job() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (_, token) = project_with_member(&client, "cli-coder", 100);
    let config = TempDir::new("config");
    let env = [("XDG_CONFIG_HOME", config.path().to_str().unwrap()), ("GRAPPE_PASSWORD", "a long enough password")];
    let login = grappe(&["login", "--url", &server.base, "--email", "cli-coder@example.org"], &env, "");
    assert!(login.status.success(), "{}", text(&login));
    let folder = TempDir::new("code");
    std::fs::create_dir_all(folder.path().join("src")).unwrap();
    std::fs::write(folder.path().join("src/train.py"), "print('entraînement', 6 * 7)\n").unwrap();
    let submitted = grappe(
        &[
            "job",
            "submit",
            "--project",
            "cli-coder",
            "--time",
            "5m",
            "--workdir",
            folder.path().to_str().unwrap(),
            "--json",
            "--",
            "python3",
            "src/train.py",
        ],
        &env,
        "",
    );
    assert!(submitted.status.success(), "{}", text(&submitted));
    let job: serde_json::Value = serde_json::from_slice(&submitted.stdout).unwrap();
    let id = job["id"].as_i64().unwrap();
    let log = wait_log(&client, &token, id, "entraînement 42");
    assert!(log.contains("entraînement 42"), "{log}");

    // A link in the folder is said before anything is sent.
    std::os::unix::fs::symlink("/etc/passwd", folder.path().join("passwd")).unwrap();
    let refused = grappe(
        &[
            "job",
            "submit",
            "--project",
            "cli-coder",
            "--time",
            "5m",
            "--workdir",
            folder.path().to_str().unwrap(),
            "--",
            "true",
        ],
        &env,
        "",
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("a link"), "{}", text(&refused));
}
