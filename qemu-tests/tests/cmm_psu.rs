//! The CMM simulator: six PSUs and the redundancy sensor, read with
//! `ipmitool -I lanplus` inside the harness's namespace, failures toggled
//! from the harness.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use qemu_tests::ipmi::{self, IpmiSim, Redundancy, SimSpec};
use qemu_tests::netns::Netns;

#[test]
fn psu_failures_show_in_ipmitool_and_repair() {
    let netns = Arc::new(Netns::create().expect("create namespace (needs root and iproute2)"));
    netns.add_loopback_address("10.10.1.2/32").expect("address");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = SimSpec {
        name: "cmm".into(),
        lan: ("10.10.1.2".into(), 623),
        console_port: ipmi::free_port(&netns, false).expect("port"),
        vm: None,
    };
    let cmm = IpmiSim::start(spec, &ipmi::cmm_emu(), dir.path(), Arc::clone(&netns))
        .expect("start ipmi_sim");
    let rows = cmm
        .psu_rows()
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", cmm.log()));
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["PSU1", "PSU2", "PSU3", "PSU4", "PSU5", "PSU6"]);
    assert!(rows.iter().all(|r| r.1 == "Presence detected"), "{rows:?}");

    cmm.set_psu_offset(2, 1, true).expect("fail PSU2");
    cmm.set_redundancy(Redundancy::Degraded)
        .expect("redundancy");
    let rows = cmm.psu_rows().expect("rows");
    assert!(rows[1].1.contains("Failure detected"), "{rows:?}");
    assert!(!rows[0].1.contains("Failure"), "{rows:?}");
    let red = cmm
        .ipmitool(&["sdr", "type", "Power Unit"])
        .expect("redundancy row");
    assert!(red.contains("PS Redundancy"), "{red}");
    assert!(red.contains("Redundancy Degraded"), "{red}");

    cmm.set_psu_offset(2, 1, false).expect("repair");
    cmm.set_redundancy(Redundancy::Full).expect("redundancy");
    let rows = cmm.psu_rows().expect("rows");
    assert!(rows.iter().all(|r| !r.1.contains("Failure")), "{rows:?}");
}
