//! Demote on a node that was active: its MariaDB refuses application
//! writes, its Redis follows the peer (data written on the peer appears).
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn demote_makes_the_node_read_only_and_a_replica_of_the_peer() {
    let p = Pair::start();
    // B was active: writable, Redis master with its own data.
    p.maria_b.sql("SET GLOBAL read_only = OFF");
    p.redis_b.cli(&["REPLICAOF", "NO", "ONE"]);
    p.redis_b.cli(&["SET", "stale", "from-b"]);
    p.maria_b
        .app("INSERT INTO t VALUES (1, 'b was active')")
        .unwrap();

    let r = p.hook("demote", Side::B);
    assert_eq!(r.code, Some(0), "{r:?}");
    let j = r.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["mariadb"]["state"], "read_only=ON", "{j}");
    let want = format!("replica of 127.0.0.1:{} (link connected)", p.redis_a.port);
    assert_eq!(j["redis"]["state"], want, "{j}");
    // MariaDB went read-only before Redis was touched.
    let ro = r.stderr.find("SET GLOBAL read_only = ON: ok").unwrap();
    let rep = r.stderr.find("REPLICAOF 127.0.0.1").unwrap();
    assert!(ro < rep, "{r:?}");

    // The application can no longer write on B; A's writes arrive on B.
    let refused = p
        .maria_b
        .app("INSERT INTO t VALUES (2, 'on b')")
        .unwrap_err();
    assert!(refused.contains("read-only"), "{refused}");
    p.maria_a.app("INSERT INTO t VALUES (3, 'on a')").unwrap();
    wait_for("A's row on B", || {
        p.maria_b.sql("SELECT v FROM flexvisor.t WHERE id = 3") == "on a"
    });

    // Redis on B follows A: A's data appears, B's own writes are refused.
    let role = p.redis_b.role();
    assert_eq!(role[0], "slave", "{role:?}");
    assert_eq!(role[2], p.redis_a.port.to_string(), "{role:?}");
    p.redis_a.cli(&["SET", "fresh", "from-a"]);
    wait_for("A's key on B", || {
        p.redis_b.cli(&["GET", "fresh"]) == "from-a"
    });
    let refused = p.redis_b.try_cli(&["SET", "x", "y"]).unwrap_err();
    assert!(refused.contains("READONLY"), "{refused}");
    // B's stale key is gone: it now holds A's dataset.
    assert_eq!(p.redis_b.cli(&["EXISTS", "stale"]), "0");
}
