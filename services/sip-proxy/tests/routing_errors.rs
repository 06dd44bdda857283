//! Calls that cannot be routed: to a subscriber that does not exist (404),
//! to one that exists but is not registered (480), and unauthenticated
//! callers claiming to be our subscriber (407, then 403 for a wrong
//! identity). No counters stay behind.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_is_404_offline_is_480() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, None),
            Sub::new("carol", "carolpw", 1, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "");
    tokio::task::block_in_place(|| {
        sipp_call_refused(
            "to-unknown",
            &Vars {
                expect: 404,
                ..Vars::call("alice", "alicepw", "nobody")
            },
            proxy.addr,
        );
        sipp_call_refused(
            "to-offline",
            &Vars {
                expect: 480,
                ..Vars::call("alice", "alicepw", "carol")
            },
            proxy.addr,
        );

        // Claiming to be alice with carol's credentials: 403.
        let mut ua = Ua::new(proxy.addr);
        let carol = "sip:carol@example.com";
        let spoof = |ua: &mut Ua, extra: &[String]| {
            ua.build(
                "INVITE",
                carol,
                "sip:alice@example.com",
                carol,
                "spoof",
                extra,
            )
        };
        let first = spoof(&mut ua, &[]);
        let r = ua.transact(&first);
        assert_eq!(r.status, 407);
        let ch = &r.headers.proxy_authenticate().unwrap()[0];
        let creds = answer_challenge(ch, "INVITE", carol, "carol", "carolpw");
        let req = spoof(&mut ua, &[format!("Proxy-Authorization: {creds}")]);
        assert_eq!(ua.transact(&req).status, 403);
    });
    assert_counters_free(&b.calls().await, &["cc:sub:alice@example.com"]).await;
}
