//! Calls rated against the seeded profiles end up in the central `cdrs`
//! table with the right billed seconds and cost (integer cents): 60/60,
//! 1/1 with connect fee, 30/6, longest prefix, and unrated calls (no fee
//! for the destination, no profile for the customer) still transferred.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn calls_are_rated_by_longest_prefix_and_interval() {
    let env = Env::start("");
    let spool = env.spool_writer(1 << 20);
    let t = now_ms() - 600_000;
    // 61 s to 4989…: prefix 49, 60/60 → 120 s at 10/min = 20.
    call(&spool, "c-60-60", t, 61_000, Some(1), "498912345");
    // 61.5 s to +4930…: prefix 4930 beats 49, 1/1 → 62 s at 6/min = 6.2 → 7, + 5 connect = 12.
    call(&spool, "c-1-1", t, 61_500, Some(1), "+4930123456");
    // 31 s to 44…: 30/6 → 36 s at 12/min = 7.2 → 8.
    call(&spool, "c-30-6", t, 31_000, Some(1), "4420794");
    // 10 s to 1555…: only the catch-all "" matches: 60 s at 2/min = 2.
    call(&spool, "c-catch-all", t, 10_000, Some(1), "1555123");
    // Answered, 0 ms: 1/1 bills nothing but the connect fee.
    call(&spool, "c-zero", t, 0, Some(1), "4930999");
    // Customer 3 (wholesale) has no fee for 1…: unrated.
    call(&spool, "c-no-fee", t, 10_000, Some(3), "1555123");
    // Customer 2 has no billing profile: unrated.
    call(&spool, "c-no-profile", t, 10_000, Some(2), "4989");
    drop(spool);
    let _next = env.spool_writer(1 << 20);

    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cols = "status, rated, prefix, billed_secs, cost, currency, duration_ms";
    assert_eq!(
        env.cdr("c-60-60", cols),
        ["ok", "1", "49", "120", "20", "EUR", "61000"]
    );
    assert_eq!(
        env.cdr("c-1-1", cols),
        ["ok", "1", "4930", "62", "12", "EUR", "61500"]
    );
    assert_eq!(
        env.cdr("c-30-6", cols),
        ["ok", "1", "44", "36", "8", "EUR", "31000"]
    );
    assert_eq!(
        env.cdr("c-catch-all", cols),
        ["ok", "1", "", "60", "2", "EUR", "10000"]
    );
    assert_eq!(
        env.cdr("c-zero", cols),
        ["ok", "1", "4930", "0", "5", "EUR", "0"]
    );
    assert_eq!(
        env.cdr("c-no-fee", "status, rated, cost, unrated_reason"),
        [
            "ok",
            "0",
            "NULL",
            "profile wholesale: no fee for destination 1555123"
        ]
    );
    assert_eq!(
        env.cdr("c-no-profile", "status, rated, cost, unrated_reason"),
        ["ok", "0", "NULL", "no billing profile for customer 2"]
    );
    assert_eq!(env.count("1"), 7);
    // Times and parties carried through.
    assert_eq!(
        env.cdr("c-60-60", "caller, callee, caller_customer, callee_customer, start_ms, answer_ms, end_ms, reason, node"),
        [
            "alice@example.com".to_string(),
            "498912345@example.com".into(),
            "1".into(),
            "9".into(),
            t.to_string(),
            t.to_string(),
            (t + 61_000).to_string(),
            "bye".into(),
            "proxy-test".into()
        ]
    );
    // The closed spool file went to done/ once committed.
    assert_eq!(env.done_files().len(), 1, "{:?}", env.done_files());
}

#[test]
fn fresh_database_gets_the_schema_and_unrated_cdrs() {
    let env = Env::start("");
    env.sql("DROP TABLE billing_customers; DROP TABLE billing_fees; DROP TABLE billing_profiles; DROP TABLE cdrs;");
    let spool = env.spool_writer(1 << 20);
    call(
        &spool,
        "fresh-1",
        now_ms() - 100_000,
        20_000,
        Some(1),
        "4989",
    );
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.cdr("fresh-1", "status, rated, unrated_reason"),
        ["ok", "0", "no billing profile for customer 1"]
    );
    assert_eq!(env.sql("SELECT COUNT(*) FROM billing_profiles").trim(), "0");
}
