//! Malformed control packets get an error reply naming the problem and
//! are counted; garbage on media ports is just relayed or dropped. The
//! relay keeps answering and relaying throughout.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

const GARBAGE: &[&[u8]] = &[
    b"",
    b"nocookie",
    b"c1 ",
    b"c2 x",
    b"c3 d7:command4:ping",
    b"c4 d7:commandi5ee",
    b"c5 l4:pinge",
    b"c6 d7:command5:offer7:call-id1:x8:from-tag1:a3:sdpi1ee",
    b"c7 d7:command5:offer7:call-id1:x8:from-tag1:a3:sdp8:v=0\r\nm=ae",
    b"c8 99999999999999999999:x",
    b"c9 i-0e",
    b"\xff\xfe\xfd \xff",
];

#[test]
fn malformed_control_packets_get_errors_and_are_counted() {
    let mut relay = RelayProc::start("");
    let mut ng = relay.ng();
    let mut replies = Vec::new();
    for g in GARBAGE.iter().filter(|g| !g.is_empty()) {
        let r = ng.raw(g);
        let text = String::from_utf8_lossy(&r).into_owned();
        assert!(text.contains("6:result5:error"), "{g:?} -> {text}");
        assert!(text.contains("12:error-reason"), "{g:?} -> {text}");
        replies.push(text);
    }
    // The cookie is echoed when there was one; reasons name the problem.
    assert!(replies[2].starts_with("c2 "), "{}", replies[2]);
    assert!(replies[0].contains("cookie"), "{}", replies[0]);
    assert!(replies[3].contains("truncated"), "{}", replies[3]);
    assert!(replies[4].contains("command"), "{}", replies[4]);
    assert!(replies[5].contains("dictionary"), "{}", replies[5]);
    assert!(replies[6].contains("sdp"), "{}", replies[6]);
    assert!(replies[7].contains("SDP"), "{}", replies[7]);
    // An empty datagram, then a flood of random bytes.
    ng.sock.send_to(GARBAGE[0], ng.peer).unwrap();
    let mut x: u32 = 12345;
    for len in 0..300usize {
        let mut dg = b"f ".to_vec();
        for _ in 0..len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            dg.push((x >> 16) as u8);
        }
        ng.sock.send_to(&dg, ng.peer).unwrap();
    }
    assert_eq!(ng.ping().get("result").str(), "pong");
    assert!(relay.alive(), "{}", relay.log());
    // 7 parse failures + 1 missing cookie + the flood: all counted
    // (offer with bad SDP is a command error, not a malformed packet).
    assert!(relay.metric("media_relay_control_malformed_total") >= 10);
    assert!(relay.metric("media_relay_control_errors_total") >= 1);

    // Media ports survive garbage too.
    let alice = Phone::new();
    let bob = Phone::new();
    let offer = ng.offer("m@test", "a", &sdp(alice.port()));
    let (_, to_bob, _) = sdp_media(&offer.get("sdp").str());
    let answer = ng.answer("m@test", "a", "b", &sdp(bob.port()));
    let (_, to_alice, _) = sdp_media(&answer.get("sdp").str());
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Short non-RTP junk before any media: it must not latch the ports.
    for p in [to_alice, to_alice + 1, to_bob, to_bob + 1] {
        for len in [0usize, 1, 3, 7] {
            junk.send_to(&vec![0xa5; len], ("127.0.0.1", p)).unwrap();
        }
    }
    let to_bob: std::net::SocketAddr = ([127, 0, 0, 1], to_bob).into();
    let to_alice: std::net::SocketAddr = ([127, 0, 0, 1], to_alice).into();
    bob.send_until_received_by(to_bob, &rtp(1, b"still here"), &alice);
    alice.send_until_received_by(to_alice, &rtp(1, b"me too"), &bob);
    // Once latched, big garbage from elsewhere does not take the stream.
    for p in [to_alice, to_bob] {
        for len in [12usize, 1500, 9000] {
            junk.send_to(&vec![0x80; len], p).unwrap();
        }
    }
    bob.send_until_received_by(to_bob, &rtp(2, b"after junk"), &alice);
    let mut buf = [0u8; 16];
    junk.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    for _ in 0..5 {
        bob.sock.send_to(&rtp(3, b"to alice"), to_bob).unwrap();
    }
    assert!(
        junk.recv_from(&mut buf).is_err(),
        "a packet from another source hijacked the latched stream"
    );
    assert_eq!(ng.ping().get("result").str(), "pong");
    assert!(relay.alive(), "{}", relay.log());
}
