//! The lb image of c5-50k (bay 5) boots under qemu (TCG, direct kernel
//! boot) with two empty-ish disks: flexvisor reaches ready, `flexctl status
//! --json` answers from inside the guest, the RAID-1 mirrors exist on both
//! disks, an ACPI power-down ends in an orderly poweroff, and the next boot
//! assembles the same mirrors.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use flexvisor_image::qemu::{BootSpec, Vm};

fn between<'a>(text: &'a str, begin: &str, end: &str) -> &'a str {
    let a = text.find(begin).map(|i| i + begin.len()).unwrap_or(0);
    let b = text[a..].find(end).map(|i| a + i).unwrap_or(text.len());
    &text[a..b]
}

#[test]
fn lb_image_boots_to_ready_mirrors_and_powers_off() {
    let tmp = common::TempDir::new("smoke");
    let opts = common::options();
    let built = common::build_bay("c5-50k.toml", 5, tmp.path(), &opts);
    assert_eq!(built.hostname, "lb1a");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);

    let spec = BootSpec::for_image(&built.image).expect("boot spec");
    assert_eq!(spec.bay, Some(5));
    let mut vm = Vm::start(spec).expect("start qemu (package qemu-system-x86)");
    vm.wait_for("flexvisor: ready", Duration::from_secs(240))
        .expect("flexvisor ready");
    let console = vm
        .wait_for("flexvisor-report: mdstat end", Duration::from_secs(120))
        .expect("status report from inside the guest");

    let status: serde_json::Value = serde_json::from_str(between(
        &console,
        "flexvisor-report: status begin",
        "flexvisor-report: status end",
    ))
    .expect("flexctl status --json output is JSON");
    assert_eq!(status["hostname"], "lb1a", "{status}");
    assert_eq!(status["pid1"], true, "{status}");
    let services = status["services"].as_array().expect("services");
    let state = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["state"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(state("sip-lb").as_deref(), Some("ready"), "{status}");
    assert_eq!(state("acpid").as_deref(), Some("ready"), "{status}");

    let mdstat = between(
        &console,
        "flexvisor-report: mdstat begin",
        "flexvisor-report: mdstat end",
    );
    for (md, a, b) in [("md0", "vda4", "vdb4"), ("md1", "vda5", "vdb5")] {
        let line = mdstat
            .lines()
            .find(|l| l.starts_with(md))
            .unwrap_or_else(|| panic!("{md} missing from /proc/mdstat:\n{mdstat}"));
        assert!(
            line.contains("raid1") && line.contains(a) && line.contains(b),
            "{line}"
        );
    }
    assert!(mdstat.matches("[2/2] [UU]").count() >= 2, "{mdstat}");
    assert!(console.contains("bay 5 matches the image"), "bay check");

    vm.qmp("system_powerdown").expect("QMP system_powerdown");
    let status = vm
        .wait_exit(Duration::from_secs(120))
        .expect("qemu exits after the orderly poweroff");
    let console = vm.console();
    assert!(status.success(), "qemu exit {status}");
    assert!(console.contains("flexvisor: shutting down"), "{console}");
    assert!(console.contains("reboot: Power down"), "kernel powered off");

    // Second boot: the mirrors are assembled, not built again.
    let spec = BootSpec::for_image(&built.image).expect("boot spec");
    let mut vm = Vm::start(spec).expect("start qemu again");
    let console = vm
        .wait_for("flexvisor: ready", Duration::from_secs(240))
        .expect("flexvisor ready on the second boot");
    assert!(!console.contains("first boot"), "mirrors rebuilt on reboot");
    let md = between(&console, "flexvisor-init: mdstat:", "unused devices");
    assert!(
        md.contains("md0 : active raid1") && md.contains("md1 : active raid1"),
        "{md}"
    );
}
