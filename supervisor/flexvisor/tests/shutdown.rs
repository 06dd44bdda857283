//! Orderly shutdown: dependents stop before their dependencies, each with
//! its stop signal, and a service that ignores it is killed so the whole
//! shutdown ends within its bound.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

fn stopper(name: &str, deps: &str) -> String {
    format!(
        r#"command = "/bin/sh"
args = ["-c", "trap 'sleep 0.1; echo {name} >> {{dir}}/stops; exit 0' TERM; while :; do sleep 0.05; done"]
requires = [{deps}]
"#
    )
}

#[test]
fn shutdown_stops_in_reverse_dependency_order() {
    let a = stopper("a", "");
    let b = stopper("b", "\"a\"");
    let c = stopper("c", "\"b\"");
    let d = stopper("d", "\"a\"");
    let mut sup = Sup::start(&[("a", &a), ("b", &b), ("c", &c), ("d", &d)]);
    sup.wait_console("flexvisor: ready");
    let (st, console) = sup.shutdown();
    assert!(st.success(), "{console}");
    let stops = std::fs::read_to_string(sup.path("stops")).unwrap();
    let order: Vec<&str> = stops.lines().collect();
    let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert_eq!(order.len(), 4, "{order:?}");
    assert!(pos("c") < pos("b"), "{order:?}");
    assert!(pos("b") < pos("a") && pos("d") < pos("a"), "{order:?}");
    assert!(console.contains("all services stopped"));
}

#[test]
fn service_ignoring_stop_signal_is_killed_and_shutdown_ends() {
    let m = marker();
    let mut sup = Sup::prepare(&[(
        "stubborn",
        &format!(
            r#"command = "/bin/sh"
args = ["-c", "trap '' TERM; sleep {m} & while :; do sleep 0.05; done"]
stop_timeout_ms = 300
"#
        ),
    )])
    .launch(&["--shutdown-timeout-ms", "5000"]);
    sup.wait_state("stubborn", "ready");
    let (st, console) = sup.shutdown();
    assert!(st.success(), "{console}");
    assert!(console.contains("sent SIGKILL"), "{console}");
    assert!(pids_with(&format!("sleep {m}")).is_empty());
}
