//! Reload re-applies the shared addresses: a node configuration whose
//! `vips` changed (here the address) re-makes the VRRP instance on
//! `flexctl reload`, so the old address leaves the interface and the new
//! one is taken; a reload with an invalid VIP entry is rejected and the
//! running instance keeps its address. In a network namespace made here.
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;
use flexvisor::control::proto::Op;
use std::process::Command;

const NEW_VIP: &str = "10.78.0.101";

fn addrs(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(ns: &str, a: &str) -> bool {
    addrs(ns).contains(&format!("inet {a}/"))
}

#[test]
fn reload_with_changed_vips_moves_the_shared_address() {
    require_root();
    let (_net, nodes) = lab();
    let ns = &nodes[0];
    let (sup, mut n) = start(ns, 0, "status=ok\n");
    // Alone on the bridge: master after Master_Down_Interval.
    wait_for("master holding the VIP", || {
        state(&sup).is_some_and(|(s, _)| s == "Master") && has(ns, VIP)
    });

    // Invalid entry: rejected, the instance and its address stay.
    let cfg = sup.path("node.toml");
    let mut bad = n.clone();
    bad.vips[0].vrid = 0;
    std::fs::write(&cfg, toml::to_string(&bad).unwrap()).unwrap();
    let err = sup.call(Op::Reload).unwrap_err();
    assert!(
        err.contains("vrid") && err.contains("running configuration kept"),
        "{err}"
    );
    assert!(has(ns, VIP), "{}", addrs(ns));

    // The address changes: old one released, new one taken.
    n.vips[0].address = NEW_VIP.parse().unwrap();
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    sup.call(Op::Reload).unwrap();
    wait_for("new VIP on eth0, old one gone", || {
        has(ns, NEW_VIP) && !has(ns, VIP)
    });
    wait_for("flexctl vip shows the new address as master", || {
        let v = vip(&sup);
        v.len() == 1 && v[0]["state"] == "Master" && v[0]["addresses"].to_string().contains(NEW_VIP)
    });
    let evs = sup
        .call(Op::Events {
            follow: false,
            since: 0,
        })
        .unwrap()
        .to_string();
    let inst = format!("{}-test", n.pair.name);
    assert!(
        evs.contains(&format!("vips applied: stopped [{inst}], started [{inst}]")),
        "{evs}"
    );
    // Master again after the switch (the changed instance was re-made),
    // with the active services running.
    sup.wait_until("master again", |st| st.master);
    wait_for("active services up", || active_running(&sup, &n));
}
