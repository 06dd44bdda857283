//! The CMM's power module table (CME-MIB powerModuleHealthTable) read over
//! SNMP v3 and v2c from a real snmpd, cross-checked against net-snmp's
//! `snmpwalk` on the same agent, and merged with the IPMI reading of
//! OpenIPMI's ipmi_sim: the same failure on both is agreement, different
//! failures are a reported disagreement where the worse reading wins.

use flexvisor_health::power::cmm_snmp::{CmmPowerReader, COL_STATE, POWER_MODULE_ENTRY};
use flexvisor_health::power::ipmi::{IpmiTarget, PsuScanner};
use flexvisor_health::power::{self, Feed, PowerConfig, PsuBay};
use flexvisor_health::testing::cmm_agent::{self, CmmAgent};
use flexvisor_health::testing::ipmi_sim::{self, IpmiSim};
use flexvisor_health::testing::snmp_agent;
use flexvisor_health::uplinks::snmp::{SnmpAuth, SnmpError};
use flexvisor_health::Status;
use std::process::Command;
use std::time::Duration;

fn config() -> PowerConfig {
    PowerConfig {
        bays: (1..=6)
            .map(|b| PsuBay {
                bay: b,
                sensor: format!("PSU{b}"),
                feed: if b <= 3 { Feed::Mains } else { Feed::Ups },
            })
            .collect(),
        n: 3,
        stale_after_secs: 60,
    }
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

fn v2c() -> SnmpAuth {
    SnmpAuth::V2c {
        community: snmp_agent::COMMUNITY.into(),
    }
}

/// `snmpwalk` of powerModuleState on the same agent: (bay, state) pairs.
fn snmpwalk_states(cmm: &CmmAgent) -> Vec<(u32, i64)> {
    let mut col = POWER_MODULE_ENTRY.to_vec();
    col.push(COL_STATE);
    let col: Vec<String> = col.iter().map(u64::to_string).collect();
    let out = Command::new("snmpwalk")
        .args(cmm.snmpd().netsnmp_v3_args())
        .arg("-Oq")
        .arg(format!(".{}", col.join(".")))
        .env("MIBS", "")
        .output()
        .expect("snmpwalk missing: install the Debian package snmp");
    assert!(
        out.status.success(),
        "snmpwalk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (oid, v) = l.split_once(' ')?;
            let bay = oid.rsplit('.').next()?.parse().ok()?;
            Some((bay, v.trim().parse().ok()?))
        })
        .collect()
}

/// Our reading says "failed" exactly where snmpwalk says critical(4), and
/// "working" where it says good(1).
fn cross_check(cmm: &CmmAgent, reading: &power::PowerReading) {
    let walked = snmpwalk_states(cmm);
    assert_eq!(
        walked.len(),
        reading.psus.len(),
        "{walked:?} vs {reading:?}"
    );
    for (bay, state) in walked {
        let ours = reading
            .psus
            .iter()
            .find(|p| p.name == format!("PSU{bay}"))
            .unwrap_or_else(|| panic!("PSU{bay} missing from {reading:?}"));
        assert_eq!(ours.failed, state == cmm_agent::CRITICAL, "PSU{bay}");
        if state == cmm_agent::GOOD {
            assert!(ours.is_working() && ours.problem().is_none(), "PSU{bay}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn cmm_power_modules_over_snmp_v3_follow_the_agent() {
    let mut cmm = CmmAgent::start(6).expect("start snmpd as CMM");
    let cfg = config();
    let mut reader = CmmPowerReader::new(&cmm.address(), v3(), Duration::from_secs(3));

    let r = reader.read(&cfg.bays, 100).await.expect("read");
    assert_eq!(r.source, format!("cmm-snmp {}", cmm.address()));
    assert_eq!(r.psus.len(), 6);
    assert_eq!(reader.last_requests, 1, "one GET covers six modules");
    cross_check(&cmm, &r);
    let v = power::verdict(&[r], &cfg, 100);
    assert_eq!(v.status, Status::Ok, "{v:?}");

    cmm.set_state(4, cmm_agent::CRITICAL, "Power supply 4 failed")
        .expect("fail 4");
    let r = reader.read(&cfg.bays, 101).await.expect("read");
    cross_check(&cmm, &r);
    let v = power::verdict(&[r], &cfg, 101);
    assert_eq!(v.status, Status::Warning, "{v:?}");
    assert!(
        v.summary
            .contains("PSU4 failed on ups feed (\"Power supply 4 failed\")"),
        "{}",
        v.summary
    );

    // Two more modules pulled: the UPS feed is down to one, 3 of 6 work.
    cmm.set_exists(5, false).expect("pull 5");
    cmm.set_state(5, cmm_agent::NOT_AVAILABLE, "")
        .expect("5 n/a");
    cmm.set_exists(6, false).expect("pull 6");
    let r = reader.read(&cfg.bays, 102).await.expect("read");
    let v = power::verdict(&[r], &cfg, 102);
    assert_eq!(v.status, Status::Warning, "{v:?}");
    assert!(v.summary.contains("PSU5 not present"), "{}", v.summary);
    assert!(
        v.summary.contains("ups feed redundancy lost: 0 of 3"),
        "{}",
        v.summary
    );
    // And one mains module: below N.
    cmm.set_state(1, cmm_agent::CRITICAL, "").expect("fail 1");
    let r = reader.read(&cfg.bays, 103).await.expect("read");
    let v = power::verdict(&[r], &cfg, 103);
    assert_eq!(v.status, Status::Critical, "{v:?}");
    assert!(
        v.summary.contains("only 2 of 6 PSUs working"),
        "{}",
        v.summary
    );

    // An agent without the table (not a Flex CMM) is an error, not six
    // missing PSUs.
    for bay in 1..=6 {
        cmm.set_listed(bay, false).expect("hide");
    }
    let err = reader.read(&cfg.bays, 104).await.expect_err("no rows");
    assert!(
        err.to_string().ends_with(
            "get powerModuleHealthTable: no row for any configured bay [1, 2, 3, 4, 5, 6]"
        ),
        "{err}"
    );

    // The CMM goes away: an error naming the agent (a timeout, or the
    // ICMP port-unreachable loopback delivers at once).
    cmm.stop();
    let err = reader
        .read(&cfg.bays, 104)
        .await
        .expect_err("agent stopped");
    assert!(
        matches!(err, SnmpError::Timeout { .. } | SnmpError::Protocol { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&cmm.address()), "{err}");
}

fn scanner(sim: &IpmiSim) -> PsuScanner {
    PsuScanner::new(
        IpmiTarget::Lan {
            host: "127.0.0.1".into(),
            port: sim.lan_port,
            username: ipmi_sim::USER.into(),
            password: ipmi_sim::PASSWORD.into(),
        },
        Duration::from_secs(5),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn ipmi_and_cmm_snmp_agree_on_the_same_failure_and_report_different_ones() {
    let sim = IpmiSim::start().expect("start ipmi_sim");
    let mut cmm = CmmAgent::start(6).expect("start snmpd as CMM");
    let cfg = config();
    let mut ipmi = scanner(&sim);
    let mut snmp = CmmPowerReader::new(&cmm.address(), v2c(), Duration::from_secs(3));
    let cmm_name = format!("cmm-snmp {}", cmm.address());
    let ipmi_name = format!("ipmi-lan 127.0.0.1:{}", sim.lan_port);

    let both = |t: u64, ipmi: &mut PsuScanner| {
        let r = ipmi.scan(t);
        r.unwrap_or_else(|e| panic!("ipmi scan: {e}\n{}", sim.log()))
    };
    let a = both(200, &mut ipmi);
    let b = snmp.read(&cfg.bays, 200).await.expect("cmm read");
    let v = power::verdict(&[a, b], &cfg, 200);
    assert_eq!(v.status, Status::Ok, "{v:?}");
    assert!(
        v.summary
            .ends_with(&format!("({ipmi_name}, {cmm_name} agree)")),
        "{}",
        v.summary
    );

    // PSU4 fails and both sources see it: agreement, WARNING.
    sim.set_psu_bit(4, 1, true).expect("ipmi: fail PSU4");
    sim.set_redundancy(2).expect("degraded");
    cmm.set_state(4, cmm_agent::CRITICAL, "Power supply 4 failed")
        .expect("cmm: fail PSU4");
    let a = both(201, &mut ipmi);
    let b = snmp.read(&cfg.bays, 201).await.expect("cmm read");
    let v = power::verdict(&[a, b], &cfg, 201);
    assert_eq!(v.status, Status::Warning, "{v:?}");
    assert!(
        v.summary.contains("PSU4 failed on ups feed"),
        "{}",
        v.summary
    );
    assert!(!v.summary.contains("disagree"), "{}", v.summary);

    // PSU2 fails only according to IPMI: disagreement, counted as down.
    sim.set_psu_bit(2, 1, true).expect("ipmi: fail PSU2");
    let a = both(202, &mut ipmi);
    let b = snmp.read(&cfg.bays, 202).await.expect("cmm read");
    let v = power::verdict(&[a, b], &cfg, 202);
    assert_eq!(v.status, Status::Warning, "{v:?}");
    let expected = format!(
        "PSU2 sources disagree: {ipmi_name} says failed, {cmm_name} says ok; counted as down (the worse reading wins)"
    );
    assert!(v.summary.contains(&expected), "{}", v.summary);
    assert!(
        v.summary
            .contains("mains feed redundancy lost: 2 of 3 working, down: PSU2"),
        "{}",
        v.summary
    );
    assert!(
        v.metrics
            .iter()
            .any(|m| m.name == "power_source_disagreement"
                && m.labels[0].1 == "2"
                && m.value == 1.0),
        "{:?}",
        v.metrics
    );

    // The CMM stops listing PSU6: a disagreement judged by IPMI.
    cmm.set_listed(6, false).expect("hide 6");
    let a = both(203, &mut ipmi);
    let b = snmp.read(&cfg.bays, 203).await.expect("cmm read");
    assert_eq!(b.psus.len(), 5);
    let v = power::verdict(&[a, b], &cfg, 203);
    assert!(
        v.summary.contains(&format!(
            "PSU6 sources disagree: {ipmi_name} says ok, {cmm_name} says no such PSU; counted as working"
        )),
        "{}",
        v.summary
    );
}
