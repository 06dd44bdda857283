//! A shared address that cannot be served (its interface is missing) is
//! not silently ignored: a console line and an event name the instance and
//! `flexctl health --check vip` is CRITICAL (exit 2).
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;
use std::process::Command;

#[test]
fn missing_vip_interface_is_reported_and_vip_critical() {
    require_root();
    let (_net, nodes) = lab();
    let (a, na) = start_with(&nodes[0], 0, "status=ok\n", |n| {
        n.vips[0].interface = "nosuch0".into();
    });
    a.wait_console("cannot start");
    let sock = a.socket.to_str().unwrap().to_owned();
    wait_for("vip CRITICAL", || {
        Command::new(flexctl_bin())
            .args(["health", "--check", "vip", "--socket", &sock])
            .output()
            .unwrap()
            .status
            .code()
            == Some(2)
    });
    let out = Command::new(flexctl_bin())
        .args(["health", "--check", "vip", "--socket", &sock])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let instance = format!("{}-test", na.pair.name);
    assert!(text.contains(&instance), "{text}");
    assert!(vip(&a).is_empty());
    assert!(!a.status().master);
    let ev = Command::new(flexctl_bin())
        .args(["events", "--socket", &sock])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ev.stdout).contains("nosuch0"));
}
