use std::path::Path;

use sip::{HeaderName, Message, Response};

use super::*;
use crate::dispatch::Event;

const CFG: &str = r#"
[listen]
udp = "192.0.2.10:5060"
tcp = "192.0.2.10:5060"
tls = "192.0.2.10:5061"
internal = "10.0.0.10:5060"
[tls]
cert = "c.pem"
key = "k.pem"
[[proxy]]
name = "p1"
address = "10.0.1.1:5060"
[[proxy]]
name = "p2"
address = "10.0.2.1:5060"
[nat]
contact = "rewrite"
"#;

fn relay(contact: &str) -> Relay {
    let text = CFG.replace("contact = \"rewrite\"", &format!("contact = \"{contact}\""));
    Relay::new(&Config::parse(&text, Path::new("t.toml")).unwrap())
}

fn front(src: &str, t: Transport) -> Packet {
    Packet {
        src: src.parse().unwrap(),
        transport: t,
        side: Side::Front,
    }
}

fn internal(src: &str) -> Packet {
    Packet {
        src: src.parse().unwrap(),
        transport: Transport::Udp,
        side: Side::Internal,
    }
}

fn invite(call_id: &str, extra: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@example.net SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bKabc;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.net>;tag=a1\r\n\
         To: <sip:bob@example.net>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.168.1.5:5062>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn forwarded(o: Outcome) -> (Dest, Message) {
    match o {
        Outcome::Forward { dest, bytes, .. } => (dest, Message::parse(&bytes).unwrap()),
        other => panic!("expected Forward, got {other:?}"),
    }
}

fn replied(o: Outcome) -> Response {
    match o {
        Outcome::Reply { bytes, .. } => match Message::parse(&bytes).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("reply is a request"),
        },
        other => panic!("expected Reply, got {other:?}"),
    }
}

#[test]
fn initial_invite_goes_to_hashed_pair_with_via_nat_fix_and_double_record_route() {
    let r = relay("rewrite");
    let pairs = PairSet::new(2, 3);
    let pkt = front("203.0.113.7:40000", Transport::Udp);
    let (dest, msg) = forwarded(r.handle_datagram(&invite("call-1", ""), &pkt, &pairs));
    let want = r.proxies()[pairs.select("call-1").unwrap()];
    assert_eq!(dest.addr(), Some(want));
    assert_eq!(dest.side, Side::Internal);
    let h = msg.headers();
    let vias = h.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(
        vias[0].to_string().split(';').next(),
        Some("SIP/2.0/UDP 10.0.0.10:5060")
    );
    assert!(vias[0].branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(vias[1].received(), Some("203.0.113.7"));
    assert_eq!(vias[1].rport(), Some(Some(40000)));
    assert_eq!(h.max_forwards().unwrap(), Some(69));
    let rr: Vec<String> = h
        .record_routes()
        .unwrap()
        .iter()
        .map(|n| n.uri.to_string())
        .collect();
    assert_eq!(rr, ["sip:10.0.0.10:5060;lr", "sip:192.0.2.10:5060;lr"]);
    // NAT rewrite: Contact now points at the real source.
    let Contact::Addr(c) = &h.contacts().unwrap()[0] else {
        panic!()
    };
    assert_eq!(c.uri.to_string(), "sip:alice@203.0.113.7:40000");
}

#[test]
fn contact_mark_mode_adds_received_param() {
    let r = relay("mark");
    let pkt = front("203.0.113.7:40000", Transport::Tcp);
    let (_, msg) = forwarded(r.handle_datagram(&invite("c", ""), &pkt, &PairSet::new(2, 3)));
    let Contact::Addr(c) = &msg.headers().contacts().unwrap()[0] else {
        panic!()
    };
    assert_eq!(c.uri.to_string(), "sip:alice@192.168.1.5:5062");
    assert_eq!(
        c.params.get("received"),
        Some("\"sip:203.0.113.7:40000;transport=tcp\"")
    );
    let rr = msg.headers().record_routes().unwrap();
    assert_eq!(
        rr[1].uri.to_string(),
        "sip:192.0.2.10:5060;transport=tcp;lr"
    );
}

#[test]
fn in_dialog_request_follows_route_not_hash() {
    let r = relay("off");
    let pairs = PairSet::new(2, 3);
    // Find a Call-ID the hash sends to pair 0, then route it to pair 1.
    let cid = (0..)
        .map(|i| format!("bye-{i}"))
        .find(|c| pairs.select(c) == Some(0))
        .unwrap();
    let bye = format!(
        "BYE sip:bob@10.9.9.9 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKbye\r\n\
         Route: <sip:192.0.2.10:5060;lr>, <sip:10.0.0.10:5060;lr>\r\n\
         Route: <sip:10.0.2.1:5060;lr>\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\
         Call-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let (dest, msg) = forwarded(r.handle_datagram(
        bye.as_bytes(),
        &front("203.0.113.7:5060", Transport::Udp),
        &pairs,
    ));
    assert_eq!(dest.addr(), Some("10.0.2.1:5060".parse().unwrap()));
    let routes = msg.headers().routes().unwrap();
    assert_eq!(routes.len(), 1, "our two Route entries are removed");
    assert!(
        msg.headers().record_routes().unwrap().is_empty(),
        "no Record-Route in-dialog"
    );
}

#[test]
fn response_from_proxy_returns_by_via_received_rport() {
    let r = relay("off");
    let pairs = PairSet::new(2, 3);
    let (_, fwd) = forwarded(r.handle_datagram(
        &invite("c2", ""),
        &front("203.0.113.7:40000", Transport::Udp),
        &pairs,
    ));
    let Message::Request(req) = fwd else { panic!() };
    let resp = Response::reply_to(&req, 180, "Ringing", Some("t1"));
    let (dest, back) =
        forwarded(r.handle_datagram(&resp.to_bytes(), &internal("10.0.1.1:5060"), &pairs));
    assert_eq!(dest.addr(), Some("203.0.113.7:40000".parse().unwrap()));
    assert_eq!((dest.side, dest.transport), (Side::Front, Transport::Udp));
    assert_eq!(back.headers().vias().unwrap().len(), 1, "our Via is gone");
}

#[test]
fn response_with_foreign_top_via_is_dropped() {
    let r = relay("off");
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx\r\n\
                From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    assert_eq!(
        r.handle_datagram(
            resp.as_bytes(),
            &internal("10.0.1.1:5060"),
            &PairSet::new(2, 3)
        ),
        Outcome::Drop(DropReason::NotOurVia)
    );
}

#[test]
fn register_gets_path_with_received_and_path_routes_back_over_tcp() {
    let r = relay("off");
    let pairs = PairSet::new(2, 3);
    let reg = "REGISTER sip:example.net SIP/2.0\r\n\
               Via: SIP/2.0/TCP 192.168.1.5:5060;branch=z9hG4bKreg\r\n\
               Max-Forwards: 70\r\nFrom: <sip:alice@example.net>;tag=r1\r\nTo: <sip:alice@example.net>\r\n\
               Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.168.1.5:5060;transport=tcp>\r\n\
               Content-Length: 0\r\n\r\n";
    let (_, msg) = forwarded(r.handle_datagram(
        reg.as_bytes(),
        &front("203.0.113.7:50123", Transport::Tcp),
        &pairs,
    ));
    let path = msg.headers().paths().unwrap().remove(0);
    assert_eq!(
        path.uri.to_string(),
        "sip:10.0.0.10:5060;lr;received=sip:203.0.113.7:50123%3Btransport%3Dtcp"
    );
    // The proxy later sends an INVITE to alice through the Path it stored.
    let inv = format!(
        "INVITE sip:alice@192.168.1.5:5060;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.1.1:5060;branch=z9hG4bKp\r\n\
         Route: <{}>\r\nMax-Forwards: 69\r\nFrom: <sip:bob@example.net>;tag=b\r\nTo: <sip:alice@example.net>\r\n\
         Call-ID: inv-9\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        path.uri
    );
    let (dest, msg) =
        forwarded(r.handle_datagram(inv.as_bytes(), &internal("10.0.1.1:5060"), &pairs));
    assert_eq!(dest.addr(), Some("203.0.113.7:50123".parse().unwrap()));
    assert_eq!((dest.side, dest.transport), (Side::Front, Transport::Tcp));
    let h = msg.headers();
    assert!(h.routes().unwrap().is_empty());
    assert_eq!(h.top_via().unwrap().transport, "TCP");
    let rr: Vec<String> = h
        .record_routes()
        .unwrap()
        .iter()
        .map(|n| n.uri.to_string())
        .collect();
    assert_eq!(
        rr,
        [
            "sip:192.0.2.10:5060;transport=tcp;lr",
            "sip:10.0.0.10:5060;lr"
        ]
    );
}

#[test]
fn sanity_checks_answer_with_the_right_code() {
    let r = relay("off");
    let pairs = PairSet::new(2, 3);
    let pkt = front("203.0.113.7:5060", Transport::Udp);
    let status = |o: Outcome| match o {
        Outcome::Reply { status, .. } => status,
        other => panic!("expected reply, got {other:?}"),
    };
    let mf0 = String::from_utf8(invite("c", ""))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(status(r.handle_datagram(mf0.as_bytes(), &pkt, &pairs)), 483);
    assert_eq!(
        status(r.handle_datagram(&invite("c", "Proxy-Require: foo\r\n"), &pkt, &pairs)),
        420
    );
    let scheme = String::from_utf8(invite("c", "")).unwrap().replace(
        "INVITE sip:bob@example.net",
        "INVITE mailto:bob@example.net",
    );
    assert_eq!(
        status(r.handle_datagram(scheme.as_bytes(), &pkt, &pairs)),
        416
    );
    let no_from = String::from_utf8(invite("c", ""))
        .unwrap()
        .replace("From: <sip:alice@example.net>;tag=a1\r\n", "");
    let resp = replied(r.handle_datagram(no_from.as_bytes(), &pkt, &pairs));
    assert_eq!(resp.status, 400);
    assert!(resp.reason.contains("From"), "{}", resp.reason);
    let looped = invite("c", "Via: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK2\r\n");
    assert_eq!(status(r.handle_datagram(&looped, &pkt, &pairs)), 482);
    let cseq = String::from_utf8(invite("c", ""))
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    assert_eq!(
        status(r.handle_datagram(cseq.as_bytes(), &pkt, &pairs)),
        400
    );
    let mut down = PairSet::new(2, 1);
    for i in 0..2 {
        down.on_event(i, Event::ProbeDue);
        down.on_event(i, Event::ProbeDue);
    }
    assert_eq!(
        status(r.handle_datagram(&invite("c", ""), &pkt, &down)),
        503
    );
    assert_eq!(
        r.handle_datagram(b"garbage\r\n\r\n", &pkt, &pairs),
        Outcome::Drop(DropReason::Malformed)
    );
    let bad_ack =
        "ACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\nCSeq: 1 ACK\r\n\r\n";
    assert_eq!(
        r.handle_datagram(bad_ack.as_bytes(), &pkt, &pairs),
        Outcome::Drop(DropReason::BadRequest)
    );
}

#[test]
fn cancel_gets_same_branch_as_its_invite() {
    let r = relay("off");
    let pairs = PairSet::new(2, 3);
    let pkt = front("203.0.113.7:5060", Transport::Udp);
    let inv = invite("cc", "");
    let cancel = String::from_utf8(inv.clone())
        .unwrap()
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let (d1, m1) = forwarded(r.handle_datagram(&inv, &pkt, &pairs));
    let (d2, m2) = forwarded(r.handle_datagram(cancel.as_bytes(), &pkt, &pairs));
    assert_eq!(d1, d2);
    assert_eq!(
        m1.headers().top_via().unwrap().branch(),
        m2.headers().top_via().unwrap().branch()
    );
    // A different transaction gets a different branch.
    let (_, m3) = forwarded(
        r.handle_datagram(
            &String::from_utf8(inv)
                .unwrap()
                .replace("z9hG4bKabc", "z9hG4bKdef")
                .into_bytes(),
            &pkt,
            &pairs,
        ),
    );
    assert_ne!(
        m1.headers().top_via().unwrap().branch(),
        m3.headers().top_via().unwrap().branch()
    );
}

#[test]
fn keepalive_replies_are_recognised_and_local_options_answered() {
    let r = relay("off");
    let pairs = PairSet::new(2, 3);
    let ka = keepalive_request(r.internal(), r.proxies()[1], 1, 7);
    let Message::Request(req) = Message::parse(&ka).unwrap() else {
        panic!()
    };
    let resp = Response::reply_to(&req, 200, "OK", Some("x"));
    assert_eq!(
        r.handle_datagram(&resp.to_bytes(), &internal("10.0.2.1:5060"), &pairs),
        Outcome::Keepalive { pair: 1 }
    );
    let opt = "OPTIONS sip:192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.3;branch=z9hG4bKo\r\n\
               From: <sip:mon@x>;tag=m\r\nTo: <sip:192.0.2.10>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let resp = replied(r.handle_datagram(
        opt.as_bytes(),
        &front("198.51.100.3:5060", Transport::Udp),
        &pairs,
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers
            .get(&HeaderName::Other("X-Flexvisor-Pairs-Up".into())),
        Some("2/2")
    );
}
