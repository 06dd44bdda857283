//! Failover: a relay writes its calls to Redis; a second relay process on
//! the same address and range (the standby that became master) restores
//! them at start and relays on the same ports to the latched peers, then
//! delete removes the call from Redis as well.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::net::SocketAddr;

#[test]
fn standby_restores_calls_from_redis_on_the_same_ports() {
    let redis = Redis::start();
    let prefix = format!("media-relay-test-{}:", std::process::id());
    let extra = format!(
        "[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis.url()
    );
    let mut master = RelayProc::start(&extra);
    let mut ng = master.ng();
    let announced = free_udp_port();
    let alice = Phone::new();
    let bob = Phone::new();
    let offer = ng.offer("fo@test", "a", &sdp(announced));
    let (_, to_bob, _) = sdp_media(&offer.get("sdp").str());
    let answer = ng.answer("fo@test", "a", "b", &sdp(bob.port()));
    let (_, to_alice, _) = sdp_media(&answer.get("sdp").str());
    let to_alice: SocketAddr = ([127, 0, 0, 1], to_alice).into();
    let to_bob: SocketAddr = ([127, 0, 0, 1], to_bob).into();
    // Alice latches from her real port (not the announced one).
    alice.send_until_received_by(to_alice, &rtp(1, b"before"), &bob);
    // The latch reached Redis.
    wait_for(20, "the latched peer in redis", || {
        let v = redis.command(&format!("GET {prefix}call:fo@test"));
        v.contains(&format!("\"rtp_peer\":\"127.0.0.1:{}\"", alice.port()))
            .then_some(())
    });

    // The master dies; the standby (same config: same shared address and
    // range, same Redis) is started by the supervisor.
    master.kill();
    let standby_cfg = std::fs::read_to_string(&master.config).unwrap();
    let mut standby = RelayProc::unstarted(&extra, master.range);
    std::fs::write(&standby.config, standby_cfg).unwrap();
    standby.control = master.control;
    standby.metrics = master.metrics;
    standby.spawn();
    assert!(
        standby.log().contains("restored 1 calls"),
        "{}",
        standby.log()
    );
    let mut ng = standby.ng();
    assert_eq!(ng.list(), vec!["fo@test".to_string()]);
    let q = ng.query("fo@test");
    let a = q.get("tags").get("a").get("medias").list()[0]
        .get("streams")
        .list()[0]
        .clone();
    assert_eq!(a.get("local port").int(), i64::from(to_alice.port()));
    assert_eq!(a.get("endpoint").get("port").int(), i64::from(alice.port()));

    // Media keeps flowing both ways on the same ports.
    let (got, src) = alice.send_until_received_by(to_alice, &rtp(2, b"after a"), &bob);
    assert_eq!(got, rtp(2, b"after a"));
    assert_eq!(src, to_bob);
    let (got, src) = bob.send_until_received_by(to_bob, &rtp(3, b"after b"), &alice);
    assert_eq!(got, rtp(3, b"after b"));
    assert_eq!(src, to_alice);
    assert_eq!(standby.metric("media_relay_restored_total"), 1);

    // Delete on the new master removes the call from Redis too.
    assert_eq!(ng.delete("fo@test", "a").get("result").str(), "ok");
    wait_for(20, "the call to leave redis", || {
        let members = redis.command(&format!("SMEMBERS {prefix}calls"));
        let value = redis.command(&format!("EXISTS {prefix}call:fo@test"));
        (!members.contains("fo@test") && value.contains(":0")).then_some(())
    });
}
