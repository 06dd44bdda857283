//! Calls without a stop: older than max_call_secs they become `orphaned`
//! CDRs (reason timeout); younger ones stay open across a restart and pair
//! with their stop later; a stop without start is kept as an error record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sip_proxy::spool::EventKind;

#[test]
fn orphans_open_calls_and_stops_without_start() {
    let env = Env::start("max_call_secs = 3600");
    let now = now_ms();
    let spool = env.spool_writer(1 << 20);
    // Started 2 h ago, never stopped: orphaned.
    spool
        .append_blocking(&event(
            EventKind::Start,
            "lost-stop",
            now - 7_200_000,
            Some(1),
            "4989",
        ))
        .unwrap();
    // Started a minute ago: still running.
    spool
        .append_blocking(&event(
            EventKind::Start,
            "running",
            now - 60_000,
            Some(1),
            "4989",
        ))
        .unwrap();
    // A stop whose start was never recorded.
    spool
        .append_blocking(&event(
            EventKind::Stop,
            "lost-start",
            now - 30_000,
            Some(1),
            "4989",
        ))
        .unwrap();
    drop(spool);

    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.cdr("lost-stop", "status, reason, rated, end_ms, unrated_reason"),
        [
            "orphaned",
            "timeout",
            "0",
            "NULL",
            "orphaned: duration unknown"
        ]
    );
    assert_eq!(
        env.cdr("lost-start", "status, error, start_ms, end_ms"),
        [
            "error".to_string(),
            "stop without start".into(),
            "NULL".into(),
            (now - 30_000).to_string()
        ]
    );
    assert_eq!(env.count("call_id = 'running'"), 0);
    assert_eq!(env.status()["open_calls"], 1);

    // The running call's start is kept locally; its stop arrives in a new
    // file after billing was restarted: one normal CDR.
    let spool = env.spool_writer(1 << 20);
    spool
        .append_blocking(&event(EventKind::Stop, "running", now, Some(1), "4989"))
        .unwrap();
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.cdr("running", "status, duration_ms, billed_secs, cost"),
        ["ok", "60000", "60", "10"]
    );
    assert_eq!(env.count("1"), 3);
    assert_eq!(env.status()["open_calls"], 0);
}
