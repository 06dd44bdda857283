//! Link down on the master, then healed: during the cut the standby serves; after
//! it exactly one master remains, and it re-announces the address.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn link_down_on_the_master_then_healed_leaves_one_master_that_reannounces() {
    require(&["ip", "ping", "tcpdump"]);
    let lab = Lab::new(2);
    let standby = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let active = Vrrpd::start(&lab, 1, &["--priority", "150", "--advert-interval", "50"]);
    active.wait_state("Master", T);
    standby.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);

    lab.cable(1, false);
    standby.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[0], T);
    // The cut-off master noticed its link went down and let the address go.
    active.wait_state("Fault", T);

    let cap = Capture::start(&lab, "heal");
    lab.cable(1, true);
    active.wait_state("Master", T);
    standby.wait_state("Backup", T);
    wait_for(T, "exactly one node to hold the address", || {
        lab.vip_holders() == vec![1]
    });
    cap.wait_seen(
        &Seen::Garp {
            mac: lab.mac(&lab.nodes[1]),
            ip: VIP.into(),
        },
        T,
    );
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn split_brain_without_link_events_heals_to_the_higher_priority_and_reannounces() {
    // Isolated bridge ports cannot talk to each other but still reach the client:
    // both nodes become master, the client sees both, and no carrier changes.
    require(&["ip", "bridge", "ping", "tcpdump"]);
    let lab = Lab::new(2);
    let low = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let high = Vrrpd::start(&lab, 1, &["--priority", "150", "--advert-interval", "50"]);
    high.wait_state("Master", T);
    low.wait_state("Backup", T);
    lab.isolate(true);
    low.wait_state("Master", T);
    assert_eq!(high.state().as_deref(), Some("Master"));
    assert_eq!(
        lab.vip_holders(),
        vec![0, 1],
        "split brain: both hold the address"
    );
    lab.wait_client_served_by(&lab.nodes[0], T);

    let cap = Capture::start(&lab, "heal");
    lab.isolate(false);
    low.wait_state("Backup", T);
    assert_eq!(high.state().as_deref(), Some("Master"));
    wait_for(T, "exactly one node to hold the address", || {
        lab.vip_holders() == vec![1]
    });
    cap.wait_seen(
        &Seen::Garp {
            mac: lab.mac(&lab.nodes[1]),
            ip: VIP.into(),
        },
        T,
    );
    lab.wait_client_served_by(&lab.nodes[1], T);
}
