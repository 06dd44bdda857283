//! RTP and RTCP relayed both ways between two phones, unmodified, with
//! symmetric latching: the caller announces one port in SDP but sends from
//! another (as behind a NAT); the callee's packets must reach the port the
//! caller really sends from. Counters show in query and /metrics.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::net::SocketAddr;

#[test]
fn rtp_and_rtcp_flow_both_ways_and_latch_to_the_real_source() {
    let relay = RelayProc::start("");
    let mut ng = relay.ng();
    // Alice announces a port nobody listens on; she really uses `alice`.
    let announced = free_udp_port();
    let alice = Phone::new();
    let bob = Phone::new();
    let bob_rtcp = std::net::UdpSocket::bind(("127.0.0.1", bob.port() + 1));

    let offer = ng.offer("latch@test", "a-tag", &sdp(announced));
    let (_, to_bob_port, _) = sdp_media(&offer.get("sdp").str());
    let answer = ng.answer("latch@test", "a-tag", "b-tag", &sdp(bob.port()));
    let (_, to_alice_port, _) = sdp_media(&answer.get("sdp").str());
    let relay_for_alice: SocketAddr = ([127, 0, 0, 1], to_alice_port).into();
    let relay_for_bob: SocketAddr = ([127, 0, 0, 1], to_bob_port).into();

    // Alice -> relay -> Bob (at his SDP address), unmodified, from the
    // relay's port facing Bob.
    let pkt = rtp(1, b"hello bob");
    let (got, src) = alice.send_until_received_by(relay_for_alice, &pkt, &bob);
    assert_eq!(got, pkt);
    assert_eq!(src, relay_for_bob, "bob sees the relay, not alice");

    // Bob -> relay -> Alice at the port she sends from, not the announced one.
    let pkt = rtp(7, b"hello alice");
    let (got, src) = bob.send_until_received_by(relay_for_bob, &pkt, &alice);
    assert_eq!(got, pkt);
    assert_eq!(src, relay_for_alice);

    // RTCP on the odd ports, when bob's RTCP port could be bound here.
    if let Ok(bob_rtcp) = bob_rtcp {
        bob_rtcp
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let rtcp_for_alice: SocketAddr = ([127, 0, 0, 1], to_alice_port + 1).into();
        let alice_rtcp = Phone::new();
        let sr = [
            0x80u8, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let mut buf = [0u8; 512];
        let (n, _) = wait_for(20, "relayed RTCP", || {
            alice_rtcp.sock.send_to(&sr, rtcp_for_alice).unwrap();
            bob_rtcp.recv_from(&mut buf).ok()
        });
        assert_eq!(&buf[..n], &sr[..]);
    }

    let q = ng.query("latch@test");
    let a_streams = q.get("tags").get("a-tag").get("medias").list()[0]
        .get("streams")
        .list()
        .to_vec();
    let ep = a_streams[0].get("endpoint");
    assert_eq!(
        ep.get("port").int(),
        i64::from(alice.port()),
        "alice's RTP endpoint latched to her real source: {q:?}"
    );
    assert!(a_streams[0].get("stats").get("packets").int() >= 1);
    assert!(a_streams[0].get("stats").get("bytes").int() >= 21);
    assert!(a_streams[0].get("last packet").int() > 0);
    assert!(q.get("totals").get("RTP").get("packets").int() >= 2);

    let metrics = relay.http("/metrics");
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("media_relay_stream_packets_total{call_id=\"latch@test\"")
                && l.contains("leg=\"a\",kind=\"rtp\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{line}");
    let status = relay.http("/status");
    assert!(status.contains("latch@test"), "{status}");
}

#[test]
fn many_packets_arrive_in_order_and_unchanged() {
    let relay = RelayProc::start("");
    let mut ng = relay.ng();
    let alice = Phone::new();
    let bob = Phone::new();
    let offer = ng.offer("bulk@test", "a", &sdp(alice.port()));
    let (_, to_bob, _) = sdp_media(&offer.get("sdp").str());
    let answer = ng.answer("bulk@test", "a", "b", &sdp(bob.port()));
    let (_, to_alice, _) = sdp_media(&answer.get("sdp").str());
    let to_alice: SocketAddr = ([127, 0, 0, 1], to_alice).into();
    let to_bob: SocketAddr = ([127, 0, 0, 1], to_bob).into();
    // Prime both directions (latching) first.
    alice.send_until_received_by(to_alice, &rtp(0, b"x"), &bob);
    bob.send_until_received_by(to_bob, &rtp(0, b"y"), &alice);
    let mut buf = [0u8; 2048];
    bob.drain();
    // 50 packets, paced so loopback buffers never overflow.
    let mut got = Vec::new();
    for seq in 1..=50u16 {
        let p = rtp(seq, &[seq as u8; 160]);
        alice.sock.send_to(&p, to_alice).unwrap();
        if let Ok((n, _)) = bob.sock.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    assert!(got.len() >= 45, "only {} of 50 packets relayed", got.len());
    for p in &got {
        assert_eq!(p.len(), 12 + 160);
        let seq = u16::from_be_bytes([p[2], p[3]]);
        assert_eq!(&p[12..], &[seq as u8; 160][..], "payload changed");
    }
}
