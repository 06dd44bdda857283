//! The proxy behind the workspace's `sip-lb`, as on a real cluster:
//! subscribers register through the load balancer (the proxy stores the
//! Path it added) and call each other lb -> proxy -> lb, with sipp as both
//! phones talking only to the load balancer.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sip_proxy::location::Location;
use sip_proxy::spool::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_call_through_the_load_balancer() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, None),
            Sub::new("bob", "bobpw", 1, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "");
    let lb = tokio::task::block_in_place(|| LbProc::start(proxy.addr));
    let bob_port = free_port();
    let logs = || format!("\nlb log:\n{}\nproxy log:\n{}", lb.log(), proxy.log());

    tokio::task::block_in_place(|| {
        let v = Vars {
            user: "bob",
            password: "bobpw",
            ..Vars::default()
        };
        Sipp::client(
            "register-bob-via-lb",
            "register.xml",
            &v,
            bob_port,
            lb.front,
        )
        .expect_success_or(logs);
    });
    let loc = Location::new(b.redis_conn().await);
    let bob = loc.lookup("bob@example.com", unix_now()).await.unwrap();
    assert_eq!(bob.len(), 1, "{bob:?}");
    assert!(
        !bob[0].path.is_empty(),
        "binding via the lb has no Path: {bob:?}"
    );

    tokio::task::block_in_place(|| {
        let call = SippCall::start(
            "alice-to-bob-via-lb",
            &Vars {
                pause_ms: 300,
                ..Vars::call("alice", "alicepw", "bob")
            },
            bob_port,
            lb.front,
        );
        call.caller.expect_success_or(logs);
        call.callee.expect_success();
    });
    let evs = proxy.events();
    assert_eq!(count_events(&evs, EventKind::Start), 1, "{evs:?}");
    assert_eq!(count_events(&evs, EventKind::Stop), 1, "{evs:?}");
}
