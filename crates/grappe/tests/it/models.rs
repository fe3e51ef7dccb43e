//! Models: `grappe train` on a laptop (checkpoints, SIGTERM, SIGKILL, resume to the same bytes)
//! and as a job (preempted mid-training, resumed from its checkpoint).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::cli::text;
use crate::commons::Cli;
use crate::compute::{options, project_with_member, states, submit, wait_log, wait_state};
use crate::harness::{Backend, Server, TempDir, TestDb, eventually};

/// Topics of a small French classification set, with words that give each away among words
/// that do not.
const TOPICS: [(&str, [&str; 6]); 3] = [
    ("conges", ["congé", "congés payés", "vacances", "repos hebdomadaire", "jours fériés", "absence"]),
    ("salaire", ["salaire", "rémunération", "bulletin de paie", "salaire minimum", "prime", "heures supplémentaires"]),
    ("formation", ["formation", "apprentissage", "compétences", "stage", "diplôme", "bilan de compétences"]),
];
const FILLER: [&str; 12] = [
    "le salarié",
    "l'employeur",
    "selon l'accord",
    "dans l'entreprise",
    "au titre du contrat",
    "en application",
    "le comité",
    "pour chaque année",
    "sauf disposition contraire",
    "par écrit",
    "à la demande",
    "du travail",
];

/// Writes `train.csv` (id,text,label), `validation.csv` (id,text,label) and `test.csv` (id,text)
/// of `rows` rows each (the test a third of it), deterministic.
pub fn french_dataset(dir: &Path, rows: usize) {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    std::fs::create_dir_all(dir).unwrap();
    for (name, count, labelled) in [("train", rows, true), ("validation", rows / 3, true), ("test", rows / 3, false)] {
        let mut csv = String::from(if labelled { "id,text,label\n" } else { "id,text\n" });
        for i in 0..count {
            let (label, words) = TOPICS[next(TOPICS.len())];
            let mut parts: Vec<&str> = (0..6).map(|_| FILLER[next(FILLER.len())]).collect();
            for _ in 0..2 {
                parts.insert(next(parts.len()), words[next(words.len())]);
            }
            let sentence = format!("\"{}, dit l'article \"\"{i}\"\".\"", parts.join(" "));
            csv.push_str(&format!("{name}-{i},{sentence}"));
            csv.push_str(&if labelled { format!(",{label}\n") } else { "\n".to_owned() });
        }
        std::fs::write(dir.join(format!("{name}.csv")), csv).unwrap();
    }
}

fn train_command(data: &Path, out: &Path, checkpoints: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grappe"));
    command
        .args(["train", "text-classifier", "--epochs", "3", "--buckets-log2", "16", "--seed", "7"])
        .arg("--train")
        .arg(data.join("train.csv"))
        .arg("--validation")
        .arg(data.join("validation.csv"))
        .arg("--test")
        .arg(data.join("test.csv"))
        .arg("--predictions")
        .arg(out.join("predictions.csv"))
        .arg("--out")
        .arg(out)
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .env_remove("GRAPPE_CHECKPOINT_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Reads a run's output up to a line holding `text`.
fn read_until(child: &mut Child, text: &str) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("no line with {text:?}")).unwrap();
        if line.contains(text) {
            return;
        }
    }
}

#[test]
fn training_stopped_by_sigterm_or_killed_resumes_to_the_same_model() {
    let dir = TempDir::new("train");
    let data = dir.path().join("data");
    french_dataset(&data, 6000);
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    let whole_run = train_command(&data, &whole, &whole.join("checkpoints")).output().unwrap();
    assert!(whole_run.status.success(), "{}", text(&whole_run));
    let log = text(&whole_run);
    assert!(log.contains("GRAPPE_METRIC {\"key\":\"validation_accuracy\",\"step\":3,\"value\":1.0}"), "{log}");
    assert!(log.contains("GRAPPE_METRIC {\"key\":\"loss\",\"step\":1,"), "{log}");

    // SIGTERM before the first epoch ends: a checkpoint, then exit 143.
    let checkpoints = dir.path().join("checkpoints");
    let mut child = train_command(&data, &resumed, &checkpoints).spawn().unwrap();
    read_until(&mut child, "examples, 3 labels");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(143), "{}", text(&stopped));
    assert!(text(&stopped).contains("stopped by SIGTERM; checkpoint saved at epoch 0"), "{}", text(&stopped));
    assert!(!resumed.join("model.bin").exists());

    // SIGKILL after the first epoch's checkpoint.
    let mut child = train_command(&data, &resumed, &checkpoints).spawn().unwrap();
    read_until(&mut child, "epoch 1/3");
    child.kill().unwrap();
    child.wait().unwrap();

    let finished = train_command(&data, &resumed, &checkpoints).output().unwrap();
    assert!(finished.status.success(), "{}", text(&finished));
    assert!(text(&finished).contains("resumed from epoch 1, example 0"), "{}", text(&finished));
    for file in ["model.bin", "labels.txt", "metrics.json", "predictions.csv"] {
        let (a, b) = (std::fs::read(whole.join(file)).unwrap(), std::fs::read(resumed.join(file)).unwrap());
        assert!(a == b, "{file} differs after a resumed run");
    }
    let predictions = std::fs::read_to_string(resumed.join("predictions.csv")).unwrap();
    assert!(predictions.starts_with("id,label\ntest-0,") && predictions.lines().count() == 2001, "{predictions}");
    assert_eq!(std::fs::read_to_string(resumed.join("labels.txt")).unwrap(), "conges\nformation\nsalaire\n");

    // A checkpoint of other data is refused, and so is a damaged one.
    let other = dir.path().join("other");
    french_dataset(&other, 300);
    let refused = train_command(&other, &resumed, &checkpoints).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("refusing to resume from") && text(&refused).contains("another run"),
        "{}",
        text(&refused)
    );
    let checkpoint = checkpoints.join("text-classifier.ckpt");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&checkpoint, bytes).unwrap();
    let torn = train_command(&data, &resumed, &checkpoints).output().unwrap();
    assert!(!torn.status.success());
    assert!(text(&torn).contains("cannot be read") && text(&torn).contains("torn"), "{}", text(&torn));
}

/// The training command of a job reading the dataset `name` from its inputs.
pub fn training_script(name: &str, epochs: u32) -> String {
    format!(
        "exec grappe train text-classifier --train \"$GRAPPE_INPUTS/{name}/train.csv\" \
         --validation \"$GRAPPE_INPUTS/{name}/validation.csv\" --test \"$GRAPPE_INPUTS/{name}/test.csv\" \
         --predictions out/predictions.csv --out out/model --epochs {epochs} --buckets-log2 18"
    )
}

/// A project member who pushed a French dataset `name` of `rows` training rows; (project id,
/// API token).
pub fn project_with_dataset(server: &Server, project: &str, name: &str, rows: usize) -> (i64, String) {
    let client = server.client();
    let (id, token) = project_with_member(&client, project, 100);
    let member = Cli::login(server, &format!("{project}@example.org"));
    let data = TempDir::new("model-data");
    french_dataset(data.path(), rows);
    member.ok(&["dataset", "push", data.path().to_str().unwrap(), "--name", name, "--project", project]);
    (id, token)
}

#[test]
fn training_as_a_job_is_preempted_and_resumes_from_its_checkpoint() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_dataset(&server, "trainers", "lois", 20_000);
    let body = json!({ "project": project, "command": ["sh", "-c", training_script("lois", 20)],
                       "time_limit_s": 600, "memory_mb": 2048, "qos": "long", "inputs": ["lois"] });
    let id = submit(&client, &token, body)["id"].as_i64().unwrap();
    wait_log(&client, &token, id, "epoch 1/20");
    // A job of a higher QoS takes the only CPU: the training stops at a batch boundary, saves its
    // checkpoint, and is requeued.
    let dev = json!({ "project": project, "command": ["true"], "time_limit_s": 60, "qos": "dev" });
    wait_state(&client, &token, submit(&client, &token, dev)["id"].as_i64().unwrap(), &["completed"]);
    let job = eventually(Duration::from_secs(120), "the training to end", || {
        let job = client.get(&format!("/api/v1/jobs/{id}"), Some(&token)).body;
        ["completed", "failed", "cancelled", "timeout"].contains(&job["state"].as_str()?).then_some(job)
    });
    let log = client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&token)).text;
    assert_eq!(job["state"], "completed", "{job}\n{log}");
    assert_eq!(job["restart_count"], 1, "{log}");
    assert_eq!(states(&client, &token, id), ["pending", "running", "preempted", "pending", "running", "completed"]);
    assert!(log.contains("stopped by SIGTERM; checkpoint saved at epoch "), "{log}");
    let resumed = log.split("resumed from epoch ").nth(1).and_then(|rest| rest.split(',').next());
    let resumed: u32 = resumed.and_then(|epoch| epoch.parse().ok()).unwrap_or_else(|| panic!("{log}"));
    assert!((1..20).contains(&resumed), "{log}");
    assert!(log.contains("epoch 20/20: loss "), "{log}");
    assert!(log.contains("validation: accuracy 1.0000"), "{log}");
    let metrics = client.get(&format!("/api/v1/jobs/{id}/metrics"), Some(&token)).body;
    let mut keys: Vec<&str> = metrics["items"].as_array().unwrap().iter().map(|m| m["key"].as_str().unwrap()).collect();
    keys.dedup();
    assert_eq!(keys, ["loss", "validation_accuracy", "validation_f1_macro"], "{metrics}");
    assert_eq!(metrics["points"], 60, "one point of each per epoch, none repeated by the resumed run");
    let model = server.data_dir().join(format!("jobs/{id}/work/out/model"));
    for file in ["model.bin", "labels.txt", "metrics.json"] {
        assert!(model.join(file).is_file(), "{file}");
    }
    registered_with_its_lineage(&server, &token, project, id);
}

/// The training job's output registered as a model: its lineage comes from the server's records.
fn registered_with_its_lineage(server: &Server, token: &str, project: i64, job: i64) {
    let client = server.client();
    let body = json!({ "name": "classifieur-lois", "project": project, "card": "# Classifieur\n\nDes **lois**." });
    assert_eq!(client.post("/api/v1/models", Some(token), &body).status, 201);
    let card = "# Classifieur des articles\n\nEntraîné sur *lois*. <script>alert(1)</script>";
    let body = json!({ "job": job, "path": "out/model", "card": card });
    let reply = client.post("/api/v1/models/classifieur-lois/versions", Some(token), &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    let version = reply.body;
    assert_eq!((version["version"].as_i64(), version["job"].as_i64()), (Some(1), Some(job)), "{version}");
    assert_eq!(version["inputs"][0]["dataset"], "lois", "{version}");
    assert_eq!(version["metrics"]["validation_accuracy"], 1.0, "{version}");
    assert!(version["metrics"]["loss"].as_f64().unwrap() < 0.1, "{version}");
    assert!(version["cpu_ms"].as_i64().unwrap() > 0 && version["gpu_ms"] == 0, "{version}");
    assert_eq!(version["files"], 3, "{version}");
    // The files as the job wrote them.
    let out = server.data_dir().join(format!("jobs/{job}/work/out/model"));
    let labels = client.get("/api/v1/models/classifieur-lois/versions/1/files/labels.txt", Some(token));
    assert_eq!((labels.status, labels.text), (200, std::fs::read_to_string(out.join("labels.txt")).unwrap()));
    let files = client.get("/api/v1/models/classifieur-lois/versions/v1", Some(token)).body["files"].clone();
    let model_bin = files.as_array().unwrap().iter().find(|file| file["path"] == "model.bin").unwrap();
    let written = grappe_store::Digest::of(&std::fs::read(out.join("model.bin")).unwrap()).to_hex();
    assert_eq!(model_bin["digest"], written.as_str());
    // A second version, from the first.
    let body = json!({ "job": job, "path": "out/model", "base": "classifieur-lois@1" });
    let second = client.post("/api/v1/models/classifieur-lois/versions", Some(token), &body);
    assert_eq!((second.status, second.body["base"].as_str()), (201, Some("classifieur-lois@1")), "{}", second.text);
    // The page: lineage with links, compute, metrics, the card rendered without its script.
    let page = client.get("/models/classifieur-lois", Some(token)).text;
    let job_link = format!("href=\"/compute/jobs/{job}\"");
    for needle in [job_link.as_str(), "href=\"/data/lois\"", "href=\"/models/classifieur-lois#version-1\""] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    assert!(page.contains("<h2>Classifieur des articles</h2>") && !page.contains("<script>alert"), "{page}");
    assert!(page.contains("validation_accuracy") && page.contains("CPU"), "{page}");
    // Private: to anyone else it does not exist.
    let (_, outsider) = client.new_user("curious@example.org");
    for path in
        ["/api/v1/models/classifieur-lois", "/api/v1/models/classifieur-lois/versions/1", "/models/classifieur-lois"]
    {
        assert_eq!(client.get(path, Some(&outsider)).status, 404, "{path}");
    }
    assert_eq!(client.get("/api/v1/models", Some(&outsider)).body["items"], json!([]));
    let listed = client.get("/api/v1/models", Some(token)).body;
    assert_eq!(listed["items"][0]["name"], "classifieur-lois", "{listed}");
    // The CLI shows it.
    let member = Cli::login(server, "trainers@example.org");
    let shown = member.ok(&["model", "show", "classifieur-lois"]);
    assert_eq!(shown["versions"][1]["job"], job, "{shown}");
}

#[test]
fn registering_refuses_paths_out_of_the_job_failed_jobs_and_outsiders() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, token) = project_with_member(&client, "registry", 100);
    let (other_project, other) = project_with_member(&client, "registry-other", 100);
    let script = "mkdir -p out/model out/links && echo w > out/model/weights && ln -s / out/escape \
                  && ln -s /etc/passwd out/links/passwd && echo 'GRAPPE_METRIC {\"key\":\"accuracy\",\"value\":0.5,\"step\":1}'";
    let job =
        submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 }));
    let job = wait_state(&client, &token, job["id"].as_i64().unwrap(), &["completed"])["id"].as_i64().unwrap();
    let failing = "mkdir -p out/model && echo w > out/model/weights && exit 3";
    let failed =
        submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", failing], "time_limit_s": 60 }));
    let failed = wait_state(&client, &token, failed["id"].as_i64().unwrap(), &["failed"])["id"].as_i64().unwrap();
    assert_eq!(client.post("/api/v1/models", Some(&token), &json!({ "name": "m", "project": project })).status, 201);
    let register = |token: &str, model: &str, job: i64, path: &str| {
        let reply =
            client.post(&format!("/api/v1/models/{model}/versions"), Some(token), &json!({ "job": job, "path": path }));
        (reply.status, reply.text)
    };
    for path in ["../..", "/etc", "out/../../..", "out/escape", "out/missing", "out/model/weights", ""] {
        let (status, text) = register(&token, "m", job, path);
        assert_eq!(status, 422, "{path}: {text}");
    }
    let (status, text) = register(&token, "m", job, "out/links");
    assert!(status == 422 && text.contains("symbolic links"), "{status} {text}");
    let (status, text) = register(&token, "m", failed, "out/model");
    assert!(status == 409 && text.contains("failed"), "{status} {text}");
    let (status, text) = register(&token, "m", job, "out/model");
    assert_eq!(status, 201, "{text}");
    let version: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((version["metrics"]["accuracy"].as_f64(), version["inputs"].clone()), (Some(0.5), json!([])));
    // Outsiders: the private model does not exist for them, nor does the job of another project.
    assert_eq!(register(&other, "m", job, "out/model").0, 404);
    assert_eq!(
        client.post("/api/v1/models", Some(&other), &json!({ "name": "n", "project": other_project })).status,
        201
    );
    assert_eq!(register(&other, "n", job, "out/model").0, 404);
    assert_eq!(client.post("/api/v1/models", Some(&other), &json!({ "name": "x", "project": project })).status, 403);
    assert_eq!(client.post("/api/v1/models", Some(&token), &json!({ "name": "m", "project": project })).status, 409);
    let long = json!({ "name": "a".repeat(100), "project": project });
    assert_eq!(client.post("/api/v1/models", Some(&token), &long).status, 422, "its store name would be too long");
    // Registration is audited.
    let audit = client.get("/api/v1/audit", Some(crate::harness::ADMIN_TOKEN)).text;
    assert!(audit.contains("model.register") && audit.contains("model.create"), "{audit}");
}
