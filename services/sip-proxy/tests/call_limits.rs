//! Concurrent call limits from the subscriber table, counted in Redis:
//! while alice (limit 1) talks to bob (limit 1), a second call by alice is
//! refused with 403 and a call to bob from dave with 486; after the BYE the
//! counters are free again and the same call goes through.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sip_proxy::spool::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_limit_are_refused_and_counters_are_released() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(1)),
            Sub::new("bob", "bobpw", 1, Some(1)),
            Sub::new("dave", "davepw", 2, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "");
    let calls = b.calls().await;
    let bob_port = free_port();

    tokio::task::block_in_place(|| {
        sipp_register(&proxy, "bob", "bobpw", bob_port);
        let call = SippCall::start(
            "alice-long-call",
            &Vars {
                pause_ms: 8000,
                ..Vars::call("alice", "alicepw", "bob")
            },
            bob_port,
            proxy.addr,
        );
        proxy.wait_for_event(EventKind::Start, 30, "first call answered");

        // alice is at her own limit: 403.
        sipp_call_refused(
            "alice-second-call",
            &Vars {
                expect: 403,
                ..Vars::call("alice", "alicepw", "bob")
            },
            proxy.addr,
        );
        // bob is at his limit: dave gets 486.
        sipp_call_refused(
            "dave-to-busy-bob",
            &Vars {
                expect: 486,
                ..Vars::call("dave", "davepw", "bob")
            },
            proxy.addr,
        );

        call.expect_success();
    });

    assert_counters_free(
        &calls,
        &[
            "cc:sub:alice@example.com",
            "cc:sub:bob@example.com",
            "cc:cust:1",
        ],
    )
    .await;

    // Freed: the same call now goes through.
    tokio::task::block_in_place(|| {
        SippCall::start(
            "alice-again",
            &Vars {
                pause_ms: 100,
                ..Vars::call("alice", "alicepw", "bob")
            },
            bob_port,
            proxy.addr,
        )
        .expect_success();
    });
    let evs = proxy.events();
    assert_eq!(count_events(&evs, EventKind::Start), 2, "{evs:?}");
    assert_eq!(count_events(&evs, EventKind::Stop), 2, "{evs:?}");
}
