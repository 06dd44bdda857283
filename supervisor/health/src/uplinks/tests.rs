use super::snmp::PortState;
use super::*;

fn modules() -> Vec<ModulePorts> {
    (1..=2)
        .map(|i| ModulePorts {
            name: format!("io{i}"),
            uplinks: (1..=10).map(|e| format!("EXT{e}")).collect(),
            optional_uplinks: vec!["EXT11".into()],
            node_port: "INTA3".into(),
            nic: format!("eth{}", i - 1),
        })
        .collect()
}

fn ports(down: &[&str]) -> ModuleReading {
    let mut v: Vec<PortState> = (1..=11)
        .map(|e| format!("EXT{e}"))
        .chain(["INTA3".to_string()])
        .enumerate()
        .map(|(i, name)| PortState {
            oper_up: !down.contains(&name.as_str()),
            oper_status: if down.contains(&name.as_str()) { 2 } else { 1 },
            admin_up: true,
            name,
            if_index: i as u32 + 1,
            speed_mbps: 10000,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    ModuleReading::Ports(v)
}

fn nic(name: &str, up: bool) -> NicState {
    NicState {
        name: name.into(),
        present: true,
        up,
        operstate: if up { "UP".into() } else { "DOWN".into() },
    }
}

fn reading(
    nics: [bool; 2],
    m1: ModuleReading,
    m2: ModuleReading,
    active: Option<&str>,
) -> UplinkReading {
    UplinkReading {
        node: NodeLinks {
            nics: vec![nic("eth0", nics[0]), nic("eth1", nics[1])],
            bond: active.map(|a| bonding::BondStatus {
                mode: "fault-tolerance (active-backup)".into(),
                active_slave: Some(a.into()),
                mii_up: true,
                miimon_ms: 100,
                arp_interval_ms: 0,
                slaves: vec![],
            }),
            bond_error: None,
        },
        modules: vec![("io1".into(), m1), ("io2".into(), m2)],
        observed_at: 1,
    }
}

/// Every external uplink, the optional EXT11 included.
const ALL_EXT: [&str; 11] = [
    "EXT1", "EXT2", "EXT3", "EXT4", "EXT5", "EXT6", "EXT7", "EXT8", "EXT9", "EXT10", "EXT11",
];

#[test]
fn everything_up_is_ok() {
    let v = verdict(
        &reading([true, true], ports(&[]), ports(&[]), Some("eth0")),
        &modules(),
    );
    assert_eq!(v.status, Status::Ok, "{v:?}");
    let speed = v
        .metrics
        .iter()
        .find(|m| {
            m.name == "uplink_speed_mbps"
                && m.labels
                    == vec![
                        ("module".to_string(), "io2".to_string()),
                        ("port".to_string(), "EXT11".to_string()),
                    ]
        })
        .map(|m| m.value);
    assert_eq!(speed, Some(10000.0));
}

#[test]
fn optional_uplink_down_is_still_ok() {
    let v = verdict(
        &reading([true, true], ports(&["EXT11"]), ports(&[]), None),
        &modules(),
    );
    assert_eq!(v.status, Status::Ok, "{v:?}");
}

#[test]
fn some_uplinks_down_is_warning_naming_them() {
    let v = verdict(
        &reading([true, true], ports(&["EXT2", "EXT7"]), ports(&[]), None),
        &modules(),
    );
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary
            .contains("io1 8 of 10 uplinks up; EXT2 down, EXT7 down"),
        "{}",
        v.summary
    );
}

#[test]
fn one_module_unreachable_is_warning() {
    let v = verdict(
        &reading(
            [true, true],
            ports(&[]),
            ModuleReading::Unreachable("timeout".into()),
            None,
        ),
        &modules(),
    );
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains("io2 switch module unreachable: timeout"),
        "{}",
        v.summary
    );
}

#[test]
fn optional_uplink_alone_is_still_a_path() {
    let v = verdict(
        &reading(
            [true, true],
            ports(&ALL_EXT[..10]),
            ports(&ALL_EXT[..10]),
            None,
        ),
        &modules(),
    );
    assert_eq!(v.status, Status::Warning, "{v:?}");
}

#[test]
fn both_nics_down_is_critical() {
    let v = verdict(
        &reading([false, false], ports(&[]), ports(&[]), None),
        &modules(),
    );
    assert_eq!(v.status, Status::Critical);
    assert!(
        v.summary.contains("no path to the outside"),
        "{}",
        v.summary
    );
}

#[test]
fn both_modules_without_uplinks_is_critical_even_with_links_up() {
    let v = verdict(
        &reading([true, true], ports(&ALL_EXT), ports(&ALL_EXT), None),
        &modules(),
    );
    assert_eq!(v.status, Status::Critical);
}

#[test]
fn active_slave_on_module_without_uplinks_is_critical() {
    // The IBM lesson: eth0 link up, io1 lost every uplink, bond stays on eth0.
    let v = verdict(
        &reading([true, true], ports(&ALL_EXT), ports(&[]), Some("eth0")),
        &modules(),
    );
    assert_eq!(v.status, Status::Critical);
    assert!(
        v.summary.contains("active slave eth0 goes through io1"),
        "{}",
        v.summary
    );
    // Same failure with the bond already on eth1: only a warning.
    let v = verdict(
        &reading([true, true], ports(&ALL_EXT), ports(&[]), Some("eth1")),
        &modules(),
    );
    assert_eq!(v.status, Status::Warning);
}

#[test]
fn both_modules_unreachable_is_unknown() {
    let un = || ModuleReading::Unreachable("timeout".into());
    let v = verdict(&reading([true, true], un(), un(), None), &modules());
    assert_eq!(v.status, Status::Unknown);
}
