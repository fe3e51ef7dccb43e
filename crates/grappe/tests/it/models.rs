//! Models: `grappe train` on a laptop (checkpoints, SIGTERM, SIGKILL, resume to the same bytes)
//! and as a job (preempted mid-training, resumed from its checkpoint).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::cli::text;
use crate::harness::TempDir;

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
