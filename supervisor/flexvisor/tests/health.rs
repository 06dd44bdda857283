//! The hosted health monitor: a degraded md array in a fixture system root
//! makes `flexctl health` CRITICAL (exit 2), prints the console line and
//! shows in the Prometheus gauge on `/metrics` (127.0.0.1).
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::io::{Read, Write};
use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const DEGRADED: &str = "Personalities : [raid1]\n\
md0 : active raid1 sdb1[1](F) sda1[0]\n      1046528 blocks super 1.2 [2/1] [U_]\n\n\
unused devices: <none>\n";

fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn degraded_array_is_critical_in_flexctl_console_and_metrics() {
    let sup = Sup::prepare(&[]);
    let root = sup.path("sysroot");
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/mdstat"), DEGRADED).unwrap();
    let md = root.join("sys/block/md0/md");
    std::fs::create_dir_all(&md).unwrap();
    for (f, v) in [
        ("array_state", "clean"),
        ("degraded", "1"),
        ("raid_disks", "2"),
        ("level", "raid1"),
        ("sync_action", "idle"),
        ("mismatch_cnt", "0"),
    ] {
        std::fs::write(md.join(f), format!("{v}\n")).unwrap();
    }

    let root_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root_dir.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut node = chassis::node::resolve(&loaded.profile, 7, None).unwrap();
    let port = free_port();
    node.health.metrics_port = port;
    node.health.raid_arrays = vec!["md0".into()];
    for s in node.services.iter().chain(&node.active_services) {
        sup.write_service(s, "command = \"/bin/sleep\"\nargs = [\"100000\"]\n");
    }
    let cfg = sup.path("node.toml");
    std::fs::write(&cfg, toml::to_string(&node).unwrap()).unwrap();
    let sup = sup.launch(&[
        "--node-config",
        cfg.to_str().unwrap(),
        "--no-vrrp",
        "--health-local-only",
        "--system-root",
        root.to_str().unwrap(),
    ]);

    sup.wait_console("flexvisor: health CRITICAL");
    let flexctl = flexctl_bin();
    let sock = sup.socket.to_str().unwrap().to_owned();
    // The monitor may still be on its first reading: wait for the verdict.
    wait_for("raid CRITICAL from flexctl", || {
        let out = Command::new(&flexctl)
            .args(["health", "--json", "--check", "raid", "--socket", &sock])
            .output()
            .unwrap();
        out.status.code() == Some(2)
    });
    let out = Command::new(&flexctl)
        .args(["health", "--json", "--check", "raid", "--socket", &sock])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let raid = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "raid")
        .unwrap_or_else(|| panic!("no raid check in {v}"));
    assert_eq!(raid["status"], "CRITICAL", "{v}");
    assert!(raid.to_string().contains("md0"), "{raid}");

    // The text form is a plugin line with perfdata; same exit code.
    let out = Command::new(&flexctl)
        .args(["health", "--check", "raid", "--socket", &sock])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CRITICAL"));

    let m = metrics(port);
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    let gauge = m
        .lines()
        .find(|l| l.contains("raid_array_status") && l.contains("md0") && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no md0 gauge in:\n{m}"));
    assert!(gauge.trim_end().ends_with(" 2"), "{gauge}");

    // The supervisor being gone is UNKNOWN (3), not a crash.
    drop(sup);
    let out = Command::new(&flexctl)
        .args(["health", "--socket", &sock])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}
