//! Starting servers and databases for tests, and a small HTTP client.
//!
//! - `GRAPPE_TEST_POSTGRES`: URL of a PostgreSQL superuser connection (`scripts/test.sh` starts
//!   one); each test creates its own database there. Without it, PostgreSQL tests fail and say
//!   so, unless `GRAPPE_TEST_SKIP_POSTGRES=1`, which makes them print that they were skipped.
//! - `GRAPPE_TEST_CHROMEDRIVER`: path of chromedriver (default `/usr/bin/chromedriver`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const AUDIT_KEY: &str = "test-audit-key-0123456789abcdef0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A directory under the system's temporary folder, unique to this call, removed on drop
/// (unless made by [`TempDir::keep`]).
pub struct TempDir(pub PathBuf, bool);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("grappe-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir, true)
    }

    /// An existing directory, which someone else removes.
    pub fn keep(dir: &Path) -> TempDir {
        TempDir(dir.to_path_buf(), false)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The backends a test runs on: both, or SQLite alone when PostgreSQL is explicitly skipped.
pub fn backends() -> Vec<Backend> {
    if postgres_admin_url().is_some() { vec![Backend::Sqlite, Backend::Postgres] } else { vec![Backend::Sqlite] }
}

fn postgres_admin_url() -> Option<String> {
    match std::env::var("GRAPPE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("GRAPPE_TEST_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: PostgreSQL half of this test (GRAPPE_TEST_SKIP_POSTGRES=1)");
            None
        }
        _ => panic!(
            "GRAPPE_TEST_POSTGRES is not set: run the tests with scripts/test.sh, or set GRAPPE_TEST_SKIP_POSTGRES=1"
        ),
    }
}

/// A new, empty database for one test, and its URL.
pub struct TestDb {
    pub url: String,
    /// The PostgreSQL database to drop when the test ends, with the admin URL to drop it from.
    postgres: Option<(String, String)>,
    _dir: TempDir,
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        let dir = TempDir::new("db");
        let mut postgres = None;
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}/grappe.db?mode=rwc", dir.path().display()),
            Backend::Postgres => {
                let admin = postgres_admin_url().expect("PostgreSQL test without GRAPPE_TEST_POSTGRES");
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let name = format!("grappe_test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
                let output = Command::new("psql")
                    .args([&admin, "-v", "ON_ERROR_STOP=1", "-q"])
                    .args(["-c", &format!("DROP DATABASE IF EXISTS {name}"), "-c", &format!("CREATE DATABASE {name}")])
                    .output()
                    .expect("run psql");
                assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                let url = format!("{base}/{name}");
                postgres = Some((admin, name));
                url
            }
        };
        TestDb { url, postgres, _dir: dir }
    }
}

/// A test's database goes with it: a full run creates hundreds, and CI's disk is shared.
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres {
            let dropped = Command::new("psql")
                .args([admin, "-q", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .output();
            if !dropped.is_ok_and(|output| output.status.success()) {
                eprintln!("could not drop the test database {name}");
            }
        }
    }
}

#[derive(Default, Clone)]
pub struct ServerOptions {
    pub demo: bool,
    pub env: Vec<(String, String)>,
    /// Run the server as this uid and gid (through `setpriv`) instead of the tests' own.
    pub run_as: Option<u32>,
    /// Extra arguments to `grappe serve`.
    pub args: Vec<String>,
    /// Run this `grappe` (with its `grappe-shim` beside it) instead of the one just built.
    pub program: Option<PathBuf>,
}

/// A running `grappe serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub output: Arc<Mutex<String>>,
    pub demo_accounts: Vec<(String, String, String)>,
    /// It hands its jobs to Slurm, which outlives it.
    slurm: bool,
    _data_dir: TempDir,
}

impl Server {
    pub fn start(database_url: &str, options: &ServerOptions) -> Server {
        Server::launch(database_url, options, TempDir::new("data"))
    }

    /// Starts on an existing data directory (a restart); the directory is left in place.
    pub fn start_in(database_url: &str, options: &ServerOptions, data_dir: &Path) -> Server {
        Server::launch(database_url, options, TempDir::keep(data_dir))
    }

    pub fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }

    fn launch(database_url: &str, options: &ServerOptions, data_dir: TempDir) -> Server {
        let program = options.program.clone().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_grappe")));
        let mut command = match options.run_as {
            Some(uid) => {
                let status = Command::new("chown").arg("-R").arg(format!("{uid}:{uid}")).arg(data_dir.path()).status();
                assert!(status.is_ok_and(|status| status.success()), "chown the data directory to {uid}");
                let mut command = Command::new("setpriv");
                command.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned()]);
                command.arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--database", database_url, "--data-dir"])
            .arg(data_dir.path())
            .env("GRAPPE_ADMIN_TOKEN", ADMIN_TOKEN)
            // Servers of one database share its audit key, whatever their data directories.
            .env("GRAPPE_AUDIT_KEY", AUDIT_KEY)
            .env("GRAPPE_LOG", "warn")
            // Test servers' job groups apart from a real installation's (`scripts/test.sh`
            // removes what killed servers left there).
            .env("GRAPPE_CGROUP_PARENT", "grappe-test")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if options.demo {
            command.arg("--demo");
        }
        command.args(&options.args);
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn grappe serve");
        let output = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        drain(stdout, output.clone(), Some(lines_tx));
        drain(stderr, output.clone(), None);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut demo_accounts = Vec::new();
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not start; output:\n{}", output.lock().expect("lock"));
                }
            };
            if let Some(rest) = line.strip_prefix("Grappe listening on ") {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() == 3 && fields[1].ends_with("@demo.grappe.fr") {
                demo_accounts.push((fields[0].to_owned(), fields[1].to_owned(), fields[2].to_owned()));
            }
        };
        let slurm = options.env.iter().any(|(key, value)| key == "GRAPPE_EXECUTOR" && value == "slurm");
        Server { child, base, output, demo_accounts, slurm, _data_dir: data_dir }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    pub fn demo_password(&self, role: &str) -> (String, String) {
        let (_, email, password) = self
            .demo_accounts
            .iter()
            .find(|(r, _, _)| r == role)
            .unwrap_or_else(|| panic!("no demo account for {role}"));
        (email.clone(), password.clone())
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|status| status.success()), "kill -{signal}");
    }

    /// A graceful stop: SIGTERM, then wait for the process to exit.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- output of the server at {} ---\n{}",
                self.base,
                self.output.lock().map(|o| o.clone()).unwrap_or_default()
            );
        }
        if self.slurm {
            self.cancel_slurm_jobs();
        }
        self.kill9();
    }
}

impl Server {
    /// Cancels every job still queued or running and waits (30 s at most) for Slurm to end them:
    /// one left there would hold the test Slurm's CPUs from the tests that follow (a model's
    /// serving job asks for hours).
    fn cancel_slurm_jobs(&self) {
        let client = self.client();
        let active = || -> Vec<i64> {
            let Ok(reply) = client.try_request("GET", "/api/v1/jobs?limit=500", Some(ADMIN_TOKEN), None) else {
                return Vec::new();
            };
            let jobs = reply.body["items"].as_array().cloned().unwrap_or_default();
            jobs.iter()
                .filter(|job| matches!(job["state"].as_str(), Some("pending" | "running")))
                .filter_map(|job| job["id"].as_i64())
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ids = active();
            if ids.is_empty() || Instant::now() >= deadline {
                return;
            }
            for id in ids {
                let body = Some(("application/json", b"{}".to_vec()));
                let _ = client.try_request("POST", &format!("/api/v1/jobs/{id}/cancel"), Some(ADMIN_TOKEN), body);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn drain(stream: impl Read + Send + 'static, output: Arc<Mutex<String>>, lines: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut output) = output.lock() {
                output.push_str(&line);
                output.push('\n');
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    });
}

/// A response: status, headers we look at, and the body as JSON (or a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub content_type: String,
    pub location: Option<String>,
    pub denied_by_policy: bool,
}

impl Reply {
    /// Every error must come as the JSON envelope.
    pub fn assert_envelope(&self, status: u16) {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert!(self.content_type.starts_with("application/json"), "content type {}", self.content_type);
        assert!(self.body["error"].is_string() && self.body["detail"].is_string(), "envelope: {}", self.text);
    }
}

pub struct Client {
    pub base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client { base: base.to_owned(), agent }
    }

    fn finish(mut response: ureq::http::Response<ureq::Body>) -> Reply {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location");
        let denied_by_policy = header("x-grappe-denied").is_some();
        let text = response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status: response.status().as_u16(), body, text, content_type, location, denied_by_policy }
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> Reply {
        self.try_request(method, path, token, body).expect("HTTP request")
    }

    /// As [`Client::request`], with transport errors (a refused connection) as `Err`.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Reply, ureq::Error> {
        let url = format!("{}{}", self.base, path);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some((content_type, bytes)) => builder.header("Content-Type", content_type).body(bytes).expect("request"),
            None => builder.body(Vec::new()).expect("request"),
        };
        self.agent.run(request).map(Client::finish)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.request("POST", path, token, Some(("application/json", body.to_string().into_bytes())))
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("DELETE", path, token, None)
    }

    /// Logs in by password and returns a fresh API token.
    pub fn token_for(&self, email: &str, password: &str) -> String {
        let reply = self.post("/api/v1/auth/token", None, &serde_json::json!({ "email": email, "password": password }));
        assert_eq!(reply.status, 201, "login of {email}: {}", reply.text);
        reply.body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a user through the admin token and returns (id, API token).
    pub fn new_user(&self, email: &str) -> (i64, String) {
        let body = serde_json::json!({ "name": format!("User {email}"), "email": email, "password": "a long enough password" });
        let reply = self.post("/api/v1/users", Some(ADMIN_TOKEN), &body);
        assert_eq!(reply.status, 201, "create {email}: {}", reply.text);
        let id = reply.body["id"].as_i64().expect("id");
        (id, self.token_for(email, "a long enough password"))
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where tests leave files for people to look at (screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts");
    dir
}
