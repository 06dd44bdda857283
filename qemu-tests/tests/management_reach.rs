//! Guests reach the chassis management addresses (CMM, switch modules)
//! over their module's uplinks, through the namespace's tap on the
//! upstream network; losing the module's uplinks cuts them off. The
//! external network's gateway answers on a second tap.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn guest_reaches_the_cmm_until_its_module_loses_the_uplinks() {
    let mut run = common::probe_chassis(&["lb1a"], &|n| {
        let me = n
            .network
            .addresses
            .iter()
            .find(|a| a.network == "management")
            .expect("management address");
        (
            Some(format!("{}/22", me.address)),
            Some(n.health.power.cmm_address.to_string()),
        )
    });
    let ch = &mut run.ch;
    ch.node_mut("lb1a")
        .expect("node")
        .insert()
        .expect("power on");
    let console = ch.node_by_name("lb1a").expect("node").console.clone();
    console
        .wait_for_text(0, "ping 10.10.1.2 ok", common::BOOT)
        .expect("guest pings the CMM");

    let mark = console.mark();
    ch.set_uplinks("io1", false).expect("io1 uplinks down");
    console
        .wait_for_text(mark, "ping 10.10.1.2 fail", common::BOOT)
        .expect("cut off");
    assert_eq!(
        ch.switches[0].get(".1.3.6.1.2.1.2.2.1.8.43").expect("EXT1"),
        "2"
    );
    assert_eq!(
        ch.switches[0].get(".1.3.6.1.2.1.2.2.1.8.5").expect("INTA5"),
        "2",
        "L2 failover took the node port down"
    );

    let mark = console.mark();
    ch.set_uplinks("io1", true).expect("io1 uplinks up");
    console
        .wait_for_text(mark, "ping 10.10.1.2 ok", common::BOOT)
        .expect("reachable again");
}
