//! The CLI's side of the API: a stored token, and the calls that use it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// For transfers of any size: no limit on the whole, but a server that stops answering for a
/// minute is given up on.
fn transfer_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn config_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("grappe").join("cli.json"))
}

struct Stored {
    url: String,
    token: String,
    token_id: Option<i64>,
}

fn load() -> anyhow::Result<Stored> {
    let path = config_path()?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("not logged in ({} missing): run `grappe login --url URL`", path.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match (value["url"].as_str(), value["token"].as_str()) {
        (Some(url), Some(token)) => {
            Ok(Stored { url: url.to_owned(), token: token.to_owned(), token_id: value["token_id"].as_i64() })
        }
        _ => bail!("{} lacks `url` or `token`: run `grappe login` again", path.display()),
    }
}

/// Writes the token file readable by its owner only, atomically (temporary file, fsync, rename).
fn store(stored: &Stored) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path()?;
    let dir = path.parent().context("config path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(
        json!({ "url": stored.url, "token": stored.token, "token_id": stored.token_id }).to_string().as_bytes(),
    )?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

/// The stored server and token, for the commands that use them.
pub struct Session {
    stored: Stored,
    agent: ureq::Agent,
}

impl Session {
    pub fn load() -> anyhow::Result<Session> {
        Ok(Session { stored: load()?, agent: agent() })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stored.url)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.stored.token)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        self.agent.get(&url).header("Authorization", &self.bearer()).call().with_context(|| format!("reaching {url}"))
    }

    /// A GET whose body may take as long as it takes (a followed log).
    pub fn get_streaming(&self, path: &str) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        agent.get(&url).header("Authorization", &self.bearer()).call().with_context(|| format!("reaching {url}"))
    }

    /// A POST of raw bytes (a batch of chunks, a manifest, predictions), given as long as it
    /// takes to send.
    pub fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        transfer_agent()
            .post(&url)
            .header("Authorization", &self.bearer())
            .header("Content-Type", content_type)
            .send(body)
            .with_context(|| format!("reaching {url}"))
    }

    /// A GET of a file from `offset` on (`Range`), whose body may take as long as it takes.
    pub fn get_from(&self, path: &str, offset: u64) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        let mut request = transfer_agent().get(&url).header("Authorization", &self.bearer());
        if offset > 0 {
            request = request.header("Range", &format!("bytes={offset}-"));
        }
        request.call().with_context(|| format!("reaching {url}"))
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        self.agent
            .post(&url)
            .header("Authorization", &self.bearer())
            .send_json(body)
            .with_context(|| format!("reaching {url}"))
    }
}

/// The body of a response, or the server's error envelope as an error.
pub fn answer(mut response: ureq::http::Response<ureq::Body>) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value: Value =
        if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    if status.is_success() {
        return Ok(value);
    }
    // The server's sentence once, then its status for scripts: `job 9 not found (HTTP 404)`.
    match value["detail"].as_str() {
        Some(detail) => bail!("{detail} (HTTP {})", status.as_u16()),
        None => bail!("the server answered {status}"),
    }
}

pub fn login(url: &str, email: Option<String>, password_env: &str) -> anyhow::Result<()> {
    let url = url.trim_end_matches('/').to_owned();
    let email = match email {
        Some(email) => email,
        None => {
            eprint!("Email: ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    let password = match std::env::var(password_env) {
        Ok(password) => password,
        Err(_) => crate::read_password("Password")?,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let body = json!({ "email": email, "password": password, "name": format!("grappe cli on {}", host.trim()) });
    let response = agent()
        .post(&format!("{url}/api/v1/auth/token"))
        .send_json(&body)
        .with_context(|| format!("reaching {url}"))?;
    let value = answer(response)?;
    let token = value["token"].as_str().context("the server's answer has no token")?;
    // The token this CLI held before, on this server, goes: one live token per CLI, however
    // often one logs in (a token that no longer works is simply forgotten).
    if let Ok(previous) = Session::load()
        && previous.stored.url == url
        && let Some(id) = previous.stored.token_id
    {
        let old = previous.url(&format!("/api/v1/tokens/{id}"));
        let _ = previous.agent.delete(&old).header("Authorization", &previous.bearer()).call();
    }
    let path = store(&Stored { url: url.clone(), token: token.to_owned(), token_id: value["id"].as_i64() })?;
    outln!("Logged in to {url} as {email}; token stored in {}", path.display());
    Ok(())
}

pub fn whoami(as_json: bool) -> anyhow::Result<()> {
    let session = Session::load()?;
    let me = answer(session.get("/api/v1/me")?)?;
    let stored = &session.stored;
    if as_json {
        outln!("{me}");
        return Ok(());
    }
    let roles: Vec<String> = me["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .map(|role| {
                    format!("{} ({})", role["role"].as_str().unwrap_or("?"), role["scope"].as_str().unwrap_or("?"))
                })
                .collect()
        })
        .unwrap_or_default();
    let record = json!({
        "server": stored.url,
        "id": me["id"],
        "name": me["name"],
        "email": me["email"],
        "roles": if roles.is_empty() { "-".to_owned() } else { roles.join(", ") },
    });
    crate::print_record(&record, false);
    Ok(())
}

pub fn logout() -> anyhow::Result<()> {
    let session = Session::load()?;
    if let Some(id) = session.stored.token_id {
        let url = session.url(&format!("/api/v1/tokens/{id}"));
        answer(session.agent.delete(&url).header("Authorization", &session.bearer()).call()?)?;
    }
    std::fs::remove_file(config_path()?)?;
    outln!("Logged out of {}", session.stored.url);
    Ok(())
}
