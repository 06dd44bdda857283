//! The ng control protocol against the running relay with an independent
//! client: ping, offer and answer rewrite the SDP to the relay's address
//! and ports from the configured range, query and list show the call,
//! delete frees the ports, errors name the problem.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

#[test]
fn offer_answer_query_list_delete() {
    let relay = RelayProc::start("");
    let mut ng = relay.ng();
    assert_eq!(ng.ping().get("result").str(), "pong");

    let offer = ng.offer("call-1@test", "alice-tag", &sdp(4000));
    assert_eq!(offer.get("result").str(), "ok", "{offer:?}");
    let (c, port_b, rtcp_b) = sdp_media(&offer.get("sdp").str());
    assert_eq!(c, "127.0.0.1");
    let (min, max) = relay.range;
    assert!((min..=max).contains(&port_b), "{port_b} not in {min}-{max}");
    assert_eq!(port_b % 2, 0, "RTP on an even port");
    assert_eq!(rtcp_b, Some(port_b + 1), "a=rtcp announces the RTCP port");
    assert!(offer.get("sdp").str().contains("a=rtpmap:0 PCMU/8000"));

    let answer = ng.answer("call-1@test", "alice-tag", "bob-tag", &sdp(5000));
    assert_eq!(answer.get("result").str(), "ok", "{answer:?}");
    let (c, port_a, rtcp_a) = sdp_media(&answer.get("sdp").str());
    assert_eq!(c, "127.0.0.1");
    assert!((min..=max).contains(&port_a));
    assert_ne!(port_a, port_b, "each party gets its own port");
    assert_eq!(rtcp_a, Some(port_a + 1));

    // A repeated offer (retransmitted INVITE) keeps the ports.
    let again = ng.offer("call-1@test", "alice-tag", &sdp(4000));
    assert_eq!(sdp_media(&again.get("sdp").str()).1, port_b);

    assert_eq!(ng.list(), vec!["call-1@test".to_string()]);
    let q = ng.query("call-1@test");
    assert_eq!(q.get("result").str(), "ok");
    let alice = q.get("tags").get("alice-tag");
    let streams = alice.get("medias").list()[0].get("streams").list();
    assert_eq!(streams[0].get("local port").int(), i64::from(port_a));
    assert_eq!(streams[0].get("endpoint").get("port").int(), 4000);
    assert_eq!(streams[1].get("local port").int(), i64::from(port_a + 1));
    let bob = q.get("tags").get("bob-tag");
    let streams = bob.get("medias").list()[0].get("streams").list();
    assert_eq!(streams[0].get("local port").int(), i64::from(port_b));
    assert_eq!(streams[0].get("endpoint").get("port").int(), 5000);
    assert_eq!(q.get("totals").get("RTP").get("packets").int(), 0);

    for p in [port_a, port_a + 1, port_b, port_b + 1] {
        assert!(!port_is_free(p), "{p} should be held by the relay");
    }
    assert_eq!(relay.metric("media_relay_ports_in_use"), 2);
    let del = ng.delete("call-1@test", "alice-tag");
    assert_eq!(del.get("result").str(), "ok", "{del:?}");
    assert!(ng.list().is_empty());
    for p in [port_a, port_a + 1, port_b, port_b + 1] {
        wait_for(20, &format!("port {p} to be freed"), || {
            port_is_free(p).then_some(())
        });
    }
    assert_eq!(relay.metric("media_relay_ports_in_use"), 0);
    assert_eq!(relay.metric("media_relay_calls"), 0);
}

#[test]
fn command_errors_name_the_problem() {
    let relay = RelayProc::start("");
    let mut ng = relay.ng();
    let r = ng.answer("nope", "a", "b", &sdp(4000));
    assert_eq!(r.get("result").str(), "error");
    assert!(r.get("error-reason").str().contains("nope"), "{r:?}");
    let r = ng.delete("nope", "a");
    assert_eq!(r.get("result").str(), "error");
    let r = ng.offer("c", "a", "this is not sdp");
    assert_eq!(r.get("result").str(), "error");
    assert!(r.get("error-reason").str().contains("SDP"), "{r:?}");
    let r = ng.cmd(&d(&[("command", B::s("offer")), ("call-id", B::s("c"))]));
    assert!(r.get("error-reason").str().contains("sdp"), "{r:?}");
    let r = ng.cmd(&d(&[("command", B::s("teleport"))]));
    assert!(r.get("error-reason").str().contains("teleport"), "{r:?}");
    assert!(ng.list().is_empty(), "failed offers leave nothing behind");
    assert_eq!(relay.metric("media_relay_ports_in_use"), 0);
}

#[test]
fn out_of_ports_is_an_error_not_a_crash() {
    // 4 ports: exactly one stream (two RTP/RTCP pairs).
    let (min, _) = port_range();
    let mut relay = RelayProc::start_with("", (min, min + 3));
    let mut ng = relay.ng();
    let r = ng.offer("one", "a", &sdp(4000));
    assert_eq!(r.get("result").str(), "ok", "{r:?}");
    let r = ng.offer("two", "a", &sdp(4002));
    assert_eq!(r.get("result").str(), "error");
    assert!(r.get("error-reason").str().contains("ports"), "{r:?}");
    assert_eq!(ng.list(), vec!["one".to_string()]);
    ng.delete("one", "a");
    // The sockets close as their tasks end, right after the delete.
    wait_for(20, "the freed ports to be offered again", || {
        let r = ng.offer("three", "a", &sdp(4004));
        (r.get("result").str() == "ok").then_some(())
    });
    assert!(relay.alive());
}
