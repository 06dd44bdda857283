//! Health trackers: a weighted tracker turning CRITICAL lowers the priority so the
//! standby takes over, and back; a weightless one forces the fault state.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn critical_tracker_fails_over_and_recovery_fails_back() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let verdict = lab.dir.join("raid");
    set_verdict(&verdict, "OK");
    let standby = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let tracker = format!("raid:-100={}", verdict.display());
    let active = Vrrpd::start(
        &lab,
        1,
        &[
            "--priority",
            "150",
            "--advert-interval",
            "50",
            "--tracker",
            &tracker,
        ],
    );
    active.wait_state("Master", T);
    standby.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);

    set_verdict(&verdict, "CRITICAL");
    standby.wait_state("Master", T);
    active.wait_state("Backup", T);
    assert_eq!(active.field("priority"), Some(serde_json::json!(50)));
    let why = active.field("priority_why").unwrap_or_default();
    assert!(
        why.as_str().unwrap_or("").contains("raid CRITICAL -100"),
        "{why}"
    );
    lab.wait_client_served_by(&lab.nodes[0], T);

    set_verdict(&verdict, "OK");
    active.wait_state("Master", T);
    standby.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn weightless_tracker_forces_fault_and_releases_the_address() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let verdict = lab.dir.join("db");
    set_verdict(&verdict, "OK");
    let standby = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let tracker = format!("db={}", verdict.display());
    let active = Vrrpd::start(
        &lab,
        1,
        &[
            "--priority",
            "150",
            "--advert-interval",
            "50",
            "--tracker",
            &tracker,
        ],
    );
    active.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[1], T);

    set_verdict(&verdict, "2");
    active.wait_state("Fault", T);
    standby.wait_state("Master", T);
    assert_eq!(
        active.field("fault"),
        Some(serde_json::json!("db CRITICAL"))
    );
    assert!(!lab.holds_vip(&lab.nodes[1]));
    lab.wait_client_served_by(&lab.nodes[0], T);

    set_verdict(&verdict, "OK");
    active.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
}
