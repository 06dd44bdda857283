//! A call between two registered subscribers through the proxy, with sipp
//! as both phones: bob registers (digest MD5) and answers, alice calls
//! (407 challenge, authenticated INVITE), the dialog is record-routed via
//! the proxy, and garbage is thrown at the proxy while the call is up. The
//! call must complete, both accounting events must be in the spool, and
//! the concurrent call counters must be back to zero.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    assert_counters_free, free_port, sipp_register, Backends, ProxyProc, SippCall, Sub, Vars,
};
use sip_proxy::spool::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_subscribers_call_each_other_through_the_proxy() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(2)),
            Sub::new("bob", "bobpw", 1, Some(2)),
        ],
        Some(5),
    )
    .await;
    let mut proxy = ProxyProc::start(&b, "");
    let bob_port = free_port();

    tokio::task::block_in_place(|| {
        sipp_register(&proxy, "bob", "bobpw", bob_port);
        let call = SippCall::start(
            "alice-to-bob",
            &Vars {
                pause_ms: 3000,
                ..Vars::call("alice", "alicepw", "bob")
            },
            bob_port,
            proxy.addr,
        );
        // Once the call is answered (start event durable), throw garbage.
        let start = proxy.wait_for_event(EventKind::Start, 30, "accounting start event");
        let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for m in MALFORMED {
            junk.send_to(m, proxy.addr).unwrap();
        }
        call.expect_success();
        assert!(proxy.alive(), "proxy died:\n{}", proxy.log());

        let evs = proxy.events();
        let stop = evs
            .iter()
            .find(|e| e.kind == EventKind::Stop && e.call_id == start.call_id)
            .unwrap_or_else(|| panic!("no stop event for {}: {evs:?}", start.call_id));
        assert_eq!(start.caller, "alice@example.com");
        assert_eq!(start.callee, "bob@example.com");
        assert_eq!(start.caller_customer, Some(1));
        assert!(!start.to_tag.is_empty(), "start event lacks the To-tag");
        assert!(stop.time_ms >= start.time_ms);
        assert_eq!(stop.reason.as_deref(), Some("bye"));
        // The malformed datagrams were logged (rate-limited) and counted,
        // not fatal: the proxy still answers OPTIONS.
        assert!(
            proxy.log().contains("bad packets so far"),
            "{}",
            proxy.log()
        );
        proxy.assert_answers_options();
    });

    assert_counters_free(&b.calls().await, &["cc:sub:alice@example.com", "cc:cust:1"]).await;
}

const MALFORMED: &[&[u8]] = &[
    b"\x00\x01\x02garbage",
    b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n",
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nCSeq: abc INVITE\r\n\r\n",
    b"BYE sip:bob@[::1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnope\r\nCSeq: 1 INVITE\r\nContent-Length: 99999\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKr\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    b"\r\n\r\n",
    b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKo\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: y\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n",
];
