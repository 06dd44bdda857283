//! The async monitor end to end: md state from a fixture root, PSUs from
//! ipmi_sim over RMCP+, switch modules from two snmpd agents, NICs in a
//! network namespace the test creates; services/vip pushed in like the
//! supervisor does. Asserts the published NodeHealth and the event stream.

use flexvisor_health::config::{
    HealthConfig, IpmiSource, PowerSettings, RaidSettings, SnmpSettings, SwitchModule,
    UplinkSettings,
};
use flexvisor_health::monitor::{self, HealthEvent};
use flexvisor_health::power::{Feed, PsuBay};
use flexvisor_health::report;
use flexvisor_health::testing::ipmi_sim::{self, IpmiSim};
use flexvisor_health::testing::snmp_agent::{self, SnmpAgent};
use flexvisor_health::uplinks::ModulePorts;
use flexvisor_health::{CheckKind, NodeHealth, Status};
use std::process::Command;
use std::time::Duration;

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) missing");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const BOND: &str = "Bonding Mode: fault-tolerance (active-backup)
Currently Active Slave: eth0
MII Status: up
MII Polling Interval (ms): 100

Slave Interface: eth0
MII Status: up

Slave Interface: eth1
MII Status: up
";

const EXT: [&str; 4] = ["EXT1", "EXT2", "EXT3", "EXT4"];

async fn wait_for(
    rx: &mut tokio::sync::watch::Receiver<NodeHealth>,
    what: &str,
    pred: impl Fn(&NodeHealth) -> bool,
) -> NodeHealth {
    let res = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            {
                let h = rx.borrow_and_update();
                if pred(&h) {
                    return h.clone();
                }
            }
            rx.changed().await.expect("monitor alive");
        }
    })
    .await;
    match res {
        Ok(h) => h,
        Err(_) => panic!("timed out waiting for {what}: {:#?}", rx.borrow().clone()),
    }
}

fn status(h: &NodeHealth, k: CheckKind) -> Status {
    h.check(k).map(|c| c.status).unwrap_or(Status::Unknown)
}

async fn event_matching(
    rx: &mut tokio::sync::broadcast::Receiver<HealthEvent>,
    pred: impl Fn(&HealthEvent) -> bool,
) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let e = rx.recv().await.expect("event stream");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_publishes_health_and_events_from_real_peers() {
    let sim = IpmiSim::start().expect("ipmi_sim");
    let mut ports: Vec<&str> = vec!["INTA5"];
    ports.extend(EXT);
    let mut io1 = SnmpAgent::start(&ports).expect("snmpd io1");
    let io2 = SnmpAgent::start(&ports).expect("snmpd io2");

    let ns = format!("fvm{}", std::process::id());
    ip(&["netns", "add", &ns]);
    let _ns = Netns(ns.clone());
    for (a, b) in [("eth0", "sw0"), ("eth1", "sw1")] {
        ip(&[
            "-n", &ns, "link", "add", a, "type", "veth", "peer", "name", b,
        ]);
        ip(&["-n", &ns, "link", "set", a, "up"]);
        ip(&["-n", &ns, "link", "set", b, "up"]);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("proc/net/bonding")).expect("mkdir");
    let mdstat = root.join("proc/mdstat");
    std::fs::write(&mdstat, include_str!("../fixtures/mdstat/clean_raid1.txt")).expect("mdstat");
    std::fs::write(root.join("proc/net/bonding/bond0"), BOND).expect("bond");
    let secrets = dir.path().join("secrets");
    std::fs::write(
        &secrets,
        format!(
            "cmm = {}\nio-community = {}\nio-auth = {}\nio-priv = {}\n",
            ipmi_sim::PASSWORD,
            snmp_agent::COMMUNITY,
            snmp_agent::V3_AUTH,
            snmp_agent::V3_PRIV
        ),
    )
    .expect("secrets");

    let module = |name: &str, nic: &str, address: String, snmp: SnmpSettings| SwitchModule {
        ports: ModulePorts {
            name: name.into(),
            uplinks: EXT.iter().map(|s| s.to_string()).collect(),
            optional_uplinks: vec![],
            node_port: "INTA5".into(),
            nic: nic.into(),
        },
        address,
        snmp,
    };
    let cfg = HealthConfig {
        node: "db1a".into(),
        system_root: root.clone(),
        secrets_file: Some(secrets),
        raid: RaidSettings {
            expected_arrays: vec!["md0".into(), "md1".into()],
            fallback_poll_secs: 1,
        },
        power: Some(PowerSettings {
            bays: (1..=6)
                .map(|b| PsuBay {
                    bay: b,
                    sensor: format!("PSU{b}"),
                    feed: if b <= 3 { Feed::Mains } else { Feed::Ups },
                })
                .collect(),
            n: 3,
            sources: vec![IpmiSource::Lan {
                host: "127.0.0.1".into(),
                port: sim.lan_port,
                username: ipmi_sim::USER.into(),
                password_ref: "cmm".into(),
            }],
            poll_secs: 1,
            stale_after_secs: 30,
            timeout_ms: 3000,
        }),
        uplinks: Some(UplinkSettings {
            nics: vec!["eth0".into(), "eth1".into()],
            bond: Some("bond0".into()),
            netns: Some(format!("/var/run/netns/{ns}").into()),
            modules: vec![
                module(
                    "io1",
                    "eth0",
                    io1.address(),
                    SnmpSettings::V2c {
                        community_ref: "io-community".into(),
                    },
                ),
                module(
                    "io2",
                    "eth1",
                    io2.address(),
                    SnmpSettings::V3 {
                        user: snmp_agent::V3_USER.into(),
                        auth_protocol: "sha1".into(),
                        auth_password_ref: "io-auth".into(),
                        privacy_protocol: Some("aes128".into()),
                        privacy_password_ref: Some("io-priv".into()),
                    },
                ),
            ],
            poll_secs: 1,
            timeout_ms: 2000,
        }),
    };

    let (handle, _join) = monitor::spawn(cfg).expect("monitor");
    let mut rx = handle.health();
    let mut events = handle.events();
    // Before the supervisor reports, services/vip are UNKNOWN.
    let h = wait_for(&mut rx, "hardware checks OK", |h| {
        [CheckKind::Raid, CheckKind::Power, CheckKind::Uplinks]
            .iter()
            .all(|k| status(h, *k) == Status::Ok)
    })
    .await;
    assert_eq!(h.overall, Status::Unknown);
    handle.push_verdict(report::services_verdict(
        &[report::ServiceReport {
            name: "mariadb".into(),
            status: Status::Ok,
            detail: "ready".into(),
        }],
        1,
    ));
    handle.push_verdict(report::vip_verdict("db-vip", Status::Ok, "MASTER", 1));
    let h = wait_for(&mut rx, "overall OK", |h| h.overall == Status::Ok).await;
    assert_eq!(report::exit_code(&h), 0);

    // A PSU fails on the CMM.
    sim.set_psu_bit(2, 1, true).expect("fail PSU2");
    let h = wait_for(&mut rx, "power WARNING", |h| {
        status(h, CheckKind::Power) == Status::Warning
    })
    .await;
    assert!(h
        .check(CheckKind::Power)
        .is_some_and(|c| c.summary.contains("PSU2 failed on mains feed")));
    let e = event_matching(&mut events, |e| {
        e.check == CheckKind::Power && e.message.contains("-> WARNING")
    })
    .await;
    assert!(
        e.message.starts_with("power OK -> WARNING"),
        "{}",
        e.message
    );

    // A disk fails: mdstat changes, the fallback timer picks it up.
    std::fs::write(
        &mdstat,
        include_str!("../fixtures/mdstat/degraded_faulty.txt"),
    )
    .expect("mdstat");
    let h = wait_for(&mut rx, "raid CRITICAL", |h| {
        status(h, CheckKind::Raid) == Status::Critical
    })
    .await;
    let raid = h.check(CheckKind::Raid).expect("raid");
    assert!(
        raid.summary.contains("md0 faulty member sdb1"),
        "{}",
        raid.summary
    );
    assert!(
        raid.summary
            .contains("md1 expected by the profile but not present"),
        "{}",
        raid.summary
    );
    let e = event_matching(&mut events, |e| e.kind == "Fail").await;
    assert_eq!(e.message, "Fail /dev/md0 /dev/sdb1");

    // io1 loses every uplink while the bond stays on eth0.
    for p in EXT {
        io1.set_oper(p, false).expect("flip");
    }
    let h = wait_for(&mut rx, "uplinks CRITICAL", |h| {
        status(h, CheckKind::Uplinks) == Status::Critical
    })
    .await;
    assert_eq!(report::exit_code(&h), 2);
    let line = report::plugin_line(&h);
    assert!(line.starts_with("HEALTH CRITICAL - raid: "), "{line}");
    assert!(line.contains("uplink_up_io1_EXT1=0"), "{line}");
    let prom = report::prometheus(&h);
    assert!(
        prom.contains("flexvisor_psu_working{node=\"db1a\",bay=\"2\",feed=\"mains\"} 0"),
        "{prom}"
    );

    // Cable pull on eth1's far end: rtnetlink event, NIC down.
    ip(&["-n", &ns, "link", "set", "sw1", "down"]);
    let h = wait_for(&mut rx, "eth1 down", |h| {
        h.check(CheckKind::Uplinks)
            .is_some_and(|c| c.summary.contains("eth1 link"))
    })
    .await;
    assert_eq!(status(&h, CheckKind::Uplinks), Status::Critical);
    handle.stop();
}
