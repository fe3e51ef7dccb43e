//! Metrics under abuse, one regression test per finding of the audit: a value of `f64::MAX` took
//! the server down at every visit of its job's page (the chart's tick loop never ended), and a
//! job with 400,000 points took seconds to render, with no limit on how many a job may hold.
//! On SQLite and PostgreSQL, through the real server; points "from before" (values and numbers
//! the server now refuses) are written straight into the database.

use std::time::{Duration, Instant};

use grappe_db::{Db, MetricPoint, PoolConfig};
use serde_json::{Value, json};

use crate::compute::{options, project_with_member, submit, wait_state};
use crate::harness::{ADMIN_TOKEN, Backend, Client, Server, TestDb, backends};

/// Writes points into a job's metrics as an older server would have, past any check or quota.
fn insert_directly(database_url: &str, job: i64, points: &[MetricPoint]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = Db::open(database_url, &PoolConfig::default()).await.unwrap();
        for chunk in points.chunks(10_000) {
            db.add_metrics(job, chunk, i64::MAX).await.unwrap();
        }
    });
}

fn point(key: &str, value: f64, step: i64) -> MetricPoint {
    MetricPoint { key: key.to_owned(), value, step, at: 1 }
}

fn metrics(client: &Client, token: &str, job: i64) -> Value {
    client.get(&format!("/api/v1/jobs/{job}/metrics"), Some(token)).body
}

/// The points of each line the job page draws.
/// The points of each line drawn on a page, in order: a path's, or 1 for a dot (a line of no
/// length).
fn drawn_lines(page: &str) -> Vec<usize> {
    const PATH: &str = "<path d=\"";
    const DOT: &str = "<circle ";
    let mut lines = Vec::new();
    let mut rest = page;
    loop {
        match (rest.find(PATH), rest.find(DOT)) {
            (Some(path), dot) if dot.is_none_or(|dot| path < dot) => {
                rest = &rest[path + PATH.len()..];
                lines.push(rest.split('"').next().unwrap_or("").matches('L').count() + 1);
            }
            (_, Some(dot)) => {
                rest = &rest[dot + DOT.len()..];
                lines.push(1);
            }
            _ => return lines,
        }
    }
}

fn post_metrics(client: &Client, token: &str, job: i64, body: &str) -> crate::harness::Reply {
    client.request("POST", &format!("/api/v1/jobs/{job}/metrics"), Some(token), Some(("application/json", body.into())))
}

#[test]
fn a_metric_of_f64_max_is_refused_and_one_stored_before_still_renders() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "diverged", 100);
        // What the job of the audit printed, and other lines that are not metrics a chart can
        // hold: each is dropped and counted, the good one is kept.
        let lines = [
            r#"{"key": "loss", "value": 1.7976931348623157e308, "step": 1}"#,
            r#"{"key": "loss", "value": -1e300, "step": 2}"#,
            r#"{"key": "loss", "value": 1e400, "step": 3}"#,
            r#"{"key": "loss", "value": NaN, "step": 4}"#,
            r#"{"key": "loss", "value": "inf", "step": 5}"#,
            r#"not json at all"#,
            r#"{"key": "loss", "value": 0.5, "step": 6}"#,
        ];
        let script: String = lines.iter().map(|line| format!("echo 'GRAPPE_METRIC {line}'; ")).collect();
        let job =
            submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 }));
        let id = job["id"].as_i64().unwrap();
        wait_state(&client, &token, id, &["completed"]);
        let stored = metrics(&client, &token, id);
        assert_eq!(stored["items"].as_array().unwrap().len(), 1, "{backend:?}: {stored}");
        assert_eq!(stored["items"][0]["value"], 0.5);
        assert_eq!((stored["points"].as_i64(), stored["dropped"].as_i64()), (Some(1), Some(6)), "{stored}");
        let page = client.get(&format!("/compute/jobs/{id}"), Some(&token));
        assert_eq!(page.status, 200);
        assert!(page.text.contains(r#"<span id="job-metrics-dropped">6</span>"#), "{}", page.text);

        // The API refuses the same values, naming the point, and records nothing of the batch.
        let batch = |value: &str| {
            format!(
                r#"{{"metrics": [{{"key": "acc", "value": 0.1, "step": 1}}, {{"key": "loss", "value": {value}, "step": 7}}]}}"#
            )
        };
        for (value, status, detail) in [
            (
                "1.7976931348623157e308",
                422,
                r#"metric 1 ("loss", step 7) refused: its value 1.7976931348623157e308 is not"#,
            ),
            (
                "-1e300",
                422,
                r#"metric 1 ("loss", step 7) refused: its value -1e300 is not a finite number within ±1e15"#,
            ),
            ("1e16", 422, "is not a finite number within ±1e15"),
            (r#""NaN""#, 422, r#"metric 1 ("loss", step 7) refused: its value "NaN" is not a number"#),
            (r#""Infinity""#, 422, r#"its value "Infinity" is not a number"#),
            ("NaN", 400, "expected value"),
            ("1e400", 400, "number out of range"),
        ] {
            let reply = post_metrics(&client, &token, id, &batch(value));
            reply.assert_envelope(status);
            let text = reply.body["detail"].as_str().unwrap();
            assert!(text.contains(detail), "{backend:?} {value}: {text}");
        }
        assert_eq!(metrics(&client, &token, id)["points"], 1, "nothing of a refused batch is recorded");
        let accepted = post_metrics(&client, &token, id, &batch("-1e15"));
        assert_eq!(accepted.status, 200, "{}", accepted.text);

        // A value from before the checks, f64::MAX itself, among ordinary ones: the page renders
        // at once, its axis up to round ticks near the value, and the server stays up.
        insert_directly(&db.url, id, &[point("loss", f64::MAX, 8), point("loss", f64::MIN, 9), point("loss", 1.0, 10)]);
        let started = Instant::now();
        let page = client.get(&format!("/compute/jobs/{id}"), Some(&token));
        let took = started.elapsed();
        assert_eq!(page.status, 200, "{backend:?}");
        assert!(took < Duration::from_secs(2), "{backend:?}: the page took {took:?}");
        assert!(page.text.contains(">1.0e308<") && page.text.contains(">-1.0e308<"), "{}", page.text);
        for chart in page.text.split(r#"<figure class="metric">"#).skip(1) {
            let svg = chart.split("</figure>").next().unwrap();
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{backend:?}: {svg}");
        }
        assert_eq!(client.get("/healthz", None).status, 200);
    }
}

/// A progress bar on standard error (as tqdm draws it: a carriage return, then the bar, no end
/// of line) beside metric lines on standard output: each metric is still read, because each
/// stream is read as lines of its own.
#[test]
fn metric_lines_are_read_beside_a_progress_bar_on_standard_error() {
    let db = TestDb::new(Backend::Sqlite);
    let server = Server::start(&db.url, &options(1));
    let client = server.client();
    let (project, token) = project_with_member(&client, "tqdm", 100);
    let script = r#"for i in 1 2 3; do printf '\r %d%%|##  | %d/3' $((i*33)) $i >&2; echo "GRAPPE_METRIC {\"key\": \"loss\", \"value\": $i, \"step\": $i}"; done"#;
    let job =
        submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 }));
    let id = job["id"].as_i64().unwrap();
    wait_state(&client, &token, id, &["completed"]);
    let stored = metrics(&client, &token, id);
    assert_eq!((stored["points"].as_i64(), stored["dropped"].as_i64()), (Some(3), Some(0)), "{stored}");
}

#[test]
fn a_job_with_400000_metric_points_renders_in_bounded_time() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let server = Server::start(&db.url, &options(2));
        let client = server.client();
        let (project, token) = project_with_member(&client, "chatty", 100);
        let job = submit(&client, &token, json!({ "project": project, "command": ["true"], "time_limit_s": 60 }));
        let id = job["id"].as_i64().unwrap();
        wait_state(&client, &token, id, &["completed"]);
        // 400,000 points of one key, written before there was a quota, and 24 keys of one point.
        let mut points: Vec<MetricPoint> =
            (0..400_000).map(|step| point("loss", 1.0 / (1.0 + f64::from(step) / 1000.0), i64::from(step))).collect();
        points[123_456].value = 7.0; // a spike, which down-sampling keeps
        points.extend((0..24).map(|key| point(&format!("other-{key:02}"), f64::from(key), 0)));
        let inserted = Instant::now();
        insert_directly(&db.url, id, &points);
        let inserted = inserted.elapsed();
        let mut took = Vec::new();
        let mut page = String::new();
        for _ in 0..3 {
            let started = Instant::now();
            let reply = client.get(&format!("/compute/jobs/{id}"), Some(&token));
            took.push(started.elapsed());
            assert_eq!(reply.status, 200, "{backend:?}");
            page = reply.text;
        }
        eprintln!("{backend:?}: 400,024 points inserted in {inserted:?}; the job page took {took:?}");
        assert!(took.iter().all(|took| *took < Duration::from_secs(2)), "{backend:?}: {took:?}");
        let lines = drawn_lines(&page);
        assert_eq!(lines.len(), 20, "{backend:?}: the first 20 keys are drawn: {lines:?}");
        assert!(lines.iter().all(|points| *points <= 1000), "{backend:?}: {lines:?}");
        assert!(lines[0] > 900, "{backend:?}: the long series is drawn with about 1000 points: {lines:?}");
        assert!(page.contains(r#"id="job-metrics-more""#), "{backend:?}: 24 keys more than drawn");
        // The spike of 7 among values of at most 1 survives the buckets and LTTB: the axis of
        // the first chart rises to it.
        let first_chart = page.split(r#"<figure class="metric">"#).nth(1).unwrap();
        assert!(first_chart.contains(">6<") && first_chart.contains(",40.0"), "{backend:?}: spike lost");
        assert!(page.contains("<dd id=\"job-metric-points\">400\u{202f}024 / 100\u{202f}000"), "{backend:?}");
    }
}

#[test]
fn metric_points_past_the_job_quota_are_refused_or_dropped() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let mut opts = options(2);
        opts.env.push(("GRAPPE_METRIC_POINTS_PER_JOB".into(), "2500".into()));
        let server = Server::start(&db.url, &opts);
        let client = server.client();
        let (project, token) = project_with_member(&client, "quota", 100);
        let job = submit(&client, &token, json!({ "project": project, "command": ["true"], "time_limit_s": 60 }));
        let id = job["id"].as_i64().unwrap();
        wait_state(&client, &token, id, &["completed"]);
        let batch = |count: i64| {
            let metrics: Vec<Value> =
                (0..count).map(|step| json!({ "key": "loss", "value": 0.5, "step": step })).collect();
            json!({ "metrics": metrics })
        };
        for _ in 0..2 {
            let reply = client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&token), &batch(1000));
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let refused = client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&token), &batch(1000));
        refused.assert_envelope(409);
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains("holds 2000 metric points") && detail.contains("limit of 2500"), "{detail}");
        let reply = client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&token), &batch(500));
        assert_eq!((reply.status, reply.body["points"].as_i64()), (200, Some(2500)), "{}", reply.text);
        client.post(&format!("/api/v1/jobs/{id}/metrics"), Some(&token), &batch(1)).assert_envelope(409);
        assert_eq!(metrics(&client, &token, id)["points"], 2500);

        // A job that prints 3,000 metric lines keeps 2,500 and counts 500 dropped.
        let script = r#"i=0; while [ $i -lt 3000 ]; do echo "GRAPPE_METRIC {\"key\": \"loss\", \"value\": $i, \"step\": $i}"; i=$((i+1)); done"#;
        let job =
            submit(&client, &token, json!({ "project": project, "command": ["sh", "-c", script], "time_limit_s": 60 }));
        let id = job["id"].as_i64().unwrap();
        wait_state(&client, &token, id, &["completed"]);
        let stored = crate::harness::eventually(Duration::from_secs(10), "the metric lines stored", || {
            let stored = metrics(&client, &token, id);
            (stored["points"].as_i64().unwrap_or(0) + stored["dropped"].as_i64().unwrap_or(0) == 3000).then_some(stored)
        });
        assert_eq!((stored["points"].as_i64(), stored["dropped"].as_i64()), (Some(2500), Some(500)), "{backend:?}");
        assert_eq!(stored["items"].as_array().unwrap().len(), 2500);
        let page = client.get(&format!("/compute/jobs/{id}"), Some(ADMIN_TOKEN));
        assert!(page.text.contains("<dd id=\"job-metric-points\">2\u{202f}500 / 2\u{202f}500"), "{}", page.text);
    }
}
