//! Reload applies a changed configuration (start added, stop removed,
//! restart changed, leave the rest alone) and rejects an invalid one with
//! its error while the running services stay untouched.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

const SLEEP: &str = r#"command = "/bin/sleep"
args = ["100000"]
"#;

#[test]
fn reload_adds_removes_and_restarts_changed() {
    let sup = Sup::start(&[("keep", SLEEP), ("change", SLEEP), ("drop", SLEEP)]);
    sup.wait_console("flexvisor: ready");
    let keep_pid = sup.service("keep").pid;
    let change_pid = sup.service("change").pid;

    sup.write_service("change", "command = \"/bin/sleep\"\nargs = [\"100001\"]\n");
    sup.write_service("added", SLEEP);
    std::fs::remove_file(sup.services_dir().join("drop.toml")).unwrap();
    let diff = sup.call(Op::Reload).unwrap();
    assert_eq!(diff["added"], serde_json::json!(["added"]));
    assert_eq!(diff["removed"], serde_json::json!(["drop"]));
    assert_eq!(diff["changed"], serde_json::json!(["change"]));

    let st = sup.wait_until("reload applied", |st| {
        let get = |n: &str| st.services.iter().find(|s| s.name == n);
        get("drop").is_none()
            && get("added").is_some_and(|s| s.state == "ready")
            && get("change").is_some_and(|s| s.state == "ready" && s.pid != change_pid)
    });
    let keep = st.services.iter().find(|s| s.name == "keep").unwrap();
    assert_eq!(keep.pid, keep_pid, "unchanged service was restarted");
}

#[test]
fn invalid_reload_is_rejected_and_running_services_untouched() {
    let sup = Sup::start(&[("steady", SLEEP)]);
    sup.wait_console("flexvisor: ready");
    let pid = sup.service("steady").pid;
    sup.write_service(
        "broken",
        "command = \"/bin/true\"\n\nstop_signal = \"SIGNOPE\"\n",
    );
    let err = sup.call(Op::Reload).unwrap_err();
    assert!(err.contains("broken.toml:3:"), "{err}");
    assert!(err.contains("stop_signal"), "{err}");
    assert!(err.contains("running configuration kept"), "{err}");
    let st = sup.status();
    assert_eq!(st.services.len(), 1);
    assert_eq!(st.services[0].pid, pid);
    assert_eq!(st.services[0].state, "ready");
}

#[test]
fn sighup_reloads() {
    let sup = Sup::start(&[("one", SLEEP)]);
    sup.wait_console("flexvisor: ready");
    sup.write_service("two", SLEEP);
    let host = sup.host_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    sup.wait_state("two", "ready");
}
