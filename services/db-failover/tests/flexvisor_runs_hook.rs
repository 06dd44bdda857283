//! End to end: a real flexvisor (PID 1 of its own PID namespace, in a network
//! namespace made here) hosting the db pair's VRRP instance becomes master and runs
//! the profile's master hook, `/bin/sh -c "<dir>/db-promote ..."`, through a
//! `db-promote` link to this binary: the node's MariaDB becomes writable and its
//! Redis a master. Redis runs inside the namespace (the hook reaches it on the
//! namespace's loopback); MariaDB is reached over its unix socket.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::{Child, Command, Stdio};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Flexvisor(Child);

impl Drop for Flexvisor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The flexvisor binary, built next to this crate's (as flexvisor's own tests
/// build flexctl).
fn flexvisor_bin() -> std::path::PathBuf {
    let st = Command::new(env!("CARGO"))
        .args(["build", "-p", "flexvisor", "--bin", "flexvisor"])
        .status()
        .expect("cannot run cargo to build flexvisor");
    assert!(st.success(), "building flexvisor failed");
    let p = bin().with_file_name("flexvisor");
    assert!(p.exists(), "{} missing after the build", p.display());
    p
}

#[test]
fn flexvisor_becoming_master_runs_db_promote() {
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
        "this test makes network namespaces and needs root"
    );
    find("unshare", "util-linux");
    let flexvisor = flexvisor_bin();

    // A node namespace with one veth to an empty peer namespace.
    let id = format!("dbf{}", std::process::id());
    let node = Netns(format!("{id}n"));
    let peer = Netns(format!("{id}p"));
    for ns in [&node.0, &peer.0] {
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    ip(&[
        "-n", &node.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
        &peer.0,
    ]);
    ip(&["-n", &node.0, "addr", "add", "10.79.0.1/24", "dev", "eth0"]);
    ip(&["-n", &peer.0, "addr", "add", "10.79.0.2/24", "dev", "eth0"]);
    ip(&["-n", &node.0, "link", "set", "eth0", "up"]);
    ip(&["-n", &peer.0, "link", "set", "eth0", "up"]);

    // The node's stores, standing by: MariaDB read-only, Redis a replica.
    let maria = Maria::start(1);
    maria.sql("SET GLOBAL read_only = ON");
    let redis = Redis::start_in(Some(&node.0), 6379);
    redis.cli(&["REPLICAOF", "127.0.0.1", "6390"]);
    assert_eq!(redis.role()[0], "slave");

    let dir = TempDir::new("db-failover-e2e");
    let d = dir.path();
    let link = d.join("db-promote");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    std::fs::write(
        d.join("secrets"),
        "mariadb.user = failover\nmariadb.password = fo-secret\n",
    )
    .unwrap();

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut n = chassis::node::resolve(&loaded.profile, 3, None).unwrap();
    assert_eq!(n.hostname, "db1a");
    n.health.raid_arrays = Vec::new();
    n.health.metrics_port = 9100;
    n.secrets = d.join("secrets").display().to_string();
    n.pair
        .peer
        .addresses
        .insert("internal".into(), "127.0.0.1".parse().unwrap());
    // The node's own address on the VIP's network is the one in the namespace:
    // VRRP adverts are sent from it.
    for a in n
        .network
        .addresses
        .iter_mut()
        .filter(|a| a.network == "internal")
    {
        a.address = "10.79.0.1".parse().unwrap();
        a.interface = "eth0".into();
    }
    let timeout_s = n.hooks.as_ref().map(|h| h.timeout_s).unwrap_or(30);
    n.hooks = Some(chassis::node::HookConfig {
        master: Some(format!(
            "{} --redis-port 6379 --peer-redis-port 6390 --mysql-socket {}",
            link.display(),
            maria.socket.display()
        )),
        backup: None,
        timeout_s,
    });
    n.vips = vec![chassis::node::VipConfig {
        network: "internal".into(),
        interface: "eth0".into(),
        address: "10.79.0.100".parse().unwrap(),
        prefix_len: 24,
        vrid: 42,
        advert_interval_cs: 10,
        priority: 150,
        peer_priority: 100,
        preempt: true,
        preempt_delay_s: 0,
        accept: true,
        peer_address: None,
        track: Vec::new(),
    }];
    let cfg = d.join("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    let services = d.join("services.d");
    std::fs::create_dir_all(&services).unwrap();
    for s in n.services.iter().chain(&n.active_services) {
        std::fs::write(
            services.join(format!("{s}.toml")),
            "command = \"/bin/sleep\"\nargs = [\"100000\"]\n",
        )
        .unwrap();
    }
    let sysroot = d.join("sysroot");
    std::fs::create_dir_all(sysroot.join("proc")).unwrap();
    std::fs::write(
        sysroot.join("proc/mdstat"),
        "Personalities : \nunused devices: <none>\n",
    )
    .unwrap();
    std::fs::write(d.join("bay-check"), "status=ok\n").unwrap();

    let log = std::fs::File::create(d.join("flexvisor.log")).unwrap();
    let _fv = Flexvisor(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &node.0,
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
            ])
            .arg(&flexvisor)
            .arg("--no-init")
            .arg("--services-dir")
            .arg(&services)
            .arg("--run-dir")
            .arg(d.join("run"))
            .arg("--log-dir")
            .arg(d.join("log"))
            .args(["--metrics-bind", "127.0.0.1"])
            .arg("--node-config")
            .arg(&cfg)
            .arg("--health-local-only")
            .arg("--system-root")
            .arg(&sysroot)
            .arg("--bay-check")
            .arg(d.join("bay-check"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let flexvisor_log = || std::fs::read_to_string(d.join("flexvisor.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while maria.read_only() || redis.role()[0] != "master" {
        assert!(
            std::time::Instant::now() < deadline,
            "the master hook did not promote the stores; flexvisor log:\n{}",
            flexvisor_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // It was flexvisor's transition that ran it.
    let text = flexvisor_log();
    assert!(text.contains("db-promote"), "{text}");
    assert!(maria
        .app("INSERT INTO t VALUES (1, 'after failover')")
        .is_ok());
}
