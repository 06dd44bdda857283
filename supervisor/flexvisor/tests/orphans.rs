//! Processes that a service double-forks away are reparented to flexvisor
//! and reaped: no zombie accumulates, and they are not mistaken for the
//! service (which stays ready).
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

#[test]
fn double_forked_orphans_are_reaped() {
    let sup = Sup::start(&[(
        "forker",
        r#"command = "/bin/sh"
args = ["-c", "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.2 &); done; touch {dir}/forked; exec sleep 100000"]
"#,
    )]);
    sup.wait_state("forker", "ready");
    wait_for("service forked", || sup.path("forked").exists());
    wait_for("ten orphans reaped", || {
        let evs = sup
            .call(Op::Events {
                follow: false,
                since: 0,
            })
            .unwrap();
        evs.as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("reaped orphan")
            })
            .count()
            >= 10
    });
    let host = sup.host_pid();
    assert!(
        zombies_of(host).is_empty(),
        "zombies left: {:?}",
        zombies_of(host)
    );
    let f = sup.service("forker");
    assert_eq!((f.state.as_str(), f.restarts), ("ready", 0));
}
