//! The data commons through a server: `grappe dataset push|pull|list|show|diff` over HTTP as a
//! member runs them, what others see of private datasets on every route, resumed pushes and
//! pulls, and bad uploads.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{grappe, text};
use crate::compute::project_with_member;
use crate::harness::{ADMIN_TOKEN, Server, ServerOptions, TempDir, TestDb, backends, eventually};

const PASSWORD: &str = "a long enough password";

/// A card as Hugging Face's, with Grappe's own fields: splits declared, ids checked across them.
pub const CARD: &str = "---
pretty_name: Salutations
license: etalab-2.0
language: [fr]
task_categories: [text-classification]
personal_data: none
id_column: id
configs:
- config_name: default
  data_files:
  - split: train
    path: train.csv
  - split: test
    path: test.csv
---
# Salutations

Des salutations en **français**. <script>alert(1)</script>
";

pub fn write(dir: &Path, path: &str, content: &[u8]) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Bytes that do not compress or repeat, reproducibly.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The CLI logged in as `email`: runs `grappe ARGS --json` and parses what it prints.
pub struct Cli {
    config: TempDir,
}

impl Cli {
    pub fn login(server: &Server, email: &str) -> Cli {
        let cli = Cli { config: TempDir::new("commons-cli") };
        let output = grappe(&["login", "--url", &server.base, "--email", email], &cli.env(), "");
        assert!(output.status.success(), "{}", text(&output));
        cli
    }

    fn env(&self) -> [(&str, &str); 2] {
        [("XDG_CONFIG_HOME", self.config.path().to_str().unwrap()), ("GRAPPE_PASSWORD", PASSWORD)]
    }

    pub(crate) fn run(&self, args: &[&str]) -> (bool, Value, String) {
        let output = grappe(&[args, &["--json"]].concat(), &self.env(), "");
        let parsed = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output.status.success(), parsed, text(&output))
    }

    pub fn ok(&self, args: &[&str]) -> Value {
        let (ok, value, output) = self.run(args);
        assert!(ok, "grappe {args:?}: {output}");
        value
    }
}

/// The digest the store names a chunk by.
fn blake3_of(bytes: &[u8]) -> Vec<u8> {
    grappe_store::Digest::of(bytes).as_bytes().to_vec()
}

fn same_files(a: &Path, b: &Path, paths: &[&str]) {
    for path in paths {
        assert_eq!(std::fs::read(a.join(path)).unwrap(), std::fs::read(b.join(path)).unwrap(), "{path}");
    }
}

#[test]
fn push_pull_show_diff_over_http_and_private_datasets_stay_private() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions::default());
        let client = server.client();
        let (_, member_token) = project_with_member(&client, "commons-a", 1);
        let (_, outsider_token) = project_with_member(&client, "commons-b", 1);
        let member = Cli::login(&server, "commons-a@example.org");

        let work = TempDir::new("commons-src");
        let source = work.path().join("source");
        write(&source, "train.csv", b"id,text\n1,bonjour\n2,salut\n");
        write(&source, "test.csv", b"id,text\n3,au revoir\n");
        write(&source, "raw/big.bin", &noise(3_000_000, 1));
        let card = work.path().join("card.md");
        std::fs::write(&card, CARD).unwrap();
        let (src, card) = (source.to_str().unwrap(), card.to_str().unwrap());
        // The splits come from the card.
        let push = ["dataset", "push", src, "--name", "salutations", "--card", card];

        // A first push sends everything; the dataset is private to its project.
        let first = member.ok(&[&push[..], &["--project", "commons-a"]].concat());
        assert_eq!(first["seq"], 1, "{first}");
        assert_eq!(first["bytes_sent"], first["bytes"], "{first}");
        let v1 = first["version"].as_str().unwrap().to_owned();
        // The same folder again: nothing sent, nothing published.
        let again = member.ok(&push);
        assert_eq!((again["unchanged"].clone(), again["bytes_sent"].clone()), (json!(true), json!(0)), "{again}");
        // One small edit: only the chunk around it travels.
        write(&source, "test.csv", b"id,text\n3,au revoir\n4,adieu\n");
        let second = member.ok(&push);
        assert_eq!(second["seq"], 2, "{second}");
        let total = second["bytes"].as_u64().unwrap();
        let sent = second["bytes_sent"].as_u64().unwrap();
        assert!(sent * 100 < total * 5, "a one-line edit sent {sent} of {total} bytes");

        // Pull v1 back, byte for byte; show and diff read the server's manifests.
        let out = work.path().join("v1");
        let pulled = member.ok(&["dataset", "pull", "salutations@v1", out.to_str().unwrap()]);
        assert_eq!(pulled["version"], v1.as_str());
        std::fs::write(source.join("test.csv"), b"id,text\n3,au revoir\n").unwrap();
        same_files(&source, &out, &["train.csv", "test.csv", "raw/big.bin"]);
        let shown = member.ok(&["dataset", "show", "salutations@latest"]);
        assert_eq!(shown["splits"], json!({ "train": ["train.csv"], "test": ["test.csv"] }));
        // The version's report: each CSV's schema and rows.
        let report = client.get("/api/v1/datasets/salutations/versions/v2", Some(&member_token)).body;
        let train = report["report"]["files"].as_array().unwrap().iter().find(|f| f["path"] == "train.csv").unwrap();
        assert_eq!(train["row_count"], 2, "{report}");
        assert_eq!(train["columns"][1]["name"], "text");

        // Refused before anything is published: an id in two splits, a card that does not
        // parse (every error named), a public dataset without a card.
        write(&source, "test.csv", b"id,text\n1,bonjour again\n");
        let (ok, _, output) = member.run(&push);
        assert!(!ok && output.contains("already in another split"), "{output}");
        std::fs::write(source.join("test.csv"), b"id,text\n3,au revoir\n").unwrap();
        let bad_card = work.path().join("bad.md");
        std::fs::write(&bad_card, "---\nlicense: [1, 2]\npersonal_data: personal\n---\n").unwrap();
        let bad = ["dataset", "push", src, "--name", "salutations", "--card", bad_card.to_str().unwrap()];
        let (ok, _, output) = member.run(&bad);
        assert!(!ok && output.contains("license") && output.contains("legal_basis"), "{output}");
        let public_bare = ["dataset", "push", src, "--name", "sans-fiche", "--project", "commons-a", "--public"];
        let (ok, _, output) = member.run(&public_bare);
        assert!(!ok && output.contains("needs a card"), "{output}");
        assert_eq!(member.ok(&["dataset", "show", "salutations"])["version"], shown["version"], "nothing published");
        let diff = member.ok(&["dataset", "diff", &format!("salutations@{}", &v1[..12]), "salutations"]);
        assert_eq!(diff["changed"], json!(["test.csv"]), "{diff}");
        let listed = member.ok(&["dataset", "list"]);
        assert_eq!(listed["datasets"][0]["name"], "salutations");

        // To anyone outside the project the dataset does not exist, on every route.
        let version_path = format!("/api/v1/datasets/salutations/versions/{v1}");
        for token in [Some(outsider_token.as_str()), None] {
            for path in [
                "/api/v1/datasets/salutations".to_owned(),
                version_path.clone(),
                format!("{version_path}/manifest"),
                format!("{version_path}/files/train.csv"),
            ] {
                client.get(&path, token).assert_envelope(404);
            }
            assert_eq!(client.get("/data/salutations", token).status, 404);
            assert_eq!(client.get("/api/v1/datasets", token).body["items"], json!([]));
            // The catalogue lists the programme's own tables, and no dataset of the commons.
            let catalog = client.get("/api/v1/opendata/catalog", token);
            let listed = catalog.body["dcat:dataset"].as_array().unwrap();
            assert!(
                listed.iter().all(|d| d["dct:identifier"].as_str().unwrap().starts_with("programme-")),
                "{}",
                catalog.text
            );
        }
        for (path, body) in [
            ("/api/v1/datasets/salutations/chunks/missing", json!({ "chunks": [] })),
            ("/api/v1/datasets/salutations/chunks", json!({})),
            ("/api/v1/datasets/salutations/versions", json!({})),
        ] {
            client.post(path, Some(&outsider_token), &body).assert_envelope(404);
        }
        // The member sees it, with its files.
        let file = client.get(&format!("{version_path}/files/train.csv"), Some(&member_token));
        assert_eq!((file.status, file.text.as_str()), (200, "id,text\n1,bonjour\n2,salut\n"));
        let page = client.get("/data/salutations", Some(&member_token));
        assert!(page.status == 200 && page.text.contains("Salutations") && page.text.contains("grappe dataset pull"));
        assert!(page.text.contains("<strong>français</strong>") && !page.text.contains("<script>alert"), "sanitized");

        // A public dataset is listed for everyone and harvested with its files.
        let public = ["dataset", "push", src, "--name", "salutations-ouvertes", "--card", card, "--public"];
        member.ok(&[&public[..], &["--project", "commons-a"]].concat());
        let listed = client.get("/api/v1/datasets?q=ouvertes", None);
        assert_eq!(listed.body["items"][0]["name"], "salutations-ouvertes", "{}", listed.text);
        let catalog = client.get("/api/v1/opendata/catalog", None);
        assert_eq!(catalog.content_type, "application/ld+json");
        let harvested = &catalog.body["dcat:dataset"][0];
        assert_eq!(harvested["dct:identifier"], "salutations-ouvertes", "{}", catalog.text);
        assert_eq!(harvested["dcat:distribution"].as_array().unwrap().len(), 3);
        let description = harvested["dct:description"].as_str().unwrap();
        assert!(description.starts_with("# Salutations") && !description.contains("license:"), "{description}");
        assert_eq!(harvested["dct:license"]["@id"], "https://www.etalab.gouv.fr/licence-ouverte-open-licence/");
        assert_eq!(client.get("/data", None).status, 200);
        // Only its project's members push to it.
        client
            .post(
                "/api/v1/datasets/salutations-ouvertes/chunks/missing",
                Some(&outsider_token),
                &json!({ "chunks": [] }),
            )
            .assert_envelope(403);
    }
}

#[test]
fn an_interrupted_pull_resumes_and_a_wrong_byte_is_never_kept() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    project_with_member(&client, "commons-pull", 1);
    let member = Cli::login(&server, "commons-pull@example.org");
    let work = TempDir::new("commons-pull");
    let source = work.path().join("source");
    let big = noise(4_000_000, 2);
    write(&source, "big.bin", &big);
    write(&source, "empty.txt", b"");
    member.ok(&["dataset", "push", source.to_str().unwrap(), "--name", "gros", "--project", "commons-pull"]);
    let version = member.ok(&["dataset", "show", "gros"]);
    let digest = version["files"][0]["blake3"].as_str().unwrap().to_owned();
    let out = work.path().join("out");
    let partial = out.join(format!("big.bin.{}.grappe-partial", &digest[..16]));

    // What an interrupted pull left: the first half. The pull fetches only the rest.
    write(&out, &format!("big.bin.{}.grappe-partial", &digest[..16]), &big[..2_000_000]);
    let pulled = member.ok(&["dataset", "pull", "gros", out.to_str().unwrap()]);
    assert_eq!(pulled["bytes_downloaded"], 2_000_000, "{pulled}");
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(out.join("empty.txt")).unwrap(), b"");
    assert!(!partial.exists());
    // Pulled again: the file is there with the right hash, nothing travels.
    let kept = member.ok(&["dataset", "pull", "gros", out.to_str().unwrap()]);
    assert_eq!((kept["bytes_downloaded"].clone(), kept["bytes_kept"].clone()), (json!(0), json!(4_000_000)));

    // A partial file with a wrong byte: the pull fails loudly and keeps nothing wrong.
    let fresh = work.path().join("fresh");
    let mut wrong = big[..1_000_000].to_vec();
    wrong[500] ^= 1;
    write(&fresh, &format!("big.bin.{}.grappe-partial", &digest[..16]), &wrong);
    let (ok, _, output) = member.run(&["dataset", "pull", "gros", fresh.to_str().unwrap()]);
    assert!(!ok && output.contains("do not hash"), "{output}");
    assert!(!fresh.join("big.bin").exists());
    let retried = member.ok(&["dataset", "pull", "gros", fresh.to_str().unwrap()]);
    assert_eq!(retried["bytes_downloaded"], 4_000_000);
    assert_eq!(std::fs::read(fresh.join("big.bin")).unwrap(), big);
}

#[test]
fn a_push_killed_midway_resumes_and_the_store_verifies_clean() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    project_with_member(&client, "commons-kill", 1);
    let member = Cli::login(&server, "commons-kill@example.org");
    let work = TempDir::new("commons-kill");
    let source = work.path().join("source");
    for i in 0..8 {
        write(&source, &format!("part-{i}.bin"), &noise(8 << 20, 10 + i));
    }
    let src = source.to_str().unwrap();
    let args = ["dataset", "push", src, "--name", "coupure", "--project", "commons-kill", "--json"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(args)
        .envs(member.env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the server has stored some of it (a pack), long before the end.
    let packs = server.data_dir().join("store").join("packs");
    eventually(Duration::from_secs(60), "a first pack on the server", || {
        std::fs::read_dir(&packs).ok().and_then(|mut entries| entries.next()).map(|_| ())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(client.get("/api/v1/datasets/coupure", Some(ADMIN_TOKEN)).body["versions"] == json!([]));

    let resumed = member.ok(&args[..args.len() - 1]);
    let (sent, total) = (resumed["bytes_sent"].as_u64().unwrap(), resumed["bytes"].as_u64().unwrap());
    assert!(sent < total, "the second push sent everything again: {resumed}");
    assert_eq!(resumed["seq"], 1);
    let store = server.data_dir().join("store");
    let verify = grappe(&["store", "verify", "--store", store.to_str().unwrap(), "--json"], &[], "");
    assert!(verify.status.success(), "{}", text(&verify));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["damage"], json!([]));
}

#[test]
fn bad_uploads_get_clear_errors_and_change_nothing() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let options = ServerOptions {
        env: vec![("GRAPPE_MAX_DATASET_UPLOAD_BYTES".into(), "1000000".into())],
        ..ServerOptions::default()
    };
    let server = Server::start(&db.url, &options);
    let client = server.client();
    let (project, member_token) = project_with_member(&client, "commons-bad", 1);
    let token = Some(member_token.as_str());
    let created = client.post("/api/v1/datasets", token, &json!({ "name": "mauvais", "project": project }));
    assert_eq!(created.status, 201, "{}", created.text);
    client.post("/api/v1/datasets", token, &json!({ "name": "mauvais", "project": project })).assert_envelope(409);
    client.post("/api/v1/datasets", token, &json!({ "name": "../etc", "project": project })).assert_envelope(422);
    client.post("/api/v1/datasets", token, &json!({ "name": "sans-projet" })).assert_envelope(422);

    let post = |path: &str, body: Vec<u8>| {
        client.request(
            "POST",
            &format!("/api/v1/datasets/mauvais/{path}"),
            token,
            Some(("application/octet-stream", body)),
        )
    };
    // A chunk whose bytes do not hash to the digest it claims.
    let mut frame = vec![7u8; 32];
    frame.extend_from_slice(&3u32.to_le_bytes());
    frame.extend_from_slice(b"abc");
    post("chunks", frame.clone()).assert_envelope(400);
    // A frame cut short, and a body over the limit.
    post("chunks", frame[..20].to_vec()).assert_envelope(400);
    for announce_length in [true, false] {
        let (base, path, kind) = (&server.base, "/api/v1/datasets/mauvais/chunks", "application/octet-stream");
        crate::bad_input::assert_oversized_is_refused_at(base, path, &member_token, kind, announce_length);
    }
    // Manifests: a path out of the dataset, garbage, a chunk the server never got.
    let chunk = "a".repeat(64);
    let traversal =
        format!("grappe-version 1\nfiles 1\nfile 3 {chunk} text/plain 1 ../secret\n{chunk} 3\nsplits 0\ncard 0\n");
    post("versions", traversal.into_bytes()).assert_envelope(422);
    post("versions", b"not a manifest".to_vec()).assert_envelope(422);
    let missing =
        format!("grappe-version 1\nfiles 1\nfile 3 {chunk} text/plain 1 a.txt\n{chunk} 3\nsplits 0\ncard 0\n");
    post("versions", missing.into_bytes()).assert_envelope(409);
    let asked = client.post("/api/v1/datasets/mauvais/chunks/missing", token, &json!({ "chunks": ["zz"] }));
    asked.assert_envelope(422);
    // Nothing was published.
    let dataset = client.get("/api/v1/datasets/mauvais", token);
    assert_eq!(dataset.body["versions"], json!([]), "{}", dataset.text);
    // A project without storage holds no dataset: its uploads and commits are refused.
    let (user, bare_token) = client.new_user("commons-bare@example.org");
    let bare = json!({ "name": "commons-bare", "gpu_hours": 1, "cpu_hours": 1, "members": [user] });
    let bare_project = client.post("/api/v1/projects", Some(ADMIN_TOKEN), &bare).body["id"].as_i64().unwrap();
    let bare_token = Some(bare_token.as_str());
    assert_eq!(
        client.post("/api/v1/datasets", bare_token, &json!({ "name": "nu", "project": bare_project })).status,
        201
    );
    let frame = {
        let bytes = b"abc";
        let mut frame = blake3_of(bytes);
        frame.extend_from_slice(&3u32.to_le_bytes());
        frame.extend_from_slice(bytes);
        frame
    };
    let refused =
        client.request("POST", "/api/v1/datasets/nu/chunks", bare_token, Some(("application/octet-stream", frame)));
    refused.assert_envelope(409);
    assert!(refused.text.contains("storage allocation"), "{}", refused.text);
    // The dataset the refused push made says why it has nothing to show, and how to fill it.
    let empty = client.get("/api/v1/datasets/nu/versions/latest", bare_token);
    empty.assert_envelope(404);
    assert!(empty.text.contains("no version yet") && empty.text.contains("grappe dataset push"), "{}", empty.text);
    // Unknown versions are 404s.
    client.get("/api/v1/datasets/mauvais/versions/latest", token).assert_envelope(404);
    client.get("/api/v1/datasets/mauvais/versions/v7", token).assert_envelope(404);
}

#[test]
fn jobs_read_their_declared_inputs_read_only_and_only_what_they_may() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let mut options = crate::compute::options(2);
    // A cache that holds less than one version: each new one pushes out those no job reads.
    options.env.push(("GRAPPE_INPUTS_CACHE_BYTES".into(), "1".into()));
    let server = Server::start(&db.url, &options);
    let client = server.client();
    let (project, token) = project_with_member(&client, "commons-job", 10);
    let (outsider_project, outsider) = project_with_member(&client, "commons-job-b", 10);
    let member = Cli::login(&server, "commons-job@example.org");
    let work = TempDir::new("commons-job");
    let source = work.path().join("source");
    write(&source, "train.csv", b"id,text\n1,bonjour\n");
    let src = source.to_str().unwrap();
    member.ok(&["dataset", "push", src, "--name", "lecture", "--project", "commons-job"]);
    write(&source, "train.csv", b"id,text\n1,bonsoir\n");
    let second = member.ok(&["dataset", "push", src, "--name", "lecture"]);

    // Pinned to v1 although v2 exists; the job reads it and cannot write there.
    let script = "cat \"$GRAPPE_INPUTS/lecture/train.csv\"; \
                  if touch \"$GRAPPE_INPUTS/lecture/new\" 2>/dev/null; then echo WRITABLE; else echo READ-ONLY; fi";
    let body = json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60,
                       "inputs": ["lecture@v1"] });
    let job = crate::compute::submit(&client, &token, body);
    assert_eq!(job["inputs"][0]["dataset"], "lecture");
    assert_ne!(job["inputs"][0]["version"], second["version"], "v1, not the latest");
    let id = job["id"].as_i64().unwrap();
    let done = crate::compute::wait_state(&client, &token, id, &["completed", "failed"]);
    let log = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&token)).text;
    assert_eq!(done["state"], "completed", "{done} {log}");
    assert!(log.contains("1,bonjour") && log.contains("READ-ONLY"), "{log}");
    let page = client.get(&format!("/compute/jobs/{id}"), Some(&token));
    assert!(page.text.contains("href=\"/data/lecture\""), "the job's page names its inputs");
    let cached = |dir: &Path| -> Vec<String> {
        let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names.filter(|name| !name.starts_with('.')).collect()
    };
    let cache = server.data_dir().join("inputs");
    assert_eq!(cached(&cache), [job["inputs"][0]["version"].as_str().unwrap()]);
    // The latest version, in a cache too small for two: v1, read by no running job, leaves it.
    let body = json!({ "project": project, "command": ["cat", "/grappe/inputs/lecture/train.csv"],
                       "time_limit_s": 60, "inputs": ["lecture"] });
    let latest = crate::compute::submit(&client, &token, body)["id"].as_i64().unwrap();
    crate::compute::wait_state(&client, &token, latest, &["completed"]);
    assert_eq!(client.get(&format!("/api/v1/jobs/{latest}/logs"), Some(&token)).text, "id,text\n1,bonsoir\n");
    assert_eq!(cached(&cache), [second["version"].as_str().unwrap()]);

    // Another project's member cannot read the private dataset through a job.
    let body = json!({ "project": outsider_project, "command": ["true"], "time_limit_s": 60, "inputs": ["lecture"] });
    client.post("/api/v1/jobs", Some(&outsider), &body).assert_envelope(422);
    // Unknown versions and repeated inputs are refused.
    for inputs in [json!(["lecture@v9"]), json!(["lecture", "lecture@v1"]), json!(["absent"])] {
        let body = json!({ "project": project, "command": ["true"], "time_limit_s": 60, "inputs": inputs });
        client.post("/api/v1/jobs", Some(&token), &body).assert_envelope(422);
    }
}

/// A fresh prefix of the S3 test server's bucket, or `None` when S3 is explicitly skipped.
fn s3_store(label: &str) -> Option<String> {
    match std::env::var("GRAPPE_TEST_S3") {
        Ok(spec) if !spec.is_empty() => {
            let (base, query) = spec.split_once('?').unwrap_or((&spec, ""));
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            Some(format!("{base}/{label}-{}-{nanos}?{query}", std::process::id()))
        }
        _ if std::env::var("GRAPPE_TEST_SKIP_S3").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: the server on S3 (GRAPPE_TEST_SKIP_S3=1)");
            None
        }
        _ => panic!("GRAPPE_TEST_S3 is not set: run the tests with scripts/test.sh, or set GRAPPE_TEST_SKIP_S3=1"),
    }
}

#[test]
fn a_server_on_s3_takes_pushes_serves_pulls_and_its_store_verifies() {
    let Some(store) = s3_store("server") else { return };
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let mut options = crate::compute::options(2);
    options.args = vec!["--store".into(), store.clone()];
    let server = Server::start(&db.url, &options);
    let (_, member_token) = project_with_member(&server.client(), "commons-s3", 1);
    let member = Cli::login(&server, "commons-s3@example.org");
    let work = TempDir::new("commons-s3");
    let source = work.path().join("source");
    write(&source, "a.bin", &noise(2_000_000, 5));
    write(&source, "notes/b.txt", b"sur S3\n");
    let src = source.to_str().unwrap();
    let first = member.ok(&["dataset", "push", src, "--name", "nuage", "--project", "commons-s3"]);
    write(&source, "notes/b.txt", b"sur S3, encore\n");
    let second = member.ok(&["dataset", "push", src, "--name", "nuage"]);
    assert!(second["bytes_sent"].as_u64().unwrap() < 100_000, "{second}");
    let out = work.path().join("out");
    member.ok(&["dataset", "pull", "nuage@v1", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("a.bin")).unwrap(), noise(2_000_000, 5));
    assert_eq!(std::fs::read(out.join("notes/b.txt")).unwrap(), b"sur S3\n");
    assert_eq!(first["seq"], 1);
    let verify = grappe(&["store", "verify", "--store", &store, "--json"], &[], "");
    assert!(verify.status.success(), "{}", text(&verify));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!((report["versions"].clone(), report["damage"].clone()), (json!(2), json!([])), "{report}");
    // A job reads the version from the S3 store, read-only.
    let project = server.client().get("/api/v1/projects", Some(&member_token)).body["items"][0]["id"].clone();
    let body = json!({ "project": project, "command": ["cat", "/grappe/inputs/nuage/notes/b.txt"],
                       "time_limit_s": 60, "inputs": ["nuage@v1"] });
    let id = crate::compute::submit(&server.client(), &member_token, body)["id"].as_i64().unwrap();
    let done = crate::compute::wait_state(&server.client(), &member_token, id, &["completed", "failed"]);
    let log = server.client().get(&format!("/api/v1/jobs/{id}/logs"), Some(&member_token)).text;
    assert_eq!((done["state"].as_str(), log.as_str()), (Some("completed"), "sur S3\n"), "{done}");
}

#[test]
fn a_flipped_byte_in_the_servers_store_fails_the_pull_loudly_and_keeps_nothing() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    project_with_member(&server.client(), "commons-flip", 1);
    let member = Cli::login(&server, "commons-flip@example.org");
    let work = TempDir::new("commons-flip");
    let source = work.path().join("source");
    write(&source, "data.bin", &noise(1_000_000, 9));
    member.ok(&["dataset", "push", source.to_str().unwrap(), "--name", "abime", "--project", "commons-flip"]);
    let packs = server.data_dir().join("store").join("packs");
    let pack = std::fs::read_dir(&packs).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let out = work.path().join("out");
    let (ok, _, output) = member.run(&["dataset", "pull", "abime", out.to_str().unwrap()]);
    assert!(!ok && output.contains("the server stopped sending"), "a pull of damaged bytes must fail: {output}");
    assert!(!out.join("data.bin").exists(), "nothing wrong is kept");
    let verify = grappe(&["store", "verify", "--store", server.data_dir().join("store").to_str().unwrap()], &[], "");
    assert!(!verify.status.success() && text(&verify).contains("DAMAGED"), "{}", text(&verify));
}

/// The store keeps one copy of equal bytes, but a project learns nothing of another's private
/// data from it: the server asks it for the bytes as if it had none, and a version that names
/// chunks its project never sent is refused. Public bytes are everyone's to reuse.
#[test]
fn deduplication_tells_no_project_what_another_keeps_private() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    let (_, a_token) = project_with_member(&client, "commons-dedup-a", 1);
    let (b_project, b_token) = project_with_member(&client, "commons-dedup-b", 1);
    let a = Cli::login(&server, "commons-dedup-a@example.org");
    let b = Cli::login(&server, "commons-dedup-b@example.org");
    let work = TempDir::new("commons-dedup");
    let secret = work.path().join("secret");
    write(&secret, "secret.bin", &noise(500_000, 11));
    let pushed =
        a.ok(&["dataset", "push", secret.to_str().unwrap(), "--name", "secret-a", "--project", "commons-dedup-a"]);
    let version = pushed["version"].as_str().unwrap();

    // B holds the same bytes: it is asked for all of them, as if the server had none.
    let same =
        b.ok(&["dataset", "push", secret.to_str().unwrap(), "--name", "copie-b", "--project", "commons-dedup-b"]);
    assert_eq!(same["bytes_sent"], same["bytes"], "{same}");

    // Having sent the bytes, B may name them: A's very manifest commits for B.
    let manifest = client.get(&format!("/api/v1/datasets/secret-a/versions/{version}/manifest"), Some(&a_token));
    assert_eq!(manifest.status, 200);
    let body = json!({ "name": "vol-b", "project": b_project });
    assert_eq!(client.post("/api/v1/datasets", Some(&b_token), &body).status, 201);
    let stolen = client.request(
        "POST",
        "/api/v1/datasets/vol-b/versions",
        Some(&b_token),
        Some(("application/octet-stream", manifest.text.into_bytes())),
    );
    assert_eq!(stolen.status, 201, "{}", stolen.text);
    // C never held them: naming A's chunks is refused, whatever it learnt of their digests, and
    // asking about one of them gets "missing".
    let (c_project, c_token) = project_with_member(&client, "commons-dedup-c", 1);
    let body = json!({ "name": "vol-c", "project": c_project });
    assert_eq!(client.post("/api/v1/datasets", Some(&c_token), &body).status, 201);
    let manifest = client.get(&format!("/api/v1/datasets/secret-a/versions/{version}/manifest"), Some(&a_token));
    let refused = client.request(
        "POST",
        "/api/v1/datasets/vol-c/versions",
        Some(&c_token),
        Some(("application/octet-stream", manifest.text.into_bytes())),
    );
    refused.assert_envelope(409);
    assert!(refused.text.contains("never sent for this project"), "{}", refused.text);
    let asked = client.post(
        "/api/v1/datasets/vol-c/chunks/missing",
        Some(&c_token),
        &json!({ "chunks": [same_first_chunk(&client, &a_token, version)] }),
    );
    assert_eq!(asked.body["missing"].as_array().unwrap().len(), 1, "{}", asked.text);

    // Public bytes: anyone reuses them without sending.
    let open = work.path().join("open");
    write(&open, "open.bin", &noise(500_000, 12));
    std::fs::write(work.path().join("card.md"), CARD.replace("configs:", "x-configs:")).unwrap();
    let card = work.path().join("card.md");
    let mut args =
        vec!["dataset", "push", open.to_str().unwrap(), "--name", "ouvert-a", "--project", "commons-dedup-a"];
    args.extend(["--public", "--card", card.to_str().unwrap()]);
    a.ok(&args);
    let reused =
        b.ok(&["dataset", "push", open.to_str().unwrap(), "--name", "ouvert-b", "--project", "commons-dedup-b"]);
    assert_eq!(reused["bytes_sent"], 0, "{reused}");
}

/// The digest of the first chunk of a version's first file, from its canonical manifest.
fn same_first_chunk(client: &crate::harness::Client, token: &str, version: &str) -> String {
    let manifest = client.get(&format!("/api/v1/datasets/secret-a/versions/{version}/manifest"), Some(token)).text;
    // The canonical encoding: `file ...` then one `DIGEST LENGTH` line per chunk.
    manifest.lines().nth(3).unwrap().split(' ').next().unwrap().to_owned()
}

/// A TCP relay to `target` that stops passing bytes while it is held: a store that answers as
/// slowly as one far away, for as long as a test needs.
struct Relay {
    port: u16,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(target: std::net::SocketAddr) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::sync::Arc::new(AtomicBool::new(false));
        let relay_held = held.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(target) else { continue };
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), upstream.try_clone().unwrap()), (upstream, client)]
                {
                    let held = relay_held.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buffer = [0u8; 64 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buffer) {
                            while held.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay { port, held }
    }

    fn hold(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::Relaxed);
    }
}

/// On Slurm, a job's inputs are prepared beside the scheduler's passes: while one job's dataset
/// comes slowly from the store, another job is handed over and runs, and a job cancelled while
/// its inputs were prepared never reaches Slurm.
#[test]
fn on_slurm_a_job_whose_inputs_come_slowly_holds_up_no_other_job() {
    if !crate::compute::slurm_available() {
        return;
    }
    let Some(store) = s3_store("slow-inputs") else { return };
    // The same bucket, through a relay that can be held.
    let endpoint = store.split("endpoint=http://").nth(1).unwrap();
    let target: std::net::SocketAddr = endpoint.split(['&', '/']).next().unwrap().parse().unwrap();
    let relay = Relay::start(target);
    let store = store.replace(&target.to_string(), &format!("127.0.0.1:{}", relay.port));
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let mut options = crate::compute::slurm_options();
    options.args = vec!["--store".into(), store];
    let server = Server::start(&db.url, &options);
    let client = server.client();
    let (project, token) = project_with_member(&client, "commons-slow", 10);
    let member = Cli::login(&server, "commons-slow@example.org");
    let work = TempDir::new("commons-slow");
    let source = work.path().join("source");
    write(&source, "notes.txt", b"venu lentement\n");
    member.ok(&["dataset", "push", source.to_str().unwrap(), "--name", "lent", "--project", "commons-slow"]);

    relay.hold(true);
    let job = |script: &str, inputs: Value| {
        let body = json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60, "inputs": inputs });
        crate::compute::submit(&client, &token, body)["id"].as_i64().unwrap()
    };
    let reads = "cat \"$GRAPPE_INPUTS/lent/notes.txt\"";
    let slow = job(reads, json!(["lent@v1"]));
    let cancelled = job(reads, json!(["lent@v1"]));
    let quick = job("echo vite", json!([]));
    let done = crate::compute::wait_state(&client, &token, quick, &["completed", "failed"]);
    assert_eq!(done["state"], "completed", "a job without inputs runs while another's come: {done}");
    let waiting = client.get(&format!("/api/v1/jobs/{slow}"), Some(&token)).body;
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert_eq!(client.post(&format!("/api/v1/jobs/{cancelled}/cancel"), Some(&token), &json!({})).status, 200);
    relay.hold(false);

    let done = crate::compute::wait_state(&client, &token, slow, &["completed", "failed"]);
    let log = client.get(&format!("/api/v1/jobs/{slow}/logs"), Some(&token)).text;
    assert_eq!((done["state"].as_str(), log.as_str()), (Some("completed"), "venu lentement\n"), "{done}");
    // The cancelled job's hand-over saw the cancellation once its inputs were there.
    std::thread::sleep(Duration::from_secs(2));
    let events = client.get(&format!("/api/v1/jobs/{cancelled}/events"), Some(&token)).text;
    assert!(!events.contains("submitted to Slurm"), "{events}");
    let job = client.get(&format!("/api/v1/jobs/{cancelled}"), Some(&token)).body;
    assert_eq!(job["state"], "cancelled", "{job}");
}
