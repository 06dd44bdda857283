//! Demote while the peer's Redis is down: the hook fails with an error that
//! names the peer, and MariaDB is read-only all the same.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn peer_redis_down_fails_naming_the_peer_and_mariadb_is_still_read_only() {
    let mut p = Pair::start();
    p.maria_b.sql("SET GLOBAL read_only = OFF");
    p.redis_b.cli(&["REPLICAOF", "NO", "ONE"]);
    p.redis_a.kill();

    let r = p.hook("demote", Side::B);
    assert_eq!(r.code, Some(2), "{r:?}");
    let peer = format!("redis 127.0.0.1:{}", p.redis_a.port);
    let err_line = r
        .stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_else(|| panic!("no error line: {r:?}"));
    assert!(err_line.contains(&peer), "{r:?}");
    assert!(err_line.to_lowercase().contains("refused"), "{r:?}");
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["redis"]["ok"], false);
    assert_eq!(j["mariadb"]["ok"], true, "{j}");
    assert_eq!(j["mariadb"]["state"], "read_only=ON");

    // What a client sees: no writes on B's MariaDB.
    assert!(p.maria_b.read_only());
    let refused = p.maria_b.app("INSERT INTO t VALUES (1, 'x')").unwrap_err();
    assert!(refused.contains("read-only"), "{refused}");
    // B's Redis is pointed at the peer (not left a second master).
    assert_eq!(p.redis_b.role()[0], "slave");
}
