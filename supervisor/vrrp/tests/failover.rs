//! Failover: kill -9 of the master and orderly stop (priority 0) both hand the
//! virtual address to the backup, and the client follows.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn kill9_of_the_master_hands_the_address_to_the_backup() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let backup = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let mut master = Vrrpd::start(&lab, 1, &["--priority", "150", "--advert-interval", "50"]);
    master.wait_state("Master", T);
    backup.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);

    master.kill9();
    backup.wait_state("Master", T);
    let cause = backup.field("last_transition").unwrap_or_default()["cause"].clone();
    assert_eq!(cause, "master down timer expired");
    // The gratuitous ARP moved the client's neighbour entry to the new master.
    lab.wait_client_served_by(&lab.nodes[0], T);
}

#[test]
fn orderly_stop_sends_priority_zero_and_the_backup_takes_over() {
    require(&["ip", "ping", "tcpdump"]);
    let lab = Lab::new(2);
    let backup = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let mut master = Vrrpd::start(&lab, 1, &["--priority", "150", "--advert-interval", "50"]);
    master.wait_state("Master", T);
    backup.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
    let cap = Capture::start(&lab, "stop");

    let status = master.stop().expect("daemon exit status");
    assert!(status.success(), "orderly stop must exit 0: {status:?}");
    assert!(
        !lab.holds_vip(&lab.nodes[1]),
        "stopped node must release the address"
    );
    backup.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[0], T);
    // What the wire showed: the goodbye, then the new master's announcement.
    cap.wait_seen(
        &Seen::Advert {
            src: lab.ip(1),
            priority: 0,
        },
        T,
    );
    cap.wait_seen(
        &Seen::Garp {
            mac: lab.mac(&lab.nodes[0]),
            ip: VIP.into(),
        },
        T,
    );
}

#[test]
fn three_nodes_kill9_promotes_the_next_highest_only() {
    require(&["ip", "ping"]);
    let lab = Lab::new(3);
    let n0 = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let mut n1 = Vrrpd::start(&lab, 1, &["--priority", "200", "--advert-interval", "50"]);
    let n2 = Vrrpd::start(&lab, 2, &["--priority", "150", "--advert-interval", "50"]);
    n1.wait_state("Master", T);
    n0.wait_state("Backup", T);
    n2.wait_state("Backup", T);
    n1.kill9();
    n2.wait_state("Master", T);
    wait_for(T, "lowest node to follow the new master", || {
        n0.field("master")
            .and_then(|m| m.as_str().map(str::to_string))
            == Some(lab.ip(2))
    });
    assert_eq!(n0.state().as_deref(), Some("Backup"));
    lab.wait_client_served_by(&lab.nodes[2], T);
}
