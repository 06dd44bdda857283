//! Two flexvisor nodes of a pair in network namespaces on one bridge (made
//! here, unique names with the pid, removed on drop), sharing one VIP.
use super::*;
use std::process::Command;

pub const VIP: &str = "10.78.0.100";

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces made by this test, removed on drop.
pub struct Net(Vec<String>);

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub fn lab() -> (Net, Vec<String>) {
    let id = format!("fvp{}", std::process::id());
    let br = format!("{id}br");
    let nodes = vec![format!("{id}a"), format!("{id}b")];
    let mut net = Net(Vec::new());
    for ns in std::iter::once(&br).chain(&nodes) {
        ip(&["netns", "add", ns]);
        net.0.push(ns.clone());
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &br, "link", "set", "br0", "up"]);
    for (i, ns) in nodes.iter().enumerate() {
        let port = format!("p{i}");
        ip(&[
            "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &br,
        ]);
        ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("10.78.0.{}/24", i + 1),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
    }
    (net, nodes)
}

pub fn node(i: usize) -> chassis::NodeConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut n = chassis::node::resolve(&loaded.profile, 7, None).unwrap();
    assert!(!n.active_services.is_empty());
    n.hostname = format!("pair-{i}");
    // The profile's proxy hooks (redis-promote/-demote) are not installed
    // here; tests that need hooks set their own.
    n.hooks = None;
    n.health.raid_arrays = Vec::new();
    n.health.metrics_port = 9100;
    n.vips = vec![chassis::node::VipConfig {
        network: "test".into(),
        interface: "eth0".into(),
        address: VIP.parse().unwrap(),
        prefix_len: 24,
        vrid: 42,
        advert_interval_cs: 100,
        priority: if i == 0 { 150 } else { 100 },
        peer_priority: if i == 0 { 100 } else { 150 },
        preempt: true,
        preempt_delay_s: 0,
        accept: true,
        peer_address: None,
        // RAID is readable in the fixture root; power and switches are not
        // configured in this test (--health-local-only).
        track: vec![chassis::node::TrackConfig {
            check: "raid".into(),
            weight: Some(-20),
        }],
    }];
    n
}

pub fn start(ns: &str, i: usize, bay_check: &str) -> (Sup, chassis::NodeConfig) {
    start_with(ns, i, bay_check, |_| {})
}

/// [`start`] with a change to the node configuration.
pub fn start_with(
    ns: &str,
    i: usize,
    bay_check: &str,
    change: impl FnOnce(&mut chassis::NodeConfig),
) -> (Sup, chassis::NodeConfig) {
    start_with_defs(ns, i, bay_check, change, &[])
}

/// [`start_with`], with some services defined by `defs` (name, TOML)
/// instead of a plain `sleep`.
pub fn start_with_defs(
    ns: &str,
    i: usize,
    bay_check: &str,
    change: impl FnOnce(&mut chassis::NodeConfig),
    defs: &[(&str, &str)],
) -> (Sup, chassis::NodeConfig) {
    let mut sup = Sup::prepare(&[]);
    let mut n = node(i);
    change(&mut n);
    for s in n.services.iter().chain(&n.active_services) {
        let def = defs.iter().find(|(name, _)| name == s).map_or(
            "command = \"/bin/sleep\"\nargs = [\"100000\"]\n",
            |(_, d)| *d,
        );
        sup.write_service(s, def);
    }
    let root = sup.path("sysroot");
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(
        root.join("proc/mdstat"),
        "Personalities : \nunused devices: <none>\n",
    )
    .unwrap();
    let cfg = sup.path("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    sup.netns = Some(ns.to_owned());
    let bay = sup.path("bay-check");
    std::fs::write(&bay, bay_check).unwrap();
    let sup = sup.launch(&[
        "--node-config",
        cfg.to_str().unwrap(),
        "--health-local-only",
        "--system-root",
        root.to_str().unwrap(),
        "--bay-check",
        bay.to_str().unwrap(),
    ]);
    (sup, n)
}

pub fn vip(sup: &Sup) -> Vec<serde_json::Value> {
    let out = Command::new(flexctl_bin())
        .args(["vip", "--json", "--socket", sup.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flexctl vip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn state(sup: &Sup) -> Option<(String, String)> {
    let v = vip(sup);
    let i = v.first()?;
    Some((
        i["state"].as_str()?.to_owned(),
        i["master"].as_str().unwrap_or("").to_owned(),
    ))
}

pub fn active_running(sup: &Sup, n: &chassis::NodeConfig) -> bool {
    sup.status()
        .services
        .iter()
        .filter(|s| n.active_services.contains(&s.name))
        .all(|s| s.state == "ready")
}

pub fn active_down(sup: &Sup, n: &chassis::NodeConfig) -> bool {
    sup.status()
        .services
        .iter()
        .filter(|s| n.active_services.contains(&s.name))
        .all(|s| s.state == "down" && !s.wanted)
}
