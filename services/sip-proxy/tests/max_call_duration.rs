//! A call that outlives `max_call_secs` is ended by the proxy's refresher:
//! a `stop` event with reason "timeout" is written and the counters are
//! freed while the phones are still talking; the BYE that comes later is
//! still relayed but does not produce a second `stop`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sip_proxy::spool::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_call_is_stopped_as_timeout_once() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(1)),
            Sub::new("bob", "bobpw", 1, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "max_call_secs = 1\ncall_ttl_secs = 3\n");
    let calls = b.calls().await;
    let bob_port = free_port();

    tokio::task::block_in_place(|| {
        sipp_register(&proxy, "bob", "bobpw", bob_port);
        let call = SippCall::start(
            "alice-long",
            &Vars {
                pause_ms: 8000,
                ..Vars::call("alice", "alicepw", "bob")
            },
            bob_port,
            proxy.addr,
        );
        // The refresher (every ttl/3 = 1 s) ends the call while it is held.
        let stop = proxy.wait_for_event(EventKind::Stop, 30, "timeout stop event");
        assert_eq!(stop.reason.as_deref(), Some("timeout"));
        let rt = tokio::runtime::Handle::current();
        rt.block_on(assert_counters_free(&calls, &["cc:sub:alice@example.com"]));
        call.expect_success();
    });
    let evs = proxy.events();
    assert_eq!(count_events(&evs, EventKind::Stop), 1, "{evs:?}");
}
