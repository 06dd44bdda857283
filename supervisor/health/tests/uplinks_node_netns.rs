//! Node-side link state from rtnetlink, on veth pairs in a network
//! namespace the test creates (and deletes on drop). The sandbox kernel
//! has no bonding driver, so the bond is read from a /proc/net/bonding
//! text under a fixture root.

use flexvisor_health::uplinks::netlink::{LinkEvents, LinkReader};
use flexvisor_health::uplinks::{self, ModulePorts, ModuleReading, UplinkReading};
use flexvisor_health::Status;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (package iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Create netlink sockets inside `ns` from a short-lived thread.
fn sockets_in(ns: &str) -> (LinkReader, LinkEvents) {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("netns handle");
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let r = LinkReader::new(Duration::from_secs(2)).expect("reader");
        let e = LinkEvents::new(Duration::from_millis(200)).expect("events");
        (r, e)
    })
    .join()
    .expect("thread")
}

const BOND: &str = "Ethernet Channel Bonding Driver: v6.1.0

Bonding Mode: fault-tolerance (active-backup)
Currently Active Slave: eth0
MII Status: up
MII Polling Interval (ms): 100

Slave Interface: eth0
MII Status: up
Speed: 10000 Mbps
Link Failure Count: 0

Slave Interface: eth1
MII Status: up
Speed: 10000 Mbps
Link Failure Count: 0
";

#[test]
fn nic_links_follow_veth_carrier_and_events_wake_the_reader() {
    let name = format!("fvh{}", std::process::id());
    ip(&["netns", "add", &name]);
    let _ns = Netns(name.clone());
    for (a, b) in [("eth0", "sw0"), ("eth1", "sw1")] {
        ip(&[
            "-n", &name, "link", "add", a, "type", "veth", "peer", "name", b,
        ]);
        ip(&["-n", &name, "link", "set", a, "up"]);
        ip(&["-n", &name, "link", "set", b, "up"]);
    }
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("proc/net/bonding")).expect("mkdir");
    std::fs::write(root.path().join("proc/net/bonding/bond0"), BOND).expect("bond");
    let (mut reader, mut events) = sockets_in(&name);
    let nics = vec!["eth0".to_string(), "eth1".to_string()];

    let wait_until = |reader: &mut LinkReader, want: [bool; 2]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = uplinks::read_node(reader, &nics, root.path(), Some("bond0")).expect("read");
            let got = [n.nics[0].up, n.nics[1].up];
            // The kernel updates operstate (linkwatch) a moment after the
            // carrier flag: wait for both to agree.
            let settled = n
                .nics
                .iter()
                .zip(want)
                .all(|(nic, up)| (nic.operstate == "UP") == up);
            if got == want && settled {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "links {got:?}, want {want:?}: {n:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let node = wait_until(&mut reader, [true, true]);
    assert_eq!(
        node.bond.as_ref().and_then(|b| b.active_slave.as_deref()),
        Some("eth0")
    );

    let modules: Vec<ModulePorts> = (1..=2)
        .map(|i| ModulePorts {
            name: format!("io{i}"),
            uplinks: vec!["EXT1".into()],
            optional_uplinks: vec![],
            node_port: "INTA1".into(),
            nic: format!("eth{}", i - 1),
        })
        .collect();
    let up = |name: &str| flexvisor_health::uplinks::snmp::PortState {
        name: name.into(),
        if_index: 1,
        admin_up: true,
        oper_up: true,
        oper_status: 1,
        speed_mbps: 10000,
    };
    let switch = || ModuleReading::Ports(vec![up("EXT1"), up("INTA1")]);
    let reading = |node| UplinkReading {
        node,
        modules: vec![("io1".into(), switch()), ("io2".into(), switch())],
        observed_at: 0,
    };
    assert_eq!(
        uplinks::verdict(&reading(node), &modules).status,
        Status::Ok
    );

    // Drain pending events, pull the cable on eth0's far end: an event
    // arrives and the reader sees eth0 down.
    while !events.wait().expect("events").is_empty() {}
    ip(&["-n", &name, "link", "set", "sw0", "down"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw = false;
    while Instant::now() < deadline && !saw {
        saw = events
            .wait()
            .expect("events")
            .iter()
            .any(|l| l.name == "eth0" || l.name == "sw0");
    }
    assert!(saw, "no RTM_NEWLINK event for the cable pull");
    let node = wait_until(&mut reader, [false, true]);
    assert_eq!(node.nics[0].operstate, "LOWERLAYERDOWN");
    let v = uplinks::verdict(&reading(node), &modules);
    assert_eq!(v.status, Status::Warning, "{v:?}");
    assert!(
        v.summary.contains("eth0 link LOWERLAYERDOWN"),
        "{}",
        v.summary
    );

    ip(&["-n", &name, "link", "set", "sw1", "down"]);
    let node = wait_until(&mut reader, [false, false]);
    let v = uplinks::verdict(&reading(node), &modules);
    assert_eq!(v.status, Status::Critical, "{v:?}");
}
