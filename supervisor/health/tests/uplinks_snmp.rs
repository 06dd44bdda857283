//! Switch-module uplinks read over SNMP v2c and v3 from a real snmpd
//! serving an EN2092-like IF-MIB, with ports flipped during the test.

use flexvisor_health::testing::snmp_agent::{self, SnmpAgent};
use flexvisor_health::uplinks::snmp::{SnmpAuth, SnmpError, SwitchPoller};
use flexvisor_health::uplinks::{
    self, ModulePorts, ModuleReading, NicState, NodeLinks, UplinkReading,
};
use flexvisor_health::Status;
use std::time::Duration;

fn ports_of(module: &ModulePorts) -> Vec<String> {
    module
        .uplinks
        .iter()
        .chain(&module.optional_uplinks)
        .chain([&module.node_port])
        .cloned()
        .collect()
}

fn module(name: &str, nic: &str) -> ModulePorts {
    ModulePorts {
        name: name.into(),
        uplinks: (1..=10).map(|e| format!("EXT{e}")).collect(),
        optional_uplinks: vec!["EXT11".into()],
        node_port: "INTA5".into(),
        nic: nic.into(),
    }
}

fn agent_ports() -> Vec<&'static str> {
    let mut v = vec!["INTA4", "INTA5", "INTA6"];
    v.extend([
        "EXT1", "EXT2", "EXT3", "EXT4", "EXT5", "EXT6", "EXT7", "EXT8", "EXT9", "EXT10", "EXT11",
    ]);
    v
}

fn v3() -> SnmpAuth {
    SnmpAuth::V3 {
        user: snmp_agent::V3_USER.into(),
        auth_protocol: "sha1".into(),
        auth_password: snmp_agent::V3_AUTH.into(),
        privacy_protocol: Some("aes128".into()),
        privacy_password: Some(snmp_agent::V3_PRIV.into()),
    }
}

fn node(active: &str) -> NodeLinks {
    let nic = |n: &str| NicState {
        name: n.into(),
        present: true,
        up: true,
        operstate: "UP".into(),
    };
    NodeLinks {
        nics: vec![nic("eth0"), nic("eth1")],
        bond: Some(uplinks::bonding::BondStatus {
            mode: "fault-tolerance (active-backup)".into(),
            active_slave: Some(active.into()),
            mii_up: true,
            miimon_ms: 100,
            arp_interval_ms: 0,
            slaves: vec![],
        }),
        bond_error: None,
    }
}

async fn read(p: &mut SwitchPoller, m: &ModulePorts) -> ModuleReading {
    match p.poll(&ports_of(m)).await {
        Ok(ports) => ModuleReading::Ports(ports),
        Err(e) => ModuleReading::Unreachable(e.to_string()),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn uplinks_flip_on_both_modules_over_v2c_and_v3() {
    let mut io1 = SnmpAgent::start(&agent_ports()).expect("snmpd io1");
    let mut io2 = SnmpAgent::start(&agent_ports()).expect("snmpd io2");
    let mods = vec![module("io1", "eth0"), module("io2", "eth1")];
    // Generous: the answers come from python scripts on a loaded machine.
    let t = Duration::from_secs(10);
    let mut p1 = SwitchPoller::new(
        &io1.address(),
        SnmpAuth::V2c {
            community: snmp_agent::COMMUNITY.into(),
        },
        t,
    );
    let mut p2 = SwitchPoller::new(&io2.address(), v3(), t);

    let r1 = read(&mut p1, &mods[0]).await;
    let r2 = read(&mut p2, &mods[1]).await;
    if let ModuleReading::Ports(ports) = &r1 {
        let ext1 = ports.iter().find(|p| p.name == "EXT1").expect("EXT1");
        assert_eq!((ext1.if_index, ext1.speed_mbps), (17, 10000));
    }
    let reading = |r1: ModuleReading, r2: ModuleReading, active: &str| UplinkReading {
        node: node(active),
        modules: vec![("io1".into(), r1), ("io2".into(), r2)],
        observed_at: 1,
    };
    let v = uplinks::verdict(&reading(r1, r2, "eth0"), &mods);
    assert_eq!(v.status, Status::Ok, "{v:?}");

    io1.set_oper("EXT2", false).expect("flip");
    io2.set_admin("EXT9", false).expect("shut");
    let v = uplinks::verdict(
        &reading(
            read(&mut p1, &mods[0]).await,
            read(&mut p2, &mods[1]).await,
            "eth0",
        ),
        &mods,
    );
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains("io1 9 of 10 uplinks up; EXT2 down"),
        "{}",
        v.summary
    );
    assert!(
        v.summary
            .contains("io2 9 of 10 uplinks up; EXT9 admin down"),
        "{}",
        v.summary
    );

    // io1 loses every uplink while the node's link to it stays up.
    for e in agent_ports().iter().filter(|p| p.starts_with("EXT")) {
        io1.set_oper(e, false).expect("flip");
    }
    let r1 = read(&mut p1, &mods[0]).await;
    let r2 = read(&mut p2, &mods[1]).await;
    let v = uplinks::verdict(&reading(r1.clone(), r2.clone(), "eth0"), &mods);
    assert_eq!(v.status, Status::Critical, "{v:?}");
    assert!(
        v.summary.contains("active slave eth0 goes through io1"),
        "{}",
        v.summary
    );
    let v = uplinks::verdict(&reading(r1, r2, "eth1"), &mods);
    assert_eq!(v.status, Status::Warning, "{v:?}");

    // io2 disappears: timeout, module unreachable; io1 healthy again.
    for e in agent_ports().iter().filter(|p| p.starts_with("EXT")) {
        io1.set_oper(e, true).expect("flip");
    }
    io2.stop();
    let mut p2 = SwitchPoller::new(&io2.address(), v3(), Duration::from_millis(500));
    let err = p2
        .poll(&ports_of(&mods[1]))
        .await
        .expect_err("agent stopped");
    assert!(
        matches!(err, SnmpError::Timeout { .. } | SnmpError::Protocol { .. }),
        "{err}"
    );
    let v = uplinks::verdict(
        &reading(
            read(&mut p1, &mods[0]).await,
            ModuleReading::Unreachable(err.to_string()),
            "eth0",
        ),
        &mods,
    );
    assert_eq!(v.status, Status::Warning, "{v:?}");
    assert!(
        v.summary.contains("io2 switch module unreachable"),
        "{}",
        v.summary
    );
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_v3_password_and_unknown_port_are_errors_naming_the_agent() {
    let agent = SnmpAgent::start(&agent_ports()).expect("snmpd");
    let mut bad = SwitchPoller::new(
        &agent.address(),
        SnmpAuth::V3 {
            user: snmp_agent::V3_USER.into(),
            auth_protocol: "sha1".into(),
            auth_password: "not-the-password".into(),
            privacy_protocol: Some("aes128".into()),
            privacy_password: Some(snmp_agent::V3_PRIV.into()),
        },
        Duration::from_secs(2),
    );
    let err = bad.poll(&["EXT1".to_string()]).await.expect_err("bad auth");
    assert!(err.to_string().contains(&agent.address()), "{err}");

    let mut ok = SwitchPoller::new(
        &agent.address(),
        SnmpAuth::V2c {
            community: snmp_agent::COMMUNITY.into(),
        },
        Duration::from_secs(2),
    );
    let err = ok
        .poll(&["EXT21".to_string()])
        .await
        .expect_err("no such port");
    assert!(err.to_string().contains("port EXT21 not found"), "{err}");
}
