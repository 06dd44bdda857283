//! Test world for the VRRP integration tests: network namespaces joined by a bridge
//! that lives in its own namespace, so nothing outside what the test created is
//! touched. Every name carries the pid and a counter; everything is removed on drop.
//!
//! Layout of a lab with N nodes: namespace `<id>br` holds bridge `br0` and ports
//! `p0..pN` and `pc`; node i lives in `<id>n<i>` with `eth0` = 10.77.0.(i+1)/24; the
//! client lives in `<id>c` with `eth0` = 10.77.0.200/24. The virtual address is
//! 10.77.0.100.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const VIP: &str = "10.77.0.100";
pub const VRID: &str = "51";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fails the test with a clear message when the machine cannot run it.
pub fn require(tools: &[&str]) {
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "these tests create network namespaces and must run as root"
    );
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "required tool {t:?} is missing: install it (see scripts/deps/apt.txt)"
        );
    }
}

pub fn sh(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    out
}

pub fn must(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 50 ms until it returns true; panics after `limit` with `what`.
/// The limit only prevents hangs; it is not a performance assertion.
pub fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

pub struct Lab {
    pub id: String,
    pub br: String,
    pub nodes: Vec<String>,
    pub client: String,
    pub dir: PathBuf,
    created: Vec<String>,
}

impl Lab {
    pub fn new(n: usize) -> Lab {
        let id = format!(
            "fv{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("{id}-vrrp"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut lab = Lab {
            br: format!("{id}br"),
            nodes: (0..n).map(|i| format!("{id}n{i}")).collect(),
            client: format!("{id}c"),
            id,
            dir,
            created: Vec::new(),
        };
        lab.add_ns(&lab.br.clone());
        must(&["ip", "-n", &lab.br, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &lab.br, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = lab.nodes[i].clone();
            lab.add_ns(&ns);
            lab.plug(&ns, &format!("p{i}"), &format!("10.77.0.{}/24", i + 1));
        }
        let c = lab.client.clone();
        lab.add_ns(&c);
        lab.plug(&c, "pc", "10.77.0.200/24");
        lab
    }

    fn add_ns(&mut self, ns: &str) {
        must(&["ip", "netns", "add", ns]);
        self.created.push(ns.to_string());
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    fn plug(&self, ns: &str, port: &str, addr: &str) {
        must(&[
            "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns",
            &self.br,
        ]);
        must(&[
            "ip", "-n", &self.br, "link", "set", port, "master", "br0", "up",
        ]);
        must(&["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"]);
        must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }

    pub fn ip(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    pub fn mac(&self, ns: &str) -> String {
        must(&[
            "ip",
            "netns",
            "exec",
            ns,
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .trim()
        .to_string()
    }

    /// Pulls (false) or plugs back (true) node i's cable at the bridge.
    pub fn cable(&self, i: usize, up: bool) {
        must(&[
            "ip",
            "-n",
            &self.br,
            "link",
            "set",
            &format!("p{i}"),
            if up { "up" } else { "down" },
        ]);
    }

    /// Isolates the node ports from each other (not from the client) or undoes it.
    pub fn isolate(&self, on: bool) {
        for i in 0..self.nodes.len() {
            must(&[
                "bridge",
                "-n",
                &self.br,
                "link",
                "set",
                "dev",
                &format!("p{i}"),
                "isolated",
                if on { "on" } else { "off" },
            ]);
        }
    }

    pub fn holds_vip(&self, ns: &str) -> bool {
        must(&["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
            .contains(&format!("{VIP}/"))
    }

    /// Indices of the nodes that have the virtual address configured.
    pub fn vip_holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.holds_vip(&self.nodes[*i]))
            .collect()
    }

    /// One ping from the client to the virtual address.
    pub fn client_ping(&self) -> bool {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.client,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            VIP,
        ])
        .status
        .success()
    }

    /// The MAC the client's neighbour table holds for the virtual address.
    pub fn client_neigh_mac(&self) -> Option<String> {
        let out = must(&[
            "ip",
            "-n",
            &self.client,
            "neigh",
            "show",
            VIP,
            "dev",
            "eth0",
        ]);
        let mut words = out.split_whitespace();
        while let Some(w) = words.next() {
            if w == "lladdr" {
                return words.next().map(str::to_string);
            }
        }
        None
    }

    /// Waits until every node has a usable (non-tentative) IPv6 link-local address.
    pub fn wait_link_local(&self) {
        for ns in &self.nodes {
            wait_for(Duration::from_secs(30), "a link-local address", || {
                let a = must(&["ip", "-n", ns, "-6", "addr", "show", "dev", "eth0"]);
                a.contains("fe80") && !a.contains("tentative")
            });
        }
    }

    /// Waits until the client reaches the virtual address through node `ns`'s MAC.
    pub fn wait_client_served_by(&self, ns: &str, limit: Duration) {
        let mac = self.mac(ns);
        wait_for(
            limit,
            &format!("client pings {VIP} and resolves it to {ns} ({mac})"),
            || self.client_ping() && self.client_neigh_mac().as_deref() == Some(mac.as_str()),
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kill(sig: &str, pid: u32) {
    let _ = sh(&["kill", sig, &pid.to_string()]);
}

/// A flexvisor-vrrp daemon in a node namespace.
pub struct Vrrpd {
    child: Option<Child>,
    pub status_file: PathBuf,
    pub log: PathBuf,
    /// Standard output (SIGUSR1 status dumps).
    pub out: PathBuf,
    pub ns: String,
}

impl Vrrpd {
    /// Starts the daemon on node `i` for VRID 51 / 10.77.0.100/24 with extra flags.
    pub fn start(lab: &Lab, i: usize, extra: &[&str]) -> Vrrpd {
        Vrrpd::start_for(lab, i, &format!("{VIP}/24"), extra)
    }

    /// Starts the daemon on node `i` for VRID 51 and virtual address `vip`.
    pub fn start_for(lab: &Lab, i: usize, vip: &str, extra: &[&str]) -> Vrrpd {
        let ns = lab.nodes[i].clone();
        let status_file = lab.dir.join(format!("n{i}.json"));
        let log = lab.dir.join(format!("n{i}.log"));
        let out = lab.dir.join(format!("n{i}.out"));
        let _ = std::fs::remove_file(&status_file);
        let mut args: Vec<String> = [
            "netns",
            "exec",
            &ns,
            env!("CARGO_BIN_EXE_flexvisor-vrrp"),
            "--interface",
            "eth0",
            "--vrid",
            VRID,
            "--address",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(vip.to_string());
        args.push("--status-file".into());
        args.push(status_file.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("ip")
            .args(&args)
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn flexvisor-vrrp");
        Vrrpd {
            child: Some(child),
            status_file,
            log,
            out,
            ns,
        }
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&self.status_file).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get(0).cloned()
    }

    /// "Initialize", "Backup", "Master", "Fault", or None before the first status.
    pub fn state(&self) -> Option<String> {
        self.status()?.get("state")?.as_str().map(str::to_string)
    }

    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        self.status()?.get(name).cloned()
    }

    pub fn wait_state(&self, state: &str, limit: Duration) {
        wait_for(
            limit,
            &format!("{} to be {state} (log: {})", self.ns, self.log_text()),
            || self.state().as_deref() == Some(state),
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// kill -9: no goodbye, addresses left behind as after a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.status_file);
    }

    /// SIGTERM: orderly stop; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        kill("-TERM", c.id());
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }
}

impl Drop for Vrrpd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Writes a tracker verdict file.
pub fn set_verdict(path: &Path, verdict: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, verdict).expect("write verdict");
    std::fs::rename(&tmp, path).expect("rename verdict");
}

/// A keepalived (the Debian package) in a node namespace, VRRPv3, same VRID.
pub struct Keepalived {
    child: Option<Child>,
    pub log: PathBuf,
    pid_vrrp: PathBuf,
    pub ns: String,
}

impl Keepalived {
    pub fn start(lab: &Lab, i: usize, priority: u8, advert_cs: u16) -> Keepalived {
        Keepalived::start_for(lab, i, priority, advert_cs, &format!("{VIP}/24"))
    }

    /// As `start`, for virtual address `vip` (IPv4 or IPv6, with prefix).
    pub fn start_for(lab: &Lab, i: usize, priority: u8, advert_cs: u16, vip: &str) -> Keepalived {
        let ns = lab.nodes[i].clone();
        let dir = &lab.dir;
        let conf = dir.join(format!("ka{i}.conf"));
        let log = dir.join(format!("ka{i}.log"));
        let pid_main = dir.join(format!("ka{i}.pid"));
        let pid_vrrp = dir.join(format!("ka{i}-vrrp.pid"));
        let pid_check = dir.join(format!("ka{i}-check.pid"));
        for p in [&pid_main, &pid_vrrp, &pid_check] {
            let _ = std::fs::remove_file(p);
        }
        let advert = format!("{}.{:02}", advert_cs / 100, advert_cs % 100);
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id {ns}\n  vrrp_version 3\n}}\n\
                 vrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {VRID}\n  \
                 priority {priority}\n  advert_int {advert}\n  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
            ),
        )
        .expect("write keepalived.conf");
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &ns,
            "keepalived",
            "--dont-fork",
            "--no-syslog",
            "--log-console",
            "--vrrp",
        ])
        .arg("-f")
        .arg(&conf)
        .arg("-p")
        .arg(&pid_main)
        .arg("-r")
        .arg(&pid_vrrp)
        .arg("-c")
        .arg(&pid_check);
        let out = File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn keepalived");
        Keepalived {
            child: Some(child),
            log,
            pid_vrrp,
            ns,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The state keepalived last said it entered ("MASTER", "BACKUP", "FAULT").
    pub fn state(&self) -> Option<String> {
        let log = self.log_text();
        log.lines()
            .filter_map(|l| l.split("Entering ").nth(1))
            .filter_map(|r| r.split(" STATE").next())
            .next_back()
            .map(str::to_string)
    }

    pub fn wait_state(&self, state: &str, limit: Duration) {
        wait_for(
            limit,
            &format!(
                "keepalived in {} to be {state} (log: {})",
                self.ns,
                self.log_text()
            ),
            || self.state().as_deref() == Some(state),
        );
    }

    /// kill -9 of the VRRP child and the parent: no priority-0 goodbye.
    pub fn kill9(&mut self) {
        if let Ok(p) = std::fs::read_to_string(&self.pid_vrrp) {
            if let Ok(p) = p.trim().parse::<u32>() {
                kill("-KILL", p);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Frames captured by tcpdump in the client namespace (ARP and VRRP).
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

/// One frame of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Gratuitous ARP for `ip` announcing `mac`.
    Garp { mac: String, ip: String },
    /// VRRP advertisement.
    Advert { src: String, priority: u8 },
}

impl Capture {
    pub fn start(lab: &Lab, name: &str) -> Capture {
        let file = lab.dir.join(format!("{name}.pcap"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.client,
                "tcpdump",
                "--immediate-mode",
                "-i",
                "eth0",
                "-U",
                "-n",
                "-s",
                "256",
                "-w",
            ])
            .arg(&file)
            .arg("arp or ip proto 112")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tcpdump");
        wait_for(Duration::from_secs(10), "tcpdump to start", || {
            std::fs::metadata(&file)
                .map(|m| m.len() >= 24)
                .unwrap_or(false)
        });
        std::thread::sleep(Duration::from_millis(300));
        Capture {
            child: Some(child),
            file,
        }
    }

    /// Waits until `want` has been captured.
    pub fn wait_seen(&self, want: &Seen, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.seen().contains(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "not captured: {want:?}; captured {:?} ({})",
            self.seen(),
            self.describe()
        );
    }

    /// File size and path, for failure messages.
    pub fn describe(&self) -> String {
        let len = std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        format!("{} bytes in {}", len, self.file.display())
    }

    /// Everything seen so far (tcpdump -U flushes each packet).
    pub fn seen(&self) -> Vec<Seen> {
        let data = std::fs::read(&self.file).unwrap_or_default();
        parse_pcap(&data)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mac_str(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_pcap(d: &[u8]) -> Vec<Seen> {
    let mut out = Vec::new();
    if d.len() < 24 {
        return out;
    }
    let le = d[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut off = 24;
    while off + 16 <= d.len() {
        let incl = u32at(&d[off + 8..off + 12]) as usize;
        let start = off + 16;
        if start + incl > d.len() {
            break;
        }
        let f = &d[start..start + incl];
        off = start + incl;
        if f.len() < 14 {
            continue;
        }
        match [f[12], f[13]] {
            [0x08, 0x06] if f.len() >= 42 && f[28..32] == f[38..42] => out.push(Seen::Garp {
                mac: mac_str(&f[22..28]),
                ip: format!("{}.{}.{}.{}", f[28], f[29], f[30], f[31]),
            }),
            [0x08, 0x00] => {
                if let Ok(ip) = flexvisor_vrrp::packet::parse_ipv4(&f[14..]) {
                    if let Ok(adv) = flexvisor_vrrp::packet::Advertisement::decode(
                        ip.payload,
                        ip.src.into(),
                        ip.dst.into(),
                    ) {
                        out.push(Seen::Advert {
                            src: ip.src.to_string(),
                            priority: adv.priority,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}
