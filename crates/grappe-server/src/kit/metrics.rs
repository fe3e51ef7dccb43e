//! Prometheus metrics, kept by hand: a counter of requests by route, method and status, and a
//! latency histogram by route. Routes are the matched patterns (`/api/v1/users/{id}`), never raw
//! paths, so the label set stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, &'static str, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn record(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner.requests.entry((route.to_owned(), method, status)).or_default() += 1;
        let histogram = inner.latency.entry(route.to_owned()).or_default();
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS_S) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_s += seconds;
    }

    /// The text exposition format, with `extra` gauges appended (`name`, labels, value).
    pub fn render(&self, extra: &[(&str, String, f64)]) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP grappe_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE grappe_http_requests_total counter\n");
        for ((route, method, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "grappe_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP grappe_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE grappe_http_request_duration_seconds histogram\n");
        for (route, histogram) in &inner.latency {
            for (bound, count) in BUCKETS_S.iter().zip(histogram.buckets) {
                let _ = writeln!(
                    out,
                    "grappe_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "grappe_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "grappe_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", histogram.sum_s);
            let _ =
                writeln!(out, "grappe_http_request_duration_seconds_count{{route=\"{route}\"}} {}", histogram.count);
        }
        for (name, labels, value) in extra {
            let _ = writeln!(out, "# TYPE {name} gauge\n{name}{{{labels}}} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record("/healthz", "GET", 200, Duration::from_micros(300));
        metrics.record("/healthz", "GET", 200, Duration::from_millis(20));
        let text = metrics.render(&[("grappe_up", String::new(), 1.0)]);
        assert!(text.contains("grappe_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("grappe_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1"));
        assert!(text.contains("grappe_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.025\"} 2"));
        assert!(text.contains("grappe_http_request_duration_seconds_count{route=\"/healthz\"} 2"));
        assert!(text.contains("grappe_up{} 1"));
    }
}
