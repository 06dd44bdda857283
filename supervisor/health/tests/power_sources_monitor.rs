//! The monitor with two power sources, ipmi_sim over RMCP+ and snmpd as
//! the CMM over SNMP v3: a PSU the sources disagree about shows up as an
//! event, a `/metrics` gauge and in `flexctl health --json`; a CMM that
//! stops answering turns UNKNOWN after the bound while IPMI keeps the
//! verdict.

use flexvisor_health::config::{
    HealthConfig, PowerSettings, PowerSource, RaidSettings, SnmpSettings,
};
use flexvisor_health::monitor::{self, HealthEvent};
use flexvisor_health::power::{Feed, PsuBay};
use flexvisor_health::report;
use flexvisor_health::testing::cmm_agent::{self, CmmAgent};
use flexvisor_health::testing::ipmi_sim::{self, IpmiSim};
use flexvisor_health::testing::snmp_agent;
use flexvisor_health::{CheckKind, NodeHealth, Status};
use std::time::Duration;

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

async fn event_matching(
    rx: &mut tokio::sync::broadcast::Receiver<HealthEvent>,
    what: &str,
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
    .unwrap_or_else(|_| panic!("no {what} event in time"))
}

fn power_summary(h: &NodeHealth) -> String {
    h.check(CheckKind::Power)
        .map(|c| c.summary.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disagreement_is_an_event_a_gauge_and_json_and_a_silent_cmm_turns_unknown() {
    let sim = IpmiSim::start().expect("ipmi_sim");
    let mut cmm = CmmAgent::start(6).expect("snmpd as CMM");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("proc")).expect("mkdir");
    std::fs::write(
        root.join("proc/mdstat"),
        include_str!("../fixtures/mdstat/clean_raid1.txt"),
    )
    .expect("mdstat");
    let secrets = dir.path().join("secrets");
    std::fs::write(
        &secrets,
        format!(
            "cmm.password = {}\ncmm.auth_password = {}\ncmm.privacy_password = {}\n",
            ipmi_sim::PASSWORD,
            snmp_agent::V3_AUTH,
            snmp_agent::V3_PRIV
        ),
    )
    .expect("secrets");
    let stale_after_secs = 4;
    let cfg = HealthConfig {
        node: "db1a".into(),
        system_root: root,
        secrets_file: Some(secrets),
        raid: RaidSettings {
            expected_arrays: vec!["md0".into()],
            fallback_poll_secs: 5,
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
            sources: vec![
                PowerSource::Lan {
                    host: "127.0.0.1".into(),
                    port: sim.lan_port,
                    username: ipmi_sim::USER.into(),
                    password_ref: "cmm.password".into(),
                },
                PowerSource::CmmSnmp {
                    address: cmm.address(),
                    snmp: SnmpSettings::V3 {
                        user: snmp_agent::V3_USER.into(),
                        auth_protocol: "sha1".into(),
                        auth_password_ref: "cmm.auth_password".into(),
                        privacy_protocol: Some("aes128".into()),
                        privacy_password_ref: Some("cmm.privacy_password".into()),
                    },
                },
            ],
            poll_secs: 1,
            stale_after_secs,
            timeout_ms: 1000,
        }),
        uplinks: None,
    };
    let cmm_name = format!("cmm-snmp {}", cmm.address());

    let (handle, _join) = monitor::spawn(cfg).expect("monitor");
    let mut rx = handle.health();
    let mut events = handle.events();
    let h = wait_for(&mut rx, "both sources agree, power OK", |h| {
        power_summary(h).ends_with(&format!("{cmm_name} agree)"))
    })
    .await;
    assert_eq!(
        h.check(CheckKind::Power).map(|c| c.status),
        Some(Status::Ok)
    );

    // The CMM reports PSU3 critical; IPMI still says it works.
    cmm.set_state(3, cmm_agent::CRITICAL, "Power supply 3 failed")
        .expect("cmm: fail PSU3");
    let e = event_matching(&mut events, "PowerSourcesDisagree", |e| {
        e.kind == "PowerSourcesDisagree"
    })
    .await;
    assert_eq!(e.check, CheckKind::Power);
    assert!(
        e.message
            .starts_with("PSU3 sources disagree: ipmi-lan 127.0.0.1:")
            && e.message
                .contains(&format!("says ok, {cmm_name} says failed; counted as down")),
        "{}",
        e.message
    );
    let h = wait_for(&mut rx, "power WARNING with the disagreement", |h| {
        power_summary(h).contains("PSU3 sources disagree")
    })
    .await;
    assert_eq!(
        h.check(CheckKind::Power).map(|c| c.status),
        Some(Status::Warning)
    );
    assert!(
        power_summary(&h).contains("mains feed redundancy lost: 2 of 3 working, down: PSU3"),
        "{}",
        power_summary(&h)
    );
    let prom = report::prometheus(&h);
    assert!(
        prom.contains(
            "flexvisor_power_source_disagreement{node=\"db1a\",bay=\"3\",feed=\"mains\"} 1\n"
        ),
        "{prom}"
    );
    assert!(
        prom.contains(
            "flexvisor_power_source_disagreement{node=\"db1a\",bay=\"1\",feed=\"mains\"} 0\n"
        ),
        "{prom}"
    );
    let (json, code) = report::cli_output(&h, Some(CheckKind::Power), true, h.generated_at);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let findings = v["checks"][0]["findings"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["subject"] == "PSU3"
            && f["status"] == "WARNING"
            && f["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("sources disagree:"))),
        "{json}"
    );

    // The CMM repairs its view: agreement again.
    cmm.set_state(3, cmm_agent::GOOD, "Power module status OK")
        .expect("cmm: PSU3 ok");
    let e = event_matching(&mut events, "PowerSourcesAgree", |e| {
        e.kind == "PowerSourcesAgree"
    })
    .await;
    assert_eq!(e.message, "PSU3: power sources agree again");

    // The CMM stops answering: failing at once, UNKNOWN after the bound,
    // while IPMI keeps the verdict.
    cmm.stop();
    let e = event_matching(&mut events, "PowerSourceUnknown", |e| {
        e.kind == "PowerSourceUnknown"
    })
    .await;
    assert_eq!(
        e.message,
        format!("{cmm_name}: no reading for longer than {stale_after_secs}s")
    );
    let h = wait_for(&mut rx, "CMM source UNKNOWN in the verdict", |h| {
        power_summary(h).contains("UNKNOWN: no reading for")
    })
    .await;
    let power = h.check(CheckKind::Power).expect("power");
    assert_eq!(power.status, Status::Warning, "{power:?}");
    assert!(
        power
            .summary
            .contains(&format!("{cmm_name} UNKNOWN: no reading for")),
        "{}",
        power.summary
    );
    assert!(
        power.summary.contains("verdict from ipmi-lan 127.0.0.1:"),
        "{}",
        power.summary
    );
    let prom = report::prometheus(&h);
    assert!(
        prom.contains(&format!(
            "flexvisor_power_source_status{{node=\"db1a\",source=\"{cmm_name}\"}} 3\n"
        )),
        "{prom}"
    );
    handle.stop();
}
