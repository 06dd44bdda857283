//! Two flexvisors of a pair, each in a network namespace on one bridge,
//! share one VIP through the hosted VRRP: exactly one is master and runs the
//! active services, `flexctl vip` agrees on both, and kill -9 of the master
//! hands the address and the active services to the other, with the
//! transition in `flexctl events`.
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;
use std::process::Command;

#[test]
fn pair_elects_one_master_and_the_backup_takes_over_after_kill9() {
    require_root();
    let (_net, nodes) = lab();
    let (mut a, na) = start(&nodes[0], 0, "status=ok\n");
    let (b, nb) = start(&nodes[1], 1, "status=ok\n");

    // Exactly one master (the higher priority), both agree on its address.
    wait_for("a master and a backup that agree", || {
        matches!(
            (state(&a), state(&b)),
            (Some((sa, ma)), Some((sb, mb)))
                if sa == "Master" && sb == "Backup" && ma == "10.78.0.1" && mb == "10.78.0.1"
        )
    });
    wait_for("the master's active services up", || {
        active_running(&a, &na)
    });
    assert!(a.status().master);
    assert!(!b.status().master);
    assert!(active_down(&b, &nb), "{:?}", b.status().services);
    // The health verdict sees the shared IP too.
    let h = a
        .call(flexvisor::control::proto::Op::Subsystem {
            name: "health".into(),
            request: serde_json::Value::Null,
        })
        .unwrap();
    let vipcheck = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "vip")
        .cloned()
        .unwrap();
    assert_eq!(vipcheck["status"], "OK", "{vipcheck}");

    // kill -9 the master flexvisor (PID 1 of its namespace: all goes).
    let pid = a.host_pid();
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    a.wait_exit();

    wait_for("the backup becomes master", || {
        state(&b).is_some_and(|(s, m)| s == "Master" && m == "10.78.0.2")
    });
    wait_for("the new master's active services up", || {
        active_running(&b, &nb)
    });
    assert!(b.status().master);
    let ev = Command::new(flexctl_bin())
        .args(["events", "--socket", b.socket.to_str().unwrap()])
        .output()
        .unwrap();
    let ev = String::from_utf8_lossy(&ev.stdout);
    assert!(ev.contains("Backup -> Master"), "{ev}");
    assert!(ev.contains("now master"), "{ev}");
}
