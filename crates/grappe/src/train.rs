//! `grappe train`: the built-in training recipes as a command, for a laptop or as a job. The
//! recipe itself is `grappe-train` (pure); this reads the CSV files, writes checkpoints
//! atomically after every epoch and when SIGTERM asks it to stop, resumes from the last one,
//! prints `GRAPPE_METRIC` lines for the compute service, and writes the model and its metrics.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use grappe_dataset::CsvRows;
use grappe_lm::{Shape, TrainConfig as LmConfig};
use grappe_train::{Checkpoint, FeatureConfig, Model, SparseVector, TrainConfig, Trainer};
use serde_json::json;

#[derive(Subcommand)]
pub enum TrainCommand {
    /// A text classifier: hashed word and character n-grams, logistic regression, on CPU.
    TextClassifier(TextClassifierFlags),
    /// A small byte-level language model (embeddings of the last tokens, a tanh layer, a softmax
    /// over the 256 bytes and an end), on CPU; `grappe model serve` serves it.
    LanguageModel(LanguageModelFlags),
}

#[derive(Args)]
pub struct LanguageModelFlags {
    /// The training text: UTF-8, each line a document; with `--column`, a CSV file.
    #[arg(long)]
    text: PathBuf,
    /// Read `--text` as CSV with a header (a tabular dataset of the data commons): each row's
    /// field in this column is a document.
    #[arg(long, conflicts_with = "jsonl")]
    column: Option<String>,
    /// Read `--text` as fine-tuning examples, OpenAI's JSONL (chat, prompt and completion, or
    /// text): each example is a document (`grappe_lm::read_examples`).
    #[arg(long)]
    jsonl: bool,
    /// Fine-tune: start from this model (a `model.bin` of an earlier run) instead of fresh
    /// weights; its shape is the run's, `--context`, `--embedding` and `--hidden` are not read.
    #[arg(long)]
    base: Option<PathBuf>,
    /// Where to write `model.bin`, `card.md` and `metrics.json`.
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training text.
    #[arg(long, default_value_t = LmConfig::DEFAULT.epochs)]
    epochs: u32,
    /// Seed of the weights and of each epoch's order: the same seed, the same model.
    #[arg(long, default_value_t = LmConfig::DEFAULT.seed)]
    seed: u64,
    /// Adam's step size.
    #[arg(long, default_value_t = LmConfig::DEFAULT.learning_rate)]
    learning_rate: f32,
    /// Examples per minibatch.
    #[arg(long, default_value_t = LmConfig::DEFAULT.batch)]
    batch: u32,
    /// Tokens read before the one predicted.
    #[arg(long, default_value_t = Shape::DEFAULT.context)]
    context: u32,
    /// Numbers per token embedding.
    #[arg(long, default_value_t = Shape::DEFAULT.embedding)]
    embedding: u32,
    /// Units of the tanh layer.
    #[arg(long, default_value_t = Shape::DEFAULT.hidden)]
    hidden: u32,
    /// The model's name in its card.
    #[arg(long, default_value = "grappe-lm")]
    name: String,
    /// Where checkpoints are kept (as a job: its checkpoint directory, kept across requeues);
    /// without it, `OUT/checkpoints`.
    #[arg(long, env = "GRAPPE_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct TextClassifierFlags {
    /// The training file: CSV with a header.
    #[arg(long)]
    train: PathBuf,
    /// The column holding the text.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// The column holding the label.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// The id column of the test file, copied into the predictions.
    #[arg(long, default_value = "id")]
    id_column: String,
    /// A labelled file scored after every epoch (accuracy, macro F1).
    #[arg(long)]
    validation: Option<PathBuf>,
    /// An unlabelled file to predict, into `--predictions` as CSV `id,label`.
    #[arg(long, requires = "predictions")]
    test: Option<PathBuf>,
    /// Where to write the test file's predictions (CSV `id,label`).
    #[arg(long, requires = "test")]
    predictions: Option<PathBuf>,
    /// Where to write `model.bin`, `labels.txt` and `metrics.json`.
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training file.
    #[arg(long, default_value_t = TrainConfig::DEFAULT.epochs)]
    epochs: u32,
    /// Seed of each epoch's order: the same seed, the same model.
    #[arg(long, default_value_t = TrainConfig::DEFAULT.seed)]
    seed: u64,
    /// AdaGrad's step size.
    #[arg(long, default_value_t = TrainConfig::DEFAULT.learning_rate)]
    learning_rate: f32,
    /// Feature buckets: 2^this.
    #[arg(long, default_value_t = FeatureConfig::DEFAULT.buckets_log2)]
    buckets_log2: u32,
    /// Where checkpoints are kept (as a job: its checkpoint directory, kept across requeues);
    /// without it, `OUT/checkpoints`.
    #[arg(long, env = "GRAPPE_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
}

/// The run stopped on SIGTERM after saving its checkpoint: `grappe` exits with 143 (128 +
/// SIGTERM), as a process killed by it would, so that no script takes it for a finished run.
#[derive(Debug, thiserror::Error)]
#[error("stopped by SIGTERM; checkpoint saved at epoch {epoch}, example {position}")]
pub struct Stopped {
    epoch: u32,
    position: u64,
}

/// Examples between two looks at the stop flag.
const BATCH: usize = 256;
/// The longest CSV record read.
const MAX_RECORD_BYTES: usize = 4 << 20;
const CHECKPOINT_FILE: &str = "text-classifier.ckpt";
const LM_CHECKPOINT_FILE: &str = "language-model.ckpt";

pub fn run(command: TrainCommand) -> anyhow::Result<()> {
    match command {
        TrainCommand::TextClassifier(flags) => text_classifier(flags),
        TrainCommand::LanguageModel(flags) => language_model(flags),
    }
}

fn text_classifier(flags: TextClassifierFlags) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)).context("handling SIGTERM")?;
    let config = TrainConfig {
        features: FeatureConfig { buckets_log2: flags.buckets_log2, ..FeatureConfig::DEFAULT },
        epochs: flags.epochs,
        seed: flags.seed,
        learning_rate: flags.learning_rate,
        ..TrainConfig::DEFAULT
    };
    let rows = read_columns(&flags.train, &[&flags.text_column, &flags.label_column])?;
    let rows: Vec<(String, String)> =
        rows.into_iter().map(|mut row| (std::mem::take(&mut row[0]), row.swap_remove(1))).collect();
    let trainer = Trainer::new(config, &rows).with_context(|| format!("training on {}", flags.train.display()))?;
    drop(rows);
    outln!("{} examples, {} labels", trainer.examples(), trainer.labels().len());
    let validation = match &flags.validation {
        Some(path) => Some(Labelled::read(path, &flags, &trainer)?),
        None => None,
    };
    let checkpoint_dir = flags.checkpoint_dir.clone().unwrap_or_else(|| flags.out.join("checkpoints"));
    let checkpoint_path = checkpoint_dir.join(CHECKPOINT_FILE);
    let resumed = load_checkpoint(&checkpoint_path, Checkpoint::from_bytes, |checkpoint| trainer.resume(checkpoint))?;
    let mut state = match resumed {
        Some(state) => {
            outln!("resumed from epoch {}, example {}", state.epoch, state.position);
            state
        }
        None => trainer.start(),
    };
    while !trainer.is_done(&state) {
        if stop.load(Ordering::Relaxed) {
            save(&checkpoint_path, &state.to_bytes())?;
            return Err(Stopped { epoch: state.epoch, position: state.position }.into());
        }
        let Some(loss) = trainer.step(&mut state, BATCH) else { continue };
        let epoch = state.epoch;
        metric("loss", loss, epoch);
        if let Some(validation) = &validation {
            let scored = validation.score(state.model())?;
            metric("validation_accuracy", scored.accuracy, epoch);
            metric("validation_f1_macro", scored.f1_macro, epoch);
        }
        save(&checkpoint_path, &state.to_bytes())?;
        outln!("epoch {epoch}/{}: loss {loss:.4}, checkpoint saved", flags.epochs);
    }
    write_outputs(&flags, &state, trainer.examples(), validation.as_ref())
}

fn language_model(flags: LanguageModelFlags) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)).context("handling SIGTERM")?;
    let base = match &flags.base {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(grappe_lm::Model::from_bytes(&bytes).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let base_line = base.as_ref().map(|base| {
        let file = flags.base.as_deref().and_then(Path::file_name).map(|name| name.to_string_lossy().into_owned());
        format!(
            "\nFine-tuned: it started from the weights of `{}` (BLAKE3 `{}`).\n",
            file.unwrap_or_default(),
            blake3::hash(&base.to_bytes()).to_hex()
        )
    });
    let shape = match &base {
        Some(base) => base.shape(),
        None => Shape { context: flags.context, embedding: flags.embedding, hidden: flags.hidden },
    };
    let config = LmConfig {
        shape,
        epochs: flags.epochs,
        seed: flags.seed,
        batch: flags.batch,
        learning_rate: flags.learning_rate,
    };
    let context = || format!("reading {}", flags.text.display());
    let size_bytes = std::fs::metadata(&flags.text).with_context(context)?.len();
    if size_bytes > grappe_lm::MAX_TEXT_BYTES as u64 {
        bail!("{} is {size_bytes} bytes, at most {} are read", flags.text.display(), grappe_lm::MAX_TEXT_BYTES);
    }
    let text = match &flags.column {
        None if flags.jsonl => {
            let jsonl = std::fs::read_to_string(&flags.text).with_context(context)?;
            grappe_lm::read_examples(&jsonl).with_context(context)?.text
        }
        None => std::fs::read_to_string(&flags.text).with_context(context)?,
        Some(column) => {
            let rows = read_columns(&flags.text, &[column])?;
            let documents: Vec<String> = rows.into_iter().map(|row| row[0].replace(['\r', '\n'], " ")).collect();
            documents.join("\n")
        }
    };
    let training = || format!("training on {}", flags.text.display());
    let mut trainer = grappe_lm::Trainer::new(config, &text).with_context(training)?;
    if let Some(base) = base {
        trainer = trainer.with_base(base).with_context(training)?;
    }
    outln!("{} examples, {} parameters", trainer.examples(), config.shape.parameters());
    let checkpoint_dir = flags.checkpoint_dir.clone().unwrap_or_else(|| flags.out.join("checkpoints"));
    let checkpoint_path = checkpoint_dir.join(LM_CHECKPOINT_FILE);
    let resumed =
        load_checkpoint(&checkpoint_path, grappe_lm::Checkpoint::from_bytes, |checkpoint| trainer.resume(checkpoint))?;
    let mut state = match resumed {
        Some(state) => {
            outln!("resumed from epoch {}, example {}", state.epoch, state.position);
            state
        }
        None => trainer.start(),
    };
    let started = std::time::Instant::now();
    let mut examples_seen = 0u64;
    while !trainer.is_done(&state) {
        if stop.load(Ordering::Relaxed) {
            save(&checkpoint_path, &state.to_bytes())?;
            return Err(Stopped { epoch: state.epoch, position: state.position }.into());
        }
        let epoch = state.epoch;
        let position = state.position;
        if trainer.step(&mut state).is_none() {
            break;
        }
        examples_seen +=
            if state.epoch > epoch { trainer.examples() as u64 - position } else { state.position - position };
        if state.epoch == epoch {
            continue;
        }
        let loss = state.losses.last().copied().unwrap_or(f64::NAN);
        metric("loss", loss, state.epoch);
        save(&checkpoint_path, &state.to_bytes())?;
        let rate = examples_seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
        outln!("epoch {}/{}: loss {loss:.4}, {rate:.0} tokens/s, checkpoint saved", state.epoch, flags.epochs);
    }
    let model = state.model();
    save(&flags.out.join("model.bin"), &model.to_bytes())?;
    let loss = state.losses.last().copied();
    let metrics = json!({
        "recipe": "language-model",
        "epochs": state.epoch,
        "examples": trainer.examples(),
        "parameters": model.parameters(),
        "train_loss": loss,
        "train_losses": state.losses,
    });
    save(&flags.out.join("metrics.json"), format!("{metrics:#}\n").as_bytes())?;
    let card =
        language_model_card(&flags, &config, &text, trainer.examples(), loss) + base_line.as_deref().unwrap_or("");
    save(&flags.out.join("card.md"), card.as_bytes())?;
    outln!("model written to {}", flags.out.display());
    Ok(())
}

/// The model's card, for the registry (`grappe model register --card OUT/card.md`).
fn language_model_card(
    flags: &LanguageModelFlags,
    config: &LmConfig,
    text: &str,
    examples: usize,
    loss: Option<f64>,
) -> String {
    let shape = &config.shape;
    let file = flags.text.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let loss = loss.map_or_else(|| "-".to_owned(), |loss| format!("{loss:.4}"));
    format!(
        "# {name}\n\n\
         A small byte-level neural language model trained by `grappe train language-model`: the \
         embeddings of the last {context} tokens ({embedding} numbers each), a tanh layer of {hidden}, a \
         softmax over 257 tokens (the 256 byte values of UTF-8 and an end of text). {parameters} \
         parameters. It has learnt the spelling and common words of its text, no more: it is the \
         platform's model for trying the gateway, not an assistant.\n\n\
         - Training text: `{file}`, {bytes} bytes, BLAKE3 `{hash}`, {examples} examples an epoch\n\
         - Epochs {epochs}, seed {seed}, minibatches of {batch}, Adam at {rate}\n\
         - Final training loss: {loss} nats per token\n\n\
         Serve it with `grappe model serve --model model.bin`, in OpenAI's format. A token is a \
         byte of UTF-8: a prompt of `n` bytes is `n` tokens.\n",
        name = flags.name,
        context = shape.context,
        embedding = shape.embedding,
        hidden = shape.hidden,
        parameters = shape.parameters(),
        bytes = text.len(),
        hash = blake3::hash(text.as_bytes()).to_hex(),
        epochs = config.epochs,
        seed = config.seed,
        batch = config.batch,
        rate = config.learning_rate,
    )
}

/// The checkpoint at `path` decoded and checked by `resume`; `None` when there is none.
fn load_checkpoint<C, D, R>(
    path: &Path,
    decode: impl FnOnce(&[u8]) -> Result<C, D>,
    resume: impl FnOnce(C) -> Result<C, R>,
) -> anyhow::Result<Option<C>>
where
    D: std::error::Error + Send + Sync + 'static,
    R: std::error::Error + Send + Sync + 'static,
{
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let checkpoint = decode(&bytes)
        .with_context(|| format!("the checkpoint {} cannot be read: delete it to start over", path.display()))?;
    let state = resume(checkpoint).with_context(|| {
        format!(
            "refusing to resume from {}: delete it, or give another --checkpoint-dir, to start over",
            path.display()
        )
    })?;
    Ok(Some(state))
}

fn write_outputs(
    flags: &TextClassifierFlags,
    state: &Checkpoint,
    examples: usize,
    validation: Option<&Labelled>,
) -> anyhow::Result<()> {
    let model = state.model();
    save(&flags.out.join("model.bin"), &model.to_bytes())?;
    let labels: String = model.labels().iter().map(|label| format!("{label}\n")).collect();
    save(&flags.out.join("labels.txt"), labels.as_bytes())?;
    let mut metrics = json!({
        "recipe": "text-classifier",
        "epochs": state.epoch,
        "examples": examples,
        "labels": model.labels().len(),
        "train_loss": state.losses.last(),
        "train_losses": state.losses,
    });
    if let Some(validation) = validation {
        let scored = validation.score(model)?;
        metrics["validation_accuracy"] = json!(scored.accuracy);
        metrics["validation_f1_macro"] = json!(scored.f1_macro);
        outln!("validation: accuracy {:.4}, macro F1 {:.4}", scored.accuracy, scored.f1_macro);
    }
    save(&flags.out.join("metrics.json"), format!("{metrics:#}\n").as_bytes())?;
    if let (Some(test), Some(predictions)) = (&flags.test, &flags.predictions) {
        let rows = read_columns(test, &[&flags.id_column, &flags.text_column])?;
        let mut out = String::from("id,label\n");
        for row in &rows {
            out.push_str(&format!("{},{}\n", csv_field(&row[0]), csv_field(model.predict(&row[1]))));
        }
        save(predictions, out.as_bytes())?;
        outln!("{} predictions written to {}", rows.len(), predictions.display());
    }
    outln!("model written to {}", flags.out.display());
    Ok(())
}

/// A labelled file, featurized once; labels unknown to the model are numbered after its own.
struct Labelled {
    features: Vec<SparseVector>,
    truth: Vec<usize>,
}

impl Labelled {
    fn read(path: &Path, flags: &TextClassifierFlags, trainer: &Trainer) -> anyhow::Result<Labelled> {
        let labels = trainer.labels();
        let rows = read_columns(path, &[&flags.text_column, &flags.label_column])?;
        let mut unknown: Vec<&str> = Vec::new();
        let truth = rows
            .iter()
            .map(|row| match labels.binary_search(&row[1]) {
                Ok(index) => index,
                Err(_) => {
                    let at = unknown.iter().position(|label| *label == row[1]).unwrap_or_else(|| {
                        unknown.push(&row[1]);
                        unknown.len() - 1
                    });
                    labels.len() + at
                }
            })
            .collect();
        let features = rows.iter().map(|row| trainer.featurize(&row[0])).collect();
        Ok(Labelled { features, truth })
    }

    /// Accuracy and macro F1 of the model on this file, as `grappe score` computes them.
    fn score(&self, model: &Model) -> anyhow::Result<Scores> {
        let label = |index: usize| u32::try_from(index).unwrap_or(u32::MAX);
        let truth: Vec<u32> = self.truth.iter().map(|&t| label(t)).collect();
        let predicted: Vec<u32> = self.features.iter().map(|x| label(model.predict_features(x))).collect();
        Ok(Scores {
            accuracy: grappe_eval::arrays::accuracy(&truth, &predicted)?,
            f1_macro: grappe_eval::arrays::f1_macro(&truth, &predicted)?,
        })
    }
}

/// What a validation file gives after an epoch.
struct Scores {
    accuracy: f64,
    f1_macro: f64,
}

/// The named columns of every row of a CSV file with a header, in the order asked.
fn read_columns(path: &Path, columns: &[&str]) -> anyhow::Result<Vec<Vec<String>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = CsvRows::new(BufReader::new(file), b',', MAX_RECORD_BYTES);
    let context = || format!("reading {}", path.display());
    let Some((_, header)) = rows.next_row().with_context(context)? else { bail!("{} is empty", path.display()) };
    let at: Vec<usize> = columns
        .iter()
        .map(|column| {
            header.iter().position(|name| name == column).with_context(|| {
                format!("{} has no column `{column}` (its columns: {})", path.display(), header.join(", "))
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut out = Vec::new();
    while let Some((line, mut fields)) = rows.next_row().with_context(context)? {
        if fields.len() != header.len() {
            bail!("{} line {line}: {} fields where the header has {}", path.display(), fields.len(), header.len());
        }
        out.push(at.iter().map(|&i| std::mem::take(&mut fields[i])).collect());
    }
    Ok(out)
}

/// A CSV field, quoted when it must be.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn metric(key: &str, value: f64, step: u32) {
    outln!("GRAPPE_METRIC {}", json!({ "key": key, "value": value, "step": step }));
}

/// Writes a file atomically and durably, beside where it goes.
fn save(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let path = &std::path::absolute(path).with_context(|| format!("finding {}", path.display()))?;
    let name = path.file_name().context("a file name")?.to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    grappe_store::write_durably(&temp, path, bytes).with_context(|| format!("writing {}", path.display()))
}
