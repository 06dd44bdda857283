//! Preemption: a higher-priority node takes over from a running lower one, unless it
//! runs with `nopreempt`, or only after its preemption delay.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn master_of(d: &Vrrpd) -> Option<String> {
    d.field("master")
        .and_then(|m| m.as_str().map(str::to_string))
}

#[test]
fn higher_priority_node_preempts_a_running_master() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let low = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    low.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[0], T);
    let high = Vrrpd::start(&lab, 1, &["--priority", "150", "--advert-interval", "50"]);
    high.wait_state("Master", T);
    low.wait_state("Backup", T);
    assert_eq!(lab.vip_holders(), vec![1]);
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn nopreempt_node_leaves_the_running_master_alone() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let mut low = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    low.wait_state("Master", T);
    let high = Vrrpd::start(
        &lab,
        1,
        &[
            "--priority",
            "150",
            "--advert-interval",
            "50",
            "--nopreempt",
        ],
    );
    high.wait_state("Backup", T);
    wait_for(T, "nopreempt backup to accept the lower master", || {
        master_of(&high) == Some(lab.ip(0))
    });
    // Several Master_Down_Intervals (about 1.8 s each here) later it still backs up.
    let received = |d: &Vrrpd| {
        d.field("adverts_received")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    let before = received(&high);
    wait_for(T, "ten more advertisements from the lower master", || {
        received(&high) >= before + 10
    });
    assert_eq!(high.state().as_deref(), Some("Backup"));
    assert_eq!(low.state().as_deref(), Some("Master"));
    assert_eq!(lab.vip_holders(), vec![0]);
    // It is alive and takes over once the master goes.
    low.kill9();
    high.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn preempt_delay_first_accepts_the_lower_master_then_preempts() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let low = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    low.wait_state("Master", T);
    let high = Vrrpd::start(
        &lab,
        1,
        &[
            "--priority",
            "150",
            "--advert-interval",
            "50",
            "--preempt-delay",
            "400",
        ],
    );
    // During the delay the lower master's advertisements are accepted (a backup
    // without delay would discard them and never record this master).
    wait_for(T, "delayed backup to accept the lower master", || {
        high.state().as_deref() == Some("Backup") && master_of(&high) == Some(lab.ip(0))
    });
    high.wait_state("Master", T);
    low.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
}
