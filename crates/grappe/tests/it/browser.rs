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
    /// Chromium's profile: removed once the browser is gone (fields drop after `Drop::drop`);
    /// it was forgotten before, and left behind in the temporary folder.
    _profile: crate::harness::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let chromedriver = std::env::var("GRAPPE_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&chromedriver).exists(),
            "{chromedriver} is missing: run the tests with scripts/test.sh, which installs chromium-driver"
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let profile = crate::harness::TempDir::new("chromium");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            // Chromium's own temporary folders (`org.chromium.Chromium.scoped_dir.*`, left in
            // /tmp) go into the profile, removed with it.
            .env("TMPDIR", profile.path())
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
        let mut browser = Browser { driver, base, session: String::new(), agent, _profile: profile };
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"].as_str().expect("session id").to_owned();
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

    /// The element's visible text. A live page may replace the element between finding and
    /// reading it (a stale reference): then it is found again, a few times at most.
    fn text(&self, css: &str) -> String {
        let session = format!("/session/{}", self.session);
        let mut last_error = String::new();
        for _ in 0..5 {
            let element = self.find(css);
            match self.try_call("GET", &format!("{session}/element/{element}/text"), None) {
                Ok(text) => return text.as_str().unwrap_or("").to_owned(),
                Err(error) => last_error = error,
            }
        }
        panic!("webdriver text of {css}: {last_error}")
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.session_call("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session_call("POST", &format!("/element/{element}/value"), Some(json!({ "text": text })));
    }

    /// Runs axe-core (the npm registry's, installed by `scripts/install-test-deps.sh`) on the page
    /// and fails on any violation of WCAG 2.x A and AA or best practice, naming each rule and
    /// where it failed.
    fn assert_accessible(&self, what: &str) {
        let default =
            format!("{}/.cache/grappe/npm/node_modules/axe-core/axe.min.js", std::env::var("HOME").unwrap_or_default());
        let path = std::env::var("GRAPPE_TEST_AXE").unwrap_or(default);
        let axe = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("axe-core at {path} ({error}): run scripts/install-test-deps.sh"));
        self.session_call("POST", "/execute/sync", Some(json!({ "script": format!("{axe}; return 0;"), "args": [] })));
        let run = "const done = arguments[arguments.length - 1]; \
            axe.run(document, { resultTypes: ['violations'] }).then((result) => done(result.violations.map((v) => \
            `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`)));";
        let violations = self.session_call("POST", "/execute/async", Some(json!({ "script": run, "args": [] })));
        let violations = violations.as_array().cloned().unwrap_or_default();
        assert!(violations.is_empty(), "axe-core on {what}: {}", serde_json::to_string_pretty(&violations).unwrap());
    }

    /// Empties a field, then types `text` into it.
    fn replace_text(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session_call("POST", &format!("/element/{element}/clear"), Some(json!({})));
        self.type_into(css, text);
    }

    /// An attribute of the first `css` element, if it has it.
    fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css);
        self.session_call("GET", &format!("/element/{element}/attribute/{name}"), None).as_str().map(str::to_owned)
    }

    /// Polls until `css` matches `count` elements: a click that submits a form may return
    /// before the next page has loaded.
    fn wait_count(&self, css: &str, count: usize) {
        self.wait_count_within(css, count, Duration::from_secs(15));
    }

    fn wait_count_within(&self, css: &str, count: usize, within: Duration) {
        eventually(within, &format!("{count} of {css}"), || (self.count(css) == count).then_some(()));
    }

    /// Polls until the first `css` element reads `expected`.
    fn wait_text(&self, css: &str, expected: &str) {
        self.wait_text_where(css, &format!("{css} to read {expected}"), |text| text == expected);
    }

    /// Polls until the first `css` element's text contains `part`.
    fn wait_contains(&self, css: &str, part: &str) {
        self.wait_text_where(css, &format!("{css} to contain {part}"), |text| text.contains(part));
    }

    /// Polls until the first `css` element's text passes `test`, through pages that are still
    /// loading (no such element yet, or one gone stale).
    fn wait_text_where(&self, css: &str, what: &str, test: impl Fn(&str) -> bool) {
        let session = format!("/session/{}", self.session);
        let query = json!({ "using": "css selector", "value": css });
        eventually(Duration::from_secs(15), what, || {
            let found = self.try_call("POST", &format!("{session}/element"), Some(query.clone())).ok()?;
            let element = found[ELEMENT_KEY].as_str()?.to_owned();
            let text = self.try_call("GET", &format!("{session}/element/{element}/text"), None).ok()?;
            text.as_str().is_some_and(&test).then_some(())
        });
    }

    fn url(&self) -> String {
        self.session_call("GET", "/url", None).as_str().unwrap_or("").to_owned()
    }

    fn scroll_to(&self, id: &str) {
        let scroll = json!({ "script": "document.getElementById(arguments[0]).scrollIntoView()", "args": [id] });
        self.session_call("POST", "/execute/sync", Some(scroll));
    }

    /// The elements wider than the window (at most five), if the page scrolls sideways.
    fn overflowing(&self) -> String {
        let widest = json!({ "script": "const w = window.innerWidth; \
            if (document.documentElement.scrollWidth <= w) return ''; \
            return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1) \
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)) \
            .join(', ');", "args": [] });
        self.session_call("POST", "/execute/sync", Some(widest)).as_str().unwrap_or_default().to_owned()
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
    assert_eq!(browser.text("h1"), "France 2030 : plan pour l'intelligence artificielle");
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
    browser.wait_text("h1", "France 2030: the artificial intelligence plan");
    assert!(browser.text("#budget-table").contains("1.5 bn €"));
    browser.screenshot("dashboard-en.png");
    browser.click("#account-link");
    browser.wait_text("h1", "My account");
    assert_eq!(browser.text("#account-email"), email);
    assert!(browser.text("#account-roles").contains("Administrator"));
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
    // The demo holds two CPUs (its training, and the model it serves through the gateway): a
    // third for the job submitted here.
    options.env.push(("GRAPPE_CPUS".into(), "3".into()));
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
    // Job 1 is the demo's training: on a machine loaded by the other tests it may take a minute
    // to print its first metric; the page draws its charts as they come (every 2 s).
    browser.go(&format!("{}/compute/jobs/1", server.base));
    browser.wait_count_within("figure.metric svg", 1, Duration::from_secs(90));
    browser.screenshot("job-metrics-fr.png");
}

#[test]
fn the_job_page_follows_a_job_from_pending_to_completed_without_reloading() {
    use crate::compute::{options, project_with_member, submit, wait_state};
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "direct", 100);
    let job = |command: &str| json!({ "project": project, "command": ["sh", "-c", command], "time_limit_s": 300 });
    let blocker = submit(&client, &token, job("sleep 300"))["id"].as_i64().unwrap();
    wait_state(&client, &token, blocker, &["running"]);
    let waiting = submit(&client, &token, job("echo début; sleep 2; echo fin"))["id"].as_i64().unwrap();
    let browser = Browser::start();
    browser.go(&format!("{}/login?next=/compute/jobs/{waiting}", server.base));
    browser.type_into("#email", "direct@example.org");
    browser.type_into("#password", "a long enough password\u{E007}");
    browser.wait_text("#job-state", "en attente");
    // A mark in the page's own memory: a reload would wipe it.
    browser.session_call(
        "POST",
        "/execute/sync",
        Some(json!({ "script": "window.grappeMark = 41; return 0;", "args": [] })),
    );

    // Cancelling asks first: dismissed, nothing happens.
    browser.click("#job-cancel");
    browser.session_call("POST", "/alert/dismiss", Some(json!({})));
    assert_eq!(client.get(&format!("/api/v1/jobs/{waiting}"), Some(&token)).body["state"], "pending");

    // The CPU frees: the page shows the start, the output and the end by itself.
    assert_eq!(client.post(&format!("/api/v1/jobs/{blocker}/cancel"), Some(&token), &json!({})).status, 200);
    browser.wait_text("#job-state", "en cours");
    eventually(Duration::from_secs(30), "the job to end on the page", || {
        (browser.text("#job-state") == "terminée").then_some(())
    });
    assert!(browser.text("#log").contains("début\nfin"), "{}", browser.text("#log"));
    assert!(browser.text("#timeline").contains("en cours"), "{}", browser.text("#timeline"));
    // Times in the platform's zone (Europe/Paris by default), the French way, the zone said.
    let timeline = browser.text("#timeline");
    assert!(timeline.contains(" CET ") || timeline.contains(" CEST "), "{timeline}");
    // Each time is also written for machines: `<time datetime="...Z">`.
    assert!(browser.count("#timeline time[datetime$='Z']") >= 3, "the timeline's times as <time datetime>");
    assert!(
        timeline.split_whitespace().next().is_some_and(|date| date.len() == 10 && &date[2..3] == "/"),
        "{timeline}"
    );
    assert!(browser.text("#job-elapsed").ends_with("s / 5 min"), "{}", browser.text("#job-elapsed"));
    assert_eq!(browser.count("#job-cancel"), 0, "nothing left to cancel");
    assert!(
        browser.text("#job-live").contains("sh -c 'echo début; sleep 2; echo fin'"),
        "the command as a shell reads it"
    );
    let mark = browser.session_call(
        "POST",
        "/execute/sync",
        Some(json!({ "script": "return window.grappeMark || 0;", "args": [] })),
    );
    assert_eq!(mark, json!(41), "followed without a reload");
    browser.screenshot("job-live-fr.png");
}

#[test]
fn a_wrong_field_of_the_job_form_is_said_next_to_it_in_french_and_nothing_typed_is_lost() {
    use crate::compute::{options, project_with_member};
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "formulaire", 100);
    let browser = Browser::start();
    browser.go(&format!("{}/login?next=/compute/projects/{project}", server.base));
    browser.type_into("#email", "formulaire@example.org");
    browser.type_into("#password", "a long enough password\u{E007}");
    browser.wait_count("#submit-form", 1);
    // No command, no CPU, a memory in words: three messages, each by its field.
    browser.type_into("#job-name", "essai");
    browser.replace_text("#job-cpus", "0");
    browser.replace_text("#job-memory", "deux");
    browser.click("#job-submit");
    browser.wait_count(".field-error", 3);
    assert_eq!(browser.text("#job-command-error"), "Donnez la commande à lancer.");
    assert_eq!(browser.text("#job-cpus-error"), "Un nombre entier de CPU, au moins 1.");
    assert!(
        browser.text("#job-memory-error").starts_with("Une quantité en Go"),
        "{}",
        browser.text("#job-memory-error")
    );
    assert_eq!(browser.attribute("#job-memory", "aria-describedby").as_deref(), Some("job-memory-error"));
    assert_eq!(browser.attribute("#job-memory", "value").as_deref(), Some("deux"), "what was typed is kept");
    assert_eq!(browser.attribute("#job-name", "value").as_deref(), Some("essai"));
    browser.screenshot("job-form-errors-fr.png");
    // A refusal of the job as a whole (past its QoS's cap) says so above the form.
    browser.type_into("#job-command", "echo ok");
    browser.replace_text("#job-cpus", "1");
    browser.replace_text("#job-memory", "0,5");
    browser.replace_text("#job-time", "600");
    browser.session_call(
        "POST",
        "/execute/sync",
        Some(json!({ "script": "document.getElementById('job-qos').value = 'dev'; return 0;", "args": [] })),
    );
    browser.click("#job-submit");
    browser.wait_count("#submit-error", 1);
    assert!(
        browser.text("#submit-error").starts_with("La tâche n'a pas été soumise"),
        "{}",
        browser.text("#submit-error")
    );
    assert_eq!(browser.count(".field-error"), 0);
    // Put right: submitted, half a gibibyte as 512 MB.
    browser.replace_text("#job-time", "60");
    browser.click("#job-submit");
    browser.wait_count("#job-state", 1);
    let jobs = client.get("/api/v1/jobs", Some(&token));
    assert_eq!(jobs.body["items"][0]["memory_mb"], 512, "{}", jobs.text);
    assert_eq!(jobs.body["items"][0]["name"], "essai");
}

/// Every page of the demo, as each kind of user sees it, in French and English, on a desk and
/// on a phone: no violation that axe-core finds, and no page wider than the screen.
#[test]
fn axe_core_finds_no_violation_on_any_page_for_any_role_language_or_width() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let public = [
        "/",
        "/login",
        "/calls",
        "/calls/1",
        "/data",
        "/data/code-du-travail",
        "/models",
        "/challenges",
        "/challenges/1",
        "/ai",
        "/booster",
        "/programme/lines/ia_cluster",
        "/programme/report/2026",
    ];
    let roles: [(&str, &[&str]); 4] = [
        (
            "project_member",
            &[
                "/compute",
                "/compute/projects/1",
                "/compute/jobs/1",
                "/ai",
                "/account",
                "/models/classifieur-code-du-travail",
            ],
        ),
        ("call_manager", &["/calls/1", "/calls/2", "/calls/1/applications/1"]),
        ("juror", &["/calls/2", "/calls/2/applications/4"]),
        ("applicant", &["/calls/1", "/calls/1/applications/1"]),
    ];
    let mut checked = 0;
    for (language, width) in [("fr", 1280), ("en", 390)] {
        let people = [("anonymous", &public[..])].into_iter().chain(roles);
        for (role, paths) in people {
            let browser = Browser::start();
            browser.session_call("POST", "/window/rect", Some(json!({ "width": width, "height": 900 })));
            browser.go(&format!("{}/lang/{language}?next=/", server.base));
            if role != "anonymous" {
                let (email, password) = server.demo_password(role);
                browser.go(&format!("{}/login", server.base));
                browser.type_into("#email", &email);
                browser.type_into("#password", &format!("{password}\u{E007}"));
                browser.wait_count("#login-submit", 0);
            }
            for path in paths {
                browser.go(&format!("{}{path}", server.base));
                let what = format!("{path} ({language}, {width} px, {role})");
                browser.assert_accessible(&what);
                assert_eq!(browser.overflowing(), "", "{what} is wider than the screen");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * (13 + 13));
}

#[test]
fn the_account_page_says_roles_in_words_and_revokes_a_token() {
    use crate::compute::{options, project_with_member};
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (_, token) = project_with_member(&client, "compte", 100);
    assert_eq!(client.get("/api/v1/me", Some(&token)).status, 200);
    let browser = Browser::start();
    browser.go(&format!("{}/login?next=/account", server.base));
    browser.type_into("#email", "compte@example.org");
    browser.type_into("#password", "a long enough password\u{E007}");
    browser.wait_count("#account-roles", 1);
    assert_eq!(browser.text("#account-roles"), "Membre de projet · le projet compte");
    browser.click("#account-tokens button");
    browser.wait_count("#account-tokens button", 0);
    assert!(browser.text("#account-tokens").contains("révoqué"), "{}", browser.text("#account-tokens"));
    assert_eq!(client.get("/api/v1/me", Some(&token)).status, 401, "revoked from the page, refused at once");
}

/// An administrator creates an organisation, a person, a project with that person as a member,
/// and grants a role, from the admin page alone: nothing needs curl.
#[test]
fn an_administrator_sets_up_people_and_projects_from_the_admin_page() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let (email, password) = server.demo_password("admin");
    let browser = Browser::start();
    browser.go(&format!("{}/login", server.base));
    browser.type_into("#email", &email);
    browser.type_into("#password", &format!("{password}\u{E007}"));
    browser.wait_count("#admin-link", 1);
    browser.click("#admin-link");
    browser.wait_text("h1", "Administration");
    browser.type_into("#org-name", "Laboratoire des Grappes");
    browser.click("#admin-organisation-form button");
    browser.wait_contains("#admin-organisations", "Laboratoire des Grappes · université");
    browser.type_into("#user-name", "Camille Durand");
    browser.type_into("#user-email", "camille@grappes.fr");
    browser.type_into("#user-password", "un mot de passe assez long");
    browser.click("#admin-user-form button");
    browser.wait_contains("#admin-users", "camille@grappes.fr");
    browser.type_into("#project-name", "vendanges");
    browser.replace_text("#project-gpu", "250");
    browser.type_into("#project-members", "camille@grappes.fr");
    browser.click("#admin-project-form button");
    browser.wait_contains("#admin-projects", "vendanges");
    assert!(
        browser.text("#admin-users").contains("Membre de projet (le projet vendanges)"),
        "{}",
        browser.text("#admin-users")
    );
    // An unknown person is refused with the reason, and nothing is made.
    browser.type_into("#grant-email", "personne@grappes.fr");
    browser.click("#admin-grant-form button");
    browser.wait_count("#admin-grant-form", 0);
    assert!(browser.text("main").contains("no user with the e-mail personne@grappes.fr"), "{}", browser.text("main"));
    browser.go(&format!("{}/admin", server.base));
    browser.assert_accessible("/admin (fr, admin)");
    browser.screenshot("admin-fr.png");
}

/// Another port of the same host: the same site to the browser, so it sends Grappe's
/// `SameSite` cookies along, and it may set cookies that Grappe reads (over plain HTTP, where no
/// `__Host-` prefix protects them). Serves each path's page once asked, with its cookies.
struct Attacker {
    base: String,
}

impl Attacker {
    fn start(pages: Vec<(&'static str, String, Vec<String>)>) -> Attacker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && std::io::Read::read(&mut stream, &mut byte).is_ok_and(|n| n == 1)
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/");
                let (html, cookies) = pages
                    .iter()
                    .find(|(page, _, _)| *page == path)
                    .map_or((String::new(), Vec::new()), |(_, html, cookies)| (html.clone(), cookies.clone()));
                let mut answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n",
                    html.len()
                );
                for cookie in cookies {
                    answer += &format!("Set-Cookie: {cookie}; Path=/\r\n");
                }
                answer += "\r\n";
                answer += &html;
                let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
            }
        });
        Attacker { base }
    }
}

/// A page that posts `fields` to `action` as soon as it loads.
fn auto_submit(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String =
        fields.iter().map(|(name, value)| format!(r#"<input type="hidden" name="{name}" value="{value}">"#)).collect();
    format!(
        r#"<!doctype html><form id="f" method="post" action="{action}">{inputs}</form><script>document.getElementById("f").submit()</script>"#
    )
}

/// The audit's CSRF findings, in a real browser: a page on another port planted a CSRF cookie and
/// cancelled the victim's job, and logged the victim's browser into the attacker's account.
/// Here the attacker does better than plant a made-up token: for the login it plants a real
/// pre-session of its own with the token that fits it; only the origin check can stop that.
#[test]
fn a_page_on_another_port_cannot_cancel_a_job_or_log_the_victim_in_as_someone_else() {
    use crate::compute::{options, project_with_member, submit, wait_state};
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &options(2));
    let client = server.client();
    let (project, victim_token) = project_with_member(&client, "victim", 100);
    client.new_user("mallory@example.org");
    let job =
        submit(&client, &victim_token, json!({ "project": project, "command": ["sleep", "120"], "time_limit_s": 600 }));
    let id = job["id"].as_i64().unwrap();
    wait_state(&client, &victim_token, id, &["running"]);

    // A genuine pre-session and its login token, fetched from Grappe by the attacker.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let login_page = agent.get(&format!("{}/login", server.base)).call().unwrap();
    let presession = login_page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok()?.strip_prefix("grappe_presession="))
        .map(|rest| rest.split(';').next().unwrap().to_owned())
        .next()
        .expect("a pre-session cookie");
    let html = login_page.into_body().read_to_string().unwrap();
    let token_at = html.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
    let token = &html[token_at..token_at + 64];

    let attacker = Attacker::start(vec![
        (
            "/login",
            auto_submit(
                &format!("{}/login", server.base),
                &[
                    ("csrf", token),
                    ("next", "/account"),
                    ("email", "mallory@example.org"),
                    ("password", "a long enough password"),
                ],
            ),
            vec![format!("grappe_presession={presession}")],
        ),
        (
            "/cancel",
            auto_submit(&format!("{}/compute/jobs/{id}/cancel", server.base), &[("csrf", "planted")]),
            vec!["grappe_csrf=planted".to_owned(), "grappe_presession=planted".to_owned()],
        ),
    ]);
    let browser = Browser::start();

    // Login CSRF: refused as a request from another site; the browser is logged in as nobody.
    browser.go(&format!("{}/", server.base));
    browser.go(&format!("{}/login", attacker.base));
    browser.wait_text("h1", "Erreur");
    assert!(browser.text("main").contains("autre site"), "{}", browser.text("main"));
    browser.screenshot("cross-site-refused-fr.png");
    browser.go(&format!("{}/account", server.base));
    browser.wait_text("h1", "Connexion");

    // The victim logs in for real, then visits the attacker's page: the job goes on running.
    browser.type_into("#email", "victim@example.org");
    browser.type_into("#password", "a long enough password");
    browser.click("#login-submit");
    browser.wait_text("h1", "Mon compte");
    browser.go(&format!("{}/cancel", attacker.base));
    browser.wait_text("h1", "Erreur");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(client.get(&format!("/api/v1/jobs/{id}"), Some(&victim_token)).body["state"], "running");
    browser.go(&format!("{}/account", server.base));
    browser.wait_text("#account-email", "victim@example.org");
    client.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&victim_token), &json!({}));
}

/// The open data catalogue as a newcomer uses it: in French, with the keyboard only (a search
/// typed and Enter), then the dataset's page, in English and on a phone-sized screen.
#[test]
fn find_a_dataset_in_the_catalogue_with_the_keyboard_and_read_its_page() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let browser = Browser::start();
    browser.go(&format!("{}/data", server.base));
    browser.wait_text("h1", "Communs de données ouvertes");
    // The demo's two: the communes and the Code du travail.
    assert_eq!(browser.count("#datasets .card"), 2);
    browser.screenshot("data-fr.png");
    // A search that matches nothing says so; one that matches finds the communes.
    browser.type_into("#q", "baleines\u{E007}");
    browser.wait_count("#no-datasets", 1);
    assert_eq!(browser.text("#no-datasets"), "Aucun jeu de données ne correspond à ces filtres.");
    browser.go(&format!("{}/data?q=communes", server.base));
    browser.wait_count("#datasets .card", 1);
    browser.click("#datasets a");
    browser.wait_text("h1", "Communes de France (COG 2026)");
    assert!(browser.text("#pull-command").starts_with("grappe dataset pull communes-france@v1"));
    assert_eq!(browser.count("#files tbody tr"), 3);
    assert!(browser.text("#card").contains("Les 34 969 communes"), "{}", browser.text("#card"));
    assert!(browser.text("#splits").contains("train.csv"));
    browser.screenshot("dataset-fr.png");
    // What validation found: rows per split as a chart, each file's columns and first rows.
    assert_eq!(browser.count("#splits-chart svg"), 1);
    assert!(browser.text("details.file-report summary").contains("lignes"));
    browser.scroll_to("splits");
    browser.screenshot("dataset-validation-fr.png");
    browser.click("#lang-switch");
    browser.wait_text("h2", "Get it");
    browser.screenshot("dataset-en.png");
    browser.session_call("POST", "/window/rect", Some(serde_json::json!({ "width": 390, "height": 844 })));
    browser.go(&format!("{}/data/communes-france", server.base));
    browser.wait_text("h2", "Get it");
    browser.screenshot("dataset-en-390.png");
    // Nothing makes the page scroll sideways on a phone: wide tables scroll in their own box.
    assert_eq!(browser.overflowing(), "", "elements wider than a 390 px screen");
    browser.go(&format!("{}/data", server.base));
    browser.wait_count("#datasets .card", 2);
    browser.screenshot("data-en-390.png");
    browser.click("#lang-switch");
    browser.wait_text("h1", "Communs de données ouvertes");
    browser.screenshot("data-fr-390.png");
    browser.go(&format!("{}/data/communes-france", server.base));
    browser.wait_text("h2", "Le récupérer");
    browser.screenshot("dataset-fr-390.png");
}

#[test]
fn take_part_in_the_demo_challenge_from_a_phone_with_the_keyboard() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let (email, password) = server.demo_password("participant");
    let browser = Browser::start();
    browser.session_call("POST", "/window/rect", Some(json!({ "width": 390, "height": 844 })));
    browser.go(&format!("{}/login?next=/challenges", server.base));
    browser.type_into("#email", &email);
    browser.type_into("#password", &format!("{password}\u{E007}"));
    browser.wait_text("h1", "Défi international");
    assert_eq!(browser.count("#challenges .card"), 1);
    browser.click("#challenges a");
    browser.wait_text("h1", "Le Code du travail, partie par partie");
    // The baseline is on the board, unranked; the private board waits for the close.
    assert!(browser.text("#public-board").contains("classe majoritaire"), "{}", browser.text("#public-board"));
    assert!(browser.text("#private-hidden").contains("Révélé à la clôture"));
    // A team, by the keyboard alone: type the name, press Enter.
    browser.type_into("#team-name-input", "Les Prud'hommes\u{E007}");
    browser.wait_text("#team-name", "Les Prud'hommes");
    // Predictions pasted into the form: every article in "emploi".
    let labels = include_str!("../../../../demo/challenges/code-du-travail-labels.csv");
    let mut predictions = String::from("id,label\n");
    for line in labels.lines().skip(1) {
        predictions.push_str(&format!("{},emploi\n", line.split(',').next().unwrap()));
    }
    let fill =
        json!({ "script": "document.getElementById('predictions').value = arguments[0];", "args": [predictions] });
    browser.session_call("POST", "/execute/sync", Some(fill));
    browser.type_into("#note", "tout en emploi\u{E007}");
    browser.wait_count("#team-submissions tbody tr", 1);
    assert!(browser.text("#team-submissions").contains("notée"), "{}", browser.text("#team-submissions"));
    let board = browser.text("#public-board");
    assert!(board.contains("Les Prud'hommes"), "{board}");
    assert_eq!(browser.count("#public-board tr.current"), 1, "the reader's team is marked");
    assert_eq!(browser.count("#history-chart svg"), 1);
    assert_eq!(browser.overflowing(), "", "elements wider than a 390 px screen");
    browser.screenshot("challenge-team-fr-390.png");
    browser.scroll_to("public-board-title");
    browser.screenshot("challenge-board-fr-390.png");
    // A bad file is refused in French terms of lines and ids, and does not count.
    browser.go(&format!("{}/challenges/1", server.base));
    let fill =
        json!({ "script": "document.getElementById('predictions').value = 'id,label\\nnope,emploi\\n';", "args": [] });
    browser.session_call("POST", "/execute/sync", Some(fill));
    browser.click("#submit-form button");
    browser.wait_count("main p", 1);
    assert!(browser.text("main").contains("nope"), "{}", browser.text("main"));
    browser.session_call("POST", "/window/rect", Some(json!({ "width": 1280, "height": 1000 })));
    browser.go(&format!("{}/challenges/1", server.base));
    browser.wait_count("#team-submissions tbody tr", 1);
    browser.click("#lang-switch");
    browser.wait_text("#public-board-title", "Public leaderboard");
    browser.scroll_to("public-board-title");
    browser.screenshot("challenge-board-en.png");
}

/// The call's forms beyond applying and reviewing: the manager invites a juror and closes the
/// call by moving its deadline; the applicant attaches a PDF from the application's page; the
/// juror, once its review is in, joins the discussion; the manager adds a conflict, after
/// which the juror's page for the application is gone.
#[test]
fn attach_a_file_discuss_and_manage_the_jury_from_the_pages() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let client = server.client();
    let (manager_email, manager_password) = server.demo_password("call_manager");
    let (applicant_email, applicant_password) = server.demo_password("applicant");
    let juror_email = "experte@ethz.ch";
    let (_, juror_token) = client.new_user(juror_email);
    let manager = client.token_for(&manager_email, &manager_password);
    let applicant = client.token_for(&applicant_email, &applicant_password);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let call = client.post(
        "/api/v1/calls",
        Some(&manager),
        &json!({
            "name": "donnees-ouvertes", "instrument": "ia_cluster", "title_fr": "Jeux de données ouverts", "title_en": "Open datasets",
            "criteria": [{ "key": "utilite", "fr": "Utilité", "en": "Usefulness", "weight": 1 }],
            "envelope_cents": 50_000_000, "reviewers_per_application": 1, "opens_at": now - 7_200_000, "closes_at": now + 86_400_000,
        }),
    );
    assert_eq!(call.status, 201, "{}", call.text);
    let id = call.body["id"].as_i64().unwrap();
    let application = json!({ "organisation": "Observatoire des langues", "title": "Corpus occitan", "summary": "Un corpus annoté.", "requested_cents": 20_000_000 });
    let applied = client.post(&format!("/api/v1/calls/{id}/applications"), Some(&applicant), &application);
    assert_eq!(applied.status, 201, "{}", applied.text);
    let app = applied.body["id"].as_i64().unwrap();
    let browser = Browser::start();
    let log_in = |email: &str, password: &str, next: &str| {
        browser.go(&format!("{}/login?next={next}", server.base));
        browser.type_into("#email", email);
        browser.type_into("#password", &format!("{password}\u{E007}"));
    };
    // The applicant attaches a PDF from the application's page.
    let pdf = crate::harness::TempDir::new("attachment");
    let file = pdf.path().join("projet.pdf");
    std::fs::write(&file, b"%PDF-1.4 le projet").unwrap();
    log_in(&applicant_email, &applicant_password, &format!("/calls/{id}/applications/{app}"));
    browser.wait_text("#attachments", "Pièces jointes");
    browser.type_into("#attachment-file", &file.display().to_string());
    browser.click("#attach-submit");
    browser.wait_count("#attachment-list li", 1);
    assert!(browser.text("#attachment-list").contains("projet.pdf"), "{}", browser.text("#attachment-list"));
    assert_eq!(browser.count("#version-list li"), 2, "the attachment saved a version");
    // The manager's juror form, posted by the applicant from its own page with its own session
    // and token, is refused.
    let forged = json!({
        "script": "const done = arguments[arguments.length - 1]; \
            const csrf = document.querySelector('input[name=csrf]').value; \
            fetch(arguments[0], { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, \
            body: 'csrf=' + encodeURIComponent(csrf) + '&email=applicant%40demo.grappe.fr&country=FR&organisation=X' }) \
            .then(r => done(r.status));",
        "args": [format!("/calls/{id}/jurors")],
    });
    assert_eq!(browser.session_call("POST", "/execute/async", Some(forged)), json!(403), "only managers invite jurors");
    browser.screenshot("application-attachments-fr.png");
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    // The manager invites the juror and closes the call, from the call's page.
    log_in(&manager_email, &manager_password, &format!("/calls/{id}"));
    // The login's redirect lands on the call's page before its form is there to click.
    browser.wait_count("#invite summary", 1);
    browser.click("#invite summary");
    browser.type_into("#juror-email", juror_email);
    browser.type_into("#juror-country", "CH");
    browser.type_into("#juror-organisation", "ETH Zürich");
    browser.type_into("#juror-keywords", "corpus, langues");
    browser.click("#juror-submit");
    browser.wait_count("#jurors tbody tr", 1);
    browser.click("#dates summary");
    let close = json!({ "script": "document.getElementById('dates-closes').value = arguments[0];", "args": [grappe_server::kit::page::datetime_local(now - 3_600_000)] });
    browser.session_call("POST", "/execute/sync", Some(close));
    browser.click("#dates-submit");
    browser.wait_count("#assign-submit", 1);
    browser.click("#assign-submit");
    browser.wait_count("#matrix td.cell-assigned", 1);
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    // The juror reads the file, reviews, then joins the discussion with the keyboard.
    let download = client.get(&format!("/api/v1/applications/{app}/attachments/projet.pdf"), Some(&juror_token));
    assert_eq!((download.status, download.text.as_str()), (200, "%PDF-1.4 le projet"));
    log_in(juror_email, "a long enough password", &format!("/calls/{id}/applications/{app}"));
    browser.wait_text("#discussion", "Discussion du jury");
    assert_eq!(browser.count("#message-form"), 0, "no discussion before the review");
    let review =
        json!({ "scores": { "utilite": 4 }, "justifications": { "utilite": "Rare et utile." }, "confidence": 4 });
    assert_eq!(client.post(&format!("/api/v1/applications/{app}/review"), Some(&juror_token), &review).status, 200);
    browser.go(&format!("{}/calls/{id}/applications/{app}", server.base));
    browser.type_into("#message-body", "Le corpus mérite un financement complet.");
    browser.click("#message-submit");
    browser.wait_count("#messages li", 1);
    assert_eq!(browser.count("#review-list tbody tr"), 1, "the juror reads the reviews once its own is in");
    browser.screenshot("application-discussion-fr.png");
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    // The manager reads the discussion, then adds a conflict: the juror's page is gone.
    log_in(&manager_email, &manager_password, &format!("/calls/{id}/applications/{app}"));
    browser.wait_count("#messages li", 1);
    assert!(browser.text("#messages").contains("financement complet"), "{}", browser.text("#messages"));
    browser.go(&format!("{}/calls/{id}", server.base));
    browser.click("#conflict-change summary");
    browser.type_into("#conflict-why", "Co-auteur récent du porteur");
    browser.click("#conflict-submit");
    browser.wait_count("#conflict-list tbody tr", 1);
    let page = client.request("GET", &format!("/calls/{id}/applications/{app}"), Some(&juror_token), None);
    assert_eq!(page.status, 404, "a conflicted juror no longer reaches the application's page");
}

/// A project member uses the gateway from its page: creates a key (shown once), asks a model in
/// the playground and reads the answer as it streams, then revokes the key, which fails at once.
#[test]
fn create_a_key_try_a_model_in_the_playground_and_revoke_the_key() {
    let upstream = crate::gateway::Upstream::start();
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let client = server.client();
    crate::gateway::register(&client, &upstream, "petit-modele", None, (1000, 1000));
    // The demo's model is listed once a job trained it, it is registered and its serving job queued.
    eventually(Duration::from_secs(120), "the demo's language model", || {
        client.get("/api/v1/jobs", Some(crate::harness::ADMIN_TOKEN)).text.contains("\"serve grappe-lm\"").then_some(())
    });
    let (email, password) = server.demo_password("project_member");
    let browser = Browser::start();
    browser.go(&format!("{}/login?next=/ai", server.base));
    browser.type_into("#email", &email);
    browser.type_into("#password", &format!("{password}\u{E007}"));
    // The demo's own model, and the one registered here.
    browser.wait_count("#model-list tbody tr", 2);
    assert!(browser.text("#model-list").contains("petit-modele"), "{}", browser.text("#model-list"));
    browser.type_into("section[id^='project-'] input[name='name']", "carnet");
    // Given the right to fine-tune, by keyboard: a space ticks the box.
    browser.type_into("section[id^='project-'] input[name='fine_tuning']", " ");
    browser.click("section[id^='project-'] form.stacked button");
    browser.wait_count("#new-key", 1);
    let key = browser.text("#new-key");
    assert!(key.starts_with("gsk-"), "{key}");
    assert_eq!(client.get("/v1/models", Some(&key)).status, 200);
    browser.go(&format!("{}/ai#playground", server.base));
    assert!(browser.text(".key-list").contains("carnet affinage"), "{}", browser.text(".key-list"));
    browser.type_into("#playground-model", "petit-modele");
    browser.type_into("#playground-prompt", "Bonjour");
    browser.click("#playground-submit");
    browser.wait_text("#playground-answer", "mmmmm");
    browser.screenshot("gateway-playground-fr.png");
    browser.click(".key-list button.link");
    browser.wait_count(".key-list button.link", 0);
    assert_eq!(client.get("/v1/models", Some(&key)).status, 401, "revoked from the page, refused at once");
    browser.click("#lang-switch");
    browser.wait_text("h1", "AI as a service: an OpenAI-compatible gateway");
    browser.screenshot("gateway-en.png");
}

#[test]
fn apply_to_the_demo_call_from_a_phone_with_the_keyboard() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let (email, password) = server.demo_password("applicant");
    let browser = Browser::start();
    browser.session_call("POST", "/window/rect", Some(json!({ "width": 390, "height": 844 })));
    browser.go(&format!("{}/login?next=/calls", server.base));
    browser.type_into("#email", &email);
    browser.type_into("#password", &format!("{password}\u{E007}"));
    browser.wait_text("h1", "Appels et jury international");
    // The open call (the demo's first; its decided 2024 call is listed above it, newer).
    browser.click("#calls a[href='/calls/1']");
    browser.wait_text("h1", "Pôles de recherche et de formation en IA (IA-Clusters)");
    assert!(browser.text("#criteria").contains("Attractivité internationale"), "{}", browser.text("#criteria"));
    assert!(browser.text("#call-facts").contains("360 M€"), "{}", browser.text("#call-facts"));
    assert_eq!(browser.count("#application-list tbody tr"), 3, "the demo applicant's three");
    // A fourth, by the keyboard: each field typed, Enter in the last one.
    browser.type_into("#organisation", "Université de Lille");
    browser.type_into("#app-title", "Pôle IA Hauts-de-France");
    browser.type_into("#summary", "Formation et recherche en IA pour l'industrie du Nord.");
    browser.type_into("#partners", "Inria, Centrale Lille");
    browser.type_into("#keywords", "industrie, robotique");
    browser.type_into("#requested", "25000000");
    browser.type_into("#gpu-hours", "500000\u{E007}");
    browser.wait_count("#application-list tbody tr", 4);
    assert!(browser.text("#application-list").contains("Pôle IA Hauts-de-France"));
    assert_eq!(browser.overflowing(), "", "elements wider than a 390 px screen");
    browser.screenshot("call-fr-390.png");
    browser.scroll_to("applications");
    browser.screenshot("call-applications-fr-390.png");
    browser.session_call("POST", "/window/rect", Some(json!({ "width": 1280, "height": 1000 })));
    browser.click("#lang-switch");
    browser.wait_text("#criteria-title", "Criteria");
    browser.screenshot("call-en.png");
}

/// A juror reviews by the keyboard; the call manager sees the matrix, the progress and the
/// ranking as a chart.
#[test]
fn review_as_a_juror_and_follow_it_as_the_call_manager() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let client = server.client();
    let (manager_email, manager_password) = server.demo_password("call_manager");
    // A juror of another domain than the demo's accounts (the same e-mail domain is a conflict).
    let (juror_email, juror_password) = ("expert@kuleuven.be".to_owned(), "a long enough password".to_owned());
    client.new_user(&juror_email);
    let (applicant_email, applicant_password) = server.demo_password("applicant");
    let manager = client.token_for(&manager_email, &manager_password);
    let applicant = client.token_for(&applicant_email, &applicant_password);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let call = client.post(
        "/api/v1/calls",
        Some(&manager),
        &json!({
            "name": "booster-rapide", "instrument": "ia_booster", "title_fr": "IA Booster express", "title_en": "IA Booster express",
            "criteria": [{ "key": "impact", "fr": "Impact", "en": "Impact", "weight": 2 }, { "key": "faisabilite", "fr": "Faisabilité", "en": "Feasibility", "weight": 1 }],
            "envelope_cents": 10_000_000, "reviewers_per_application": 1, "opens_at": now - 1000, "closes_at": now + 3000,
        }),
    );
    assert_eq!(call.status, 201, "{}", call.text);
    let id = call.body["id"].as_i64().unwrap();
    let application = json!({ "organisation": "Occitanie Vision", "title": "Contrôle qualité par vision", "summary": "Une PME.", "requested_cents": 5_000_000, "keywords": ["vision"] });
    assert_eq!(client.post(&format!("/api/v1/calls/{id}/applications"), Some(&applicant), &application).status, 201);
    let juror = json!({ "email": juror_email, "country": "BE", "organisation": "KU Leuven", "keywords": ["vision", "industrie"] });
    assert_eq!(client.post(&format!("/api/v1/calls/{id}/jurors"), Some(&manager), &juror).status, 201);
    std::thread::sleep(Duration::from_millis(3200));
    let browser = Browser::start();
    // The manager assigns from the page.
    browser.go(&format!("{}/login?next=/calls/{id}", server.base));
    browser.type_into("#email", &manager_email);
    browser.type_into("#password", &format!("{manager_password}\u{E007}"));
    browser.wait_text("h1", "IA Booster express");
    browser.click("#assign-submit");
    browser.wait_count("#matrix td.cell-assigned", 1);
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    // The juror reviews with the keyboard alone.
    browser.go(&format!("{}/login?next=/calls/{id}", server.base));
    browser.type_into("#email", &juror_email);
    browser.type_into("#password", &format!("{juror_password}\u{E007}"));
    browser.wait_text("#to-review", "Dossiers à évaluer");
    let form = "#to-review ~ section form";
    browser.type_into(&format!("{form} select[name='score.impact']"), "4");
    browser.type_into(&format!("{form} textarea[name='why.impact']"), "Un vrai besoin industriel.");
    browser.type_into(&format!("{form} select[name='score.faisabilite']"), "3");
    browser.type_into(&format!("{form} textarea[name='why.faisabilite']"), "Équipe réduite.");
    browser.click(&format!("{form} button"));
    browser.wait_count("#to-review ~ section .badge", 1);
    browser.screenshot("call-review-fr.png");
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    // The manager follows: reviewed in the matrix, and the ranking drawn.
    browser.go(&format!("{}/login?next=/calls/{id}", server.base));
    browser.type_into("#email", &manager_email);
    browser.type_into("#password", &format!("{manager_password}\u{E007}"));
    browser.wait_count("#matrix td.cell-reviewed", 1);
    assert_eq!(browser.count("#ranking-chart svg"), 1);
    assert!(
        browser.text("#ranking-table").contains("3,67"),
        "weighted (2×4 + 3) / 3: {}",
        browser.text("#ranking-table")
    );
    assert!(browser.text("#jurors").contains("1 / 1"), "{}", browser.text("#jurors"));
    browser.scroll_to("assignment");
    browser.screenshot("call-manager-fr.png");
    // The decision from the ranking's form (the amount cut to 40,000 €), then the applicant's
    // letter, in French, printable.
    browser.type_into("#ranking-table select", "retenu");
    let cut = json!({ "script": "document.querySelector(\"#ranking-table input[name^='amount.']\").value = '40000';", "args": [] });
    browser.session_call("POST", "/execute/sync", Some(cut));
    browser.click("#decide-submit");
    browser.wait_count("#ranking-table select", 0);
    assert!(browser.text("#ranking-table").contains("retenu · 40"), "{}", browser.text("#ranking-table"));
    browser.click("#logout");
    browser.wait_count("#login-link", 1);
    browser.go(&format!("{}/login?next=/calls/{id}", server.base));
    browser.type_into("#email", &applicant_email);
    browser.type_into("#password", &format!("{applicant_password}\u{E007}"));
    browser.wait_count("#application-list a[href$='/letter']", 1);
    browser.click("#application-list a[href$='/letter']");
    browser.wait_count("#letter", 1);
    assert!(browser.text("#letter-decision").contains("a retenu votre dossier"), "{}", browser.text("#letter"));
    assert!(browser.text("#letter").contains("40\u{202f}000 €"), "{}", browser.text("#letter"));
    assert!(browser.text("#letter").contains("Un vrai besoin industriel."), "the reviews, without names");
    assert!(!browser.text("#letter").contains("kuleuven"), "no juror's name");
    browser.screenshot("call-letter-fr.png");
}

#[test]
fn the_yearly_report_prints_to_a4_pages_without_the_navigation() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let year = &grappe_domain::calendar::iso_date(grappe_db::now_ms())[..4];
    let browser = Browser::start();
    browser.go(&format!("{}/programme/report/{year}", server.base));
    assert_eq!(browser.text("h1"), format!("Rapport annuel {year}"));
    // The demo's decisions and payments are this year's: the report lists them.
    assert!(browser.count("#report-commitments tbody tr") == 9, "{}", browser.text("main"));
    assert_eq!(browser.count("#report-payments-table tbody tr"), 3);
    // As the printer sees it: no navigation, no header, no hint, every table whole.
    let media = json!({ "cmd": "Emulation.setEmulatedMedia", "params": { "media": "print" } });
    browser.session_call("POST", "/goog/cdp/execute", Some(media));
    let hidden = browser.session_call(
        "POST",
        "/execute/sync",
        Some(json!({ "script": "return ['header.top', 'nav', 'footer', '.no-print'].map(s => getComputedStyle(document.querySelector(s)).display);", "args": [] })),
    );
    assert_eq!(hidden, json!(["none", "none", "none", "none"]));
    let pdf = browser.session_call(
        "POST",
        "/print",
        Some(json!({ "page": { "width": 21.0, "height": 29.7 }, "background": true })),
    );
    let pdf = base64_decode(pdf.as_str().expect("a PDF"));
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    std::fs::write(artifacts_dir().join("report-fr.pdf"), &pdf).expect("write the PDF");
    // Its pages: `/Type /Page` objects (not `/Pages`), each A4 (595 x 842 points).
    let text = String::from_utf8_lossy(&pdf);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    assert!((2..=8).contains(&pages), "{pages} pages");
    assert!(text.contains("/MediaBox [0 0 595"), "A4 pages");
}

#[test]
fn a_centre_coordinator_records_a_training_by_keyboard_and_a_wrong_number_is_said_in_french() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let client = server.client();
    let centres = client.get("/api/v1/centres", None).body;
    let centre =
        centres["items"].as_array().unwrap().iter().find(|c| c["enrolled"] == 0).unwrap()["id"].as_i64().unwrap();
    let decision =
        client.get(&format!("/api/v1/applications/{centre}/decision"), Some(crate::harness::ADMIN_TOKEN)).body;
    crate::centres::coordinator(&client, "coord@example.org", decision["project"].as_i64().unwrap());

    let browser = Browser::start();
    browser.session_call("POST", "/window/rect", Some(json!({ "width": 390, "height": 900 })));
    browser.go(&format!("{}/login?next=/centres/{centre}", server.base));
    browser.type_into("#email", "coord@example.org");
    browser.type_into("#password", "a long enough password\u{E007}");
    browser.wait_count("#training-form", 1);
    browser.type_into("#training-title", "Licence professionnelle IA");
    browser.type_into("#training-places", "quarante");
    browser.type_into("#training-enrolled", "12\u{E007}");
    browser.wait_count("#training-places-error", 1);
    assert_eq!(browser.text("#training-places-error"), "Les places sont un nombre entier de 0 à 100 000.");
    assert_eq!(browser.count("#training-title-error"), 0);
    let typed = browser.session_call(
        "POST",
        "/execute/sync",
        Some(json!({ "script": "return [document.querySelector('#training-title').value, document.querySelector('#training-places').getAttribute('aria-invalid')];", "args": [] })),
    );
    assert_eq!(typed, json!(["Licence professionnelle IA", "true"]), "what was typed is kept");
    browser.assert_accessible("a centre's form with an error (fr, 390 px)");
    assert_eq!(browser.overflowing(), "", "a long name in the header stays within 390 px");
    browser.screenshot("centre-form-error-fr.png");

    // Corrected: the programme is in the table, and in the programme's figures.
    let places = browser.find("#training-places");
    browser.session_call("POST", &format!("/element/{places}/clear"), Some(json!({})));
    browser.type_into("#training-places", "40\u{E007}");
    browser.wait_count("#trainings-table", 1);
    assert!(browser.text("#trainings-table").contains("Licence professionnelle IA"));
    assert_eq!(client.get(&format!("/api/v1/centres/{centre}"), None).body["enrolled"], 12);
    browser.screenshot("centre-fr.png");
}

#[test]
fn a_script_file_sent_from_the_job_form_runs_in_the_jobs_working_directory() {
    use crate::compute::{options, project_with_member};
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "scripteur", 100);
    let folder = crate::harness::TempDir::new("script");
    let script = folder.path().join("bonjour.py");
    std::fs::write(&script, "import os\nprint('bonjour de', os.path.basename(os.getcwd()), sorted(os.listdir('.')))\n")
        .unwrap();
    let browser = Browser::start();
    browser.go(&format!("{}/login?next=/compute/projects/{project}", server.base));
    browser.type_into("#email", "scripteur@example.org");
    browser.type_into("#password", "a long enough password\u{E007}");
    browser.wait_count("#submit-form", 1);
    // The file chosen, no command typed: it runs with python3.
    browser.type_into("#job-script", script.to_str().unwrap());
    browser.click("#job-submit");
    browser.wait_count("#job-live", 1);
    eventually(Duration::from_secs(30), "the job to end on the page", || {
        (browser.text("#job-state") == "terminée").then_some(())
    });
    assert!(browser.text("#log").contains("bonjour de work ['bonjour.py']"), "{}", browser.text("#log"));
    assert!(browser.text("#job-live").contains("python3 bonjour.py"), "{}", browser.text("#job-live"));
    // A script over the form's limit is refused in the page's language, and nothing is submitted.
    let big = folder.path().join("gros.py");
    std::fs::write(&big, "#".repeat(1_200_000)).unwrap();
    browser.go(&format!("{}/compute/projects/{project}", server.base));
    browser.wait_count("#submit-form", 1);
    browser.type_into("#job-script", big.to_str().unwrap());
    browser.click("#job-submit");
    browser.wait_contains("main", "un fichier de script fait au plus 1 Mio");
    browser.screenshot("job-script-too-large-fr.png");
    assert_eq!(client.get("/api/v1/jobs", Some(&token)).body["items"].as_array().unwrap().len(), 1);
}

/// The demo's company member answers the Booster's questionnaire on a phone, with the keyboard
/// only (a space chooses each answer, Enter sends), in French, and reads the result: the radar
/// chart, its group's medians (the demo's five software SMEs), the recommendations.
#[test]
fn answer_the_booster_questionnaire_from_a_phone_with_the_keyboard() {
    let db = TestDb::new(crate::harness::Backend::Sqlite);
    let server = Server::start(&db.url, &ServerOptions { demo: true, ..ServerOptions::default() });
    let (email, password) = server.demo_password("company_member");
    let browser = Browser::start();
    browser.session_call("POST", "/window/rect", Some(json!({ "width": 390, "height": 844 })));
    browser.go(&format!("{}/login?next=/booster", server.base));
    browser.type_into("#email", &email);
    browser.type_into("#password", &format!("{password}\u{E007}"));
    browser.wait_text("h1", "IA Booster pour les PME");
    browser.assert_accessible("/booster (fr, 390 px, company member)");
    assert_eq!(browser.overflowing(), "", "the Booster's page is wider than a 390 px screen");
    browser.scroll_to("benchmark-title");
    browser.screenshot("booster-fr-390.png");
    // The first of the demo's companies by name: a software SME.
    browser.click("#my-companies a");
    browser.wait_text("h1", "Alpes Services Web");
    browser.assert_accessible("a company's page (fr, 390 px)");
    assert_eq!(browser.overflowing(), "", "the company's page is wider than a 390 px screen");
    browser.screenshot("booster-company-fr-390.png");
    browser.click("#start-diagnostic");
    browser.wait_text("h1", "Diagnostic de maturité en IA");
    assert_eq!(browser.count("fieldset.dimension"), 5);
    assert_eq!(browser.count("fieldset.question"), 18, "17 questions and the AI Act's class");
    browser.assert_accessible("the questionnaire (fr, 390 px)");
    assert_eq!(browser.overflowing(), "", "the questionnaire is wider than a 390 px screen");
    let ids: Vec<String> = serde_json::from_str::<Value>(&server.client().get("/api/v1/booster/questions", None).text)
        .unwrap()["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|question| question["id"].as_str().unwrap().to_owned())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        browser.type_into(&format!("input[name='{id}'][value='{}']", i % 4), " ");
    }
    browser.type_into("input[name='ai_act_class'][value='limited']", " ");
    browser.screenshot("booster-questionnaire-fr-390.png");
    browser.type_into("#questionnaire-submit", "\u{E007}");
    browser.wait_text("h1", "Résultat du diagnostic");
    assert_eq!(browser.count("svg.radar polygon"), 4 + 2, "the grid, the company and its group");
    assert!(browser.text("#peers").contains('5'), "{}", browser.text("#peers"));
    assert!(browser.count("#advice li") >= 2);
    assert_eq!(browser.text("#ai-act"), "Risque limité (obligations de transparence)");
    browser.assert_accessible("a diagnostic's result (fr, 390 px)");
    assert_eq!(browser.overflowing(), "", "the result is wider than a 390 px screen");
    browser.scroll_to("radar");
    browser.screenshot("booster-result-fr-390.png");
    // In English, the same result.
    browser.click("#lang-switch");
    browser.wait_text("h1", "Diagnostic result");
    assert_eq!(browser.text("#ai-act"), "Limited risk (transparency)");
    browser.assert_accessible("a diagnostic's result (en, 390 px)");
    assert_eq!(browser.overflowing(), "", "the result in English is wider than a 390 px screen");
}
