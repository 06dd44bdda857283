//! /health says whether the database is reachable (200/503), /metrics counts
//! requests by status with a latency histogram; losing the database makes
//! the API answer 503, not crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn health_follows_the_database_and_metrics_count_requests() {
    let api = WebApi::start();
    let r = api.request("GET", "/health", None, Auth::None);
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["database"], "up");

    seed(&api); // 2 x 201
    assert_eq!(api.get("/api/v1/domains/999").status, 404);
    assert_eq!(api.get("/api/v1/customers/999").status, 404);
    assert_eq!(
        api.request("GET", "/api/v1/domains", None, Auth::None)
            .status,
        401
    );
    let m = api.request("GET", "/metrics", None, Auth::None).raw;
    assert_eq!(
        metric(&m, "web_api_requests_total{status=\"201\"}"),
        2,
        "{m}"
    );
    assert_eq!(
        metric(&m, "web_api_requests_total{status=\"404\"}"),
        2,
        "{m}"
    );
    assert_eq!(
        metric(&m, "web_api_requests_total{status=\"401\"}"),
        1,
        "{m}"
    );
    assert_eq!(
        metric(&m, "web_api_requests_total{status=\"200\"}"),
        1,
        "{m}"
    );
    let count = metric(&m, "web_api_request_duration_seconds_count");
    assert_eq!(count, 6, "{m}");
    assert_eq!(
        metric(&m, "web_api_request_duration_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    assert!(m.contains("# TYPE web_api_request_duration_seconds histogram"));
    assert_eq!(metric(&m, "web_api_database_up"), 1);

    // The database goes away (kill -9 of mariadbd).
    kill_database(&api);
    let r = api.request("GET", "/health", None, Auth::None);
    assert_eq!(r.status, 503, "{}", r.raw);
    assert_eq!(r.body["database"], "unreachable");
    let r = api.get("/api/v1/domains");
    assert_eq!(r.status, 503, "{}", r.raw);
    let m = api.request("GET", "/metrics", None, Auth::None).raw;
    assert_eq!(metric(&m, "web_api_database_up"), 0, "{m}");
    assert!(
        metric(&m, "web_api_requests_total{status=\"503\"}") >= 2,
        "{m}"
    );
}

/// A web node may boot before the db pair holds its shared IP: the daemon
/// gets ready anyway and answers 503 with the reason, instead of exiting
/// (and being given up by its supervisor).
#[test]
fn starting_without_the_database_serves_503_instead_of_exiting() {
    let mut api = WebApi::start();
    api.terminate();
    assert_eq!(api.wait_exit(), Some(0));
    kill_database(&api);
    api.spawn(); // waits for readiness; panics if the daemon exits
    let r = api.request("GET", "/health", None, Auth::None);
    assert_eq!(r.status, 503, "{}", r.raw);
    assert_eq!(r.body["database"], "unreachable");
    let r = api.get("/api/v1/domains");
    assert_eq!(r.status, 503, "{}", r.raw);
    assert!(
        api.log().contains("serving 503 until the database answers"),
        "{}",
        api.log()
    );
}
