//! Network bring-up over netlink from the node configuration, in a network
//! namespace the test creates (never the host's network). The node is bay 7
//! of the committed c5-50k profile, plus one VLAN address.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::Command;

struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("fv-net-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("iproute2 `ip` is needed");
        assert!(st.success(), "ip netns add {name} failed");
        Self(name)
    }

    fn ip(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn brings_up_node_addresses_and_default_route() {
    require_root();
    let ns = Netns::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut node = chassis::node::resolve(&loaded.profile, 7, None).unwrap();
    node.network
        .addresses
        .push(chassis::node::InterfaceAddress {
            network: "test-vlan".into(),
            interface: format!("{}.100", node.network.bond.name),
            address: "192.0.2.7".parse().unwrap(),
            prefix_len: 24,
            gateway: None,
            vlan: Some(100),
        });
    let bond = node.network.bond.name.clone();

    // The NICs are veth pairs; bonding and VLANs need kernel modules that a
    // test machine may lack: without bonding, a plain link stands in for the
    // bond so the address and route steps are still exercised.
    for nic in &node.network.bond.slaves {
        let (ok, out) = ns.ip(&[
            "link",
            "add",
            &nic.name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("p{}", nic.name),
        ]);
        assert!(ok, "{out}");
    }
    let (has_bonding, _) = ns.ip(&["link", "add", "probe0", "type", "bond"]);
    let _ = ns.ip(&["link", "del", "probe0"]);
    if !has_bonding {
        let (ok, out) = ns.ip(&[
            "link", "add", &bond, "type", "veth", "peer", "name", "pbond",
        ]);
        assert!(ok, "{out}");
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, toml::to_string(&node).unwrap()).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_flexvisor"))
        .arg("--network-only")
        .arg("--node-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);

    let (_, lo) = ns.ip(&["link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}\n{stderr}");
    let (_, addrs) = ns.ip(&["-4", "addr", "show", "dev", &bond]);
    for a in &node.network.addresses {
        if a.vlan.is_none() {
            let want = format!("{}/{}", a.address, a.prefix_len);
            assert!(
                addrs.contains(&want),
                "{want} missing on {bond}: {addrs}\n{stderr}"
            );
        }
    }
    let (_, routes) = ns.ip(&["route", "show", "default"]);
    let gw = node
        .network
        .addresses
        .iter()
        .find_map(|a| a.gateway)
        .expect("the profile gives bay 7 a gateway");
    assert!(routes.contains(&format!("via {gw}")), "{routes}\n{stderr}");
    if has_bonding {
        let (_, d) = ns.ip(&["-d", "link", "show", &bond]);
        assert!(d.contains("bond mode active-backup"), "{d}");
        let (_, s) = ns.ip(&["link", "show", "master", &bond]);
        for nic in &node.network.bond.slaves {
            assert!(s.contains(&nic.name), "{} not enslaved: {s}", nic.name);
        }
    } else {
        // bond0 exists (the stand-in) but is no bond: enslaving fails, said so.
        assert!(stderr.contains(&format!("to {bond}: ")), "{stderr}");
    }
    let (has_vlan, _) = ns.ip(&["link", "show", &format!("{bond}.100")]);
    if has_vlan {
        let (_, v) = ns.ip(&["addr", "show", "dev", &format!("{bond}.100")]);
        assert!(v.contains("192.0.2.7/24"), "{v}");
    } else {
        assert!(
            stderr.contains(&format!("create vlan {bond}.100")),
            "{stderr}"
        );
    }
    // Errors (missing kernel support) are reported, never silent.
    assert_eq!(out.status.success(), stderr.is_empty(), "{stderr}");
}
