//! The node's role hooks: they run with the role and node in their
//! environment, in their own process group, one at a time (a transition
//! waits for the running hook), and a hook that fails or is killed at its
//! timeout is reported (console WARNING, event, `flexctl status` exit 1,
//! the health `services` check WARNING) until a later hook run succeeds.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;
use std::process::Command;

const SLEEP: &str = "command = \"/bin/sleep\"\nargs = [\"100000\"]\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node (bay 7 of the 50k profile) with these hooks, its services
/// defined as sleepers, launched without VRRP (roles via `Op::Active`).
fn launch(master: &str, backup: &str, timeout_s: u32, health: bool) -> (Sup, chassis::NodeConfig) {
    launch_with(master, backup, timeout_s, health, SLEEP)
}

/// As [`launch`], the `active_services` defined as `active` (`{dir}` is
/// the test's directory).
fn launch_with(
    master: &str,
    backup: &str,
    timeout_s: u32,
    health: bool,
    active: &str,
) -> (Sup, chassis::NodeConfig) {
    // Built before flexvisor starts, so no hook times out during the build.
    flexctl_bin();
    let sup = Sup::prepare(&[]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut n = chassis::node::resolve(&loaded.profile, 7, None).unwrap();
    let d = sup.dir.path().display().to_string();
    n.hooks = Some(chassis::node::HookConfig {
        master: Some(master.replace("{dir}", &d)),
        backup: Some(backup.replace("{dir}", &d)),
        timeout_s,
    });
    n.health.metrics_port = free_port();
    for s in &n.services {
        let def = if n.active_services.contains(s) {
            active.replace("{dir}", &d)
        } else {
            SLEEP.to_owned()
        };
        sup.write_service(s, &def);
    }
    let cfg = sup.path("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    let mut args = vec![
        "--node-config",
        cfg.to_str().unwrap(),
        "--no-vrrp",
        "--health-local-only",
    ];
    if !health {
        args.push("--no-health");
    }
    let sup = sup.launch(&args);
    sup.wait_console("flexvisor: ready");
    (sup, n)
}

fn script(sup: &Sup, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = sup.path(name);
    let body = body.replace("{dir}", &sup.dir.path().display().to_string());
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn read(sup: &Sup, f: &str) -> String {
    std::fs::read_to_string(sup.path(f)).unwrap_or_default()
}

fn flexctl_status(sup: &Sup) -> (i32, String) {
    let out = Command::new(flexctl_bin())
        .args(["status", "--socket", sup.socket.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The `services` check of the node health.
fn services_check(sup: &Sup) -> serde_json::Value {
    let h = sup
        .call(Op::Subsystem {
            name: "health".into(),
            request: serde_json::Value::Null,
        })
        .unwrap_or_default();
    h["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == "services").cloned())
        .unwrap_or_default()
}

#[test]
fn failed_hook_is_reported_until_a_hook_succeeds_and_hooks_get_their_environment() {
    // Script paths: exist only after launch (temp dir), hooks run later.
    let (sup, n) = launch("{dir}/db-promote", "{dir}/db-demote", 30, true);
    script(
        &sup,
        "db-promote",
        "echo \"$FLEXVISOR_VRRP_STATE $FLEXVISOR_NODE $FLEXVISOR_PAIR $FLEXVISOR_NODE_CONFIG\" >> {dir}/env\n\
         awk '{print $5, $6}' /proc/$$/stat > {dir}/pgrp\n\
         echo 'ERROR 2002: cannot reach mariadb' >&2\nexit 3",
    );
    script(
        &sup,
        "db-demote",
        "echo \"$FLEXVISOR_VRRP_STATE $FLEXVISOR_NODE $FLEXVISOR_PAIR $FLEXVISOR_NODE_CONFIG\" >> {dir}/env",
    );
    let (code, out) = flexctl_status(&sup);
    assert_eq!(code, 0, "{out}");

    sup.call(Op::Active { master: true }).unwrap();
    let st = sup.wait_until("hook failure reported", |st| st.hooks.failure.is_some());
    let f = st.hooks.failure.unwrap();
    assert!(
        f.message
            .starts_with("hook db-promote failed: exit 3 after "),
        "{f:?}"
    );
    assert!(
        f.message.contains("ERROR 2002: cannot reach mariadb"),
        "last output missing: {f:?}"
    );
    assert_eq!((f.role.as_str(), f.name.as_str()), ("master", "db-promote"));
    sup.wait_console("flexvisor: WARNING: hook db-promote failed: exit 3 after ");

    // Environment: role, node, pair, the config file flexvisor loaded.
    let cfg = std::fs::canonicalize(sup.path("node.toml")).unwrap();
    assert_eq!(
        read(&sup, "env"),
        format!("master {} {} {}\n", n.hostname, n.pair.name, cfg.display())
    );
    // Own session and process group, led by the hook's shell (the pid the
    // supervisor reported), not flexvisor's (pid 1 here).
    let evs = sup
        .call(Op::Events {
            follow: false,
            since: 0,
        })
        .unwrap();
    let started = evs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.starts_with("master hook `"))
        .unwrap_or_else(|| panic!("no hook start event: {evs}"));
    let hook_pid = started.rsplit("pid ").next().unwrap().trim();
    let pg = read(&sup, "pgrp");
    assert_eq!(
        pg.split_whitespace().collect::<Vec<_>>(),
        vec![hook_pid, hook_pid],
        "hook not in its own group/session (pgrp sid): {pg}"
    );

    // The operator sees it: flexctl status exits 1 (WARNING) and says why.
    let (code, out) = flexctl_status(&sup);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hooks: WARNING hook db-promote failed: exit 3 after"),
        "{out}"
    );
    // ... the event log has it ...
    let evs = sup
        .call(Op::Events {
            follow: false,
            since: 0,
        })
        .unwrap();
    assert!(
        evs.as_array().unwrap().iter().any(|e| e["source"] == "hook"
            && e["message"]
                .as_str()
                .unwrap()
                .starts_with("hook db-promote failed: exit 3")),
        "{evs}"
    );
    // ... and the health services check is WARNING naming the hook.
    wait_for("services check WARNING with the hook", || {
        let c = services_check(&sup);
        c["status"] == "WARNING" && c.to_string().contains("hook:db-promote")
    });
    // `flexctl logs hooks` has the hook's output.
    let logs = sup
        .call(Op::Logs {
            service: "hooks".into(),
            lines: None,
            follow: false,
        })
        .unwrap();
    assert!(logs.to_string().contains("ERROR 2002"), "{logs}");

    // A successful run (the backup hook) clears the warning.
    sup.call(Op::Active { master: false }).unwrap();
    let st = sup.wait_until("hook failure cleared", |st| {
        st.hooks.failure.is_none() && st.hooks.running.is_none()
    });
    assert!(
        st.hooks
            .last
            .as_deref()
            .unwrap()
            .starts_with("hook db-demote succeeded after"),
        "{:?}",
        st.hooks
    );
    assert!(read(&sup, "env").ends_with(&format!(
        "backup {} {} {}\n",
        n.hostname,
        n.pair.name,
        cfg.display()
    )));
    let (code, out) = flexctl_status(&sup);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("hooks: WARNING"), "{out}");
    wait_for("services check without the hook", || {
        let c = services_check(&sup);
        c.is_object() && !c.to_string().contains("hook:db-promote")
    });
}

#[test]
fn hook_killed_at_timeout_with_its_whole_group() {
    let m = marker();
    let (sup, _) = launch(&format!("sleep {m} & sleep {}", m + 1), "true", 1, false);
    sup.call(Op::Active { master: true }).unwrap();
    let st = sup.wait_until("timeout reported", |st| st.hooks.failure.is_some());
    assert_eq!(
        st.hooks.failure.unwrap().message,
        "hook sleep timed out after 1 s, killed"
    );
    sup.wait_console("flexvisor: WARNING: hook sleep timed out after 1 s, killed");
    // The background child of the hook went with it.
    wait_for("hook's background sleep gone", || {
        pids_with(&format!("sleep {m}")).is_empty()
    });
    let (code, out) = flexctl_status(&sup);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("timed out after 1 s, killed"), "{out}");
}

#[test]
fn a_transition_waits_for_the_running_hook() {
    let (sup, _) = launch("{dir}/slow-promote", "{dir}/demote", 30, false);
    script(
        &sup,
        "slow-promote",
        "echo master-start >> {dir}/order\n\
         while [ ! -e {dir}/go ]; do sleep 0.05; done\n\
         echo master-end >> {dir}/order",
    );
    script(
        &sup,
        "demote",
        "echo backup-start >> {dir}/order\necho backup-end >> {dir}/order",
    );
    sup.call(Op::Active { master: true }).unwrap();
    wait_for("master hook started", || {
        read(&sup, "order") == "master-start\n"
    });
    sup.call(Op::Active { master: false }).unwrap();
    // The node is backup already (services stopped), the hook waits.
    let st = sup.wait_until("backup hook pending", |st| {
        st.hooks.pending.as_deref() == Some("backup")
    });
    assert!(!st.master);
    let r = st.hooks.running.as_ref().unwrap();
    assert_eq!(
        (r.role.as_str(), r.name.as_str()),
        ("master", "slow-promote")
    );
    assert_eq!(read(&sup, "order"), "master-start\n", "hooks overlapped");
    let (_, out) = flexctl_status(&sup);
    assert!(
        out.contains("backup hook waits for the running one"),
        "{out}"
    );

    std::fs::write(sup.path("go"), "").unwrap();
    wait_for("backup hook done", || {
        read(&sup, "order").contains("backup-end")
    });
    assert_eq!(
        read(&sup, "order"),
        "master-start\nmaster-end\nbackup-start\nbackup-end\n"
    );
    let st = sup.wait_until("no hook running", |st| st.hooks.running.is_none());
    assert!(st.hooks.failure.is_none() && st.hooks.pending.is_none());
}

#[test]
fn active_services_start_once_the_master_hook_has_ended() {
    // Each active service notes whether the promote had finished when it
    // started (a Redis replica refuses writes until promoted).
    let active = "command = \"/bin/sh\"\nargs = [\"-c\", \"if test -e {dir}/promoted; \
                  then echo after; else echo before; fi >> {dir}/starts; exec sleep 100000\"]\n";
    let (sup, n) = launch_with("{dir}/promote", "true", 30, false, active);
    assert!(!n.active_services.is_empty());
    script(&sup, "promote", "sleep 2\n: > {dir}/promoted");
    assert_eq!(read(&sup, "starts"), "", "active services ran on a backup");

    sup.call(Op::Active { master: true }).unwrap();
    // While the promote runs, the operator sees why they are down.
    let st = sup.wait_until("the master hook running", |st| st.hooks.running.is_some());
    for name in &n.active_services {
        let s = st.services.iter().find(|s| &s.name == name).unwrap();
        assert_eq!(
            (s.state.as_str(), s.waiting_for.as_deref()),
            ("down", Some("the master hook")),
            "{s:?}"
        );
    }
    wait_for("every active service started", || {
        read(&sup, "starts").lines().count() == n.active_services.len()
    });
    assert!(
        read(&sup, "starts").lines().all(|l| l == "after"),
        "an active service started before the promote ended: {:?}",
        read(&sup, "starts")
    );
    sup.wait_console("flexvisor: master hook ended; starting active services");

    // Backup: they stop; master again with the promote failing: they
    // start anyway once it has ended (the failure is reported).
    sup.call(Op::Active { master: false }).unwrap();
    sup.wait_until("active services stopped", |st| {
        st.services
            .iter()
            .filter(|s| s.active_only)
            .all(|s| s.state == "down")
    });
    script(&sup, "promote", "sleep 1\nexit 1");
    sup.call(Op::Active { master: true }).unwrap();
    let st = sup.wait_until("active services ready after a failed promote", |st| {
        st.services
            .iter()
            .filter(|s| s.active_only)
            .all(|s| s.state == "ready")
    });
    assert!(st.hooks.failure.is_some(), "{:?}", st.hooks);
}
