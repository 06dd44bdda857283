//! Promote on the standby: its MariaDB takes writes from the application
//! (and they replicate to the old master), its Redis becomes a master.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn promote_makes_the_standby_writable_and_the_redis_master() {
    let p = Pair::start();
    // Before: the standby refuses application writes and is a replica.
    let refused = p
        .maria_b
        .app("INSERT INTO t VALUES (1, 'before')")
        .unwrap_err();
    assert!(refused.contains("read-only"), "{refused}");
    assert_eq!(p.redis_b.role()[0], "slave");

    let r = p.hook("promote", Side::B);
    assert_eq!(r.code, Some(0), "{r:?}");
    let j = r.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["redis"]["state"], "master", "{j}");
    assert_eq!(j["mariadb"]["state"], "read_only=OFF", "{j}");
    // One stderr line per step, naming the server.
    let redis_b = format!("redis 127.0.0.1:{}: REPLICAOF NO ONE: ok", p.redis_b.port);
    assert!(r.stderr.contains(&redis_b), "{r:?}");
    assert!(r.stderr.contains("SET GLOBAL read_only = OFF: ok"), "{r:?}");

    // The application can write on B, and the write reaches A (master/master).
    p.maria_b.app("INSERT INTO t VALUES (2, 'on b')").unwrap();
    wait_for("B's row on A", || {
        p.maria_a.sql("SELECT v FROM flexvisor.t WHERE id = 2") == "on b"
    });
    assert!(!p.maria_b.read_only());
    // Redis on B is a master that takes writes.
    assert_eq!(p.redis_b.role()[0], "master");
    assert_eq!(p.redis_b.cli(&["SET", "k", "v"]), "OK");
    assert_eq!(p.redis_b.cli(&["GET", "k"]), "v");
}
