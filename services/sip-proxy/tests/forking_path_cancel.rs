//! Forking and CANCEL: carol has two contacts, one registered through a
//! load balancer (Path) and one directly. An INVITE to carol reaches both:
//! the Path contact via the load balancer (Route = Path, Request-URI =
//! contact), the direct one at its address; both carry our Record-Route.
//! When the caller cancels, both branches get CANCEL, their 487s are ACKed
//! by the proxy and the caller gets one 487.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

fn respond(ua: &Ua, req: &sip::Request, src: std::net::SocketAddr, code: u16, reason: &str) {
    let r = sip::Response::reply_to(req, code, reason, Some("callee-tag"));
    ua.sock.send_to(&r.to_bytes(), src).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_forks_via_path_and_cancel_reaches_every_branch() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, None),
            Sub::new("carol", "carolpw", 1, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "");
    tokio::task::block_in_place(|| {
        let lb = Ua::new(proxy.addr);
        let mut direct = Ua::new(proxy.addr);
        let aor = "sip:carol@example.com";

        // Contact 1 through the "lb" (Path); contact 127.0.0.1:9 must never
        // be used directly. Contact 2 direct.
        let path = format!("Path: <sip:{};lr>", lb.addr());
        let c1 = "Contact: <sip:carol@127.0.0.1:9>;expires=300".to_string();
        let reg = Ua::new(proxy.addr).register("carol", "carolpw", "reg-c1", &[c1, path.clone()]);
        assert_eq!(reg.challenge.status, 401);
        assert_eq!(reg.reply.status, 200);
        assert_eq!(
            reg.reply.headers.get(&sip::HeaderName::Path),
            Some(&path["Path: ".len()..])
        );
        // The second contact answers the same challenge (a fresh cnonce).
        let ch = &reg.challenge.headers.www_authenticate().unwrap()[0];
        let c2 = format!("Contact: <sip:carol@{}>;expires=300", direct.addr());
        let req = direct.register_request(
            "carol",
            "reg-c2",
            &[c2, authorization(ch, "carol", "carolpw")],
        );
        assert_eq!(direct.transact(&req).status, 200);

        // alice calls carol, answering the SHA-256 challenge (RFC 8760).
        let mut alice = Ua::new(proxy.addr);
        let invite =
            alice.send_authenticated_invite(aor, "alice", "alicepw", "SHA-256", "fork-call");

        let (inv_lb, src_lb) = lb.recv_request(10);
        let (inv_d, src_d) = direct.recv_request(10);
        assert_eq!(inv_lb.method, sip::Method::Invite);
        assert_eq!(inv_lb.uri.to_string(), "sip:carol@127.0.0.1:9");
        let route = inv_lb.headers.routes().unwrap();
        assert_eq!(route[0].uri.to_string(), format!("sip:{};lr", lb.addr()));
        assert_eq!(
            inv_d.uri.to_string(),
            format!("sip:carol@{}", direct.addr())
        );
        assert!(inv_d.headers.routes().unwrap().is_empty());
        for inv in [&inv_lb, &inv_d] {
            let rr = inv.headers.record_routes().unwrap();
            assert_eq!(rr[0].uri.to_string(), format!("sip:{};lr", proxy.addr));
            assert!(inv
                .headers
                .get(&sip::HeaderName::ProxyAuthorization)
                .is_none());
            assert_eq!(inv.headers.max_forwards().unwrap(), Some(69));
        }
        respond(&lb, &inv_lb, src_lb, 180, "Ringing");
        respond(&direct, &inv_d, src_d, 180, "Ringing");

        // alice sees a 180, then cancels.
        alice.wait_response(10, "no 180 for alice", |r| r.status == 180);
        let Ok(sip::Message::Request(inv_sent)) = sip::Message::parse(invite.as_bytes()) else {
            panic!()
        };
        let mut cancel = inv_sent.clone();
        cancel.method = sip::Method::Cancel;
        let seq = inv_sent.headers.cseq().unwrap().seq;
        cancel
            .headers
            .set(sip::HeaderName::CSeq, format!("{seq} CANCEL"));
        cancel
            .headers
            .remove_all(&sip::HeaderName::ProxyAuthorization);
        let r = alice.transact(&String::from_utf8(cancel.to_bytes()).unwrap());
        assert_eq!(
            (r.status, r.headers.cseq().unwrap().method),
            (200, sip::Method::Cancel)
        );

        // Each branch gets CANCEL, answers 200 + 487, and gets the ACK.
        for (ua, inv) in [(&lb, &inv_lb), (&direct, &inv_d)] {
            let (c, src) = ua.recv_request(10);
            assert_eq!(c.method, sip::Method::Cancel);
            assert_eq!(
                c.headers.top_via().unwrap().branch(),
                inv.headers.top_via().unwrap().branch()
            );
            respond(ua, &c, src, 200, "OK");
            respond(ua, inv, src, 487, "Request Terminated");
            let (ack, _) = ua.recv_request(10);
            assert_eq!(ack.method, sip::Method::Ack);
            assert_eq!(ack.headers.to().unwrap().tag(), Some("callee-tag"));
        }
        // alice gets exactly the 487 for her INVITE.
        let r = alice.wait_response(10, "no 487 for alice", |r| {
            r.status >= 200 && r.headers.cseq().unwrap().method == sip::Method::Invite
        });
        assert_eq!(r.status, 487);
    });
}
