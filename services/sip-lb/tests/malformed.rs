//! Malformed input and floods while calls continue: the lb keeps relaying,
//! answers broken-but-parseable requests with 4xx, counts what it drops, and
//! bans a flooding source without affecting others.

mod common;
use common::*;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

fn torture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../sip/tests/rfc4475/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn malformed_messages_while_calls_continue() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let lb = Lb::start(LbOpts::new(vec![be.addr]));
    let lb_udp = lb.udp;
    let lb_tcp = lb.tcp.unwrap();
    let garbage_thread = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.9:0").unwrap();
        let mut unparseable = 0u64;
        let fixtures: Vec<Vec<u8>> = [
            "clerr", "ncl", "ltgtruri", "lwsstart", "badvers", "bigcode", "mcl01",
        ]
        .iter()
        .map(|n| torture(n))
        .collect();
        for round in 0..40u32 {
            for f in &fixtures {
                s.send_to(f, lb_udp).unwrap();
                unparseable += 1;
            }
            // Random-ish bytes and truncated messages.
            let junk: Vec<u8> = (0..200u32)
                .map(|i| (i.wrapping_mul(2654435761u32 ^ round) >> 13) as u8)
                .collect();
            s.send_to(&junk, lb_udp).unwrap();
            s.send_to(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP", lb_udp)
                .unwrap();
            unparseable += 2;
            // A stream that breaks framing: the lb must close it, not die.
            if round % 10 == 0 {
                let mut t = TcpStream::connect(lb_tcp).unwrap();
                let _ = t.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia SIP/2.0/TCP nocolon\r\n\r\n");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unparseable
    });
    // Broken but parseable requests get answers from the lb itself.
    let badinv = torture("badinv01");
    let reply = udp_exchange("127.0.0.10", lb.udp, &badinv, Duration::from_secs(5))
        .expect("400 for badinv01");
    assert!(reply.starts_with("SIP/2.0 400 "), "{reply}");
    let mut zero = options(addr("127.0.0.10", 5999), lb.udp, "zeromf-1");
    zero = String::from_utf8(zero)
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0")
        .into_bytes();
    let reply = udp_exchange("127.0.0.10", lb.udp, &zero, Duration::from_secs(5)).expect("483");
    assert!(reply.starts_with("SIP/2.0 483 "), "{reply}");
    let unk = torture("unkscm");
    let reply = udp_exchange("127.0.0.10", lb.udp, &unk, Duration::from_secs(5)).expect("416");
    assert!(reply.starts_with("SIP/2.0 416 "), "{reply}");

    uac(
        dir.path(),
        "call_uac.xml",
        lb.udp,
        "127.0.0.3",
        30,
        30,
        "u1",
    )
    .assert_ok("calls during garbage");
    let unparseable = garbage_thread.join().unwrap();
    let mut lb = lb;
    assert!(lb.alive(), "sip-lb survived:\n{}", lb.log());
    assert_eq!(be.received("BYE"), 30);
    lb.wait_until("malformed counted", |lb| {
        lb.metric("sip_lb_dropped_malformed_total") >= unparseable + 4
    });
    assert_eq!(lb.metric("sip_lb_replies_total{code=\"400\"}"), 1);
    assert_eq!(lb.metric("sip_lb_replies_total{code=\"483\"}"), 1);
    assert_eq!(lb.metric("sip_lb_replies_total{code=\"416\"}"), 1);
}

#[test]
fn flooding_source_is_banned_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let mut opts = LbOpts::new(vec![be.addr]);
    opts.flood_rate = 50.0;
    opts.flood_burst = 100.0;
    let lb = Lb::start(opts);
    let flooder = UdpSocket::bind("127.0.0.11:0").unwrap();
    let me = flooder.local_addr().unwrap();
    // 300 packets in about 30 ms: far above 50/s, paced so the kernel
    // socket buffer does not drop them before the lb sees them.
    for i in 0..300 {
        flooder
            .send_to(&options(me, lb.udp, &format!("flood-{i}")), lb.udp)
            .unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    lb.wait_until("ban", |lb| lb.metric("sip_lb_bans_total") == 1);
    lb.wait_until("flood drops", |lb| {
        lb.metric("sip_lb_dropped_flood_total") >= 150
    });
    assert!(
        lb.metric("sip_lb_rx_udp_total") <= 110,
        "only the burst got through"
    );
    // The banned source gets nothing, even at a polite rate.
    let silent = udp_exchange(
        "127.0.0.11",
        lb.udp,
        &options(me, lb.udp, "after-ban"),
        Duration::from_secs(2),
    );
    assert!(silent.is_none(), "banned source got {silent:?}");
    // Another phone is unaffected.
    uac(
        dir.path(),
        "call_uac.xml",
        lb.udp,
        "127.0.0.12",
        10,
        10,
        "u1",
    )
    .assert_ok("calls from another source");
    assert_eq!(lb.metric("sip_lb_banned_sources"), 1);
}
