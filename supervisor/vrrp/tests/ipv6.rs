//! IPv6: advertisements to ff02::12 from link-local addresses with hop limit 255,
//! the address added without DAD, and unsolicited neighbour advertisements that
//! move the client to the new master.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const VIP6: &str = "fd77::100";

fn neigh6(lab: &Lab) -> Option<String> {
    let out = must(&[
        "ip",
        "-n",
        &lab.client,
        "-6",
        "neigh",
        "show",
        VIP6,
        "dev",
        "eth0",
    ]);
    let mut w = out.split_whitespace();
    while let Some(x) = w.next() {
        if x == "lladdr" {
            return w.next().map(str::to_string);
        }
    }
    None
}

fn served_by(lab: &Lab, ns: &str) {
    let mac = lab.mac(ns);
    wait_for(
        T,
        &format!("client pings {VIP6} through {ns} ({mac})"),
        || {
            sh(&[
                "ip",
                "netns",
                "exec",
                &lab.client,
                "ping",
                "-6",
                "-c",
                "1",
                "-W",
                "1",
                VIP6,
            ])
            .status
            .success()
                && neigh6(lab).as_deref() == Some(mac.as_str())
        },
    );
}

#[test]
fn ipv6_election_and_takeover_move_the_client() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    must(&[
        "ip",
        "-n",
        &lab.client,
        "addr",
        "add",
        "fd77::200/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    // Link-local addresses appear once DAD finishes on the nodes.
    lab.wait_link_local();
    let vip = format!("{VIP6}/64");
    let standby = Vrrpd::start_for(
        &lab,
        0,
        &vip,
        &["--priority", "100", "--advert-interval", "50"],
    );
    let mut active = Vrrpd::start_for(
        &lab,
        1,
        &vip,
        &["--priority", "150", "--advert-interval", "50"],
    );
    active.wait_state("Master", T);
    standby.wait_state("Backup", T);
    let master = standby.field("master").unwrap_or_default();
    assert!(
        master.as_str().unwrap_or("").starts_with("fe80:"),
        "master named by link-local: {master}"
    );
    assert_eq!(standby.field("dropped"), Some(serde_json::json!({})));
    served_by(&lab, &lab.nodes[1]);

    active.kill9();
    standby.wait_state("Master", T);
    served_by(&lab, &lab.nodes[0]);
}
