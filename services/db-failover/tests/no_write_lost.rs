//! Promote does not make the standby writable before it has applied what
//! the old master wrote: a row committed on the old master just before the
//! failover is on the new master when promote returns. B's replication
//! from A runs with MASTER_DELAY, so the row is still unapplied in B's
//! relay log when promote starts.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

const DELAY_S: u32 = 3;

fn received(p: &Pair) -> bool {
    let (file, pos) = p.maria_a.binlog_pos();
    p.maria_b.slave_field("Master_Log_File") == file
        && p.maria_b
            .slave_field("Read_Master_Log_Pos")
            .parse::<u64>()
            .unwrap()
            >= pos
}

#[test]
fn row_written_on_the_old_master_just_before_promote_is_on_the_new_master() {
    let p = Pair::start_with_delay(DELAY_S);
    p.maria_a
        .app("INSERT INTO t VALUES (7, 'last write on a')")
        .unwrap();
    // The old master demotes itself (as its hook does) and the standby is
    // promoted at once.
    p.maria_a.sql("SET GLOBAL read_only = ON");
    let r = p.hook("promote", Side::B);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        p.maria_b.sql("SELECT v FROM flexvisor.t WHERE id = 7"),
        "last write on a",
        "{r:?}"
    );
    assert!(!p.maria_b.read_only());
    let j = r.json();
    let waited = j["steps"].as_array().unwrap().iter().any(|s| {
        s["step"]
            .as_str()
            .unwrap()
            .starts_with("replication from 127.0.0.1:")
            && s["ok"] == true
    });
    assert!(waited, "{j}");
}

#[test]
fn row_received_before_the_old_master_crashed_is_on_the_new_master() {
    let mut p = Pair::start_with_delay(DELAY_S);
    p.maria_a
        .app("INSERT INTO t VALUES (8, 'then a crashed')")
        .unwrap();
    wait_for("the row in B's relay log", || received(&p));
    p.maria_a.kill();
    let r = p.hook("promote", Side::B);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        p.maria_b.sql("SELECT v FROM flexvisor.t WHERE id = 8"),
        "then a crashed",
        "{r:?}"
    );
    p.maria_b
        .app("INSERT INTO t VALUES (9, 'new master')")
        .unwrap();
    // The peer could not be asked: said so, not hidden.
    let j = r.json();
    let w = j["mariadb"]["warnings"].to_string();
    assert!(
        w.contains(&format!("peer 127.0.0.1:{}", p.maria_a.port)),
        "{j}"
    );
}

#[test]
fn promote_that_cannot_catch_up_in_time_fails_and_stays_read_only() {
    // 30 s of MASTER_DELAY against a 2 s bound: the row cannot be applied in time.
    let p = Pair::start_with_delay(30);
    p.maria_a
        .app("INSERT INTO t VALUES (10, 'still in the relay log')")
        .unwrap();
    wait_for("the row in B's relay log", || received(&p));
    let r = run(std::process::Command::new(bin())
        .arg("promote")
        .args(p.flags(Side::B))
        .args(["--catchup-timeout", "2"]));
    assert_eq!(r.code, Some(2), "{r:?}");
    let err = r
        .stderr
        .lines()
        .find(|l| l.contains("error: mariadb"))
        .unwrap_or_default();
    assert!(
        err.contains(&format!(
            "replication from 127.0.0.1:{} applied",
            p.maria_a.port
        )) && err.contains("not caught up after 2 s"),
        "{r:?}"
    );
    // B did not start taking writes ahead of A's last one.
    assert!(p.maria_b.read_only());
    assert!(p.maria_b.app("INSERT INTO t VALUES (11, 'x')").is_err());
    // Redis was promoted all the same (independent of MariaDB).
    assert_eq!(r.json()["redis"]["state"], "master");
}
