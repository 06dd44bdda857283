//! Two VMs on the virtual EN2092 fabric reach each other; a node's link
//! cut (QMP set_link plus the switch port), a module's node port down, and
//! a partition between the two nodes each break the path, and restoring
//! them heals it.

#![allow(clippy::unwrap_used)]

mod common;

use qemu_tests::world::Chassis;

fn wait(ch: &Chassis, node: &str, mark: u64, state: &str) {
    let n = ch.node_by_name(node).expect("node");
    let want = format!(
        "ping 10.20.1.{} {state}",
        if node == "lb1a" { 106 } else { 105 }
    );
    n.console
        .wait_for_text(mark, &want, common::BOOT)
        .unwrap_or_else(|e| panic!("{node}: {e}"));
}

#[test]
fn nodes_reach_each_other_until_links_are_cut_or_partitioned() {
    let mut run = common::probe_chassis(&["lb1a", "lb1b"], &|n| {
        let me = n
            .network
            .addresses
            .iter()
            .find(|a| a.network == "internal")
            .expect("internal address");
        let peer = n.pair.peer.addresses.get("internal").expect("peer address");
        (Some(format!("{}/22", me.address)), Some(peer.to_string()))
    });
    let ch = &mut run.ch;
    for n in ["lb1a", "lb1b"] {
        ch.node_mut(n).expect("node").insert().expect("power on");
    }
    wait(ch, "lb1a", 0, "ok");
    wait(ch, "lb1b", 0, "ok");
    let rx = ch.fabrics.stats("io1", "INTA6").expect("stats").rx;
    assert!(rx > 0, "lb1b's eth0 sent through io1 INTA6");

    // Pull lb1b's eth0 cable: both the switch port and the guest's carrier.
    let mark = ch.node_by_name("lb1a").expect("node").console.mark();
    ch.fabrics
        .set_port_up("io1", "INTA6", false)
        .expect("port down");
    ch.node_by_name("lb1b")
        .expect("node")
        .set_nic_link("eth0", false)
        .expect("set_link");
    wait(ch, "lb1a", mark, "fail");
    let mark = ch.node_by_name("lb1a").expect("node").console.mark();
    ch.fabrics
        .set_port_up("io1", "INTA6", true)
        .expect("port up");
    ch.node_by_name("lb1b")
        .expect("node")
        .set_nic_link("eth0", true)
        .expect("set_link");
    wait(ch, "lb1a", mark, "ok");

    // Partition the pair on every switch, then heal it.
    let mark = ch.node_by_name("lb1a").expect("node").console.mark();
    ch.partition("lb1a", "lb1b", true);
    wait(ch, "lb1a", mark, "fail");
    let mark = ch.node_by_name("lb1a").expect("node").console.mark();
    ch.partition("lb1a", "lb1b", false);
    wait(ch, "lb1a", mark, "ok");

    // ARP from the guests was observed on the fabric with the sending node.
    let arp = ch
        .fabrics
        .seen_since(None)
        .into_iter()
        .filter(|s| matches!(s.what, qemu_tests::fabric::Observed::Arp { .. }))
        .filter_map(|s| s.node)
        .collect::<Vec<_>>();
    assert!(
        arp.iter().any(|n| n == "lb1a") && arp.iter().any(|n| n == "lb1b"),
        "{arp:?}"
    );
}
