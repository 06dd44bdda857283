//! TCP connection limits: connections beyond `streams.max_connections` are
//! closed at accept, silent connections are closed after `idle_secs`, and a
//! connection that loses SIP framing is closed without harming the others.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn connection_limit_and_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let mut opts = LbOpts::new(vec![be.addr]);
    opts.streams = Some((2, 2));
    let lb = Lb::start(opts);
    let tcp = lb.tcp.unwrap();
    let mut a = TcpStream::connect(tcp).unwrap();
    let mut b = TcpStream::connect(tcp).unwrap();
    lb.wait_until("two connections", |lb| {
        lb.metric("sip_lb_stream_connections_total") == 2
    });
    let mut c = TcpStream::connect(tcp).unwrap();
    assert!(
        closed_by_peer(&mut c),
        "third connection is closed at accept"
    );
    assert_eq!(lb.metric("sip_lb_stream_rejected_total"), 1);
    // A CRLF keep-alive on `a` keeps it open a while; `b` stays silent.
    a.write_all(b"\r\n\r\n").unwrap();
    assert!(closed_by_peer(&mut b), "silent connection closed");
    assert!(closed_by_peer(&mut a), "a goes silent too and is closed");
    assert_eq!(lb.metric("sip_lb_stream_idle_closed_total"), 2);
    // Broken framing: the lb counts it and closes that connection.
    let mut d = TcpStream::connect(tcp).unwrap();
    d.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia SIP/2.0/TCP no-colon\r\n\r\n")
        .unwrap();
    assert!(
        closed_by_peer(&mut d),
        "connection with broken framing closed"
    );
    assert_eq!(lb.metric("sip_lb_dropped_malformed_total"), 1);
    // Slots are free again: a new connection relays SIP.
    uac(dir.path(), "call_uac.xml", lb.udp, "127.0.0.4", 2, 5, "t1")
        .assert_ok("TCP call after limits");
}
