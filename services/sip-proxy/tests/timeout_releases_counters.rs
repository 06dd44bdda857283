//! A callee that never answers: the proxy's INVITE client transaction
//! times out (RFC 3261 Timer B, 32 s), the caller gets 408 and the call's
//! concurrent-call counters, held while it was ringing, are released.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_invite_times_out_with_408_and_frees_counters() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(1)),
            Sub::new("carol", "carolpw", 1, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "");
    let calls = b.calls().await;
    let silent = Ua::new(proxy.addr);
    let aor = "sip:carol@example.com";

    let (status, counted_while_ringing) = tokio::task::block_in_place(|| {
        let c = format!("Contact: <sip:carol@{}>;expires=300", silent.addr());
        let reg = Ua::new(proxy.addr).register("carol", "carolpw", "reg", &[c]);
        assert_eq!(reg.challenge.status, 401);
        assert_eq!(reg.reply.status, 200);

        let mut alice = Ua::new(proxy.addr);
        alice.send_authenticated_invite(aor, "alice", "alicepw", "MD5", "never-answered");

        // The callee sees the INVITE (and its retransmissions) but stays silent.
        let (inv, _) = silent.recv_request(10);
        assert_eq!(inv.method, sip::Method::Invite);
        let rt = tokio::runtime::Handle::current();
        let counted = rt
            .block_on(calls.count("cc:sub:alice@example.com", unix_now()))
            .unwrap();

        let r = alice.wait_response(60, "no final response within 60 s", |r| r.status >= 200);
        (r.status, counted)
    });
    assert_eq!(counted_while_ringing, 1, "the ringing call was not counted");
    assert_eq!(status, 408);
    // Release runs right after the 408 is sent; allow it a moment.
    let mut left = 1;
    for _ in 0..100 {
        left = calls
            .count("cc:sub:alice@example.com", unix_now())
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "counters not released after the timeout");
}
