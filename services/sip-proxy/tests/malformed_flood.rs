//! Thousands of mutated SIP messages (truncated, lines dropped or doubled,
//! bytes replaced, bogus lengths) thrown at a running proxy: it must stay
//! up, keep answering OPTIONS, and still register a subscriber afterwards.
//! Mutations never touch addresses (Via, Contact, Route, Path, start line
//! are only cut or dropped, and digits are never written), so every reply
//! the proxy sends stays on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn templates(port: u16) -> Vec<String> {
    let via = format!("Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKfuzz;rport");
    let common = "From: \"Al\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: fuzz-1\r\nMax-Forwards: 70\r\n";
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    vec![
        format!("REGISTER sip:example.com SIP/2.0\r\n{via}\r\n{common}CSeq: 1 REGISTER\r\nContact: <sip:bob@127.0.0.1:{port}>;expires=60\r\nAuthorization: Digest username=\"bob\", realm=\"example.com\", nonce=\"1.2.3\", uri=\"sip:example.com\", response=\"00\", qop=auth, nc=00000001, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n"),
        format!("INVITE sip:bob@example.com SIP/2.0\r\n{via}\r\n{common}CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()),
        format!("ACK sip:bob@example.com SIP/2.0\r\n{via}\r\n{common}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"),
        format!("CANCEL sip:bob@example.com SIP/2.0\r\n{via}\r\n{common}CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"),
        format!("BYE sip:bob@127.0.0.1:{port} SIP/2.0\r\n{via}\r\nRoute: <sip:127.0.0.1:{port};lr>\r\n{common}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"),
        format!("OPTIONS sip:example.com SIP/2.0\r\n{via}\r\n{common}CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
        format!("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnotours\r\n{common}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"),
    ]
}

fn protected(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "via",
        "v:",
        "route",
        "record-route",
        "contact",
        "m:",
        "path",
    ]
    .iter()
    .any(|p| l.starts_with(p))
}

fn mutate(rng: &mut StdRng, msg: &str) -> Vec<u8> {
    let mut lines: Vec<String> = msg.split("\r\n").map(str::to_string).collect();
    for _ in 0..rng.gen_range(1..4) {
        let n = lines.len();
        match rng.gen_range(0..6) {
            0 if n > 2 => {
                lines.remove(rng.gen_range(1..n - 1));
            }
            1 => {
                let i = rng.gen_range(0..n);
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let i = rng.gen_range(1..n);
                if !protected(&lines[i]) && !lines[i].is_empty() {
                    let mut b = lines[i].clone().into_bytes();
                    let j = rng.gen_range(0..b.len());
                    let set = b"\0\xff \t;,<>\"=:@\\\r\nabcXYZ%";
                    b[j] = set[rng.gen_range(0..set.len())];
                    lines[i] = String::from_utf8_lossy(&b).into_owned();
                }
            }
            3 => lines.insert(
                rng.gen_range(1..n),
                "X-Junk: \u{fffd}\u{0} ;;,,<<".to_string(),
            ),
            4 => {
                if let Some(l) = lines.iter_mut().find(|l| l.starts_with("Content-Length")) {
                    *l = format!(
                        "Content-Length: {}",
                        ["", "-1", "99999999999999999999", "abc", "5"][rng.gen_range(0..5)]
                    );
                }
            }
            _ => {}
        }
    }
    let mut out = lines.join("\r\n").into_bytes();
    if rng.gen_bool(0.2) {
        let cut = rng.gen_range(0..out.len());
        out.truncate(cut);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_survives_mutated_messages_and_keeps_serving() {
    let b = Backends::start(&[Sub::new("bob", "bobpw", 1, None)], None).await;
    let mut proxy = ProxyProc::start(&b, "");
    tokio::task::block_in_place(|| {
        let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        junk.set_nonblocking(true).unwrap();
        let port = junk.local_addr().unwrap().port();
        let mut rng = StdRng::seed_from_u64(0x5eed_0007);
        let tpl = templates(port);
        let mut buf = [0u8; 65535];
        for i in 0..3000 {
            let m = mutate(&mut rng, &tpl[i % tpl.len()]);
            junk.send_to(&m, proxy.addr).unwrap();
            // Drain what the proxy answers so the socket never fills.
            while junk.recv(&mut buf).is_ok() {}
            if i % 200 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        assert!(proxy.alive(), "proxy died:\n{}", proxy.log());
        proxy.assert_answers_options();

        // Still a working registrar.
        let mut ua = Ua::new(proxy.addr);
        let c = format!("Contact: <sip:bob@{}>", ua.addr());
        let reg = ua.register("bob", "bobpw", "after-flood", &[c]);
        assert_eq!(reg.challenge.status, 401);
        assert_eq!(reg.reply.status, 200);
        assert!(proxy.log().contains("bad packets so far"));
    });
}
