//! Accept_Mode (RFC 5798 §6.1, §6.4.3): with `--no-accept` a non-owner master holds
//! the virtual address (it answers ARP / neighbour discovery for it, so the client
//! resolves it) but accepts no traffic addressed to it: no ping reply, no TCP answer
//! (not even a reset). The node's own address keeps answering. With accept on
//! (the default) the master answers on the virtual address. Leaving master removes
//! the filter.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const VIP6: &str = "fd77::100";

/// What a TCP connection attempt from the client to `ip` port 9 (nothing listens)
/// gets: an answer (a reset: "refused") or none within 3 s.
#[derive(Debug, PartialEq, Eq)]
enum Tcp {
    Refused,
    NoAnswer,
}

fn tcp(lab: &Lab, ip: &str) -> Tcp {
    let target = format!("/dev/tcp/{ip}/9");
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client,
        "timeout",
        "3",
        "bash",
        "-c",
        &format!("exec 3<>{target}"),
    ]);
    match out.status.code() {
        Some(124) => Tcp::NoAnswer,
        Some(1) if String::from_utf8_lossy(&out.stderr).contains("refused") => Tcp::Refused,
        other => panic!(
            "unexpected TCP probe result {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn ping(lab: &Lab, ip: &str) -> bool {
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client,
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        ip,
    ])
    .status
    .success()
}

/// The client resolves `VIP` afresh (ARP) and gets node `ns`'s MAC.
fn arp_resolves_to(lab: &Lab, ns: &str) -> bool {
    let _ = sh(&["ip", "-n", &lab.client, "neigh", "flush", "dev", "eth0"]);
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client,
        "arping",
        "-c",
        "1",
        "-w",
        "2",
        "-I",
        "eth0",
        VIP,
    ]);
    out.status.success()
        && String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains(&lab.mac(ns).to_lowercase())
}

#[test]
fn accept_off_master_answers_arp_but_no_traffic_to_the_vip() {
    require(&["ip", "ping", "arping", "bash", "timeout"]);
    let lab = Lab::new(1);
    let mut d = Vrrpd::start(&lab, 0, &["--no-accept", "--advert-interval", "10"]);
    d.wait_state("Master", T);
    wait_for(T, "the VIP on the master", || lab.holds_vip(&lab.nodes[0]));

    // ARP still answers for the address, with the master's MAC.
    assert!(arp_resolves_to(&lab, &lab.nodes[0]));
    // Nothing addressed to it is accepted: no echo reply, no TCP reset.
    assert!(!ping(&lab, VIP), "the VIP answered a ping with accept off");
    assert_eq!(tcp(&lab, VIP), Tcp::NoAnswer);
    // The node's own address is not affected.
    assert!(ping(&lab, &lab.ip(0)));
    assert_eq!(tcp(&lab, &lab.ip(0)), Tcp::Refused);

    // Orderly stop removes the filter with the address: put the address back by
    // hand and it answers again.
    assert!(d.stop().is_some_and(|s| s.success()), "{}", d.log_text());
    assert!(!lab.holds_vip(&lab.nodes[0]));
    must(&[
        "ip",
        "-n",
        &lab.nodes[0],
        "addr",
        "add",
        &format!("{VIP}/24"),
        "dev",
        "eth0",
    ]);
    wait_for(T, "the hand-added VIP to answer a ping", || ping(&lab, VIP));
    assert_eq!(tcp(&lab, VIP), Tcp::Refused);
}

#[test]
fn accept_on_master_answers_on_the_vip() {
    require(&["ip", "ping", "arping", "bash", "timeout"]);
    let lab = Lab::new(1);
    let d = Vrrpd::start(&lab, 0, &["--advert-interval", "10"]);
    d.wait_state("Master", T);
    wait_for(T, "the VIP to answer a ping", || ping(&lab, VIP));
    assert!(arp_resolves_to(&lab, &lab.nodes[0]));
    assert_eq!(tcp(&lab, VIP), Tcp::Refused);
}

#[test]
fn accept_off_backup_takes_over_filtering_and_a_restart_drops_the_stale_filter() {
    require(&["ip", "ping", "arping", "bash", "timeout"]);
    let lab = Lab::new(2);
    let off = ["--no-accept", "--advert-interval", "10"];
    let mut a = Vrrpd::start(&lab, 0, &[&off[..], &["--priority", "200"]].concat());
    a.wait_state("Master", T);
    let b = Vrrpd::start(&lab, 1, &[&off[..], &["--priority", "100"]].concat());
    b.wait_state("Backup", T);

    // kill -9 leaves A's address and filter behind; take the address away as a
    // reboot would, and B takes over, also filtering.
    a.kill9();
    must(&[
        "ip",
        "-n",
        &lab.nodes[0],
        "addr",
        "del",
        &format!("{VIP}/24"),
        "dev",
        "eth0",
    ]);
    b.wait_state("Master", T);
    wait_for(T, "the client to resolve the VIP to B", || {
        arp_resolves_to(&lab, &lab.nodes[1])
    });
    assert!(!ping(&lab, VIP), "B answered on the VIP with accept off");
    assert_eq!(tcp(&lab, VIP), Tcp::NoAnswer);

    // A comes back with accept on and preempts: its stale filter must be gone,
    // so the VIP answers from A.
    let a2 = Vrrpd::start(&lab, 0, &["--priority", "200", "--advert-interval", "10"]);
    a2.wait_state("Master", T);
    b.wait_state("Backup", T);
    wait_for(T, "the VIP to answer from A", || {
        arp_resolves_to(&lab, &lab.nodes[0]) && ping(&lab, VIP)
    });
    assert_eq!(tcp(&lab, VIP), Tcp::Refused);
}

#[test]
fn accept_off_ipv6_keeps_neighbour_discovery_and_drops_traffic() {
    require(&["ip", "ping", "bash", "timeout"]);
    let lab = Lab::new(1);
    for (ns, a) in [(&lab.client, "fd77::200/64"), (&lab.nodes[0], "fd77::1/64")] {
        must(&["ip", "-n", ns, "addr", "add", a, "dev", "eth0", "nodad"]);
    }
    lab.wait_link_local();
    let d = Vrrpd::start_for(
        &lab,
        0,
        &format!("{VIP6}/64"),
        &["--no-accept", "--advert-interval", "10"],
    );
    d.wait_state("Master", T);
    let _ = sh(&["ip", "-n", &lab.client, "neigh", "flush", "dev", "eth0"]);
    let ping6 = |ip: &str| {
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
            ip,
        ])
        .status
        .success()
    };
    assert!(!ping6(VIP6), "the IPv6 VIP answered a ping with accept off");
    assert_eq!(tcp(&lab, VIP6), Tcp::NoAnswer);
    // Neighbour discovery was answered: the client holds the master's MAC.
    let neigh = must(&[
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
    assert!(neigh.contains(&lab.mac(&lab.nodes[0])), "{neigh}");
    assert!(ping6("fd77::1"));
}
