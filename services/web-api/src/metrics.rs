//! Request metrics in Prometheus text format: requests by status code and a
//! latency histogram, plus in-flight requests and open connections.
//!
//! Plain atomics and one small map; rendering is a pure function of the
//! counters so it is unit-tested without a server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    pub in_flight: AtomicI64,
    pub connections: AtomicI64,
    pub tls_failures: AtomicU64,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_insert(0) += 1;
        }
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render(&self, db_up: bool) -> String {
        let mut s = String::new();
        s.push_str("# HELP web_api_requests_total HTTP requests answered, by status code.\n");
        s.push_str("# TYPE web_api_requests_total counter\n");
        if let Ok(m) = self.by_status.lock() {
            for (status, n) in m.iter() {
                let _ = writeln!(s, "web_api_requests_total{{status=\"{status}\"}} {n}");
            }
        }
        s.push_str("# HELP web_api_request_duration_seconds Time from request head to response.\n");
        s.push_str("# TYPE web_api_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "web_api_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "web_api_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "web_api_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "web_api_request_duration_seconds_count {count}");
        for (name, help, kind, v) in [
            (
                "web_api_requests_in_flight",
                "Requests being handled.",
                "gauge",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "web_api_connections",
                "Open client connections.",
                "gauge",
                self.connections.load(Ordering::Relaxed),
            ),
            (
                "web_api_tls_handshake_failures_total",
                "Connections dropped during the TLS handshake.",
                "counter",
                i64::try_from(self.tls_failures.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            ),
            (
                "web_api_database_up",
                "1 when the last health check reached the database.",
                "gauge",
                i64::from(db_up),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_by_status() {
        let m = Metrics::default();
        m.observe(200, Duration::from_micros(300));
        m.observe(200, Duration::from_millis(20));
        m.observe(404, Duration::from_secs(3));
        let t = m.render(true);
        assert!(
            t.contains("web_api_requests_total{status=\"200\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("web_api_requests_total{status=\"404\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("web_api_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("web_api_request_duration_seconds_bucket{le=\"0.025\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("web_api_request_duration_seconds_bucket{le=\"2.5\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("web_api_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("web_api_request_duration_seconds_count 3\n"),
            "{t}"
        );
        assert!(t.contains("web_api_database_up 1\n"), "{t}");
    }
}
