//! A node of a stateful pair (db, proxy: hooks that copy the master's
//! stores) rejoining after a power cut must not preempt the master before
//! its backup hook has copied the master's stores (Redis replication),
//! or it would take over with stale or empty stores and the old master
//! would then copy those: registrations and call state lost. The higher-
//! priority node stays backup while its backup hook runs, then preempts.
//! (Own file: one pair lab per test binary.)
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;
use std::time::Duration;

#[test]
fn a_rejoining_node_preempts_only_after_its_backup_hook_succeeded() {
    require_root();
    let (_net, nodes) = lab();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let hooks = |backup: String| {
        move |n: &mut chassis::NodeConfig| {
            n.hooks = Some(chassis::node::HookConfig {
                master: Some("true".into()),
                backup: Some(backup),
                timeout_s: 120,
            });
        }
    };
    // b (priority 100) runs alone: master.
    let (b, _) = start_with(&nodes[1], 1, "status=ok\n", hooks("true".into()));
    wait_for("b master alone", || {
        state(&b).is_some_and(|(s, _)| s == "Master")
    });
    // a (priority 150) joins; its backup hook "copies the stores" until
    // the test says the copy is done.
    let sync = format!("while [ ! -e {d}/synced ]; do sleep 0.1; done; echo synced >> {d}/a.log");
    let (a, _) = start_with(&nodes[0], 0, "status=ok\n", hooks(sync));
    wait_for("a backup, its backup hook running", || {
        state(&a).is_some_and(|(s, _)| s == "Backup") && a.status().hooks.running.is_some()
    });
    let held = vip(&a);
    assert_eq!(held[0]["preempt_held"], true, "{held:?}");
    // Several Master_Down_Intervals (3.4 s at priority 150): a would have
    // preempted long ago.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        state(&a).unwrap().0,
        "Backup",
        "a preempted before its stores were copied"
    );
    assert_eq!(state(&b).unwrap().0, "Master");

    std::fs::write(dir.path().join("synced"), "").unwrap();
    wait_for("a master after its backup hook succeeded", || {
        state(&a).is_some_and(|(s, _)| s == "Master")
            && state(&b).is_some_and(|(s, _)| s == "Backup")
    });
    assert_eq!(vip(&a)[0]["preempt_held"], false);
    a.wait_console("preemption released");
}
