//! `grappe batch run`: a gateway batch's requests sent one at a time, as the batch's compute job
//! sends them (the server queues that job: `grappe-server`'s `gateway/batches.rs`). Each answer
//! is appended to the output and synced before the next request, so that a run that stops, however
//! it stops, is followed by one that goes on from the first request without a recorded answer.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum BatchCommand {
    /// Send a batch's requests (OpenAI's batch JSONL) to the server's gateway one at a time and
    /// append each answer to the output, after those already there. The server runs this as the
    /// batch's job: it reads the server's address, the job's id and its token from the job's
    /// environment.
    Run {
        /// The batch's number (N of `batch_N`), written into each answer's id.
        #[arg(long)]
        batch: i64,
        /// The endpoint every request goes to (`/v1/chat/completions`).
        #[arg(long)]
        endpoint: String,
        /// The batch's input file.
        #[arg(long)]
        input: PathBuf,
        /// Where the answers go, one JSON line each.
        #[arg(long)]
        output: PathBuf,
    },
}

/// The most bytes of one answer kept.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;
/// How long a request that the gateway answers "try again later" (429, 502, 503, 504) is asked
/// again before its answer is kept as it is: a model's server may be starting. After one such
/// request gave up, the next ones are asked once, until one is answered.
const PATIENCE: Duration = Duration::from_secs(300);
/// How long the server may be out of reach (restarting) before the run gives up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(600);
/// The longest wait between two tries.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// How often progress is told (as metric lines, which the server reads), besides at each
/// power of two answered (soon after a start, and a few times in all): two points each time,
/// well within a job's quota of points over a day.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub fn run(command: BatchCommand) -> anyhow::Result<()> {
    let BatchCommand::Run { batch, endpoint, input, output } = command;
    let var =
        |name: &str| std::env::var(name).with_context(|| format!("{name} is not set: the server sets it in a job"));
    let url = format!("{}{endpoint}", var(grappe_server::kit::state::SERVER_URL_ENV)?);
    let (job, token) = (var("GRAPPE_JOB_ID")?, var(grappe_server::gateway::REPLICA_TOKEN_ENV)?);
    let credential = format!("Bearer {}{job}-{token}", grappe_server::kit::caller::BATCH_JOB_PREFIX);
    let text = std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    let requests: Vec<(String, Value)> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let request: Value = serde_json::from_str(line).with_context(|| format!("request {}", i + 1))?;
            let custom_id = request["custom_id"].as_str().with_context(|| format!("request {}: custom_id", i + 1))?;
            Ok((custom_id.to_owned(), request["body"].clone()))
        })
        .collect::<anyhow::Result<_>>()?;
    let (mut file, mut answered, mut failed) = resume(&output, requests.len())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        // A batch's request may wait behind people's for as long as a request may live.
        .timeout_global(Some(Duration::from_secs(900)))
        .build()
        .into();
    let mut patience = PATIENCE;
    let mut told_at = Instant::now();
    for (n, (custom_id, body)) in requests.iter().enumerate().skip(answered) {
        let (code, answer, gave_up) = ask(&agent, &url, &credential, body, patience)?;
        patience = if gave_up { Duration::ZERO } else { PATIENCE };
        let line = json!({
            "id": format!("batch_req_{batch}_{}", n + 1), "custom_id": custom_id,
            "response": { "status_code": code, "body": answer }, "error": null,
        });
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", output.display()))?;
        answered += 1;
        failed += usize::from(code >= 400);
        if answered.is_power_of_two() || told_at.elapsed() >= PROGRESS_EVERY {
            progress(answered, failed);
            told_at = Instant::now();
        }
    }
    progress(answered, failed);
    Ok(())
}

/// Tells the server how far the batch went (metric lines, read from the job's output).
fn progress(answered: usize, failed: usize) {
    for (key, value) in [("answered", answered), ("failed", failed)] {
        outln!("GRAPPE_METRIC {}", json!({ "key": key, "value": value, "step": answered }));
    }
}

/// The output opened for appending after its whole answers (at most `total`; a line cut short
/// by a run that stopped is cut off), with how many there are and how many of them failed.
fn resume(output: &Path, total: usize) -> anyhow::Result<(std::fs::File, usize, usize)> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(output)
        .with_context(|| format!("opening {}", output.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text).with_context(|| format!("reading {}", output.display()))?;
    let (mut kept, mut answered, mut failed) = (0, 0, 0);
    for line in text.split_inclusive('\n').filter(|line| line.ends_with('\n')).take(total) {
        let answer: Value = serde_json::from_str(line).with_context(|| format!("{}: a line", output.display()))?;
        kept += line.len();
        answered += 1;
        failed += usize::from(answer["response"]["status_code"].as_u64().is_none_or(|code| code >= 400));
    }
    file.set_len(kept as u64)?;
    file.seek(std::io::SeekFrom::End(0))?;
    if answered > 0 {
        eprintln!("{answered} of {total} requests already answered: going on from request {}", answered + 1);
    }
    Ok((file, answered, failed))
}

/// One request's answer: its status and body (JSON, or `null`), and whether it is an answer to
/// try again later that was kept because `patience` ran out.
fn ask(
    agent: &ureq::Agent,
    url: &str,
    credential: &str,
    body: &Value,
    patience: Duration,
) -> anyhow::Result<(u16, Value, bool)> {
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        let sent = agent
            .post(url)
            .header("Authorization", credential)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        let later = match sent {
            Ok(mut response) => {
                let code = response.status().as_u16();
                let again = matches!(code, 429 | 502 | 503 | 504);
                if !again || started.elapsed() + wait > patience {
                    let bytes = response.body_mut().with_config().limit(MAX_ANSWER_BYTES).read_to_vec();
                    let answer =
                        bytes.ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or(Value::Null);
                    return Ok((code, answer, again));
                }
                let asked: Option<u64> =
                    response.headers().get("retry-after").and_then(|value| value.to_str().ok()?.parse().ok());
                asked.map(Duration::from_secs)
            }
            Err(error) => {
                if started.elapsed() > UNREACHABLE_FOR {
                    bail!("the server at {url} has been out of reach for {} s: {error}", UNREACHABLE_FOR.as_secs());
                }
                None
            }
        };
        std::thread::sleep(later.unwrap_or(wait).min(LONGEST_WAIT));
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_goes_on_after_the_whole_answers_and_cuts_off_a_line_cut_short() {
        let dir = std::env::temp_dir().join(format!("grappe-batch-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let output = dir.join("answers.jsonl");
        let ok = r#"{"response": {"status_code": 200}}"#;
        let failed = r#"{"response": {"status_code": 429}}"#;
        std::fs::write(&output, format!("{ok}\n{failed}\n{{\"response\": {{\"sta")).unwrap();
        let (mut file, answered, failures) = resume(&output, 5).unwrap();
        assert_eq!((answered, failures), (2, 1));
        file.write_all(b"next\n").unwrap();
        assert_eq!(std::fs::read_to_string(&output).unwrap(), format!("{ok}\n{failed}\nnext\n"));
        // Never more answers than requests.
        let (_, answered, _) = resume(&output, 1).unwrap();
        assert_eq!(answered, 1);
        assert_eq!(std::fs::read_to_string(&output).unwrap(), format!("{ok}\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
