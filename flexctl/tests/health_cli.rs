//! `flexctl health` / `flexctl vip` without a supervisor: monitoring
//! plugins must get UNKNOWN (3), never a crash or a misleading OK.
//! (With a running flexvisor they are tested in supervisor/flexvisor/tests.)

use std::process::{Command, Output};

fn flexctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flexctl"))
        .args(args)
        .env_remove("FLEXVISOR_SOCKET")
        .output()
        .expect("run flexctl")
}

#[test]
fn unreachable_supervisor_is_unknown_in_text_and_json() {
    let sock = "/nonexistent-flexctl-test/control.sock";
    let o = flexctl(&["health", "--socket", sock]);
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("HEALTH UNKNOWN"), "{out}");
    assert!(out.contains(sock), "{out}");

    let o = flexctl(&["health", "--json", "--check", "raid", "--socket", sock]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(v["overall"], "UNKNOWN", "{v}");
}

#[test]
fn unknown_check_is_a_usage_error_naming_the_choices() {
    let o = flexctl(&["health", "--check", "disks", "--socket", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("disks") && err.contains("raid, power, uplinks, services, vip"),
        "{err}"
    );
}

#[test]
fn vip_without_supervisor_fails_with_the_socket_named() {
    let o = flexctl(&["vip", "--socket", "/nonexistent/control.sock"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/control.sock"));
}
