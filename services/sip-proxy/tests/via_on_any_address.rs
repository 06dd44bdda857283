//! A proxy listening on every address (the node image's `listen =
//! 0.0.0.0:5060`, so the standby of a pair serves the shared address after
//! a takeover) names its Record-Route address in the Via it adds, so the
//! next hop's responses come back and reach the caller. With `0.0.0.0` in
//! that Via (found by the qemu-tests `sip-call-failover` scenario) the
//! lbs sent every response nowhere and calls timed out with 408.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// A proxy of the node image: listening on 0.0.0.0, its Record-Route
/// address the one it was started on.
fn on_every_address(proxy: &mut ProxyProc) {
    proxy.kill();
    let cfg = std::fs::read_to_string(&proxy.config).unwrap().replace(
        &format!("listen = \"{}\"", proxy.addr),
        &format!(
            "listen = \"0.0.0.0:{}\"\nrecord_route = \"{}\"",
            proxy.addr.port(),
            proxy.addr
        ),
    );
    assert!(cfg.contains("0.0.0.0"), "{cfg}");
    std::fs::write(&proxy.config, cfg).unwrap();
    proxy.spawn();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_come_back_to_a_proxy_listening_on_every_address() {
    let b = Backends::start(&[Sub::new("alice", "alicepw", 1, None)], None).await;
    let mut proxy = ProxyProc::start(&b, "");
    on_every_address(&mut proxy);

    tokio::task::block_in_place(|| {
        // The next hop (an lb, statelessly) and the caller behind the proxy.
        let next = Ua::new(proxy.addr);
        let mut caller = Ua::new(proxy.addr);
        let ruri = format!("sip:bob@{}", next.addr());
        let route = format!("Route: <sip:{};lr>", next.addr());
        let req = caller.build(
            "OPTIONS",
            &ruri,
            "sip:alice@example.com",
            &ruri,
            "via-any",
            &[route],
        );
        caller.sock.send_to(req.as_bytes(), proxy.addr).unwrap();

        let (fwd, _) = next.recv_request(15);
        let top = fwd.headers.vias().unwrap()[0].clone();
        assert_eq!(
            format!("{}:{}", top.host, top.port.unwrap_or(5060)),
            proxy.addr.to_string(),
            "the proxy's Via must name where it can be reached"
        );
        // A stateless next hop answers to the top Via's sent-by.
        let ok = sip::Response::reply_to(&fwd, 200, "OK", Some("nexthop"));
        let dest: std::net::SocketAddr = format!("{}:{}", top.host, top.port.unwrap_or(5060))
            .parse()
            .unwrap();
        next.sock.send_to(&ok.to_bytes(), dest).unwrap();
        let got = caller.wait_response(15, "the 200 from the next hop", |r| r.status == 200);
        assert_eq!(got.headers.call_id().unwrap(), "via-any");
    });
}

/// After a takeover the standby holds the pair's address but none of the
/// transactions of the failed node: a callee still retransmitting its 200
/// to an INVITE the failed node forwarded (its ACK was lost with the node)
/// reaches the standby, which must pass it on statelessly (RFC 3261 §16.7)
/// so the caller ACKs it again. Found by the qemu-tests `sip-call-failover`
/// scenario: the callee kept retransmitting and the call's re-INVITE timed
/// out with 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_of_the_failed_partner_reaches_the_caller() {
    let b = Backends::start(&[Sub::new("alice", "alicepw", 1, None)], None).await;
    let mut proxy = ProxyProc::start(&b, "");
    on_every_address(&mut proxy);

    tokio::task::block_in_place(|| {
        let callee = Ua::new(proxy.addr);
        let mut caller = Ua::new(proxy.addr);
        let ruri = format!("sip:bob@{}", callee.addr());
        let invite = caller.build(
            "INVITE",
            &ruri,
            "sip:alice@example.com",
            &ruri,
            "taken-over",
            &[],
        );
        let sip::Message::Request(mut inv) = sip::Message::parse(invite.as_bytes()).unwrap() else {
            panic!("not a request: {invite}")
        };
        // As the failed partner forwarded it: its Via names the pair's
        // address (here the proxy's), with a branch this proxy never made.
        inv.headers.prepend(
            sip::HeaderName::Via,
            format!("SIP/2.0/UDP {};branch=z9hG4bKfailedpartner1", proxy.addr),
        );
        let ok = sip::Response::reply_to(&inv, 200, "OK", Some("answered"));
        // The proxy is up (it answers OPTIONS) before the 200 is sent.
        let ping = caller.build(
            "OPTIONS",
            &format!("sip:{}", proxy.addr),
            "sip:alice@example.com",
            &format!("sip:{}", proxy.addr),
            "ping",
            &[],
        );
        caller.sock.send_to(ping.as_bytes(), proxy.addr).unwrap();
        caller.wait_response(15, "the proxy's answer to OPTIONS", |r| r.status == 200);

        callee.sock.send_to(&ok.to_bytes(), proxy.addr).unwrap();
        let got = caller.wait_response(15, "the callee's 200 through the standby", |r| {
            r.headers.call_id().is_ok_and(|c| c == "taken-over")
        });
        assert_eq!(got.status, 200);
        let vias = got.headers.vias().unwrap();
        assert_eq!(
            vias.len(),
            1,
            "the proxy's own Via must be removed: {vias:?}"
        );
        assert_ne!(vias[0].branch(), Some("z9hG4bKfailedpartner1"));
    });
}
