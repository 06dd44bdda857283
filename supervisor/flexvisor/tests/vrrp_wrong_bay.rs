//! An image in the wrong bay (`bay-check: mismatch` from the initramfs)
//! never takes the shared address: no VRRP instance, a loud console line,
//! an event, and `flexctl health --check vip` CRITICAL (exit 2).
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;
use std::process::Command;

#[test]
fn wrong_bay_keeps_vrrp_off_and_vip_critical() {
    require_root();
    let (_net, nodes) = lab();
    let (a, na) = start(&nodes[0], 0, "status=mismatch\nexpected=5\ndetected=7\n");
    a.wait_console("WRONG BAY");
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
    assert!(vip(&a).is_empty());
    let st = a.status();
    assert!(!st.master);
    assert!(active_down(&a, &na), "{:?}", st.services);
    let addrs = Command::new("ip")
        .args(["-n", &nodes[0], "-4", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&addrs.stdout).contains(VIP));
    let ev = Command::new(flexctl_bin())
        .args(["events", "--socket", &sock])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ev.stdout).contains("WRONG BAY"));
}
