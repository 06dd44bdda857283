//! The central database goes down: billing keeps mediating and rating into
//! its local outbox (status WARNING, spool file not marked done), and when
//! the database is back it catches up, oldest batch first, without loss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::Command;

fn status_cmd(env: &Env) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_billing"))
        .args(["status", "--json", "--config"])
        .arg(&env.config)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap(), v)
}

#[test]
fn central_down_then_up_catches_up_without_loss() {
    let mut env = Env::start("");
    let mut daemon = Daemon::start(&env, "a");
    let t = now_ms() - 600_000;

    let spool = env.spool_writer(1 << 20);
    for i in 0..50 {
        call(&spool, &format!("before-{i}"), t, 60_000, Some(1), "4989");
    }
    drop(spool);
    let spool = env.spool_writer(1 << 20);
    wait_for(60, "first 50 CDRs", || (env.count("1") == 50).then_some(()));
    wait_for(30, "first file done", || {
        (env.done_files().len() == 1).then_some(())
    });
    assert_eq!(status_cmd(&env).0, 0, "{}", status_cmd(&env).1);

    env.db.stop();
    for i in 0..100 {
        call(&spool, &format!("during-{i}"), t, 30_000, Some(1), "4930");
    }
    let during_file = env.spool_files().last().unwrap().clone();
    drop(spool);
    let _spool = env.spool_writer(1 << 20);
    // Mediated and rated locally, waiting for the central database.
    wait_for(60, "local backlog of 100 CDRs", || {
        let s = env.status();
        (s["backlog_cdrs"] == 100 && s["central_up"] == false && s["spool_unread_bytes"] == 0)
            .then_some(())
    });
    let (code, v) = status_cmd(&env);
    assert_eq!(code, 1, "WARNING while the central database is down: {v}");
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("100 CDRs kept locally"),
        "{v}"
    );
    assert!(
        env.spool_files().contains(&during_file),
        "a spool file must not be marked done before its CDRs are committed"
    );

    env.db.resume().unwrap();
    wait_for(120, "catch-up to 150 CDRs", || {
        (env.count("1") == 150).then_some(())
    });
    wait_for(30, "backlog drained", || {
        let s = env.status();
        (s["backlog_cdrs"] == 0 && s["central_up"] == true).then_some(())
    });
    assert_eq!(
        env.count("call_id LIKE 'during-%' AND rated = 1 AND cost = 3 + 5"),
        100
    );
    assert!(env.done_files().contains(&during_file));
    assert_eq!(status_cmd(&env).0, 0);

    // SIGTERM: clean exit, status says stopped.
    let st = daemon.terminate();
    assert!(st.success(), "{st}\n{}", daemon.log());
    assert_eq!(env.status()["running"], false);
    assert!(
        daemon.log().contains("central database reachable again"),
        "{}",
        daemon.log()
    );
}

#[test]
fn once_with_central_unreachable_keeps_cdrs_and_exits_1_then_catches_up() {
    let env = Env::start("");
    // Profiles from the (local) rating database, CDRs to a central address
    // where nothing listens.
    let good = std::fs::read_to_string(&env.config).unwrap();
    let dead_port = billing::testbed::free_tcp_port("127.0.0.1").unwrap();
    let down = good.replace(
        "central_url = ",
        &format!("central_url = \"mysql://root@127.0.0.1:{dead_port}/flexvisor\"\nrating_url = "),
    );
    std::fs::write(&env.config, &down).unwrap();
    let spool = env.spool_writer(1 << 20);
    let t = now_ms() - 600_000;
    for i in 0..20 {
        call(&spool, &format!("once-{i}"), t, 1_000, Some(1), "4989");
    }
    drop(spool);
    let _next = env.spool_writer(1 << 20);

    let out = env.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kept in"), "{err}");
    assert_eq!(env.status()["backlog_cdrs"], 20);
    assert_eq!(env.count("1"), 0);
    assert!(env.done_files().is_empty());

    std::fs::write(&env.config, &good).unwrap();
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.count("call_id LIKE 'once-%' AND rated = 1"), 20);
    assert_eq!(env.done_files().len(), 1);
}
