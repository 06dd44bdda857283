//! The proxy crashes (SIGKILL) in the middle of an answered call and is
//! started again on the same address: the BYE that follows still reaches
//! the callee through the record-routed proxy, the stop event is written
//! and the call counters are released, because the call lives in Redis
//! rather than in the crashed process.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sip_proxy::spool::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_after_proxy_restart_releases_counters_and_accounts_stop() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(1)),
            Sub::new("bob", "bobpw", 1, Some(1)),
        ],
        Some(1),
    )
    .await;
    let mut proxy = ProxyProc::start(&b, "");
    let calls = b.calls().await;
    let bob_port = free_port();

    let call_id = tokio::task::block_in_place(|| {
        sipp_register(&proxy, "bob", "bobpw", bob_port);
        let call = SippCall::start(
            "alice-to-bob",
            &Vars {
                pause_ms: 4000,
                ..Vars::call("alice", "alicepw", "bob")
            },
            bob_port,
            proxy.addr,
        );
        let start = proxy.wait_for_event(EventKind::Start, 30, "call answered");
        proxy.kill();
        proxy.spawn();
        call.expect_success();
        start.call_id
    });

    let evs = proxy.events();
    // The start event acknowledged before the crash is still there.
    assert!(
        evs.iter()
            .any(|e| e.kind == EventKind::Start && e.call_id == call_id),
        "start event lost in the crash: {evs:?}"
    );
    let stop = evs
        .iter()
        .find(|e| e.kind == EventKind::Stop && e.call_id == call_id);
    assert!(
        stop.is_some(),
        "no stop event after restart: {evs:?}\n{}",
        proxy.log()
    );
    // The stop carries the answer time from the shared call record (a
    // partner proxy's billing needs it to bill a call it did not start).
    let start_ms = evs
        .iter()
        .find(|e| e.kind == EventKind::Start && e.call_id == call_id)
        .map(|e| e.time_ms);
    assert_eq!(stop.and_then(|s| s.answer_ms), start_ms, "{evs:?}");
    assert_counters_free(&calls, &["cc:sub:alice@example.com", "cc:cust:1"]).await;
    assert!(calls.get(&call_id).await.unwrap().is_none());
}
