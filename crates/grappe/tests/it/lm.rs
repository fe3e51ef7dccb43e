//! The built-in language model end to end: `grappe train language-model` on a French text, then
//! `grappe model serve` answering OpenAI's API, whole and streamed, with exact token counts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{grappe, text};
use crate::harness::TempDir;

/// A short French text, written for this test: each line is a document.
const TEXT: &str = "\
Le salarié a droit chaque année à un congé payé à la charge de l'employeur.
Le congé payé est de deux jours et demi ouvrables par mois de travail effectif.
L'employeur verse au salarié un salaire au moins égal au salaire minimum de croissance.
La durée légale du travail effectif est fixée à trente-cinq heures par semaine civile.
Les heures supplémentaires donnent lieu à une majoration de salaire ou à un repos compensateur.
Le salarié peut se former tout au long de sa vie professionnelle grâce à son compte personnel.
L'employeur prend les mesures nécessaires pour assurer la sécurité et protéger la santé des travailleurs.
Le contrat de travail à durée indéterminée est la forme normale et générale de la relation de travail.
La période d'essai permet à l'employeur d'évaluer les compétences du salarié dans son travail.
Le comité social et économique est consulté sur les questions intéressant l'organisation de l'entreprise.
";

/// A running `grappe model serve`, killed when dropped.
struct Served {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Served {
    fn start(model: &std::path::Path, name: &str) -> Served {
        Served::start_as(model, name, &[], &[]).0
    }

    /// With more arguments and environment: the server, and its stdout's lines after the first.
    fn start_as(
        model: &std::path::Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Served, mpsc::Receiver<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grappe"))
            .args(["model", "serve", "--addr", "127.0.0.1:0", "--name", name, "--concurrency", "1"])
            .args(["--max-tokens-limit", "1000000", "--model"])
            .arg(model)
            .args(args)
            .envs(env.iter().copied())
            .env("GRAPPE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn grappe model serve");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let line = received.recv_timeout(Duration::from_secs(30)).expect("the server says where it listens");
        let prefix = format!("serving {name} on ");
        let base = line.strip_prefix(&prefix).unwrap_or_else(|| panic!("first line: {line}")).to_owned();
        assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"), "{base}");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        (Served { child, base, agent }, received)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut response = self.agent.get(format!("{}{path}", self.base)).call().unwrap();
        (response.status().as_u16(), response.body_mut().read_json().unwrap())
    }

    fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string())
    }

    /// A streamed answer's events, every `data:` line in order.
    fn stream(&self, path: &str, body: &Value) -> Vec<String> {
        let response = self.agent.post(format!("{}{path}", self.base)).send_json(body).unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let text = response.into_body().read_to_string().unwrap();
        text.lines().filter_map(|line| line.strip_prefix("data: ")).map(str::to_owned).collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_openai_error(status: u16, body: &Value, expected_status: u16, param: Option<&str>, code: Option<&str>) {
    assert_eq!(status, expected_status, "{body}");
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert_eq!(error["param"].as_str(), param, "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    assert_eq!(error.as_object().unwrap().len(), 4, "message, type, param, code: {body}");
}

fn usage(body: &Value) -> (u64, u64, u64) {
    let usage = &body["usage"];
    let get = |key: &str| usage[key].as_u64().unwrap_or_else(|| panic!("usage.{key}: {body}"));
    (get("prompt_tokens"), get("completion_tokens"), get("total_tokens"))
}

#[test]
fn a_language_model_is_trained_resumed_and_served_in_openai_format() {
    let dir = TempDir::new("lm");
    let text_path = dir.path().join("code-du-travail.txt");
    std::fs::write(&text_path, TEXT).unwrap();
    let out = dir.path().join("model");
    let train = |epochs: &str, out: &std::path::Path| {
        let args = ["train", "language-model", "--text", text_path.to_str().unwrap(), "--epochs", epochs, "--out"];
        let output = grappe(&[&args[..], &[out.to_str().unwrap()]].concat(), &[], "");
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    let log = train("2", &out);
    assert!(log.contains("epoch 2/2: loss"), "{log}");
    let metrics: Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let losses = metrics["train_losses"].as_array().unwrap();
    assert!(losses[1].as_f64() < losses[0].as_f64(), "{metrics}");
    assert_eq!(metrics["parameters"], 74_273);
    let card = std::fs::read_to_string(out.join("card.md")).unwrap();
    assert!(card.contains("74273 parameters") && card.contains("code-du-travail.txt"), "{card}");
    // Two more epochs resume from the checkpoint, and end as a run of four never stopped.
    let log = train("4", &out);
    assert!(log.contains("resumed from epoch 2") && log.contains("epoch 4/4"), "{log}");
    let whole = dir.path().join("whole");
    train("4", &whole);
    let model_path = out.join("model.bin");
    assert_eq!(std::fs::read(&model_path).unwrap(), std::fs::read(whole.join("model.bin")).unwrap());

    let served = Served::start(&model_path, "grappe-lm-test");
    let (status, models) = served.get("/models");
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "grappe-lm-test");
    assert_eq!(models["data"][0]["object"], "model");

    // Whole: the usage is the prompt's bytes (the contents joined by newlines) and the
    // answer's; the same seed gives the same answer.
    let messages = json!([
        { "role": "system", "content": "Tu réponds en français." },
        { "role": "user", "content": [{ "type": "text", "text": "Le salarié a droit" }] },
    ]);
    let prompt = "Tu réponds en français.\nLe salarié a droit";
    let request =
        json!({ "model": "grappe-lm-test", "messages": messages, "max_tokens": 60, "temperature": 0.8, "seed": 42 });
    let (status, answer) = served.post("/chat/completions", &request);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"), "{answer}");
    let choice = &answer["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap().to_owned();
    let (prompt_tokens, completion_tokens, total_tokens) = usage(&answer);
    assert_eq!(prompt_tokens, prompt.len() as u64);
    assert_eq!(completion_tokens, content.len() as u64, "{answer}");
    assert_eq!(total_tokens, prompt_tokens + completion_tokens);
    match choice["finish_reason"].as_str().unwrap() {
        "length" => assert!(completion_tokens > 56 && completion_tokens <= 60, "{answer}"),
        "stop" => assert!(completion_tokens < 60, "{answer}"),
        other => panic!("finish_reason {other}"),
    }
    let (_, again) = served.post("/chat/completions", &request);
    assert_eq!(again["choices"][0]["message"]["content"], content, "same seed, same answer");
    assert_eq!(again["system_fingerprint"], answer["system_fingerprint"]);
    let greedy = json!({ "model": "grappe-lm-test", "messages": messages, "max_tokens": 40, "temperature": 0 });
    let (_, first) = served.post("/chat/completions", &greedy);
    let (_, second) = served.post("/chat/completions", &greedy);
    assert_eq!(first["choices"][0]["message"], second["choices"][0]["message"], "greedy needs no seed");

    // Streamed: a first chunk with the role, one chunk per character, the end, the usage, then
    // [DONE]; the same text as the whole answer, and as many tokens as its usage says.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let events = served.stream("/chat/completions", &streamed);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|data| serde_json::from_str(data).unwrap()).collect();
    assert!(chunks.iter().all(|chunk| chunk["object"] == "chat.completion.chunk" && chunk["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({ "role": "assistant", "content": "" }));
    let (last, rest) = chunks.split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    let (stream_prompt, stream_completion, stream_total) = usage(last);
    let (end, pieces) = rest[1..].split_last().unwrap();
    assert_eq!(end["choices"][0]["delta"], json!({}));
    assert_eq!(end["choices"][0]["finish_reason"], choice["finish_reason"]);
    let pieces: Vec<&str> =
        pieces.iter().map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(pieces.concat(), content, "streamed and whole answers agree");
    assert_eq!(pieces.len(), content.chars().count(), "one chunk per character");
    assert_eq!(pieces.iter().map(|piece| piece.len() as u64).sum::<u64>(), stream_completion);
    assert_eq!((stream_prompt, stream_completion, stream_total), (prompt_tokens, completion_tokens, total_tokens));
    assert!(rest.iter().all(|chunk| chunk["usage"].is_null()));
    // Without include_usage, no usage chunk.
    streamed["stream_options"] = json!({ "include_usage": false });
    let events = served.stream("/chat/completions", &streamed);
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], choice["finish_reason"]);
    assert!(last.get("usage").is_none(), "{last}");

    // Completions: the prompt as given.
    let request = json!({ "model": "grappe-lm-test", "prompt": "L'employeur", "max_tokens": 30, "seed": 7 });
    let (status, answer) = served.post("/completions", &request);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    let completion = answer["choices"][0]["text"].as_str().unwrap();
    assert_eq!(usage(&answer), (11, completion.len() as u64, 11 + completion.len() as u64));
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let events = served.stream("/completions", &streamed);
    let texts: String = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str::<Value>(data).unwrap()["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, completion);

    // Errors, as OpenAI writes them.
    let (status, body) = served.post_raw("/chat/completions", "{\"model\": ");
    assert_openai_error(status, &body, 400, None, Some("invalid_json"));
    let (status, body) = served.post("/chat/completions", &json!({ "model": "grappe-lm-test" }));
    assert_openai_error(status, &body, 400, Some("messages"), Some("missing_required_parameter"));
    let (status, body) = served.post("/chat/completions", &json!({ "messages": messages }));
    assert_openai_error(status, &body, 400, Some("model"), Some("missing_required_parameter"));
    let (status, body) = served.post("/completions", &json!({ "model": "grappe-lm-test" }));
    assert_openai_error(status, &body, 400, Some("prompt"), Some("missing_required_parameter"));
    let over = json!({ "model": "grappe-lm-test", "messages": messages, "max_tokens": 1_000_001 });
    let (status, body) = served.post("/chat/completions", &over);
    assert_openai_error(status, &body, 400, Some("max_tokens"), Some("invalid_value"));
    let zero = json!({ "model": "grappe-lm-test", "prompt": "x", "max_tokens": 0 });
    let (status, body) = served.post("/completions", &zero);
    assert_openai_error(status, &body, 400, Some("max_tokens"), Some("invalid_value"));
    let hot = json!({ "model": "grappe-lm-test", "prompt": "x", "temperature": 2.5 });
    let (status, body) = served.post("/completions", &hot);
    assert_openai_error(status, &body, 400, Some("temperature"), Some("invalid_value"));
    let typed = json!({ "model": "grappe-lm-test", "prompt": "x", "max_tokens": "12" });
    let (status, body) = served.post("/completions", &typed);
    assert_openai_error(status, &body, 400, Some("max_tokens"), Some("invalid_type"));
    let other = json!({ "model": "gpt-4o", "messages": messages });
    let (status, body) = served.post("/chat/completions", &other);
    assert_openai_error(status, &body, 404, Some("model"), Some("model_not_found"));
    let (status, body) = served.get("/nowhere");
    assert_openai_error(status, &body, 404, None, None);

    // A client that goes away stops its generation: with one generation at a time, a million
    // tokens held the server busy (429) until the client hung up, and no longer after.
    let endless = json!({
        "model": "grappe-lm-test", "prompt": "Le", "max_tokens": 1_000_000, "ignore_eos": true, "stream": true
    });
    let response = served.agent.post(format!("{}/completions", served.base)).send_json(&endless).unwrap();
    let mut reader = BufReader::new(response.into_body().into_reader());
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    let small = json!({ "model": "grappe-lm-test", "prompt": "Le", "max_tokens": 5 });
    let (status, body) = served.post("/completions", &small);
    assert_openai_error(status, &body, 429, None, Some("rate_limit_exceeded"));
    drop(reader);
    // A million tokens take the model far longer than the 10 s waited here.
    let free_again = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = served.post("/completions", &small);
            if status == 200 {
                break;
            }
            assert_eq!(status, 429, "{body}");
            assert!(Instant::now() < deadline, "the generation went on after its client left");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    free_again();
    // The same for a whole answer whose client gives up waiting.
    let impatient: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_millis(500))).build().into();
    let mut whole = endless.clone();
    whole["stream"] = json!(false);
    assert!(impatient.post(format!("{}/completions", served.base)).send_json(&whole).is_err());
    free_again();
}

#[test]
fn a_model_trained_on_a_csv_column_then_damaged_is_refused_by_serve() {
    let dir = TempDir::new("lm-damaged");
    // A tabular dataset of the commons: the column's fields are the documents.
    let csv: String = TEXT.lines().enumerate().map(|(i, line)| format!("{i},\"{line}\",x\n")).collect();
    let text_path = dir.path().join("train.csv");
    std::fs::write(&text_path, format!("id,text,label\n{csv}")).unwrap();
    let out = dir.path().join("model");
    let args = ["train", "language-model", "--text", text_path.to_str().unwrap(), "--column", "text"];
    let output =
        grappe(&[&args[..], &["--epochs", "1", "--hidden", "16", "--out", out.to_str().unwrap()]].concat(), &[], "");
    assert!(output.status.success(), "{}", text(&output));
    // Each line's bytes and its end: as many as the text with its newlines.
    let examples = TEXT.len();
    assert!(text(&output).contains(&format!("{examples} examples")), "{}", text(&output));
    let missing = grappe(&[&args[..4], &["--column", "texte", "--out", out.to_str().unwrap()]].concat(), &[], "");
    assert!(!missing.status.success() && text(&missing).contains("no column `texte`"), "{}", text(&missing));
    let path = out.join("model.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let output = grappe(&["model", "serve", "--model", path.to_str().unwrap()], &[], "");
    assert!(!output.status.success());
    assert!(text(&output).contains("damaged"), "{}", text(&output));
}

#[test]
fn training_stopped_by_sigterm_resumes_to_the_same_model() {
    let dir = TempDir::new("lm-sigterm");
    let text_path = dir.path().join("text.txt");
    std::fs::write(&text_path, TEXT.repeat(40)).unwrap();
    let run = |out: &std::path::Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_grappe"));
        command
            .args(["train", "language-model", "--epochs", "2", "--hidden", "32", "--seed", "3", "--text"])
            .arg(&text_path)
            .arg("--out")
            .arg(out)
            .env_remove("GRAPPE_CHECKPOINT_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    let whole_run = run(&whole).output().unwrap();
    assert!(whole_run.status.success(), "{}", text(&whole_run));

    let mut child = run(&resumed).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.ends_with("examples, 24929 parameters"), "{first}");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(143), "{}", text(&stopped));
    assert!(text(&stopped).contains("stopped by SIGTERM; checkpoint saved at epoch 0"), "{}", text(&stopped));
    assert!(resumed.join("checkpoints/language-model.ckpt").exists());
    assert!(!resumed.join("model.bin").exists());

    let finished = run(&resumed).output().unwrap();
    assert!(finished.status.success(), "{}", text(&finished));
    assert!(text(&finished).contains("resumed from epoch 0, example "), "{}", text(&finished));
    for file in ["model.bin", "metrics.json", "card.md"] {
        assert!(std::fs::read(whole.join(file)).unwrap() == std::fs::read(resumed.join(file)).unwrap(), "{file}");
    }
}

/// As a job (`GRAPPE_REPLICA_TOKEN` set): the server announces the address given, proves it to
/// a nonce without ever sending its token, and generates only for a request that carries the
/// token as bearer: other jobs and users of the node cannot use the model unpaid.
#[test]
fn a_model_served_as_a_job_answers_its_gateway_only() {
    let dir = TempDir::new("lm-job");
    let text_path = dir.path().join("text.txt");
    std::fs::write(&text_path, TEXT).unwrap();
    let out = dir.path().join("model");
    let args = ["train", "language-model", "--text", text_path.to_str().unwrap(), "--epochs", "1", "--hidden", "16"];
    let output = grappe(&[&args[..], &["--out", out.to_str().unwrap()]].concat(), &[], "");
    assert!(output.status.success(), "{}", text(&output));
    let token = "jeton-du-job-0123456789";
    let (served, lines) = Served::start_as(
        &out.join("model.bin"),
        "sur-le-noeud",
        &["--announce-host", "gpu-07"],
        &[("GRAPPE_REPLICA_TOKEN", token)],
    );
    let announced = lines.recv_timeout(Duration::from_secs(10)).expect("the announcement");
    let port = served.base.trim_end_matches("/v1").rsplit(':').next().unwrap().to_owned();
    let expected = json!({ "serve": { "model": "sur-le-noeud", "url": format!("http://gpu-07:{port}/v1") } });
    assert_eq!(announced, format!("GRAPPE_METRIC {expected}"));

    let models = |nonce: Option<&str>| {
        let mut request = served.agent.get(format!("{}/models", served.base));
        if let Some(nonce) = nonce {
            request = request.header("x-grappe-replica", nonce);
        }
        let response = request.call().unwrap();
        assert_eq!(response.status(), 200);
        response.headers().get("x-grappe-replica").map(|value| value.to_str().unwrap().to_owned())
    };
    assert_eq!(models(Some("nonce-1")), Some(grappe_server::gateway::replica_proof(token, "nonce-1")));
    assert_eq!(models(None), None, "no proof without a nonce, and never the token");

    let chat = json!({ "model": "sur-le-noeud", "messages": [{ "role": "user", "content": "Le" }], "max_tokens": 3 });
    let ask = |bearer: Option<&str>| {
        let mut request = served.agent.post(format!("{}/chat/completions", served.base));
        if let Some(bearer) = bearer {
            request = request.header("authorization", &format!("Bearer {bearer}"));
        }
        let mut response = request.send_json(&chat).unwrap();
        (response.status().as_u16(), response.body_mut().read_json::<Value>().unwrap())
    };
    for bearer in [None, Some("jeton-d-un-autre"), Some("")] {
        let (status, body) = ask(bearer);
        assert_openai_error(status, &body, 401, None, Some("invalid_api_key"));
    }
    let (status, body) = ask(Some(token));
    assert_eq!(status, 200, "{body}");
    assert!(usage(&body).1 <= 3, "{body}");
}
