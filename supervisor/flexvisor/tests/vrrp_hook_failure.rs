//! A role hook that fails is an operator-visible WARNING in `flexctl vip`
//! (exit 1, the failure on stderr) on that node, and only there. (Own file:
//! the pair lab names its namespaces by pid, one lab per test binary.)
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;

#[test]
fn a_failed_hook_shows_in_flexctl_vip_as_warning() {
    require_root();
    let (_net, nodes) = lab();
    let (a, _) = start(&nodes[0], 0, "status=ok\n");
    let (b, _) = start_with(&nodes[1], 1, "status=ok\n", |n| {
        n.hooks = Some(chassis::node::HookConfig {
            master: None,
            backup: Some("echo cannot reach peer >&2; exit 2".into()),
            timeout_s: 10,
        });
    });
    wait_for(
        "a master and a backup",
        || matches!((state(&a), state(&b)), (Some((sa, _)), Some((sb, _))) if sa == "Master" && sb == "Backup"),
    );
    let vip = || {
        let o = std::process::Command::new(flexctl_bin())
            .args(["vip", "--socket", b.socket.to_str().unwrap()])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    wait_for("flexctl vip reports the failed backup hook", || {
        let (code, err) = vip();
        code == Some(1) && err.contains("WARNING") && err.contains("failed")
    });
    // The master's hooks are fine: its flexctl vip says OK.
    let o = std::process::Command::new(flexctl_bin())
        .args(["vip", "--socket", a.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
