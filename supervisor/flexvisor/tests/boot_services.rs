//! `boot = true` services run from boot on every node, whatever the node
//! configuration's role lists say: they are started although no listed
//! service wants them, they pull in what they require, and they run on a
//! backup node even when the role lists them as active-only.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

const SLEEP: &str = "command = \"/bin/sleep\"\nargs = [\"100000\"]\n";

#[test]
fn boot_services_run_on_every_node_whatever_the_role_lists() {
    let sup = Sup::prepare(&[]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut n = chassis::node::resolve(&loaded.profile, 7, None).unwrap();
    n.hooks = None;
    for s in n.services.iter().chain(&n.active_services) {
        sup.write_service(s, SLEEP);
    }
    // Not listed by the role; only `boot = true` brings them in.
    sup.write_service(
        "acpid",
        "command = \"/bin/sleep\"\nargs = [\"100000\"]\nboot = true\nrequires = [\"console-setup\"]\n",
    );
    sup.write_service(
        "console-setup",
        "command = \"/bin/true\"\ntype = \"oneshot\"\n",
    );
    // Listed as active-only by the role, but boot wins: runs on the backup.
    sup.write_service(
        "mdadm-monitor",
        "command = \"/bin/sleep\"\nargs = [\"100000\"]\nboot = true\n",
    );
    n.active_services.push("mdadm-monitor".into());
    // Neither listed nor boot: stays out.
    sup.write_service("not-on-this-node", SLEEP);
    sup.write_service(
        "explicit-false",
        "command = \"/bin/sleep\"\nargs = [\"100000\"]\nboot = false\n",
    );
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
    assert!(!st.master, "test expects a backup node");
    let get = |name: &str| st.services.iter().find(|s| s.name == name);
    for name in ["not-on-this-node", "explicit-false"] {
        assert!(
            get(name).is_none(),
            "{name} should not be supervised: {st:#?}"
        );
    }
    let acpid = get("acpid").expect("boot service acpid not supervised");
    assert_eq!(acpid.state, "ready", "{acpid:?}");
    assert!(acpid.pid.is_some());
    assert!(!acpid.active_only);
    let setup = get("console-setup").expect("dependency of a boot service not pulled in");
    assert_eq!(setup.state, "ready", "{setup:?}");
    let md = get("mdadm-monitor").unwrap();
    assert!(
        !md.active_only,
        "boot service treated as active-only: {md:?}"
    );
    assert_eq!(
        md.state, "ready",
        "boot service not running on backup: {md:?}"
    );
    // The role's active-only services are still down on the backup.
    for s in &n.active_services {
        if s != "mdadm-monitor" {
            assert_eq!(get(s).unwrap().state, "down", "{s}");
        }
    }
}

#[test]
fn boot_must_be_a_boolean() {
    let sup = Sup::prepare(&[("x", "command = \"/bin/true\"\nboot = \"yes\"\n")]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexvisor"))
        .arg("--check")
        .arg("--services-dir")
        .arg(sup.services_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.toml:2:"), "{err}");
}
