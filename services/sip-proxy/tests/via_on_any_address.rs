//! A proxy listening on every address (the node image's `listen =
//! 0.0.0.0:5060`, so the standby of a pair serves the shared address after
//! a takeover) names its Record-Route address in the Via it adds, so the
//! next hop's responses come back and reach the caller. With `0.0.0.0` in
//! that Via (found by the qemu-tests `sip-call-failover` scenario) the
//! lbs sent every response nowhere and calls timed out with 408.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_come_back_to_a_proxy_listening_on_every_address() {
    let b = Backends::start(&[Sub::new("alice", "alicepw", 1, None)], None).await;
    let mut proxy = ProxyProc::start(&b, "");
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
