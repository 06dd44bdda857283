//! Running a hook twice leaves the same state and costs nothing: a second
//! promote keeps the data, a second demote triggers no new full resync.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

fn full_syncs(r: &Redis) -> u64 {
    r.cli(&["INFO", "stats"])
        .lines()
        .find_map(|l| l.trim().strip_prefix("sync_full:"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn repeated_promote_and_demote_change_nothing_more() {
    let p = Pair::start();
    let first = p.hook("promote", Side::B);
    assert_eq!(first.code, Some(0), "{first:?}");
    p.redis_b.cli(&["SET", "kept", "1"]);
    p.maria_b.app("INSERT INTO t VALUES (1, 'kept')").unwrap();
    let again = p.hook("promote", Side::B);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.json()["redis"]["state"], "master");
    assert_eq!(again.json()["mariadb"]["state"], "read_only=OFF");
    assert_eq!(p.redis_b.cli(&["GET", "kept"]), "1");
    p.maria_b
        .app("INSERT INTO t VALUES (2, 'still writable')")
        .unwrap();

    let first = p.hook("demote", Side::B);
    assert_eq!(first.code, Some(0), "{first:?}");
    let syncs = full_syncs(&p.redis_a);
    p.redis_a.cli(&["SET", "from-a", "1"]);
    wait_for("A's key on B", || p.redis_b.cli(&["GET", "from-a"]) == "1");
    let again = p.hook("demote", Side::B);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.json()["mariadb"]["state"], "read_only=ON");
    assert_eq!(p.redis_b.link().as_deref(), Some("up"));
    assert_eq!(p.redis_b.cli(&["GET", "from-a"]), "1");
    assert_eq!(
        full_syncs(&p.redis_a),
        syncs,
        "second demote forced a resync"
    );
    assert!(p.maria_b.app("INSERT INTO t VALUES (3, 'x')").is_err());
}
