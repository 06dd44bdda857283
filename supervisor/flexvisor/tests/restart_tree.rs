//! Stopping or restarting a service kills its whole process tree: no
//! grandchild of the old instance survives.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

fn restart_kills_old_tree(extra: &[&str], escape: bool) {
    let m = marker();
    // The grandchild optionally leaves the process group (setsid), which
    // only a cgroup can follow.
    let bg = if escape {
        format!("setsid sleep {m} &")
    } else {
        format!("sleep {m} &")
    };
    let sup = Sup::prepare(&[(
        "tree",
        &format!(
            r#"command = "/bin/sh"
args = ["-c", "{bg} exec sleep {}"]
"#,
            m + 1
        ),
    )])
    .launch(extra);
    sup.wait_state("tree", "ready");
    wait_for("grandchild running", || {
        pids_with(&format!("sleep {m}")).len() == 1
    });
    let old = pids_with(&format!("sleep {m}"));
    sup.call(Op::Restart {
        service: "tree".into(),
    })
    .unwrap();
    wait_for("new instance", || {
        let now = pids_with(&format!("sleep {m}"));
        now.len() == 1 && now != old
    });
    for p in &old {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/status"))
                    .unwrap_or_default()
                    .contains("State:\tZ"),
            "grandchild {p} of the old instance survived the restart"
        );
    }
    sup.call(Op::Stop {
        service: "tree".into(),
    })
    .unwrap();
    sup.wait_state("tree", "down");
    wait_for("no process left after stop", || {
        pids_with(&format!("sleep {m}")).is_empty()
    });
}

#[test]
fn restart_kills_grandchildren_in_process_group() {
    restart_kills_old_tree(&["--no-cgroups"], false);
}

#[test]
fn restart_kills_grandchildren_that_left_the_group_via_cgroup() {
    let root =
        cgroup2_root().expect("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
    restart_kills_old_tree(&["--cgroup-root", root], true);
}
