//! End-to-end relay through a real sip-lb with sipp peers: OPTIONS relay,
//! INVITE/ACK/BYE with double Record-Route over UDP and TCP, REGISTER with
//! digest challenge getting a Path with the received address.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure

mod common;
use common::*;

#[test]
fn options_are_relayed_to_a_proxy_and_answered_back() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let lb = Lb::start(LbOpts::new(vec![be.addr]));
    uac(
        dir.path(),
        "options_uac.xml",
        lb.udp,
        "127.0.0.3",
        10,
        20,
        "u1",
    )
    .assert_ok("OPTIONS via lb");
    assert!(
        be.received("OPTIONS") >= 10,
        "backend saw the relayed OPTIONS"
    );
    assert!(lb.metric("sip_lb_forwarded_requests_total") >= 10);
    assert!(lb.metric("sip_lb_forwarded_responses_total") >= 10);
}

#[test]
fn udp_call_with_double_record_route_and_loose_routed_ack_bye() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let lb = Lb::start(LbOpts::new(vec![be.addr]));
    // The backend checks Record-Route and our Via on the INVITE; the caller
    // checks Record-Route in the 200 and sends ACK/BYE with the route set.
    uac(
        dir.path(),
        "call_uac.xml",
        lb.udp,
        "127.0.0.3",
        10,
        20,
        "u1",
    )
    .assert_ok("UDP calls via lb");
    assert_eq!(be.received("INVITE"), 10);
    assert_eq!(be.received("ACK"), 10);
    assert_eq!(be.received("BYE"), 10);
    let msgs = std::fs::read_to_string(&be.messages).unwrap();
    let rr = format!("Record-Route: <sip:{};lr>", lb.internal);
    let rr_front = format!("Record-Route: <sip:{};lr>", lb.udp);
    assert!(
        msgs.contains(&rr) && msgs.contains(&rr_front),
        "double Record-Route:\n{msgs}"
    );
}

#[test]
fn tcp_caller_is_bridged_to_udp_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let lb = Lb::start(LbOpts::new(vec![be.addr]));
    uac(dir.path(), "call_uac.xml", lb.udp, "127.0.0.4", 5, 10, "t1").assert_ok("TCP calls via lb");
    assert_eq!(be.received("BYE"), 5);
    let msgs = std::fs::read_to_string(&be.messages).unwrap();
    // The transport change is recorded: front entry carries transport=tcp.
    assert!(
        msgs.contains(&format!("Record-Route: <sip:{};transport=tcp;lr>", lb.udp)),
        "{msgs}"
    );
    assert!(
        msgs.contains("Via: SIP/2.0/TCP 127.0.0.4:"),
        "client Via kept: {msgs}"
    );
    assert!(lb.metric("sip_lb_rx_tcp_total") >= 15);
}

#[test]
fn register_gets_path_with_received_address() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let lb = Lb::start(LbOpts::new(vec![be.addr]));
    uac(
        dir.path(),
        "register_uac.xml",
        lb.udp,
        "127.0.0.5",
        5,
        10,
        "u1",
    )
    .assert_ok("REGISTER via lb");
    let msgs = std::fs::read_to_string(&be.messages).unwrap();
    let path = format!("Path: <sip:{};lr;received=sip:127.0.0.5:", lb.internal);
    assert_eq!(
        be.received("REGISTER"),
        10,
        "challenge + authorized retry per registration"
    );
    // 10 REGISTERs received plus 5 final 200s echoing the Path back.
    assert_eq!(
        msgs.matches(&path).count(),
        15,
        "every REGISTER carries Path:\n{msgs}"
    );
}

fn register_from_nat(lb: &Lb, from_ip: &str, call_id: &str) -> String {
    let sock = std::net::UdpSocket::bind((from_ip, 0)).unwrap();
    let local = sock.local_addr().unwrap();
    // The phone believes it is 192.168.1.50 (private address behind NAT).
    let reg = format!(
        "REGISTER sip:{lb} SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:nat@flexvisor.test>;tag=n1\r\nTo: <sip:nat@flexvisor.test>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:nat@192.168.1.50:5060>\r\n\
         Content-Length: 0\r\n\r\n",
        lb = lb.udp
    );
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    sock.send_to(reg.as_bytes(), lb.udp).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("401 from the backend, back through the NAT binding");
    let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(resp.starts_with("SIP/2.0 401 "), "{resp}");
    // The answer reached us although our Via named 192.168.1.50: received/rport.
    let via = resp.lines().find(|l| l.starts_with("Via: ")).unwrap();
    assert!(via.contains(&format!(";received={}", local.ip())), "{resp}");
    assert!(via.contains(&format!(";rport={}", local.port())), "{resp}");
    local.to_string()
}

#[test]
fn nat_contact_is_rewritten_or_marked_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let mut opts = LbOpts::new(vec![be.addr]);
    opts.contact = "rewrite";
    let lb = Lb::start(opts);
    let src = register_from_nat(&lb, "127.0.0.13", "nat-rewrite-1");
    let msgs = std::fs::read_to_string(&be.messages).unwrap();
    assert!(
        msgs.contains(&format!("Contact: <sip:nat@{src}>")),
        "rewritten:\n{msgs}"
    );

    let mut opts = LbOpts::new(vec![be.addr]);
    opts.contact = "mark";
    let lb2 = Lb::start(opts);
    let src = register_from_nat(&lb2, "127.0.0.14", "nat-mark-1");
    let msgs = std::fs::read_to_string(&be.messages).unwrap();
    assert!(
        msgs.contains(&format!(
            "Contact: <sip:nat@192.168.1.50:5060>;received=\"sip:{src}\""
        )),
        "marked:\n{msgs}"
    );
}
