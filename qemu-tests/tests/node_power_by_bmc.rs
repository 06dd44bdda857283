//! A node's BMC (`ipmi_sim` wired to qemu's external BMC device) powers
//! its VM like a real IMM: `ipmitool -I lanplus chassis power off|on`
//! stops and starts the VM, the guest sees `/dev/ipmi0`; and a drive pulled
//! and replaced over QMP disappears from and reappears in the guest.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use qemu_tests::proc::poll;

#[test]
fn bmc_powers_the_vm_and_disks_can_be_pulled_and_replaced() {
    let mut run = common::probe_chassis(&["lb1a"], &|_| (None, None));
    let ch = &mut run.ch;
    let node = ch.node_mut("lb1a").expect("node");
    node.insert()
        .expect("insert node (starts its BMC, which powers the VM on)");
    let line = node
        .console
        .wait_for(0, "ipmi0 report", common::BOOT, |l| {
            l.starts_with("FVQ-PROBE: ipmi0=")
        })
        .expect("probe guest boots");
    assert_eq!(
        line, "FVQ-PROBE: ipmi0=yes",
        "guest sees the BMC through KCS"
    );
    node.console
        .wait_for_text(0, "FVQ-PROBE: disks=vda vdb", common::BOOT)
        .expect("two disks");
    let bmc = node.bmc().expect("bmc");
    assert!(
        bmc.power_is_on().expect("power status"),
        "BMC reports the VM on"
    );

    // Pull the second drive, then put a new empty one in.
    let mark = node.console.mark();
    node.pull_disk(1)
        .expect("device_del disk1 and DEVICE_DELETED");
    node.console
        .wait_for(mark, "one disk", common::BOOT, |l| {
            l.trim_end() == "FVQ-PROBE: disks=vda"
        })
        .expect("guest lost vdb");
    let mark = node.console.mark();
    node.insert_new_disk("disk2").expect("hot-add a new disk");
    node.console
        .wait_for(mark, "two disks again", common::BOOT, |l| {
            l.starts_with("FVQ-PROBE: disks=") && l.split_whitespace().count() == 3
        })
        .expect("guest sees the new disk");

    // The ACPI power button reaches qemu (the probe guest ignores it).
    let mut q = node.qmp(Duration::from_secs(10)).expect("qmp");
    q.system_powerdown().expect("system_powerdown");
    q.wait_event("POWERDOWN", Duration::from_secs(30))
        .expect("POWERDOWN event");
    assert_eq!(q.status().expect("query-status"), "running");
    drop(q);

    // Power off through the BMC: the VM process ends, the BMC says off.
    let bmc = node.bmc().expect("bmc");
    bmc.power("off").expect("chassis power off");
    assert!(
        poll(Duration::from_secs(60), || (!node.running()).then_some(())).is_some(),
        "qemu still running after BMC power off"
    );
    let off = poll(Duration::from_secs(30), || {
        (!bmc.power_is_on().expect("power status")).then_some(())
    });
    assert!(
        off.is_some(),
        "BMC still reports the VM on after it ended:\n{}",
        bmc.log()
    );

    // Power on: the BMC starts the VM again and it boots.
    let mark = node.console.mark();
    bmc.power("on").expect("chassis power on");
    node.console
        .wait_for_text(mark, "FVQ-PROBE: booted", common::BOOT)
        .expect("VM boots again after BMC power on");
    assert!(bmc.power_is_on().expect("power status"));
    let events = std::fs::read_to_string(&node.events).expect("QMP events log");
    assert!(
        events.contains("DEVICE_DELETED"),
        "events kept for the report: {events}"
    );
}
