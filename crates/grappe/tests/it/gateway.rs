//! The AI-as-a-Service gateway against a model server of the test's own on loopback, which
//! speaks OpenAI's format: keys, the OpenAI wire format, streams, budgets that concurrent
//! requests cannot overspend, limits that two server processes share, reservations that
//! failures and disconnects never leave behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Backend, Client, Server, ServerOptions, TestDb, backends, eventually};

/// A model server: `/v1/chat/completions` (whole or streamed, a chunk per token),
/// `/v1/embeddings`. It answers `min(max_tokens, 5)` tokens, or `max_tokens` when the prompt
/// says FULL; waits 20 ms a token when it says SLOW; breaks off after two chunks when it says
/// BREAK. Each answer closes its connection.
pub struct Upstream {
    pub base: String,
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = answer(stream);
                });
            }
        });
        Upstream { base, requests }
    }
}

fn answer(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = request.to_string();
    let mut out = stream;
    if path.ends_with("/embeddings") {
        let answer = json!({ "object": "list", "data": [{ "object": "embedding", "index": 0, "embedding": [0.1, 0.2] }], "model": request["model"], "usage": { "prompt_tokens": 4, "total_tokens": 4 } });
        return write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{answer}");
    }
    let max = request["max_tokens"].as_i64().unwrap_or(16);
    let tokens = if text.contains("FULL") { max } else { max.min(5) };
    let usage = json!({ "prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens });
    if request["stream"] != json!(true) {
        if text.contains("SLOW") {
            std::thread::sleep(Duration::from_millis(20) * tokens as u32);
        }
        let answer = json!({ "id": "chatcmpl-1", "object": "chat.completion", "model": request["model"], "choices": [{ "index": 0, "message": { "role": "assistant", "content": "bonjour" }, "finish_reason": "stop" }], "usage": usage });
        return write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{answer}");
    }
    // Chunked, as model servers stream: a connection closed before the last chunk is an error.
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    let mut event = |text: String| -> std::io::Result<()> {
        write!(out, "{:x}\r\n{text}\r\n", text.len())?;
        out.flush()
    };
    if text.contains("ENDLESS") {
        // One event that never ends.
        let endless = "m".repeat(64 * 1024);
        for _ in 0..64 {
            event(endless.clone())?;
        }
        return Ok(());
    }
    for i in 0..tokens {
        if text.contains("SLOW") {
            std::thread::sleep(Duration::from_millis(20));
        }
        if text.contains("BREAK") && i == 2 {
            return Ok(());
        }
        let chunk = json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{ "index": 0, "delta": { "content": "m" } }] });
        event(format!("data: {chunk}\n\n"))?;
    }
    if request["stream_options"]["include_usage"] == json!(true) {
        event(format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage })
        ))?;
    }
    event("data: [DONE]\n\n".to_owned())?;
    write!(out, "0\r\n\r\n")
}

/// A project of `gpu_hours`, a member with a key to it; (project, member token, key).
fn project_with_key(client: &Client, name: &str, gpu_hours: i64, key_body: Value) -> (i64, String, String) {
    let project = client.post(
        "/api/v1/projects",
        Some(ADMIN_TOKEN),
        &json!({ "name": name, "gpu_hours": gpu_hours, "cpu_hours": 10, "storage_gb": 1 }),
    );
    assert_eq!(project.status, 201, "{}", project.text);
    let id = project.body["id"].as_i64().unwrap();
    let (user, token) = client.new_user(&format!("{name}@example.org"));
    let grant = json!({ "role": "project_member", "scope": format!("project:{id}") });
    assert_eq!(client.post(&format!("/api/v1/users/{user}/grants"), Some(ADMIN_TOKEN), &grant).status, 201);
    let key = client.post(&format!("/api/v1/projects/{id}/keys"), Some(&token), &key_body);
    assert_eq!(key.status, 201, "{}", key.text);
    assert!(key.body["key"].as_str().unwrap().starts_with("gsk-"));
    (id, token, key.body["key"].as_str().unwrap().to_owned())
}

pub fn register(client: &Client, upstream: &Upstream, name: &str, project: Option<i64>, prices: (i64, i64)) {
    let model = json!({ "name": name, "upstream": upstream.base, "project": project, "input_gpu_ms_per_1k": prices.0, "output_gpu_ms_per_1k": prices.1, "max_output_tokens": 100 });
    let created = client.post("/api/v1/gateway/models", Some(ADMIN_TOKEN), &model);
    assert_eq!(created.status, 201, "{}", created.text);
}

fn chat(model: &str, content: &str, max_tokens: i64, stream: bool) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": content }], "max_tokens": max_tokens, "stream": stream })
}

fn used_and_reserved(client: &Client, project: i64, token: &str) -> (i64, i64, i64) {
    let usage = client.get(&format!("/api/v1/projects/{project}/gateway-usage"), Some(token));
    assert_eq!(usage.status, 200, "{}", usage.text);
    let charged: i64 = usage.body["items"].as_array().unwrap().iter().map(|u| u["gpu_ms"].as_i64().unwrap()).sum();
    (charged, usage.body["reserved_gpu_ms"].as_i64().unwrap(), usage.body["in_flight"].as_i64().unwrap())
}

#[test]
fn an_openai_client_chats_through_the_gateway_charged_to_its_project() {
    let upstream = Upstream::start();
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions::default());
        let client = server.client();
        let (project, member, key) = project_with_key(&client, "labo", 1, json!({ "name": "notebook" }));
        let (other, _, other_key) = project_with_key(&client, "voisin", 1, json!({ "name": "x" }));
        register(&client, &upstream, "petit-modele", None, (1000, 2000));
        register(&client, &upstream, "modele-prive", Some(other), (1000, 2000));
        // The models this key may call, as OpenAI lists them: not the other project's.
        let models = client.get("/v1/models", Some(&key));
        assert_eq!(models.status, 200, "{}", models.text);
        let names: Vec<&str> =
            models.body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(names, ["petit-modele"]);
        // A whole answer: the upstream's usage, charged exactly: 7 prompt tokens at 1,000 and 5
        // answer tokens at 2,000 GPU-ms per thousand, rounded up: 7 + 10.
        let answer = client.post("/v1/chat/completions", Some(&key), &chat("petit-modele", "Bonjour", 50, false));
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["choices"][0]["message"]["content"], "bonjour");
        assert_eq!(used_and_reserved(&client, project, &member), (17, 0, 0));
        // A stream: every chunk relayed, then [DONE]; the usage chunk only when asked for.
        let streamed = client.post("/v1/chat/completions", Some(&key), &chat("petit-modele", "Salut", 3, true));
        assert_eq!(streamed.status, 200, "{}", streamed.text);
        assert!(streamed.content_type.starts_with("text/event-stream"), "{}", streamed.content_type);
        assert_eq!(streamed.text.matches("\"content\":\"m\"").count(), 3, "{}", streamed.text);
        assert!(streamed.text.ends_with("data: [DONE]\n\n") && !streamed.text.contains("usage"), "{}", streamed.text);
        let mut asked = chat("petit-modele", "Salut", 3, true);
        asked["stream_options"] = json!({ "include_usage": true });
        let with_usage = client.post("/v1/chat/completions", Some(&key), &asked);
        assert!(with_usage.text.contains("\"completion_tokens\":3"), "{}", with_usage.text);
        assert_eq!(used_and_reserved(&client, project, &member), (17 + 2 * (7 + 6), 0, 0));
        // The Responses shape, minimal: the same model, charged the same way (7 + 10 GPU-ms).
        let responded = client.post(
            "/v1/responses",
            Some(&key),
            &json!({ "model": "petit-modele", "input": "Bonjour", "max_output_tokens": 50 }),
        );
        assert_eq!(responded.status, 200, "{}", responded.text);
        assert_eq!(responded.body["object"], "response");
        assert_eq!(responded.body["output"][0]["content"][0]["text"], "bonjour");
        assert_eq!(responded.body["usage"]["output_tokens"], 5);
        assert_eq!(used_and_reserved(&client, project, &member).0, 17 + 26 + 17);
        let embedded = client.post("/v1/embeddings", Some(&key), &json!({ "model": "petit-modele", "input": "texte" }));
        assert_eq!(embedded.status, 200, "{}", embedded.text);
        assert_eq!(used_and_reserved(&client, project, &member).0, 17 + 26 + 17 + 4);
        // OpenAI-shaped refusals, nothing charged: another project's private model, an unknown
        // one, too many tokens, a body that is not JSON, a prompt past the body limit (whole:
        // the client reads the 413, not a reset connection), no key.
        for (body, status, code) in [
            (chat("modele-prive", "x", 5, false).to_string(), 404, "not_found"),
            (chat("inconnu", "x", 5, false).to_string(), 404, "not_found"),
            (chat("petit-modele", "x", 101, false).to_string(), 422, "invalid"),
            ("{not json".to_owned(), 400, "bad_request"),
            (chat("petit-modele", &"x".repeat(40 << 20), 5, false).to_string(), 413, "payload_too_large"),
        ] {
            let refused = client.request(
                "POST",
                "/v1/chat/completions",
                Some(&key),
                Some(("application/json", body.into_bytes())),
            );
            assert_eq!(refused.status, status, "{}", refused.text);
            assert_eq!(refused.body["error"]["code"], code, "{}", refused.text);
            assert!(refused.body["error"]["message"].is_string(), "{}", refused.text);
        }
        let anonymous = client.post("/v1/chat/completions", None, &chat("petit-modele", "x", 5, false));
        assert_eq!((anonymous.status, anonymous.body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
        assert_eq!(used_and_reserved(&client, project, &member).0, 64);
        // A key opens the gateway and nothing else; a member of one project neither sees nor
        // revokes another's keys; a revoked key fails at once.
        assert_eq!(client.get("/api/v1/me", Some(&key)).status, 401);
        assert_eq!(client.get(&format!("/api/v1/projects/{other}/keys"), Some(&member)).status, 404);
        assert_eq!(client.get(&format!("/api/v1/projects/{other}/gateway-usage"), Some(&member)).status, 404);
        let keys = client.get(&format!("/api/v1/projects/{project}/keys"), Some(&member));
        assert!(!keys.text.contains(&key) && !keys.text.contains("key_hash"), "a key is shown once: {}", keys.text);
        let id = keys.body["items"][0]["id"].as_i64().unwrap();
        assert_eq!(client.delete(&format!("/api/v1/projects/{other}/keys/{id}"), Some(&member)).status, 404);
        assert_eq!(client.delete(&format!("/api/v1/projects/{project}/keys/{id}"), Some(&member)).status, 204);
        assert_eq!(client.get("/v1/models", Some(&key)).status, 401, "revoked");
        assert_eq!(client.get("/v1/models", Some(&other_key)).status, 200);
        assert!(!server.output.lock().unwrap().contains(&key), "{backend:?}: a key never appears in the logs");
    }
}

#[test]
fn concurrent_streams_never_spend_more_than_the_allocation() {
    let upstream = Upstream::start();
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &ServerOptions::default());
        let client = server.client();
        // One GPU-hour; each request may cost 100 answer tokens at 3,600,000 GPU-ms per thousand:
        // exactly ten fit.
        let (project, member, key) = project_with_key(&client, "budget", 1, json!({ "name": "k" }));
        register(&client, &upstream, "cher", None, (0, 3_600_000));
        let base = server.base.clone();
        let threads: Vec<_> = (0..64)
            .map(|_| {
                let (base, key) = (base.clone(), key.clone());
                std::thread::spawn(move || {
                    let client = Client::new(&base);
                    let reply = client.post("/v1/chat/completions", Some(&key), &chat("cher", "FULL SLOW", 100, true));
                    (reply.status, reply.body["error"]["code"].as_str().map(str::to_owned), reply.text)
                })
            })
            .collect();
        let replies: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let served = replies.iter().filter(|(status, _, _)| *status == 200).count();
        let refused = replies
            .iter()
            .filter(|(status, code, _)| *status == 429 && code.as_deref() == Some("insufficient_quota"))
            .count();
        assert_eq!((served, refused), (10, 54), "{backend:?}: {:?}", replies.iter().map(|r| r.0).collect::<Vec<_>>());
        for (status, _, text) in &replies {
            if *status == 200 {
                assert_eq!(text.matches("\"content\":\"m\"").count(), 100, "{backend:?}: a whole stream");
            }
        }
        assert_eq!(
            used_and_reserved(&client, project, &member),
            (3_600_000, 0, 0),
            "{backend:?}: all of it, not a bit more"
        );
        let more = client.post("/v1/chat/completions", Some(&key), &chat("cher", "x", 1, false));
        assert_eq!(more.status, 429, "{backend:?}: {}", more.text);
    }
}

/// Sends a streaming request and hangs up after the first bytes of the answer.
fn hang_up_early(base: &str, key: &str, body: &Value) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let _ = stream.read(&mut first);
}

/// Sends a whole (not streamed) request and hangs up 50 ms later, while the model works on it.
fn hang_up_while_waiting(base: &str, key: &str, body: &Value) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn failures_and_disconnects_leave_no_reservation_behind() {
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "pannes", 10, json!({ "name": "k" }));
    register(&client, &upstream, "fragile", None, (1000, 1000));
    let base = server.base.clone();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (base, key) = (base.clone(), key.clone());
            std::thread::spawn(move || {
                let client = Client::new(&base);
                match i % 4 {
                    0 => {
                        let broken =
                            client.post("/v1/chat/completions", Some(&key), &chat("fragile", "BREAK FULL", 20, true));
                        assert!(broken.text.contains("upstream_broken"), "an error frame: {}", broken.text);
                    }
                    1 => hang_up_early(&base, &key, &chat("fragile", "SLOW FULL", 50, true)),
                    2 => assert_eq!(
                        client.post("/v1/chat/completions", Some(&key), &chat("fragile", "ok", 5, false)).status,
                        200
                    ),
                    _ => assert_eq!(
                        client.post("/v1/chat/completions", Some(&key), &chat("fragile", "ok", 5, true)).status,
                        200
                    ),
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Hung-up streams end when the gateway next writes to them; then every request is settled.
    let (_, reserved, in_flight) = eventually(Duration::from_secs(20), "every reservation settled", || {
        let figures = used_and_reserved(&client, project, &member);
        (figures.1 == 0 && figures.2 == 0).then_some(figures)
    });
    assert_eq!((reserved, in_flight), (0, 0));
    let usage = client.get(&format!("/api/v1/projects/{project}/gateway-usage"), Some(&member));
    let statuses: Vec<&str> =
        usage.body["items"].as_array().unwrap().iter().map(|u| u["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.len(), 200, "one usage record per request");
    assert_eq!(statuses.iter().filter(|s| **s == "upstream_broken").count(), 50);
    assert_eq!(statuses.iter().filter(|s| **s == "client_gone").count(), 50, "{statuses:?}");
    // A broken stream is charged for the prompt's bound and the two chunks sent, no more.
    let broken = usage.body["items"].as_array().unwrap().iter().find(|u| u["status"] == "upstream_broken").unwrap();
    assert_eq!(broken["completion_tokens"], 2, "{broken}");
    assert!(upstream.requests.load(Ordering::SeqCst) >= 200);
    // Clients that leave a whole answer before it comes: each request still ends, is settled
    // and recorded (the bench found these held their reservation for ten minutes, unrecorded).
    for _ in 0..10 {
        hang_up_while_waiting(&base, &key, &chat("fragile", "SLOW FULL", 10, false));
    }
    eventually(Duration::from_secs(20), "the left requests settled", || {
        let usage = client.get(&format!("/api/v1/projects/{project}/gateway-usage"), Some(&member)).body;
        let records = usage["items"].as_array()?.len();
        (records == 210 && usage["in_flight"] == 0 && usage["reserved_gpu_ms"] == 0).then_some(())
    });
    // An event that never ends is broken off, not held: an error frame.
    let endless = client.post("/v1/chat/completions", Some(&key), &chat("fragile", "ENDLESS", 5, true));
    assert!(
        endless.text.contains("upstream_broken") && endless.text.len() < 4096,
        "{}",
        &endless.text[..200.min(endless.text.len())]
    );
}

#[test]
fn two_gateway_processes_on_one_database_enforce_one_limit_and_revocation() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Postgres);
    let first = Server::start(&db.url, &ServerOptions::default());
    let second = Server::start(&db.url, &ServerOptions::default());
    let client = first.client();
    let (project, member, key) =
        project_with_key(&client, "limite", 10, json!({ "name": "k", "limits": { "requests_per_minute": 5 } }));
    register(&client, &upstream, "partage", None, (1, 1));
    // Started at the top of a minute's second half at the latest, so that the window holds.
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if now_s % 60 > 50 {
        std::thread::sleep(Duration::from_secs(60 - now_s % 60 + 1));
    }
    let statuses: Vec<u16> = (0..10)
        .map(|i| {
            let server = if i % 2 == 0 { &first } else { &second };
            server.client().post("/v1/chat/completions", Some(&key), &chat("partage", "x", 1, false)).status
        })
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5, "{statuses:?}");
    let limited = second.client().post("/v1/chat/completions", Some(&key), &chat("partage", "x", 1, false));
    assert!(limited.text.contains("rate_limit_error"), "{}", limited.text);
    // A key revoked through one process fails at once in the other, which knew it a moment ago.
    let id = client.get(&format!("/api/v1/projects/{project}/keys"), Some(&member)).body["items"][0]["id"].clone();
    assert_eq!(client.delete(&format!("/api/v1/projects/{project}/keys/{id}"), Some(&member)).status, 204);
    let revoked = second.client().post("/v1/chat/completions", Some(&key), &chat("partage", "x", 1, false));
    assert_eq!((revoked.status, revoked.body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
}

/// A model server in Python for a job: it announces itself after the metric prefix (on a Slurm
/// node, at the node's name; else on loopback, or at `argv[3]` if given), proves the token it is
/// given (`argv[2]`: `env`, the job's own; anything else, that) to the gateway's nonce as Grappe
/// does (HMAC-SHA256 of `replica-proof:NONCE`; only once with `argv[4]` `once`, as another
/// process that took its port would), and answers only requests with that bearer.
const JOB_SERVER: &str = r#"
import hashlib, hmac, http.server, json, os, sys
token = os.environ["GRAPPE_REPLICA_TOKEN"] if sys.argv[2] == "env" else sys.argv[2]
node = os.environ.get("SLURMD_NODENAME")
proofs = [1 if sys.argv[4:] == ["once"] else float("inf")]
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, value, status=200, proof=None):
        body = json.dumps(value).encode()
        self.send_response(status)
        if proof:
            self.send_header("x-grappe-replica", proof)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        nonce = self.headers.get("x-grappe-replica") if proofs[0] > 0 else None
        if nonce:
            proofs[0] -= 1
        proof = nonce and hmac.new(token.encode(), ("replica-proof:" + nonce).encode(), hashlib.sha256).hexdigest()
        self.answer({"object": "list", "data": [{"id": sys.argv[1], "object": "model"}]}, proof=proof)
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("authorization") != "Bearer " + token:
            self.answer({"error": {"message": "not the gateway", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, 401)
            return
        self.answer({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "depuis le job"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("0.0.0.0" if node else "127.0.0.1", 0), Handler)
host = sys.argv[3] if len(sys.argv) > 3 else node or "127.0.0.1"
print("GRAPPE_METRIC " + json.dumps({"serve": {"model": sys.argv[1], "url": "http://%s:%d/v1" % (host, server.server_port)}}), flush=True)
server.serve_forever()
"#;

/// A model of `project` that its jobs serve, registered by a member: 1,000 GPU-ms per thousand
/// tokens each way, at most 20 tokens an answer.
fn register_job_model(client: &Client, member: &str, project: i64, name: &str) {
    let model = json!({ "name": name, "project": project, "input_gpu_ms_per_1k": 1000, "output_gpu_ms_per_1k": 1000, "max_output_tokens": 20 });
    assert_eq!(client.post("/api/v1/gateway/models", Some(member), &model).status, 201);
}

#[test]
fn a_model_served_by_a_job_is_reached_while_its_run_runs() {
    use crate::compute::{options, submit, wait_log, wait_state};
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "atelier", 1, json!({ "name": "k" }));
    register_job_model(&client, &member, project, "maison");
    let with_upstream = json!({ "name": "ailleurs", "project": project, "upstream": "http://10.0.0.1:80/v1", "input_gpu_ms_per_1k": 1, "output_gpu_ms_per_1k": 1, "max_output_tokens": 20 });
    assert_eq!(
        client.post("/api/v1/gateway/models", Some(&member), &with_upstream).status,
        403,
        "members set no upstream"
    );
    let ask = || client.post("/v1/chat/completions", Some(&key), &chat("maison", "Bonjour", 5, false));
    let nobody = ask();
    assert_eq!((nobody.status, nobody.body["error"]["type"].as_str()), (503, Some("api_error")), "{}", nobody.text);
    // A job that announces an address without the run's token is not taken.
    let job = |token: &str| json!({ "project": project, "command": ["python3", "-c", JOB_SERVER, "maison", token], "cpus": 1, "time_limit_s": 120 });
    let liar = submit(&client, &member, job("not-the-token"))["id"].as_i64().unwrap();
    wait_log(&client, &member, liar, "");
    wait_state(&client, &member, liar, &["running"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ask().status, 503, "an unproved address is not a replica");
    assert!(server.output.lock().unwrap().contains("did not prove that it holds the job's replica token"));
    // The job with its token serves, and is charged like any upstream.
    let honest = submit(&client, &member, job("env"))["id"].as_i64().unwrap();
    serves_charged_until_cancelled(&client, &member, project, honest, ask, Duration::from_secs(30));
}

/// A model server that knows nothing of Grappe (the test's upstream, as vLLM would be), put
/// behind the gateway by `grappe model proxy` in a job: answered whole and streamed, charged, and
/// reached only through the gateway.
#[test]
fn any_openai_server_is_served_by_a_job_through_grappe_model_proxy() {
    use crate::compute::{options, submit, wait_log};
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "relais", 1, json!({ "name": "k" }));
    register_job_model(&client, &member, project, "relais");
    let command = ["grappe", "model", "proxy", "--upstream", upstream.base.as_str(), "--name", "relais"];
    let job = submit(&client, &member, json!({ "project": project, "command": command, "time_limit_s": 120 }));
    // `grappe` itself is the job's command (found where the job runs, as its PATH names it).
    let log = wait_log(&client, &member, job["id"].as_i64().unwrap(), "relaying relais on ");
    let whole = eventually(Duration::from_secs(30), "the model to answer through its proxy", || {
        let reply = client.post("/v1/chat/completions", Some(&key), &chat("relais", "FULL", 3, false));
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(whole.body["usage"]["completion_tokens"], 3, "{}", whole.text);
    let streamed = client.post("/v1/chat/completions", Some(&key), &chat("relais", "FULL", 3, true));
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    assert!(streamed.text.trim_end().ends_with("data: [DONE]"), "{}", streamed.text);
    let (charged, reserved, _) = used_and_reserved(&client, project, &member);
    assert!(charged > 0 && reserved == 0, "{charged} {reserved}");
    // Straight to the proxy, without the job's token: refused; the server itself saw only the
    // gateway's requests (and the proxy's own questions).
    let url = log.split("relaying relais on ").nth(1).unwrap().split_whitespace().next().unwrap();
    let direct = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let refused = direct.post(&format!("{url}/chat/completions")).send_json(chat("relais", "FULL", 3, false)).unwrap();
    assert_eq!(refused.status().as_u16(), 401);
}

/// `job`'s model server (`JOB_SERVER`) answers through the gateway within `wait`, charged like
/// any upstream; once the job is cancelled, its address is forgotten.
fn serves_charged_until_cancelled(
    client: &Client,
    member: &str,
    project: i64,
    job: i64,
    ask: impl Fn() -> crate::harness::Reply,
    wait: Duration,
) {
    let answer = eventually(wait, "the job's model to answer", || {
        let reply = ask();
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(answer.body["choices"][0]["message"]["content"], "depuis le job");
    assert_eq!(used_and_reserved(client, project, member), (5, 0, 0), "3 + 2 tokens at 1 GPU-ms each");
    assert_eq!(client.post(&format!("/api/v1/jobs/{job}/cancel"), Some(member), &json!({})).status, 200);
    crate::compute::wait_state(client, member, job, &["cancelled"]);
    assert_eq!(ask().status, 503, "no replica once the job ended");
}

#[test]
fn a_key_reads_its_usage_and_limits_and_a_projects_daily_limit_holds() {
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions::default());
    let client = server.client();
    let (project, member, key) =
        project_with_key(&client, "quota", 1, json!({ "name": "k", "limits": { "tokens_per_day": 1_000_000 } }));
    register(&client, &upstream, "jour", None, (1000, 1000));
    let limits = json!({ "requests_per_day": 3 });
    assert_eq!(
        client.post(&format!("/api/v1/projects/{project}/gateway-limits"), Some(&member), &limits).status,
        403,
        "members do not set their own limits"
    );
    assert_eq!(
        client.post(&format!("/api/v1/projects/{project}/gateway-limits"), Some(ADMIN_TOKEN), &limits).status,
        200
    );
    let statuses: Vec<u16> =
        (0..4).map(|_| client.post("/v1/chat/completions", Some(&key), &chat("jour", "x", 5, false)).status).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "three a day for the project");
    let usage = client.get("/v1/usage", Some(&key));
    assert_eq!(usage.status, 200, "{}", usage.text);
    assert_eq!(usage.body["limits"]["project"]["requests_per_day"], 3);
    assert_eq!(usage.body["limits"]["key"]["tokens_per_day"], 1_000_000);
    assert_eq!(
        usage.body["counted"]["project"]["day"]["requests"], 3,
        "the refused one is not counted: {}",
        usage.text
    );
    // Three answers of 7 + 5 tokens at 1,000 GPU-ms per thousand: 12 GPU-ms each.
    assert_eq!(usage.body["allocation"]["used_gpu_ms"], 36, "{}", usage.text);
    assert_eq!(usage.body["allocation"]["left_gpu_ms"], 3_600_000 - 36);
    assert_eq!(usage.body["recent"].as_array().unwrap().len(), 3);
    // The public dashboard counts what the gateway served, from its records: 3 requests, 36 tokens.
    // (Under the compute instrument, each figure a link to the gateway's page.)
    let dashboard = client.get("/", None).text;
    assert!(
        dashboard.contains(r#"<a href="/ai">3</a>"#) && dashboard.contains(r#"<a href="/ai">36</a>"#),
        "{dashboard}"
    );
    let csv = client.get(&format!("/api/v1/projects/{project}/gateway-usage.csv"), Some(&member));
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    assert_eq!(csv.text.lines().count(), 4, "a header and three requests: {}", csv.text);
    assert!(csv.text.lines().nth(1).unwrap().contains(",jour,/chat/completions,7,5,12,ok,"), "{}", csv.text);
    assert!(csv.text.lines().nth(1).unwrap().ends_with(','), "no job to measure behind an upstream: no energy");
}

/// Sends a batch's file as OpenAI's clients do (`multipart/form-data`).
fn upload(client: &Client, key: &str, jsonl: &str) -> crate::harness::Reply {
    upload_for(client, key, "batch", jsonl)
}

fn upload_for(client: &Client, key: &str, purpose: &str, jsonl: &str) -> crate::harness::Reply {
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"requests.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{jsonl}\r\n--XyZ--\r\n"
    );
    client.request("POST", "/v1/files", Some(key), Some(("multipart/form-data; boundary=XyZ", body.into_bytes())))
}

/// A batch's requests for `model`, each `content`, as OpenAI's batch JSONL.
fn batch_lines(model: &str, content: &str, count: usize) -> String {
    let lines: Vec<String> = (0..count)
        .map(|i| json!({ "custom_id": format!("q{i}"), "method": "POST", "url": "/v1/chat/completions", "body": chat(model, content, 4, false) }).to_string())
        .collect();
    lines.join("\n")
}

fn create_batch(client: &Client, key: &str, file_id: &Value) -> crate::harness::Reply {
    client.post(
        "/v1/batches",
        Some(key),
        &json!({ "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h" }),
    )
}

#[test]
fn a_batch_of_requests_runs_as_a_job_paid_as_requests_and_survives_a_restart() {
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let data = crate::harness::TempDir::new("batch-data");
    let options = crate::compute::options(2);
    let mut server = Server::start_in(&db.url, &options, data.path());
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "lots", 1, json!({ "name": "k" }));
    let (_, _, other_key) = project_with_key(&client, "autre", 1, json!({ "name": "k" }));
    register(&client, &upstream, "lent", None, (1000, 1000));
    let file = upload(&client, &key, &batch_lines("lent", "SLOW FULL", 60));
    assert_eq!(file.status, 200, "{}", file.text);
    let file_id = file.body["id"].clone();
    assert_eq!(client.get(&format!("/v1/files/{}", file_id.as_str().unwrap()), Some(&other_key)).status, 404);
    let bad = upload(
        &client,
        &key,
        "{\"custom_id\": \"x\", \"method\": \"POST\", \"url\": \"/v1/embeddings\", \"body\": {}}",
    );
    let refused = create_batch(&client, &key, &bad.body["id"]);
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("line 1"), "{}", refused.text);
    let batch = create_batch(&client, &key, &file_id);
    assert_eq!(batch.status, 200, "{}", batch.text);
    assert_eq!(batch.body["status"], "in_progress", "{}", batch.text);
    let batch_id = batch.body["id"].as_str().unwrap().to_owned();
    // It is a compute job of the project, at the lowest priority.
    let jobs = client.get(&format!("/api/v1/jobs?project={project}"), Some(&member)).body;
    let job = jobs["items"].as_array().unwrap().iter().find(|job| job["name"] == format!("batch {batch_id}"));
    let job = job.unwrap_or_else(|| panic!("the batch's job: {jobs}")).clone();
    assert_eq!((job["qos"].as_str(), job["gpus"].as_i64()), (Some("long"), Some(0)), "{job}");
    // Killed mid-batch, started again: the job is run again and goes on from where its answers stop.
    let before = eventually(Duration::from_secs(30), "a few answers", || {
        let done =
            client.get(&format!("/v1/batches/{batch_id}"), Some(&key)).body["request_counts"]["completed"].as_i64()?;
        (done >= 3).then_some(done)
    });
    server.kill9();
    assert!(before < 60, "killed mid-batch ({before} of 60 answered)");
    let server = Server::start_in(&db.url, &options, data.path());
    let client = server.client();
    let ended = eventually(Duration::from_secs(90), "the batch to complete", || {
        let batch = client.get(&format!("/v1/batches/{batch_id}"), Some(&key)).body;
        (batch["status"] == "completed").then_some(batch)
    });
    assert_eq!(ended["request_counts"], json!({ "total": 60, "completed": 60, "failed": 0 }), "{ended}");
    let output = client.get(&format!("/v1/files/{}/content", ended["output_file_id"].as_str().unwrap()), Some(&key));
    let answers: Vec<Value> = output.text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let ids: Vec<&str> = answers.iter().map(|a| a["custom_id"].as_str().unwrap()).collect();
    assert_eq!(ids, (0..60).map(|i| format!("q{i}")).collect::<Vec<_>>(), "each request answered once, in order");
    assert!(answers.iter().all(|a| a["response"]["status_code"] == 200), "{}", output.text);
    // Each request paid as any: 7 + 4 tokens at 1,000 GPU-ms per thousand; one request may have
    // been answered again after the kill, and paid again. The request the kill cut holds its
    // reservation (its most cost: a prompt bound of 97 bytes and 4 tokens) until it expires.
    let (charged, reserved, in_flight) = used_and_reserved(&client, project, &member);
    assert!((60 * 11..=61 * 11).contains(&charged), "{charged}");
    assert!(reserved <= 101 && in_flight <= 1, "at most the cut request's: {reserved} GPU-ms, {in_flight}");
    let job = client.get(&format!("/api/v1/jobs/{}", job["id"]), Some(&member)).body;
    assert_eq!((job["state"].as_str(), job["restart_count"].as_i64()), (Some("completed"), Some(1)), "{job}");
}

/// A batch of `jsonl` sent with `key`, once it completed.
fn completed_batch(client: &Client, key: &str, jsonl: &str) -> Value {
    let file = upload(client, key, jsonl);
    let created = create_batch(client, key, &file.body["id"]);
    assert_eq!(created.status, 200, "{}", created.text);
    let batch_id = created.body["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(60), "the batch to complete", || {
        let batch = client.get(&format!("/v1/batches/{batch_id}"), Some(key)).body;
        (batch["status"] == "completed").then_some(batch)
    })
}

/// Cancelling a batch cancels its job and keeps what was answered; a job's token opens no
/// batch's key, nor another endpoint; a project of GPU-hours only runs its batches, paid as tokens.
#[test]
fn a_batch_cancelled_keeps_its_answers_and_no_job_pays_with_a_key_it_was_not_given() {
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &crate::compute::options(2));
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "annule", 1, json!({ "name": "k" }));
    register(&client, &upstream, "lent", None, (1000, 1000));
    let file = upload(&client, &key, &batch_lines("lent", "SLOW FULL", 400));
    let batch = create_batch(&client, &key, &file.body["id"]);
    let batch_id = batch.body["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "a few answers", || {
        let done =
            client.get(&format!("/v1/batches/{batch_id}"), Some(&key)).body["request_counts"]["completed"].as_i64()?;
        (done >= 2).then_some(done)
    });
    let cancelling = client.post(&format!("/v1/batches/{batch_id}/cancel"), Some(&key), &json!({}));
    assert_eq!(cancelling.body["status"], "cancelling", "{}", cancelling.text);
    let ended = eventually(Duration::from_secs(30), "the batch to be cancelled", || {
        let batch = client.get(&format!("/v1/batches/{batch_id}"), Some(&key)).body;
        (batch["status"] == "cancelled").then_some(batch)
    });
    let answered = ended["request_counts"]["completed"].as_i64().unwrap();
    assert!((2..400).contains(&answered), "{ended}");
    let output = client.get(&format!("/v1/files/{}/content", ended["output_file_id"].as_str().unwrap()), Some(&key));
    assert_eq!(output.text.lines().count() as i64, answered, "{ended}");
    let jobs = client.get(&format!("/api/v1/jobs?project={project}"), Some(&member)).body;
    let job = jobs["items"].as_array().unwrap().iter().find(|job| job["name"] == format!("batch {batch_id}")).cloned();
    assert_eq!(job.unwrap()["state"], "cancelled");
    // A member's own job holds its token: it opens no key, on any endpoint.
    let script = "curl -s -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer gjob-$GRAPPE_JOB_ID-$GRAPPE_REPLICA_TOKEN\" \
                  -H 'Content-Type: application/json' -d '{\"model\": \"lent\", \"messages\": []}' \
                  \"$GRAPPE_SERVER_URL/v1/chat/completions\"";
    let body = json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 });
    let id = crate::compute::submit(&client, &member, body)["id"].as_i64().unwrap();
    crate::compute::wait_state(&client, &member, id, &["completed"]);
    assert_eq!(client.get(&format!("/api/v1/jobs/{id}/logs"), Some(&member)).text, "401");
    for forged in ["gjob-1-00", "gjob-x", "gjob-"] {
        let refused = client.post("/v1/chat/completions", Some(forged), &chat("lent", "FULL", 4, false));
        assert_eq!(refused.status, 401, "{forged}: {}", refused.text);
    }
    // A project with GPU-hours only runs no CPU job of its members, but its batch's job runs:
    // its requests are paid as tokens, from the GPU-hours; its CPU time counts for nothing.
    let gpu_only = client.post(
        "/api/v1/projects",
        Some(ADMIN_TOKEN),
        &json!({ "name": "gpu-seul", "gpu_hours": 10, "cpu_hours": 0, "storage_gb": 1, "members": [] }),
    );
    let gpu_only = gpu_only.body["id"].as_i64().unwrap();
    let refused = client.post(
        "/api/v1/jobs",
        Some(ADMIN_TOKEN),
        &json!({ "project": gpu_only, "command": ["true"], "time_limit_s": 60 }),
    );
    refused.assert_envelope(409);
    let admin_key =
        client.post(&format!("/api/v1/projects/{gpu_only}/keys"), Some(ADMIN_TOKEN), &json!({ "name": "k" }));
    let admin_key = admin_key.body["key"].as_str().unwrap().to_owned();
    let ended = completed_batch(&client, &admin_key, &batch_lines("lent", "FULL", 2));
    assert_eq!(ended["request_counts"]["completed"], 2, "{ended}");
    let view = client.get(&format!("/api/v1/projects/{gpu_only}"), Some(ADMIN_TOKEN)).body;
    let usage = client.get(&format!("/api/v1/projects/{gpu_only}/gateway-usage"), Some(ADMIN_TOKEN)).body;
    let paid: i64 = usage["items"].as_array().unwrap().iter().map(|record| record["gpu_ms"].as_i64().unwrap()).sum();
    assert!(paid > 0, "{usage}");
    let used_gpu_hours = view["used_gpu_hours"].as_f64().unwrap();
    assert!((used_gpu_hours * 3_600_000.0 - paid as f64).abs() < 1.0, "the tokens only: {paid} GPU-ms, {view}");
}

/// On Slurm, a batch's job is Slurm's, and reaches the gateway from its node.
#[test]
fn on_slurm_a_batch_runs_as_a_slurm_job() {
    if !crate::compute::slurm_available() {
        return;
    }
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &crate::compute::slurm_options());
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "lots-slurm", 1, json!({ "name": "k" }));
    register(&client, &upstream, "lent", None, (1000, 1000));
    let ended = completed_batch(&client, &key, &batch_lines("lent", "FULL", 5));
    let batch_id = ended["id"].as_str().unwrap().to_owned();
    let output = client.get(&format!("/v1/files/{}/content", ended["output_file_id"].as_str().unwrap()), Some(&key));
    assert_eq!(ended["request_counts"], json!({ "total": 5, "completed": 5, "failed": 0 }), "{}", output.text);
    let jobs = client.get(&format!("/api/v1/jobs?project={project}"), Some(&member)).body;
    let job = jobs["items"].as_array().unwrap().iter().find(|job| job["name"] == format!("batch {batch_id}")).cloned();
    let events = client.get(&format!("/api/v1/jobs/{}/events", job.unwrap()["id"]), Some(&member)).text;
    assert!(events.contains("submitted to Slurm"), "{events}");
}

/// A model Grappe's built-in recipe does not know (here, a folder served by the test's upstream,
/// as vLLM would serve weights), with an administrator's recipe: its base served, fine-tuned
/// from a quote to a model served, each by the recipe's scripts.
#[test]
fn a_model_with_an_administrators_recipe_is_fine_tuned_and_served_by_its_scripts() {
    use crate::compute::{options, submit, wait_state};
    let upstream = Upstream::start();
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(3));
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "recette", 1, json!({ "name": "k", "fine_tuning": true }));
    let weights = "mkdir -p base && echo poids > base/weights.txt";
    let job =
        submit(&client, &member, json!({ "project": project, "command": ["sh", "-c", weights], "time_limit_s": 60 }));
    let job = job["id"].as_i64().unwrap();
    wait_state(&client, &member, job, &["completed"]);
    assert_eq!(
        client.post("/api/v1/models", Some(&member), &json!({ "name": "grand-modele", "project": project })).status,
        201
    );
    let version =
        client.post("/api/v1/models/grand-modele/versions", Some(&member), &json!({ "job": job, "path": "base" }));
    assert_eq!(version.status, 201, "{}", version.text);
    let train = r#"mkdir -p model && cp -r "$GRAPPE_INPUTS/base/." model/ && echo "$1: $2 epochs, seed $3" > model/trained.txt && wc -l < "$GRAPPE_INPUTS/training/content" > model/examples && echo "GRAPPE_METRIC {\"key\": \"loss\", \"value\": 0.25, \"step\": $2}""#;
    let serve = format!(
        r#"test -f "$GRAPPE_INPUTS/model/weights.txt" && exec grappe model proxy --upstream {} --name "$1""#,
        upstream.base
    );
    let recipe =
        json!({ "train": train, "serve": serve, "cpus": 1, "gpus": 0, "memory_mb": 256, "tokens_per_second": 1000 });
    let model = json!({ "name": "grand", "project": project, "version": "grand-modele@1", "input_gpu_ms_per_1k": 1000, "output_gpu_ms_per_1k": 1000, "max_output_tokens": 50, "recipe": recipe });
    let by_member = client.post("/api/v1/gateway/models", Some(&member), &model);
    assert_eq!(by_member.status, 403, "a recipe is an administrator's: {}", by_member.text);
    let mut bad = model.clone();
    bad["recipe"]["cpus"] = json!(0);
    assert_eq!(client.post("/api/v1/gateway/models", Some(ADMIN_TOKEN), &bad).status, 422);
    let registered = client.post("/api/v1/gateway/models", Some(ADMIN_TOKEN), &model);
    assert_eq!(registered.status, 201, "{}", registered.text);
    // The base, served by the recipe's script.
    assert_eq!(client.post("/api/v1/gateway/models/grand/serve", Some(&member), &json!({})).status, 200);
    eventually(Duration::from_secs(30), "the base to answer", || {
        let reply = client.post("/v1/chat/completions", Some(&key), &chat("grand", "FULL", 3, false));
        (reply.status == 200).then_some(reply)
    });
    // Quoted by the recipe's speed and resources, trained and served by its scripts.
    let file = upload_for(&client, &key, "fine-tune", &examples(4));
    let ask = json!({ "model": "grand", "training_file": file.body["id"], "hyperparameters": { "n_epochs": 2 } });
    let created = client.post("/v1/fine_tuning/jobs", Some(&key), &ask);
    assert_eq!(created.status, 200, "{}", created.text);
    let quote = &created.body["quote"];
    let tokens = quote["trained_tokens"].as_i64().unwrap();
    assert_eq!(quote["estimated_duration_s"], json!((tokens + 999) / 1000), "{quote}");
    assert_eq!((quote["cpus"].as_i64(), quote["gpus"].as_i64()), (Some(1), Some(0)), "{quote}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(60), "the fine-tuning job to end", || {
        let job = client.get(&format!("/v1/fine_tuning/jobs/{id}"), Some(&key));
        matches!(job.body["status"].as_str(), Some("succeeded" | "failed" | "cancelled")).then_some(job)
    });
    assert_eq!(done.body["status"], "succeeded", "{}", done.text);
    let fine_tuned = done.body["fine_tuned_model"].as_str().unwrap().to_owned();
    let events = client.get(&format!("/v1/fine_tuning/jobs/{id}/events"), Some(&key)).text;
    assert!(events.contains("Epoch 2: training loss 0.2500"), "{events}");
    let answer = eventually(Duration::from_secs(30), "the fine-tuned model to answer", || {
        let reply = client.post("/v1/chat/completions", Some(&key), &chat(&fine_tuned, "FULL", 3, false));
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(answer.body["usage"]["completion_tokens"], 3, "{}", answer.text);
    // Its files are the training script's: the base's, and the two the run wrote.
    let checkpoints = client.get(&format!("/v1/fine_tuning/jobs/{id}/checkpoints"), Some(&key));
    let registry = checkpoints.body["data"][0]["registry_version"].as_str().unwrap().to_owned();
    let registry = client.get(&format!("/api/v1/models/{}", registry.split('@').next().unwrap()), Some(&member));
    let version = &registry.body["versions"][0];
    assert_eq!(
        (version["files"].as_i64(), version["base"].as_str()),
        (Some(3), Some("grand-modele@1")),
        "{}",
        registry.text
    );
}

/// Chat examples for fine-tuning, in OpenAI's JSONL.
fn examples(count: usize) -> String {
    let line = json!({ "messages": [
        { "role": "user", "content": "Combien de jours de congé par mois ?" },
        { "role": "assistant", "content": "Deux jours et demi ouvrables par mois de travail effectif." },
    ] });
    vec![line.to_string(); count].join("\n")
}

#[test]
fn a_fine_tuning_job_runs_from_its_quote_to_a_model_served_and_charged() {
    for backend in backends() {
        fine_tuning_on(backend, &crate::compute::options(3));
    }
}

/// The same on Slurm: the base model's training, the fine-tuning and both serving jobs are
/// Slurm's jobs.
#[test]
fn on_slurm_a_fine_tuning_job_runs_from_its_quote_to_a_model_served_and_charged() {
    if crate::compute::slurm_available() {
        fine_tuning_on(Backend::Sqlite, &crate::compute::slurm_options());
    }
}

fn fine_tuning_on(backend: Backend, options: &ServerOptions) {
    use crate::compute::{submit, wait_state};
    let upstream = Upstream::start();
    let db = TestDb::new(backend);
    let server = Server::start(&db.url, options);
    let client = server.client();
    let may_tune = json!({ "name": "k", "fine_tuning": true });
    let (project, member, key) = project_with_key(&client, "affinage", 1, may_tune.clone());
    let (other_project, other_member, other_key) = project_with_key(&client, "voisin", 1, may_tune);
    // A key made without the right may chat, but never start a fine-tuning job.
    let plain = client.post(&format!("/api/v1/projects/{project}/keys"), Some(&member), &json!({ "name": "plain" }));
    assert_eq!(plain.body["fine_tuning"], false, "{}", plain.text);
    let plain = plain.body["key"].as_str().unwrap().to_owned();
    // A base model: trained by a job of the project, registered, served from the registry.
    let training = "printf 'Le salarié a droit à un congé payé.\\nL employeur verse le salaire.\\n' > t.txt \
                    && grappe train language-model --text t.txt --out lm --epochs 2";
    let job =
        submit(&client, &member, json!({ "project": project, "command": ["sh", "-c", training], "time_limit_s": 300 }));
    let job = job["id"].as_i64().unwrap();
    wait_state(&client, &member, job, &["completed"]);
    let created = client.post("/api/v1/models", Some(&member), &json!({ "name": "base-lm", "project": project }));
    assert_eq!(created.status, 201, "{}", created.text);
    let version = client.post("/api/v1/models/base-lm/versions", Some(&member), &json!({ "job": job, "path": "lm" }));
    assert_eq!(version.status, 201, "{}", version.text);
    let served = json!({ "name": "base-lm", "project": project, "version": "base-lm@1", "input_gpu_ms_per_1k": 1000, "output_gpu_ms_per_1k": 1000, "max_output_tokens": 50 });
    let registered = client.post("/api/v1/gateway/models", Some(&member), &served);
    assert_eq!(registered.status, 201, "{}", registered.text);
    register(&client, &upstream, "distant", None, (1, 1));
    // Another project takes the registry name the result would have: it must get nothing.
    let squatted = format!("base-lm-ft-p{project}");
    let squat = client.post(
        "/api/v1/models",
        Some(&other_member),
        &json!({ "name": squatted, "project": other_project, "public": true }),
    );
    assert_eq!(squat.status, 201, "{}", squat.text);

    // A file of examples is read as the trainer reads it before it is kept.
    let bad = upload_for(&client, &key, "fine-tune", &format!("{}\n{{\"prompt\": \"a\"}}", examples(3)));
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("line 4"), "{}", bad.text);
    let file = upload_for(&client, &key, "fine-tune", &examples(20));
    assert_eq!(file.status, 200, "{}", file.text);
    let file_id = file.body["id"].as_str().unwrap().to_owned();
    let ask = |model: &str, auto_start: bool| json!({ "model": model, "training_file": file_id, "hyperparameters": { "n_epochs": 2 }, "suffix": "conges", "auto_start": auto_start });

    let refused = client.post("/v1/fine_tuning/jobs", Some(&plain), &ask("base-lm", false));
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("\"fine_tuning\": true"), "{}", refused.text);
    // Refused: a model from an upstream, another project's file, absurd epochs.
    let upstream_model = client.post("/v1/fine_tuning/jobs", Some(&key), &ask("distant", false));
    assert_eq!(upstream_model.status, 422, "{}", upstream_model.text);
    assert!(upstream_model.text.contains("cannot be fine-tuned here"), "{}", upstream_model.text);
    assert_eq!(client.post("/v1/fine_tuning/jobs", Some(&other_key), &ask("base-lm", false)).status, 404);
    let epochs = json!({ "model": "base-lm", "training_file": file_id, "hyperparameters": { "n_epochs": 1000 } });
    assert_eq!(client.post("/v1/fine_tuning/jobs", Some(&key), &epochs).status, 422);

    // The quote, before anything runs: 20 examples of 108 bytes and an end each, twice.
    let quoted = client.post("/v1/fine_tuning/jobs", Some(&key), &ask("base-lm", false));
    assert_eq!(quoted.status, 200, "{}", quoted.text);
    assert_eq!(quoted.body["status"], "validated");
    let tokens_per_example =
        "Combien de jours de congé par mois ? Deux jours et demi ouvrables par mois de travail effectif.".len() + 1;
    assert_eq!(quoted.body["quote"]["trained_tokens"], json!(2 * 20 * tokens_per_example), "{}", quoted.text);
    assert_eq!(quoted.body["quote"]["max_gpu_hours"], json!(0.0), "the built-in recipe uses no GPU");
    assert!(quoted.body["quote"]["max_cpu_hours"].as_f64().unwrap() > 0.0, "{}", quoted.text);
    assert!(quoted.body["job"].is_null(), "nothing runs before the start");
    let id = quoted.body["id"].as_str().unwrap().to_owned();
    assert_eq!(client.get(&format!("/v1/fine_tuning/jobs/{id}"), Some(&other_key)).status, 404, "another project's");
    assert_eq!(client.post(&format!("/v1/fine_tuning/jobs/{id}/start"), Some(&other_key), &json!({})).status, 404);
    assert_eq!(client.post(&format!("/v1/fine_tuning/jobs/{id}/start"), Some(&plain), &json!({})).status, 403);

    // A second one, cancelled before its start, never runs.
    let second = client.post("/v1/fine_tuning/jobs", Some(&key), &ask("base-lm", false));
    let second_id = second.body["id"].as_str().unwrap();
    let cancelled = client.post(&format!("/v1/fine_tuning/jobs/{second_id}/cancel"), Some(&key), &json!({}));
    assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (200, Some("cancelled")), "{}", cancelled.text);
    assert_eq!(client.post(&format!("/v1/fine_tuning/jobs/{second_id}/start"), Some(&key), &json!({})).status, 409);
    assert_eq!(client.post(&format!("/v1/fine_tuning/jobs/{second_id}/cancel"), Some(&key), &json!({})).status, 409);

    // Started: a compute job of the project; a second start is refused.
    let started = client.post(&format!("/v1/fine_tuning/jobs/{id}/start"), Some(&key), &json!({}));
    assert_eq!(started.status, 200, "{}", started.text);
    assert_eq!(started.body["status"], "queued");
    let compute_job = started.body["job"].as_i64().unwrap();
    assert_eq!(client.post(&format!("/v1/fine_tuning/jobs/{id}/start"), Some(&key), &json!({})).status, 409);
    let done = eventually(Duration::from_secs(120), "the fine-tuning job to end", || {
        let job = client.get(&format!("/v1/fine_tuning/jobs/{id}"), Some(&key));
        matches!(job.body["status"].as_str(), Some("succeeded" | "failed" | "cancelled")).then_some(job)
    });
    let model = format!("ft:base-lm:{project}:conges:1");
    assert_eq!(done.body["status"], "succeeded", "{}\n{}", done.text, server.output.lock().unwrap());
    assert_eq!(done.body["fine_tuned_model"], model.as_str());
    assert_eq!(done.body["trained_tokens"], quoted.body["quote"]["trained_tokens"]);
    let listed = client.get("/v1/fine_tuning/jobs?limit=1", Some(&key));
    assert_eq!(
        (listed.body["data"][0]["id"].as_str(), listed.body["has_more"].as_bool()),
        (Some(second_id), Some(true))
    );

    // Its events come from the records: the quote, the start, the loss of each epoch, the end.
    let events = client.get(&format!("/v1/fine_tuning/jobs/{id}/events"), Some(&key));
    let messages: Vec<&str> =
        events.body["data"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(messages[0].starts_with("The job succeeded"), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("Epoch 2: training loss")), "{messages:?}");
    assert!(messages.last().unwrap().starts_with("Validated 20 examples"), "{messages:?}");

    // The result is a registry version with its lineage, and a checkpoint; not in the other
    // project's model of the name it would have had.
    let checkpoints = client.get(&format!("/v1/fine_tuning/jobs/{id}/checkpoints"), Some(&key));
    let registry_version = checkpoints.body["data"][0]["registry_version"].as_str().unwrap();
    let registry = registry_version.strip_suffix("@1").unwrap_or_else(|| panic!("{}", checkpoints.text));
    assert!(registry.starts_with(&format!("{squatted}-")), "{registry}");
    let squatter = client.get(&format!("/api/v1/models/{squatted}"), None);
    assert_eq!(squatter.body["versions"], json!([]), "{}", squatter.text);
    let lineage = client.get(&format!("/api/v1/models/{registry}"), Some(&member));
    assert_eq!(lineage.status, 200, "{}", lineage.text);
    let version = &lineage.body["versions"][0];
    assert_eq!((version["base"].as_str(), version["job"].as_i64()), (Some("base-lm@1"), Some(compute_job)));
    assert!(version["card"].as_str().unwrap().contains("Fine-tuned"), "{}", lineage.text);
    assert_eq!(lineage.body["visibility"], "private");
    assert_eq!(client.get(&format!("/api/v1/models/{registry}"), None).status, 404, "private to the project");

    // Served for the project's keys only, and charged to the project.
    let answer = eventually(Duration::from_secs(60), "the fine-tuned model to answer", || {
        let reply = client.post("/v1/chat/completions", Some(&key), &chat(&model, "Combien de jours", 10, false));
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(
        answer.body["usage"]["completion_tokens"].as_i64().unwrap() + 16,
        answer.body["usage"]["total_tokens"].as_i64().unwrap()
    );
    let (charged, reserved, _) = used_and_reserved(&client, project, &member);
    assert!(charged > 0 && reserved == 0, "{charged} {reserved}");
    // Its energy, estimated from its serving job's measured time, spread over its tokens.
    let usage = client.get(&format!("/api/v1/projects/{project}/gateway-usage"), Some(&member));
    let energy = usage.body["items"][0]["energy_wh"].as_f64().unwrap_or_else(|| panic!("{}", usage.text));
    assert!(energy > 0.0, "{}", usage.text);
    let stranger = client.post("/v1/chat/completions", Some(&other_key), &chat(&model, "x", 5, false));
    assert_eq!(stranger.status, 404, "{}", stranger.text);

    // Once its serving job ended, the project's members serve it again; nobody else may.
    let jobs = client.get("/api/v1/jobs", Some(&member));
    let serving =
        jobs.body["items"].as_array().unwrap().iter().find(|job| job["name"] == format!("serve {model}").as_str());
    let serving = serving.unwrap_or_else(|| panic!("{}", jobs.text))["id"].as_i64().unwrap();
    // The key's jobs have no owner: its project's coordinators (here an administrator) stop them.
    assert_eq!(client.post(&format!("/api/v1/jobs/{serving}/cancel"), Some(&member), &json!({})).status, 403);
    assert_eq!(client.post(&format!("/api/v1/jobs/{serving}/cancel"), Some(ADMIN_TOKEN), &json!({})).status, 200);
    wait_state(&client, &member, serving, &["cancelled"]);
    assert_eq!(client.post("/v1/chat/completions", Some(&key), &chat(&model, "x", 5, false)).status, 503);
    let serve = format!("/api/v1/gateway/models/{model}/serve");
    assert_eq!(client.post(&serve, Some(&other_member), &json!({})).status, 404, "another project's model");
    let again = client.post(&serve, Some(&member), &json!({}));
    assert_eq!(again.status, 200, "{}", again.text);
    eventually(Duration::from_secs(60), "the model served again", || {
        (client.post("/v1/chat/completions", Some(&key), &chat(&model, "x", 5, false)).status == 200).then_some(())
    });

    // Waiting jobs cost nothing, but a project keeps at most 20 not ended.
    for _ in 0..20 {
        assert_eq!(client.post("/v1/fine_tuning/jobs", Some(&key), &ask("base-lm", false)).status, 200);
    }
    let over = client.post("/v1/fine_tuning/jobs", Some(&key), &ask("base-lm", false));
    assert_eq!((over.status, over.body["error"]["type"].as_str()), (429, Some("rate_limit_error")), "{}", over.text);
}

/// On Slurm, a job serves a model from the node that runs it: the gateway takes the node's
/// address (and no other: loopback there is the gateway's own machine), proves it, and charges
/// what it answers; the job's replica token reaches it through the batch script.
#[test]
fn a_model_served_by_a_slurm_job_is_reached_on_its_node() {
    use crate::compute::{slurm_available, slurm_options, submit, wait_state};
    if !slurm_available() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &slurm_options());
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "grappe-noeud", 1, json!({ "name": "k" }));
    register_job_model(&client, &member, project, "sur-slurm");
    let ask = || client.post("/v1/chat/completions", Some(&key), &chat("sur-slurm", "Bonjour", 5, false));
    let job = |args: &[&str]| {
        let mut command = vec!["python3", "-c", JOB_SERVER, "sur-slurm", "env"];
        command.extend(args);
        let body = json!({ "project": project, "command": command, "cpus": 1, "time_limit_s": 120 });
        submit(&client, &member, body)["id"].as_i64().unwrap()
    };
    // A Slurm job that announces loopback is refused.
    let on_loopback = job(&["127.0.0.1"]);
    eventually(Duration::from_secs(60), "the loopback announcement to be refused", || {
        server.output.lock().unwrap().contains("(the address of the node that runs the job)").then_some(())
    });
    assert_eq!(ask().status, 503, "no replica");
    assert_eq!(client.post(&format!("/api/v1/jobs/{on_loopback}/cancel"), Some(&member), &json!({})).status, 200);
    wait_state(&client, &member, on_loopback, &["cancelled"]);
    // The job at its node's name serves, with its token, charged like any upstream.
    let honest = job(&[]);
    serves_charged_until_cancelled(&client, &member, project, honest, ask, Duration::from_secs(60));
}

/// The demo on Slurm: its language model is trained by Slurm jobs (reading the demo's dataset,
/// its input), registered, and served by a Slurm job from its node; an OpenAI client chats with
/// it through the gateway, streamed, charged to its project.
#[test]
fn on_slurm_the_demos_model_is_trained_and_served_by_jobs_and_answers_through_the_gateway() {
    use crate::compute::{slurm_available, slurm_options, wait_state};
    if !slurm_available() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..slurm_options() });
    let client = server.client();
    let serving = eventually(Duration::from_secs(180), "the demo's serving job", || {
        let jobs = client.get("/api/v1/jobs", Some(ADMIN_TOKEN)).body;
        jobs["items"].as_array()?.iter().find(|job| job["name"] == "serve grappe-lm").and_then(|job| job["id"].as_i64())
    });
    let projects = client.get("/api/v1/projects", Some(ADMIN_TOKEN)).body;
    let project =
        projects["items"].as_array().unwrap().iter().find(|p| p["name"] == "demo-llm-finetune").unwrap()["id"]
            .as_i64()
            .unwrap();
    let key = client.post(&format!("/api/v1/projects/{project}/keys"), Some(ADMIN_TOKEN), &json!({ "name": "k" }));
    let key = key.body["key"].as_str().unwrap().to_owned();
    let mut asked = chat("grappe-lm", "Le salarié", 8, true);
    asked["stream_options"] = json!({ "include_usage": true });
    // Slurm's two CPUs are shared with the other tests' jobs: the model may wait its turn.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let answer = loop {
        let reply = client.post("/v1/chat/completions", Some(&key), &asked);
        if reply.status == 200 {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "no answer from the model served on Slurm: {}", reply.text);
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        answer.text.ends_with("data: [DONE]\n\n") && answer.text.contains("\"completion_tokens\":8"),
        "{}",
        answer.text
    );
    // Charged: the answer's record (those before it found no replica yet, and cost nothing).
    let usage = client.get("/v1/usage", Some(&key));
    let last = &usage.body["recent"][0];
    assert_eq!((last["status"].as_str(), last["completion_tokens"].as_i64()), (Some("ok"), Some(8)), "{}", usage.text);
    assert!(usage.body["allocation"]["used_gpu_ms"].as_i64().unwrap() > 0, "{}", usage.text);
    let events = client.get(&format!("/api/v1/jobs/{serving}/events"), Some(ADMIN_TOKEN)).text;
    assert!(events.contains("submitted to Slurm"), "{events}");
    assert_eq!(client.post(&format!("/api/v1/jobs/{serving}/cancel"), Some(ADMIN_TOKEN), &json!({})).status, 200);
    wait_state(&client, ADMIN_TOKEN, serving, &["cancelled"]);
}

/// A job's address that stops proving itself (another process took the port of its server)
/// is sent nothing from the next health check on, not even as the model's last server.
#[test]
fn a_replica_that_no_longer_proves_itself_is_sent_nothing() {
    use crate::compute::{options, submit};
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, member, key) = project_with_key(&client, "relais", 1, json!({ "name": "k" }));
    register_job_model(&client, &member, project, "relais");
    let command = ["python3", "-c", JOB_SERVER, "relais", "env", "127.0.0.1", "once"];
    submit(&client, &member, json!({ "project": project, "command": command, "cpus": 1, "time_limit_s": 120 }));
    let ask = || client.post("/v1/chat/completions", Some(&key), &chat("relais", "Bonjour", 5, false));
    eventually(Duration::from_secs(30), "the job's model to answer", || (ask().status == 200).then_some(()));
    eventually(Duration::from_secs(20), "the next health check to disown it", || {
        server.output.lock().unwrap().contains("answered without its job's proof").then_some(())
    });
    let refused = ask();
    assert_eq!(refused.status, 503, "{}", refused.text);
}
