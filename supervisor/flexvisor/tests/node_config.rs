//! The node configuration selects the services: every listed service needs
//! a definition, `active_services` run only while master, and the master /
//! backup hooks run on transitions.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

fn node(dir: &std::path::Path) -> chassis::NodeConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut n = chassis::node::resolve(&loaded.profile, 7, None).unwrap();
    n.hooks = Some(chassis::node::HookConfig {
        master: Some(format!("echo master >> {}/hooks", dir.display())),
        backup: Some(format!("echo backup >> {}/hooks", dir.display())),
        timeout_s: 5,
    });
    n
}

const SLEEP: &str = "command = \"/bin/sleep\"\nargs = [\"100000\"]\n";

#[test]
fn active_services_follow_master_state_and_hooks_run() {
    let sup = Sup::prepare(&[]);
    let n = node(sup.dir.path());
    assert!(!n.active_services.is_empty());
    for s in &n.services {
        sup.write_service(s, SLEEP);
    }
    sup.write_service("not-on-this-node", SLEEP);
    let cfg = sup.path("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    let sup = sup.launch(&[
        "--node-config",
        cfg.to_str().unwrap(),
        "--no-vrrp",
        "--health-local-only",
    ]);

    sup.wait_console("flexvisor: ready");
    let st = sup.status();
    assert!(st.services.iter().all(|s| s.name != "not-on-this-node"));
    for s in &st.services {
        let active = n.active_services.contains(&s.name);
        assert_eq!(s.active_only, active, "{s:?}");
        assert_eq!(s.state, if active { "down" } else { "ready" }, "{s:?}");
    }

    sup.call(Op::Active { master: true }).unwrap();
    sup.wait_until("active services up", |st| {
        st.services.iter().all(|s| s.state == "ready")
    });
    wait_for("master hook", || {
        std::fs::read_to_string(sup.path("hooks")).unwrap_or_default() == "master\n"
    });

    sup.call(Op::Active { master: false }).unwrap();
    sup.wait_until("active services down", |st| {
        st.services
            .iter()
            .all(|s| (s.state == "down") == n.active_services.contains(&s.name))
    });
    wait_for("backup hook", || {
        std::fs::read_to_string(sup.path("hooks")).unwrap_or_default() == "master\nbackup\n"
    });
}

#[test]
fn listed_service_without_definition_is_a_clear_error() {
    let sup = Sup::prepare(&[]);
    let n = node(sup.dir.path());
    for s in n.services.iter().skip(1) {
        sup.write_service(s, SLEEP);
    }
    let cfg = sup.path("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexvisor"))
        .arg("--check")
        .arg("--node-config")
        .arg(&cfg)
        .arg("--services-dir")
        .arg(sup.services_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("lists service `{}`", n.services[0]))
            && err.contains(".toml does not exist"),
        "{err}"
    );
}
