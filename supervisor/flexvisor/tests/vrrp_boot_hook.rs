//! A node that boots into Backup runs its backup hook once, even though the
//! supervisor's role already defaults to backup: on a db node that hook is
//! db-demote (MariaDB read_only on, Redis replica of the peer), which must
//! hold from boot, not only after a first Master -> Backup transition.
//! The master runs backup then master, in that order.
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;

fn with_hooks(dir: &std::path::Path, tag: &str) -> impl FnOnce(&mut chassis::NodeConfig) {
    let log = dir.join(format!("hooks-{tag}.log"));
    move |n: &mut chassis::NodeConfig| {
        let l = log.display();
        n.hooks = Some(chassis::node::HookConfig {
            master: Some(format!("echo master >> {l}")),
            backup: Some(format!("echo backup >> {l}")),
            timeout_s: 10,
        });
    }
}

fn lines(p: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn booting_as_backup_runs_the_backup_hook_and_the_master_ends_on_its_master_hook() {
    require_root();
    let (_net, nodes) = lab();
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = start_with(&nodes[0], 0, "status=ok\n", with_hooks(dir.path(), "a"));
    let (b, _) = start_with(&nodes[1], 1, "status=ok\n", with_hooks(dir.path(), "b"));
    wait_for(
        "a master and a backup",
        || matches!((state(&a), state(&b)), (Some((sa, _)), Some((sb, _))) if sa == "Master" && sb == "Backup"),
    );
    let (la, lb) = (
        dir.path().join("hooks-a.log"),
        dir.path().join("hooks-b.log"),
    );
    wait_for("the backup's hook ran", || !lines(&lb).is_empty());
    wait_for("the master's hook ran", || {
        lines(&la).last().is_some_and(|l| l == "master")
    });
    // Hooks of one node never overlap and a finished role is not re-run:
    // a few advert intervals later the logs are unchanged.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(lines(&lb), ["backup"], "backup node's hooks");
    let la = lines(&la);
    assert_eq!(la.last().map(String::as_str), Some("master"), "{la:?}");
    assert!(
        la.len() <= 2,
        "master node ran more hooks than backup, master: {la:?}"
    );
}
