//! The CMM's SNMP agent: a real snmpd in the harness's namespace on the
//! CMM's profile address, answering SNMPv3 (authNoPriv) and v2c with the
//! Flex CMM power module table, whose states follow the PSU failures the
//! harness injects.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use qemu_tests::cmm_snmp::{CmmSnmp, ENTRY};
use qemu_tests::netns::Netns;

#[test]
fn power_module_states_follow_the_harness() {
    let netns = Arc::new(Netns::create().expect("namespace (root, iproute2)"));
    netns.add_loopback_address("10.10.1.2/32").expect("address");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = CmmSnmp::start(
        "10.10.1.2",
        161,
        "chassis1-cmm-snmp",
        6,
        dir.path(),
        Arc::clone(&netns),
    )
    .expect("start snmpd");
    let state = |a: &CmmSnmp, bay: u8| a.get(&format!("{ENTRY}.3.{bay}")).unwrap();
    for bay in 1..=6 {
        assert_eq!(state(&agent, bay), "1", "PSU{bay} good at start");
        assert_eq!(agent.get(&format!("{ENTRY}.2.{bay}")).unwrap(), "1");
    }
    agent.set_psu(4, false).unwrap();
    assert_eq!(state(&agent, 4), "4", "PSU4 critical after the failure");
    assert_eq!(
        agent.get(&format!("{ENTRY}.4.4")).unwrap(),
        "Power module failure"
    );
    assert_eq!(state(&agent, 3), "1", "others untouched");
    agent.set_psu(4, true).unwrap();
    assert_eq!(state(&agent, 4), "1", "PSU4 good after repair");
    // No seventh module on this chassis.
    assert!(
        agent
            .get(&format!("{ENTRY}.3.7"))
            .map_or(true, |v| v.contains("No Such")),
        "bay 7 answered"
    );

    // v2c with the community the profile names.
    let mut c = netns.command("snmpget");
    c.env("MIBS", "").args([
        "-v2c",
        "-c",
        "chassis1-cmm-snmp",
        "-Oqv",
        "10.10.1.2:161",
        &format!("{ENTRY}.3.1"),
    ]);
    let out = c.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}
