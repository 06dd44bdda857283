use super::*;

pub(crate) fn six_bays() -> PowerConfig {
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

fn ok_psu(i: u8) -> PsuState {
    PsuState {
        name: format!("PSU{i}"),
        sensor_number: 0x40 + i,
        readable: true,
        present: true,
        failed: false,
        predictive_failure: false,
        input_lost: false,
        input_out_of_range: false,
        config_error: false,
        detail: String::new(),
    }
}

fn reading(mutate: impl Fn(&mut Vec<PsuState>), red: Option<Redundancy>) -> PowerReading {
    let mut psus: Vec<PsuState> = (1..=6).map(ok_psu).collect();
    mutate(&mut psus);
    PowerReading {
        source: "ipmi-lan cmm:623".into(),
        psus,
        redundancy: red,
        observed_at: 1000,
    }
}

#[test]
fn all_six_working_is_ok() {
    let v = verdict(
        &[reading(|_| {}, Some(Redundancy::Full))],
        &six_bays(),
        1010,
    );
    assert_eq!(v.status, Status::Ok, "{v:?}");
    assert!(v.summary.starts_with("6/6 PSUs working"), "{}", v.summary);
}

#[test]
fn one_failed_psu_is_warning_naming_psu_and_feed() {
    let r = reading(|p| p[1].failed = true, Some(Redundancy::Degraded));
    let v = verdict(&[r], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains("PSU2 failed on mains feed"),
        "{}",
        v.summary
    );
    assert!(
        v.summary
            .contains("mains feed redundancy lost: 2 of 3 working, down: PSU2"),
        "{}",
        v.summary
    );
}

#[test]
fn below_n_is_critical() {
    let r = reading(
        |p| {
            for i in [0, 1, 3, 4] {
                p[i].input_lost = true;
            }
        },
        Some(Redundancy::InsufficientResources),
    );
    let v = verdict(&[r], &six_bays(), 1010);
    assert_eq!(v.status, Status::Critical);
    assert!(
        v.summary.contains("only 2 of 6 PSUs working, 3 needed"),
        "{}",
        v.summary
    );
}

#[test]
fn whole_feed_down_with_other_feed_intact_is_warning() {
    let r = reading(
        |p| (3..6).for_each(|i| p[i].input_lost = true),
        Some(Redundancy::Lost),
    );
    let v = verdict(&[r], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains("ups feed redundancy lost: 0 of 3"),
        "{}",
        v.summary
    );
}

#[test]
fn stale_reading_is_critical() {
    let v = verdict(&[reading(|_| {}, None)], &six_bays(), 1061);
    assert_eq!(v.status, Status::Critical);
    assert_eq!(v.summary, "no PSU reading for 61s (bound 60s)");
    let v = verdict(&[], &six_bays(), 5);
    assert_eq!(v.summary, "no PSU reading yet");
}

#[test]
fn redundancy_sensor_contradicting_psus_is_reported() {
    let r = reading(|p| p[4].failed = true, Some(Redundancy::Full));
    let v = verdict(&[r], &six_bays(), 1010);
    assert!(
        v.summary
            .contains("reports fully redundant but PSU states say otherwise"),
        "{}",
        v.summary
    );
}

#[test]
fn disagreeing_sources_are_reported_and_the_worse_reading_wins() {
    let cmm = reading(|_| {}, Some(Redundancy::Full));
    let mut local = reading(|p| p[2].failed = true, None);
    local.source = "ipmi-local /dev/ipmi0".into();
    local.observed_at = 999;
    let v = verdict(&[cmm, local], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains(
            "PSU3 sources disagree: ipmi-lan cmm:623 says ok, ipmi-local /dev/ipmi0 says failed; counted as down (the worse reading wins)"
        ),
        "{}",
        v.summary
    );
    assert!(
        v.summary
            .contains("PSU3 failed on mains feed per ipmi-local /dev/ipmi0"),
        "{}",
        v.summary
    );
    assert!(
        v.summary.contains("mains feed redundancy lost: 2 of 3"),
        "{}",
        v.summary
    );
    let gauge = |bay: &str| {
        v.metrics
            .iter()
            .find(|m| {
                m.name == "power_source_disagreement" && m.labels[0] == ("bay".into(), bay.into())
            })
            .map(|m| m.value)
    };
    assert_eq!(gauge("3"), Some(1.0));
    assert_eq!(gauge("1"), Some(0.0));
}

fn cmm(mutate: impl Fn(&mut Vec<PsuState>)) -> PowerReading {
    let mut r = reading(mutate, None);
    r.source = "cmm-snmp cmm:161".into();
    r
}

#[test]
fn agreeing_sources_give_one_verdict_without_disagreement() {
    let ipmi = reading(|p| p[3].failed = true, Some(Redundancy::Degraded));
    let snmp = cmm(|p| {
        p[3].failed = true;
        p[3].detail = "Power supply failure".into();
    });
    let v = verdict(&[ipmi, snmp], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(!v.summary.contains("disagree"), "{}", v.summary);
    assert!(
        v.summary.contains("PSU4 failed on ups feed"),
        "{}",
        v.summary
    );
    let v = verdict(
        &[reading(|_| {}, Some(Redundancy::Full)), cmm(|_| {})],
        &six_bays(),
        1010,
    );
    assert_eq!(v.status, Status::Ok);
    assert_eq!(
        v.summary,
        "6/6 PSUs working, N+N=3+3 redundant (ipmi-lan cmm:623, cmm-snmp cmm:161 agree)"
    );
}

#[test]
fn a_psu_missing_from_one_source_is_a_disagreement_judged_by_the_other() {
    let ipmi = reading(|_| {}, Some(Redundancy::Full));
    let snmp = cmm(|p| {
        p.remove(4);
    });
    let v = verdict(&[ipmi, snmp], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains(
            "PSU5 sources disagree: ipmi-lan cmm:623 says ok, cmm-snmp cmm:161 says no such PSU; counted as working"
        ),
        "{}",
        v.summary
    );
    assert!(
        v.metrics
            .iter()
            .any(|m| m.name == "power_working_psus" && m.value == 6.0),
        "{:?}",
        v.metrics
    );
}

#[test]
fn a_stale_source_is_unknown_and_the_fresh_one_decides() {
    let ipmi = reading(|p| p[0].failed = true, Some(Redundancy::Degraded));
    let mut snmp = cmm(|_| {});
    snmp.observed_at = 900;
    let v = verdict(&[ipmi, snmp], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains(
            "cmm-snmp cmm:161 UNKNOWN: no reading for 110s (bound 60s), verdict from ipmi-lan cmm:623 alone"
        ),
        "{}",
        v.summary
    );
    assert!(!v.summary.contains("disagree"), "{}", v.summary);
    assert!(v.summary.contains("PSU1 failed"), "{}", v.summary);
}

#[test]
fn cmm_warning_state_counts_as_working_with_a_warning() {
    let ipmi = reading(|_| {}, Some(Redundancy::Full));
    let snmp = cmm(|p| {
        p[1].predictive_failure = true;
        p[1].detail = "fan fault".into();
    });
    let v = verdict(&[ipmi, snmp], &six_bays(), 1010);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary
            .contains("PSU2 predictive failure on mains feed (\"fan fault\") per cmm-snmp cmm:161"),
        "{}",
        v.summary
    );
    assert!(
        v.metrics
            .iter()
            .any(|m| m.name == "power_working_psus" && m.value == 6.0),
        "{:?}",
        v.metrics
    );
}
