//! The web UI in a real headless Chromium, driven over WebDriver (chromedriver): log in, see the
//! programme's budget chart, switch to English and back, log out. Screenshots are left in
//! `test-artifacts/` for people to look at.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, ServerOptions, TestDb, artifacts_dir, eventually};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A minimal W3C WebDriver client: what these tests use and nothing more.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start() -> Browser {
        let chromedriver = std::env::var("GRAPPE_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&chromedriver).exists(),
            "{chromedriver} is missing: run the tests with scripts/test.sh, which installs chromium-driver"
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        eventually(Duration::from_secs(20), "chromedriver", || {
            let mut response = agent.get(&format!("{base}/status")).call().ok()?;
            let status: Value = response.body_mut().read_json().ok()?;
            (status["value"]["ready"] == true).then_some(())
        });
        let profile = crate::harness::TempDir::new("chromium");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=fr-FR",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": { "intl.accept_languages": "fr-FR,fr" },
            },
        } } });
        let mut browser = Browser { driver, base, session: String::new(), agent };
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"].as_str().expect("session id").to_owned();
        std::mem::forget(profile); // chromium owns it until the session ends; the OS temp dir cleans up
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|error| panic!("webdriver {method} {path}: {error}"))
    }

    /// A WebDriver command; its error (say, an element gone stale mid-navigation) as `Err`.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request =
            ureq::http::Request::builder().method(method).uri(&url).header("Content-Type", "application/json");
        let request = request.body(body.map(|b| b.to_string()).unwrap_or_default().into_bytes()).unwrap();
        let mut response = self.agent.run(request).map_err(|error| error.to_string())?;
        let status = response.status();
        let value: Value = response.body_mut().read_json().map_err(|error| error.to_string())?;
        if !status.is_success() {
            return Err(value.to_string());
        }
        Ok(value["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let found = self.session_call("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        found[ELEMENT_KEY].as_str().expect("element id").to_owned()
    }

    fn count(&self, css: &str) -> usize {
        let found = self.session_call("POST", "/elements", Some(json!({ "using": "css selector", "value": css })));
        found.as_array().map_or(0, Vec::len)
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.session_call("GET", &format!("/element/{element}/text"), None).as_str().unwrap_or("").to_owned()
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.session_call("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session_call("POST", &format!("/element/{element}/value"), Some(json!({ "text": text })));
    }

    /// Polls until `css` matches `count` elements: a click that submits a form may return
    /// before the next page has loaded.
    fn wait_count(&self, css: &str, count: usize) {
        eventually(Duration::from_secs(15), &format!("{count} of {css}"), || (self.count(css) == count).then_some(()));
    }

    /// Polls until the first `css` element reads `expected`.
    fn wait_text(&self, css: &str, expected: &str) {
        let session = format!("/session/{}", self.session);
        let query = json!({ "using": "css selector", "value": css });
        eventually(Duration::from_secs(15), &format!("{css} to read {expected}"), || {
            let found = self.try_call("POST", &format!("{session}/element"), Some(query.clone())).ok()?;
            let element = found[ELEMENT_KEY].as_str()?.to_owned();
            let text = self.try_call("GET", &format!("{session}/element/{element}/text"), None).ok()?;
            (text.as_str() == Some(expected)).then_some(())
        });
    }

    fn url(&self) -> String {
        self.session_call("GET", "/url", None).as_str().unwrap_or("").to_owned()
    }

    fn screenshot(&self, name: &str) {
        let encoded = self.session_call("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(artifacts_dir().join(name), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.agent.delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, d)| acc | (d << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

#[test]
fn log_in_see_the_budget_switch_language_log_out() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let (email, password) = server.demo_password("admin");
    let browser = Browser::start();

    // French by default, from the browser's language; the budget as a chart and as a table.
    browser.go(&format!("{}/", server.base));
    assert_eq!(browser.text("h1"), "Le programme en un coup d'œil");
    assert_eq!(browser.count("#budget-chart svg rect"), 3 + 5 * 3, "legend and three bars per line");
    assert!(browser.text("#budget-table").contains("500 M€"));
    assert!(browser.text("#budget-table").contains("1,5 Md€"));
    browser.screenshot("dashboard-fr.png");

    // A wrong password says so, in French.
    browser.click("#login-link");
    browser.wait_text("h1", "Connexion");
    browser.type_into("#email", &email);
    browser.type_into("#password", "not the password");
    browser.click("#login-submit");
    browser.wait_text("#login-error", "Adresse ou mot de passe incorrect.");
    browser.screenshot("login-error-fr.png");

    // Log in.
    browser.type_into("#password", &password);
    browser.click("#login-submit");
    browser.wait_text("#account-link", "Demo admin");
    assert_eq!(browser.url(), format!("{}/", server.base), "{}", browser.text("main"));

    // Switch to English; the choice is remembered from page to page.
    browser.click("#lang-switch");
    browser.wait_text("h1", "The programme at a glance");
    assert!(browser.text("#budget-table").contains("1.5 bn €"));
    browser.screenshot("dashboard-en.png");
    browser.click("#account-link");
    browser.wait_text("h1", "My account");
    assert_eq!(browser.text("#account-email"), email);
    assert!(browser.text("#account-roles").contains("admin"));
    browser.screenshot("account-en.png");

    // Back to French, then log out: the account page now asks to log in.
    browser.click("#lang-switch");
    browser.wait_text("h1", "Mon compte");
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    browser.go(&format!("{}/account", server.base));
    browser.wait_text("h1", "Connexion");
    assert!(browser.url().contains("/login?next=/account"), "{}", browser.url());
    assert_eq!(browser.text("h1"), "Connexion");
}

#[test]
fn base64_decoding() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
}

#[test]
fn submit_a_job_from_the_project_page_and_watch_it_finish() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let mut options = ServerOptions { demo: true, ..ServerOptions::default() };
    options.env.push(("GRAPPE_CPUS".into(), "2".into()));
    let server = Server::start(&db.url, &options);
    let (email, password) = server.demo_password("project_member");
    let browser = Browser::start();
    browser.go(&format!("{}/login?next=/compute", server.base));
    browser.type_into("#email", &email);
    browser.type_into("#password", &password);
    browser.click("#login-submit");
    browser.wait_text("h1", "Calcul pour tous");
    // The demo's training job: its loss is drawn as a chart once it has run.
    browser.wait_count("#projects .card", 1);
    browser.screenshot("compute-fr.png");
    browser.click("#projects a");
    browser.wait_text("h1", "demo-llm-finetune");
    assert_eq!(browser.count("#usage-chart svg"), 1);
    browser.type_into("#job-name", "hello");
    browser.type_into("#job-command", "echo bonjour depuis le navigateur; sleep 1; echo fin");
    browser.click("#job-submit");
    // The job page follows the log live, then reloads with the final state.
    browser.wait_text("#job-state", "terminée");
    assert!(browser.text("#log").contains("bonjour depuis le navigateur\nfin"), "{}", browser.text("#log"));
    assert!(browser.text("#timeline").contains("en cours"));
    browser.screenshot("job-fr.png");
    browser.go(&format!("{}/compute/jobs/1", server.base));
    browser.wait_count("figure.metric svg", 1);
    browser.screenshot("job-metrics-fr.png");
}
