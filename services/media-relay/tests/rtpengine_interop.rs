//! Interop with rtpengine (Debian rtpengine-daemon, userspace forwarding):
//! the same ng client and the same call flow against rtpengine and
//! against media-relay give equivalent answers: the same result values,
//! SDP rewritten the same way (apart from the port numbers each relay
//! picked), the same query layout for the fields a proxy reads, and RTP
//! relayed by both.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

struct Rtpengine {
    child: Child,
    control: SocketAddr,
    _dir: TempDir,
}

impl Rtpengine {
    fn start() -> Rtpengine {
        let bin = ["/usr/bin/rtpengine", "/usr/sbin/rtpengine"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("rtpengine not found: install Debian package rtpengine-daemon");
        let dir = TempDir::new("rtpengine-interop");
        let control: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let (min, max) = port_range();
        let child = Command::new(bin)
            .args([
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--interface=127.0.0.1",
            ])
            .arg(format!("--listen-ng={control}"))
            .arg(format!("--port-min={min}"))
            .arg(format!("--port-max={max}"))
            .arg(format!("--pidfile={}", dir.path().join("pid").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("spawning rtpengine");
        let r = Rtpengine {
            child,
            control,
            _dir: dir,
        };
        let mut ng = Ng::new(control);
        assert_eq!(ng.ping().get("result").str(), "pong");
        r
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a proxy sees of one call flow, with relay-specific port numbers
/// replaced by placeholders.
#[derive(Debug, PartialEq)]
struct Flow {
    ping: String,
    offer_result: String,
    offer_sdp: String,
    answer_result: String,
    answer_sdp: String,
    query_tags: Vec<String>,
    query_has_totals: bool,
    listed: bool,
    rtp_relayed: bool,
    rtp_counted: bool,
    delete_result: String,
    listed_after_delete: bool,
    unknown_answer: String,
}

/// Port numbers become placeholders; `a=rtpmap` lines are dropped because
/// rtpengine adds them for static payload types (codec handling, which
/// media-relay does not do: it passes the body through).
fn normalize(sdp: &str, ports: &[u16]) -> String {
    let mut s: String = sdp
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=rtpmap:"))
        .collect();
    for (i, p) in ports.iter().enumerate() {
        s = s.replace(&p.to_string(), &format!("<P{i}>"));
    }
    s
}

fn flow(control: SocketAddr) -> Flow {
    let mut ng = Ng::new(control);
    let alice = Phone::new();
    let bob = Phone::new();
    let ping = ng.ping().get("result").str();
    let offer = ng.offer("interop@test", "ta", &sdp(alice.port()));
    let offer_sdp = offer.get("sdp").str();
    let (_, to_bob, to_bob_rtcp) = sdp_media(&offer_sdp);
    let answer = ng.answer("interop@test", "ta", "tb", &sdp(bob.port()));
    let answer_sdp = answer.get("sdp").str();
    let (_, to_alice, to_alice_rtcp) = sdp_media(&answer_sdp);
    let ports = [
        to_bob,
        to_bob_rtcp.unwrap_or(0),
        to_alice,
        to_alice_rtcp.unwrap_or(0),
        alice.port(),
        bob.port(),
    ];
    let to_alice_addr: SocketAddr = ([127, 0, 0, 1], to_alice).into();
    let (_, src) = alice.send_until_received_by(to_alice_addr, &rtp(1, b"interop"), &bob);
    let rtp_relayed = src.port() == to_bob;
    let q = ng.query("interop@test");
    let mut query_tags: Vec<String> = match q.get("tags") {
        B::D(d) => d.keys().cloned().collect(),
        _ => vec![],
    };
    query_tags.sort();
    let rtp_counted = q.get("totals").get("RTP").get("packets").int() > 0;
    let listed = ng.list().contains(&"interop@test".to_string());
    let delete_result = ng.delete("interop@test", "ta").get("result").str();
    let listed_after_delete = ng.list().contains(&"interop@test".to_string());
    let unknown_answer = ng
        .answer("no-such-call@test", "x", "y", &sdp(4000))
        .get("result")
        .str();
    Flow {
        ping,
        offer_result: offer.get("result").str(),
        offer_sdp: normalize(&offer_sdp, &ports),
        answer_result: answer.get("result").str(),
        answer_sdp: normalize(&answer_sdp, &ports),
        query_tags,
        query_has_totals: q.has("totals"),
        listed,
        rtp_relayed,
        rtp_counted,
        delete_result,
        listed_after_delete,
        unknown_answer,
    }
}

#[test]
fn same_client_same_answers_from_rtpengine_and_media_relay() {
    let rtpe = Rtpengine::start();
    let ours = RelayProc::start("");
    let theirs = flow(rtpe.control);
    let mine = flow(ours.control);
    // rtpengine keeps a deleted call listed for --delete-delay (30 s);
    // media-relay frees it at once. Everything else must match.
    assert!(!mine.listed_after_delete, "{mine:?}");
    let theirs = Flow {
        listed_after_delete: false,
        ..theirs
    };
    assert_eq!(mine, theirs, "media-relay differs from rtpengine");
}
