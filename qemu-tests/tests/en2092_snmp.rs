//! The EN2092 agents: a real snmpd in the harness's namespace on the
//! module's profile address, serving IF-MIB port names and states that
//! follow what the harness sets.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use qemu_tests::netns::Netns;
use qemu_tests::snmp::{AgentSpec, En2092Agent};

#[test]
fn uplink_states_follow_the_harness() {
    let netns = Arc::new(Netns::create().expect("namespace (root, iproute2)"));
    netns
        .add_loopback_address("10.10.1.11/32")
        .expect("address");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = En2092Agent::start(
        AgentSpec {
            name: "io1".into(),
            address: "10.10.1.11".into(),
            community: "chassis1-io1-snmp".into(),
            helper: PathBuf::from(env!("CARGO_BIN_EXE_qemu-tests")),
        },
        dir.path(),
        Arc::clone(&netns),
    )
    .expect("start snmpd");
    assert_eq!(agent.get(".1.3.6.1.2.1.1.5.0").expect("sysName"), "io1");
    let names = agent.walk(".1.3.6.1.2.1.31.1.1.1.1").expect("walk ifName");
    let names: Vec<&str> = names.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(names.len(), 28, "{names:?}");
    assert_eq!(names[0], "INTA1");
    assert_eq!(names[14], "EXT1");

    assert_eq!(
        agent
            .get(".1.3.6.1.2.1.31.1.1.1.15.43")
            .expect("ifHighSpeed EXT1"),
        "1000"
    );
    assert_eq!(
        agent
            .get(".1.3.6.1.2.1.31.1.1.1.15.53")
            .expect("ifHighSpeed EXT11"),
        "10000"
    );

    let uplinks: Vec<String> = (1..=10).map(|i| format!("EXT{i}")).collect();
    agent.set_ports(&uplinks, false).expect("uplinks down");
    let oper = agent
        .walk(".1.3.6.1.2.1.2.2.1.8")
        .expect("walk ifOperStatus");
    let down: Vec<&str> = oper
        .iter()
        .filter(|(_, v)| v == "2")
        .map(|(o, _)| o.as_str())
        .collect();
    assert_eq!(down.len(), 10, "{oper:?}");
    assert!(down.iter().all(|o| {
        let idx: u32 = o.rsplit('.').next().unwrap().parse().unwrap();
        (43..=52).contains(&idx)
    }));
    agent.set_ports(&uplinks, true).expect("uplinks up");
    assert_eq!(agent.get(".1.3.6.1.2.1.2.2.1.8.43").expect("EXT1"), "1");

    let err = agent.set_ports(&["EXT99".to_string()], false).unwrap_err();
    assert!(err.to_string().contains("EXT99"), "{err}");
}
