//! A call whose media stops is freed after `timeout_secs`: it leaves
//! `list`, its ports can be bound again, and the timeout is counted. A call
//! with media flowing is kept.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::net::SocketAddr;

#[test]
fn idle_calls_time_out_and_free_their_ports() {
    let relay = RelayProc::start("timeout_secs = 2\n");
    let mut ng = relay.ng();
    let alice = Phone::new();
    let bob = Phone::new();
    let offer = ng.offer("idle@test", "a", &sdp(alice.port()));
    let (_, to_bob, _) = sdp_media(&offer.get("sdp").str());
    let answer = ng.answer("idle@test", "a", "b", &sdp(bob.port()));
    let (_, to_alice, _) = sdp_media(&answer.get("sdp").str());
    ng.offer("busy@test", "a", &sdp(alice.port() + 2));
    let busy_answer = ng.answer("busy@test", "a", "b", &sdp(bob.port()));
    let (_, busy_port, _) = sdp_media(&busy_answer.get("sdp").str());
    let busy: SocketAddr = ([127, 0, 0, 1], busy_port).into();

    // Keep "busy" alive with media until "idle" is gone.
    wait_for(30, "the idle call to time out", || {
        alice.sock.send_to(&rtp(1, b"keepalive"), busy).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let calls = ng.list();
        (!calls.contains(&"idle@test".to_string())).then_some(())
    });
    assert_eq!(
        ng.list(),
        vec!["busy@test".to_string()],
        "media keeps a call"
    );
    for p in [to_alice, to_alice + 1, to_bob, to_bob + 1] {
        wait_for(20, &format!("port {p} freed"), || {
            port_is_free(p).then_some(())
        });
    }
    assert_eq!(relay.metric("media_relay_timeouts_total"), 1);
    let r = ng.query("idle@test");
    assert_eq!(r.get("result").str(), "error");
}
