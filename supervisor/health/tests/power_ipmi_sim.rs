//! PSU redundancy read over RMCP+ from OpenIPMI's ipmi_sim acting as the
//! CMM, with failures toggled on its console, cross-checked against
//! `ipmitool -I lanplus sdr type "Power Supply"` on the same simulator.

use flexvisor_health::power::ipmi::{IpmiTarget, PsuScanner};
use flexvisor_health::power::{self, Feed, PowerConfig, PsuBay};
use flexvisor_health::testing::ipmi_sim::{self, IpmiSim};
use flexvisor_health::Status;
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

/// ipmitool's state column says "Failure detected" / "AC lost" exactly when
/// our reading says the PSU is not working.
fn cross_check(sim: &IpmiSim, reading: &power::PowerReading) {
    let rows = ipmi_sim::parse_ipmitool_sdr_type(&sim.ipmitool_power_supply().expect("ipmitool"));
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["PSU1", "PSU2", "PSU3", "PSU4", "PSU5", "PSU6"]);
    for (name, state) in &rows {
        let ours = reading
            .psus
            .iter()
            .find(|p| &p.name == name)
            .expect("psu in our reading");
        let tool_down = state.contains("Failure detected") || state.contains("lost");
        assert_eq!(
            !ours.is_working(),
            tool_down,
            "{name}: ipmitool says {state:?}, we say {ours:?}"
        );
        assert_eq!(ours.present, state.contains("Presence detected"), "{name}");
    }
}

#[test]
fn psu_failures_on_the_cmm_become_warning_then_critical() {
    let sim = IpmiSim::start().expect("start ipmi_sim");
    let mut scan = scanner(&sim);
    let cfg = config();

    let r = scan
        .scan(100)
        .unwrap_or_else(|e| panic!("scan: {e}\nsim log:\n{}", sim.log()));
    assert_eq!(r.psus.len(), 6);
    assert_eq!(r.redundancy, Some(power::Redundancy::Full));
    cross_check(&sim, &r);
    let v = power::verdict(&[r], &cfg, 100);
    assert_eq!(v.status, Status::Ok, "{v:?}");

    sim.set_psu_bit(2, 1, true).expect("fail PSU2");
    sim.set_redundancy(2).expect("redundancy degraded");
    let r = scan.scan(101).expect("scan after failure");
    cross_check(&sim, &r);
    let v = power::verdict(&[r], &cfg, 101);
    assert_eq!(v.status, Status::Warning, "{v:?}");
    assert!(
        v.summary.contains("PSU2 failed on mains feed"),
        "{}",
        v.summary
    );

    // Lose the UPS feed's AC on all three and one more mains PSU: 1 left.
    for bay in [3, 4, 5, 6] {
        sim.set_psu_bit(bay, 3, true).expect("AC lost");
    }
    sim.set_redundancy(5).expect("insufficient");
    let r = scan.scan(102).expect("scan after AC loss");
    cross_check(&sim, &r);
    let v = power::verdict(std::slice::from_ref(&r), &cfg, 102);
    assert_eq!(v.status, Status::Critical, "{v:?}");
    assert!(
        v.summary.contains("only 1 of 6 PSUs working"),
        "{}",
        v.summary
    );

    // Repair everything: back to OK.
    sim.set_psu_bit(2, 1, false).expect("repair");
    for bay in [3, 4, 5, 6] {
        sim.set_psu_bit(bay, 3, false).expect("AC back");
    }
    sim.set_redundancy(0).expect("full");
    let r = scan.scan(103).expect("scan after repair");
    cross_check(&sim, &r);
    assert_eq!(power::verdict(&[r], &cfg, 103).status, Status::Ok);
}

#[test]
fn simulator_gone_means_error_then_stale_critical() {
    let sim = IpmiSim::start().expect("start ipmi_sim");
    let mut scan = scanner(&sim);
    let r = scan.scan(10).expect("first scan");
    drop(sim);
    let err = scan.scan(20).expect_err("sim stopped");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    let v = power::verdict(&[r], &config(), 200);
    assert_eq!(v.status, Status::Critical);
    assert!(
        v.summary.contains("no PSU reading for 190s"),
        "{}",
        v.summary
    );
}

/// Why sdr_partial exists: ipmi-rs's whole-record read (length 0xFF) is
/// refused by ipmi_sim, while the partial reader gets every record.
#[test]
fn ipmi_sim_refuses_whole_sdr_reads_but_partial_reads_work() {
    use flexvisor_health::power::sdr_partial::{self, PartialSdrReader};
    use ipmi_rs::rmcp::Rmcp;
    use ipmi_rs::storage::sdr::{GetDeviceSdr, RecordId};
    let sim = IpmiSim::start().expect("start ipmi_sim");
    let mut rmcp = Rmcp::new(("127.0.0.1", sim.lan_port), Duration::from_secs(5)).expect("socket");
    rmcp.activate(
        true,
        Some(ipmi_sim::USER),
        Some(ipmi_sim::PASSWORD.as_bytes()),
    )
    .expect("RMCP+ activation");
    let mut ipmi = ipmi_rs::Ipmi::new(rmcp);
    let whole = ipmi.send_recv(GetDeviceSdr::new(None, RecordId::FIRST));
    let err = format!(
        "{:?}",
        whole.expect_err("ipmi_sim should refuse a 0xFF-byte read")
    );
    assert!(err.contains("CannotReturnNumOfRequestedBytes"), "{err}");
    let mut reader = PartialSdrReader::new();
    let records = sdr_partial::read_all(&mut ipmi, &mut reader).expect("partial reads");
    let names: Vec<String> = records
        .iter()
        .filter_map(|(r, _)| r.id().map(|i| i.to_string()))
        .collect();
    assert_eq!(
        names,
        vec![
            "PSU1",
            "PSU2",
            "PSU3",
            "PSU4",
            "PSU5",
            "PSU6",
            "PS Redundancy"
        ]
    );
}

/// The SDR is read once and cached; a record added to the CMM's
/// repository (new record count; ipmi_sim leaves the timestamps unset) is
/// picked up on the next scan of the same session, without a restart.
#[test]
fn sdr_cache_is_reused_until_the_repository_changes() {
    let sim = IpmiSim::start().expect("start ipmi_sim");
    let mut scan = scanner(&sim);
    for t in 0..3 {
        let r = scan.scan(t).expect("scan");
        assert_eq!(r.psus.len(), 6);
    }
    assert_eq!(scan.sdr_reads, 1, "SDR re-read although unchanged");
    sim.add_seventh_psu().expect("add PSU7");
    let r = scan
        .scan(10)
        .unwrap_or_else(|e| panic!("scan after SDR change: {e}\nsim log:\n{}", sim.log()));
    let names: Vec<&str> = r.psus.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["PSU1", "PSU2", "PSU3", "PSU4", "PSU5", "PSU6", "PSU7"]
    );
    assert!(r.psus.iter().all(|p| p.is_working()), "{r:?}");
    assert_eq!(scan.sdr_reads, 2);
    scan.scan(11).expect("scan");
    assert_eq!(scan.sdr_reads, 2, "SDR re-read although unchanged");
}
