//! Role hooks act on the node's services (db-promote talks to MariaDB), so
//! a hook whose VRRP transition comes while the node is still starting
//! waits until the node is ready: here "mariadb" takes 4 s to get ready
//! while the first VRRP state comes within a second, and every hook run
//! finds it ready. (Own file: one pair lab per test binary.)
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;
use std::path::Path;

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn hooks_of_a_starting_node_run_once_its_services_are_ready() {
    require_root();
    let (_net, nodes) = lab();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let def = |tag: &str| {
        format!(
            "command = \"/bin/sh\"\nargs = [\"-c\", \"sleep 4; : > {d}/ready-{tag}; echo >&3; exec sleep 100000\"]\n\
             [readiness]\nkind = \"notify-fd\"\nfd = 3\n"
        )
    };
    let hooks = |tag: &str| {
        let check = format!(
            "if test -e {d}/ready-{tag}; then echo ROLE after-ready; else echo ROLE before-ready; fi >> {d}/hooks-{tag}.log"
        );
        move |n: &mut chassis::NodeConfig| {
            assert!(
                n.services.iter().any(|s| s == "mariadb"),
                "{:?}",
                n.services
            );
            n.hooks = Some(chassis::node::HookConfig {
                master: Some(check.replace("ROLE", "master")),
                backup: Some(check.replace("ROLE", "backup")),
                timeout_s: 10,
            });
        }
    };
    let (da, db) = (def("a"), def("b"));
    let (a, _) = start_with_defs(&nodes[0], 0, "status=ok\n", hooks("a"), &[("mariadb", &da)]);
    let (b, _) = start_with_defs(&nodes[1], 1, "status=ok\n", hooks("b"), &[("mariadb", &db)]);
    wait_for(
        "a master and a backup",
        || matches!((state(&a), state(&b)), (Some((sa, _)), Some((sb, _))) if sa == "Master" && sb == "Backup"),
    );
    let (la, lb) = (
        dir.path().join("hooks-a.log"),
        dir.path().join("hooks-b.log"),
    );
    wait_for("the master's hook ran", || {
        lines(&la).last().is_some_and(|l| l.starts_with("master"))
    });
    wait_for("the backup's hook ran", || !lines(&lb).is_empty());
    for (tag, l) in [("a", lines(&la)), ("b", lines(&lb))] {
        assert!(
            l.iter().all(|x| x.ends_with("after-ready")),
            "node {tag} ran a hook before its services were ready: {l:?}"
        );
    }
    assert_eq!(lines(&lb), ["backup after-ready"]);
}
