//! `flexvisor-vrrp-bench`: failover time as a client sees it, flexvisor-vrrp against
//! keepalived, with the same advertisement interval, in one run.
//!
//! World (created here, removed at the end, needs root): namespaces for a bridge, a
//! master node A (priority 150), a standby node B (priority 100) and a client, on
//! 10.77.0.0/24 with the shared address 10.77.0.100. A trial "kills the master
//! node": kill -9 of A's daemon and A's link down at once. The failover time is from
//! the kill to the first ICMP echo reply from the shared address to a request sent
//! after the kill (the client pings every 2 ms), i.e. until the standby has taken
//! the address and its gratuitous ARP has redirected the client.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow_lite::{bail, Context, Result};

const VIP: &str = "10.77.0.100";

const HELP: &str = "\
flexvisor-vrrp-bench: client-observed failover time, flexvisor-vrrp vs keepalived

USAGE: flexvisor-vrrp-bench [--trials N] [--intervals CS,CS] [--json]

    --trials N          trials per implementation and interval (default 20)
    --intervals LIST    advertisement intervals in centiseconds (default 100,10)
    --json              print the results as JSON instead of a table
    -h, --help          this text

Needs root, ip, keepalived. Creates its own network namespaces and removes them.
";

/// Tiny error plumbing for a binary (anyhow is not a dependency of this crate).
mod anyhow_lite {
    pub type Result<T> = std::result::Result<T, String>;
    pub trait Context<T> {
        fn context(self, what: &str) -> Result<T>;
    }
    impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
        fn context(self, what: &str) -> Result<T> {
            self.map_err(|e| format!("{what}: {e}"))
        }
    }
    macro_rules! bail {
        ($($t:tt)*) => { return Err(format!($($t)*)) };
    }
    pub(crate) use bail;
}

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .context(args[0])?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Lab {
    id: String,
    dir: PathBuf,
    made: Vec<String>,
}

impl Lab {
    fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.id)
    }

    fn new() -> Result<Lab> {
        let id = format!("fvb{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("{id}-bench"));
        std::fs::create_dir_all(&dir).context("temp dir")?;
        let mut lab = Lab {
            id,
            dir,
            made: Vec::new(),
        };
        let br = lab.ns("br");
        lab.add_ns(&br)?;
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        for (n, addr) in [
            ("a", "10.77.0.1/24"),
            ("b", "10.77.0.2/24"),
            ("c", "10.77.0.200/24"),
        ] {
            let ns = lab.ns(n);
            lab.add_ns(&ns)?;
            run(&[
                "ip",
                "-n",
                &ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &format!("p{n}"),
                "netns",
                &br,
            ])?;
            run(&[
                "ip",
                "-n",
                &br,
                "link",
                "set",
                &format!("p{n}"),
                "master",
                "br0",
                "up",
            ])?;
            run(&["ip", "-n", &ns, "addr", "add", addr, "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<()> {
        run(&["ip", "netns", "add", ns])?;
        self.made.push(ns.to_string());
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn holds_vip(&self, n: &str) -> bool {
        run(&[
            "ip",
            "-n",
            &self.ns(n),
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .map(|s| s.contains(&format!("{VIP}/")))
        .unwrap_or(false)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Flexvisor,
    Keepalived,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Flexvisor => "flexvisor-vrrp",
            Impl::Keepalived => "keepalived",
        }
    }
}

struct Daemon {
    child: Child,
    vrrp_pid_file: Option<PathBuf>,
}

impl Daemon {
    fn start(lab: &Lab, which: Impl, node: &str, priority: u8, interval_cs: u16) -> Result<Daemon> {
        let ns = lab.ns(node);
        let log = std::fs::File::create(lab.dir.join(format!("{node}-{}.log", which.name())))
            .context("log")?;
        let log2 = log.try_clone().context("log")?;
        match which {
            Impl::Flexvisor => {
                let exe = std::env::current_exe().context("current exe")?;
                let bin = exe.with_file_name("flexvisor-vrrp");
                let child = Command::new("ip")
                    .args(["netns", "exec", &ns])
                    .arg(&bin)
                    .args([
                        "--interface",
                        "eth0",
                        "--vrid",
                        "51",
                        "--address",
                        &format!("{VIP}/24"),
                    ])
                    .args([
                        "--priority",
                        &priority.to_string(),
                        "--advert-interval",
                        &interval_cs.to_string(),
                    ])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .context("spawn flexvisor-vrrp")?;
                Ok(Daemon {
                    child,
                    vrrp_pid_file: None,
                })
            }
            Impl::Keepalived => {
                let conf = lab.dir.join(format!("{node}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "global_defs {{\n router_id {ns}\n vrrp_version 3\n}}\nvrrp_instance VI {{\n state BACKUP\n \
                         interface eth0\n virtual_router_id 51\n priority {priority}\n advert_int {}.{:02}\n \
                         virtual_ipaddress {{\n  {VIP}/24\n }}\n}}\n",
                        interval_cs / 100,
                        interval_cs % 100
                    ),
                )
                .context("keepalived.conf")?;
                let pid = |s: &str| lab.dir.join(format!("{node}-{s}.pid"));
                for s in ["main", "vrrp", "check"] {
                    let _ = std::fs::remove_file(pid(s));
                }
                let child = Command::new("ip")
                    .args([
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
                    .arg(pid("main"))
                    .arg("-r")
                    .arg(pid("vrrp"))
                    .arg("-c")
                    .arg(pid("check"))
                    .stdout(log2)
                    .stderr(Stdio::null())
                    .spawn()
                    .context("spawn keepalived")?;
                Ok(Daemon {
                    child,
                    vrrp_pid_file: Some(pid("vrrp")),
                })
            }
        }
    }

    fn kill9(&mut self) {
        if let Some(p) = &self.vrrp_pid_file {
            if let Ok(pid) = std::fs::read_to_string(p) {
                let _ = run(&["kill", "-KILL", pid.trim()]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out after {limit:?} waiting for {what}")
}

/// A raw ICMP socket in the client namespace.
struct Prober {
    sock: socket2::Socket,
    /// Joined to 224.0.0.18: sees the master's advertisements as the standby does.
    vrrp: socket2::Socket,
    id: u16,
}

impl Prober {
    fn open(ns: &str) -> Result<Prober> {
        // Enter the client's namespace on a helper thread, open the socket there, and
        // come back: the socket stays in the namespace it was created in.
        let path = format!("/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| -> Result<Prober> {
                let f = std::fs::File::open(&path).context("open netns")?;
                // SAFETY: setns on a valid namespace descriptor; it only changes the
                // network namespace of this helper thread, which ends right after.
                let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                if r != 0 {
                    bail!("setns {path}: {}", std::io::Error::last_os_error());
                }
                let sock = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::RAW,
                    Some(socket2::Protocol::ICMPV4),
                )
                .context("ICMP socket")?;
                sock.set_read_timeout(Some(Duration::from_millis(2)))
                    .context("timeout")?;
                let vrrp = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::RAW,
                    Some(socket2::Protocol::from(112)),
                )
                .context("VRRP socket")?;
                vrrp.join_multicast_v4(
                    &Ipv4Addr::new(224, 0, 0, 18),
                    &Ipv4Addr::new(10, 77, 0, 200),
                )
                .context("join 224.0.0.18")?;
                vrrp.set_read_timeout(Some(Duration::from_millis(50)))
                    .context("timeout")?;
                Ok(Prober {
                    sock,
                    vrrp,
                    id: (std::process::id() & 0xffff) as u16,
                })
            })
            .join()
            .map_err(|_| "prober thread panicked".to_string())?
        })
    }

    fn send(&self, seq: u16) {
        let mut p = vec![8, 0, 0, 0];
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0u8; 16]);
        let mut sum: u32 = p
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let c = !(sum as u16);
        p[2..4].copy_from_slice(&c.to_be_bytes());
        let vip: Ipv4Addr = VIP.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let _ = self.sock.send_to(&p, &SocketAddrV4::new(vip, 0).into());
    }

    /// Replies received within the read timeout: sequence numbers of echo replies.
    fn replies(&self) -> Vec<u16> {
        let mut out = Vec::new();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        while let Ok(n) = self.sock.recv(&mut buf) {
            // SAFETY: recv initialised the first n bytes.
            let b: Vec<u8> = buf[..n]
                .iter()
                .map(|x| unsafe { x.assume_init() })
                .collect();
            let ihl = usize::from(b.first().copied().unwrap_or(0) & 0x0f) * 4;
            if b.len() >= ihl + 8 && b[ihl] == 0 && b[12..16] == [10, 77, 0, 100] {
                let id = u16::from_be_bytes([b[ihl + 4], b[ihl + 5]]);
                if id == self.id {
                    out.push(u16::from_be_bytes([b[ihl + 6], b[ihl + 7]]));
                }
            }
        }
        out
    }

    /// Waits for the next advertisement from 10.77.0.1 (node A) and returns when it
    /// arrived, after discarding what was already queued.
    fn next_advert_from_a(&self, limit: Duration) -> Result<Instant> {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        self.vrrp.set_nonblocking(true).context("nonblocking")?;
        while self.vrrp.recv(&mut buf).is_ok() {}
        self.vrrp.set_nonblocking(false).context("blocking")?;
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(n) = self.vrrp.recv(&mut buf) {
                let now = Instant::now();
                // SAFETY: recv initialised the first n bytes.
                let b: Vec<u8> = buf[..n]
                    .iter()
                    .map(|x| unsafe { x.assume_init() })
                    .collect();
                if b.len() >= 20 && b[12..16] == [10, 77, 0, 1] {
                    return Ok(now);
                }
            }
        }
        bail!("no advertisement from node A within {limit:?}")
    }

    /// Pings every 2 ms until a reply to a request sent at or after `from_seq`.
    fn until_answered(&self, from_seq: u16, limit: Duration) -> Result<Instant> {
        let end = Instant::now() + limit;
        let mut seq = from_seq;
        while Instant::now() < end {
            self.send(seq);
            seq = seq.wrapping_add(1);
            if self
                .replies()
                .iter()
                .any(|s| s.wrapping_sub(from_seq) < 0x8000)
            {
                return Ok(Instant::now());
            }
        }
        bail!("no reply from {VIP} within {limit:?}")
    }
}

fn trial(
    lab: &Lab,
    which: Impl,
    interval_cs: u16,
    standby: &mut Option<Daemon>,
    phase: Duration,
) -> Result<Sample> {
    let a = lab.ns("a");
    // Fresh master node A: link up, no leftovers from the previous kill.
    run(&["ip", "-n", &a, "link", "set", "eth0", "up"])?;
    let _ = run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "del",
        &format!("{VIP}/24"),
        "dev",
        "eth0",
    ]);
    if standby.is_none() {
        *standby = Some(Daemon::start(lab, which, "b", 100, interval_cs)?);
    }
    let mut master = Daemon::start(lab, which, "a", 150, interval_cs)?;
    let settle = Duration::from_secs(60);
    wait_for(settle, "A to be master and B backup", || {
        lab.holds_vip("a") && !lab.holds_vip("b")
    })?;
    let prober = Prober::open(&lab.ns("c"))?;
    let mut seq = 0u16;
    wait_for(settle, "client reaching A", || {
        prober.send(seq);
        seq = seq.wrapping_add(1);
        !prober.replies().is_empty()
    })?;
    // Let the standby settle into the master's rhythm, then kill node A `phase`
    // after one of its advertisements: the same phases are used for every
    // implementation, so both face the same time-since-last-advertisement.
    std::thread::sleep(Duration::from_millis(u64::from(interval_cs) * 10 * 2));
    let _ = prober.replies();
    let advert = prober.next_advert_from_a(Duration::from_secs(30))?;
    std::thread::sleep((advert + phase).saturating_duration_since(Instant::now()));

    let t0 = Instant::now();
    master.kill9();
    run(&["ip", "-n", &a, "link", "set", "eth0", "down"])?;
    let from = seq.wrapping_add(100);
    let answered = prober.until_answered(from, Duration::from_secs(60))?;
    Ok(Sample {
        failover: answered - t0,
        since_advert: t0 - advert,
    })
}

struct Sample {
    /// Kill to first answer from the standby.
    failover: Duration,
    /// Kill time minus the arrival of the master's last advertisement.
    since_advert: Duration,
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n == 0 {
        return Duration::ZERO;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut trials = 20usize;
    let mut intervals = vec![100u16, 10];
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return;
            }
            "--trials" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => trials = n,
                _ => die("--trials needs a positive number"),
            },
            "--intervals" => {
                let parsed: Option<Vec<u16>> = it
                    .next()
                    .map(|v| {
                        v.split(',')
                            .map(|x| x.trim().parse().ok().filter(|n| (1..=4095).contains(n)))
                            .collect()
                    })
                    .and_then(|v: Vec<Option<u16>>| v.into_iter().collect());
                match parsed {
                    Some(v) if !v.is_empty() => intervals = v,
                    _ => die("--intervals needs a list like 100,10 (1..=4095)"),
                }
            }
            "--json" => json = true,
            other => die(&format!("unknown argument {other:?} (see --help)")),
        }
    }
    let lab = match Lab::new() {
        Ok(l) => l,
        Err(e) => die(&format!(
            "cannot build the test network (root and iproute2 needed): {e}"
        )),
    };
    let mut rows: Vec<Row> = Vec::new();
    for &iv in &intervals {
        let iv_time = Duration::from_millis(u64::from(iv) * 10);
        // Master_Down_Interval of the standby (priority 100).
        let mdi = flexvisor_vrrp::state::master_down_interval(100, iv);
        for which in [Impl::Flexvisor, Impl::Keepalived] {
            let mut standby = None;
            let mut samples = Vec::new();
            for t in 0..trials {
                // Stratified phases across one advertisement interval.
                let phase = iv_time.mul_f64((t as f64 + 0.5) / trials as f64);
                match trial(&lab, which, iv, &mut standby, phase) {
                    Ok(s) => samples.push(s),
                    Err(e) => eprintln!("{} {iv} cs trial {t}: {e}", which.name()),
                }
            }
            drop(standby);
            let mut times: Vec<Duration> = samples.iter().map(|s| s.failover).collect();
            // What the daemon added beyond the RFC: failover minus the time the
            // Master_Down_Timer still had to run at the kill.
            let mut over: Vec<f64> = samples
                .iter()
                .map(|s| ms(s.failover) - (ms(mdi) - ms(s.since_advert)))
                .collect();
            over.sort_by(|a, b| a.total_cmp(b));
            let max = times.iter().max().copied().unwrap_or_default();
            rows.push(Row {
                interval_cs: iv,
                name: which.name(),
                trials: times.len(),
                median: median(&mut times),
                max,
                mdi,
                over_median: over.get(over.len() / 2).copied().unwrap_or(0.0),
                over_max: over.last().copied().unwrap_or(0.0),
            });
        }
    }
    drop(lab);
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"interval_cs": r.interval_cs, "impl": r.name, "trials": r.trials,
                    "median_ms": ms(r.median), "max_ms": ms(r.max), "master_down_interval_ms": ms(r.mdi),
                    "beyond_rfc_median_ms": r.over_median, "beyond_rfc_max_ms": r.over_max})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!("client-observed failover: kill -9 + link down of the master -> the shared IP answers from the standby");
    println!("kills at stratified phases after a master advertisement, the same for both implementations;");
    println!(
        "'beyond RFC' = failover - (Master_Down_Interval - time since the last advertisement)"
    );
    println!(
        "{:>9} | {:<15} | {:>6} | {:>10} | {:>9} | {:>8} | {:>17} | {:>14} | {:>12}",
        "advert cs",
        "implementation",
        "trials",
        "median ms",
        "max ms",
        "MDI ms",
        "beyond RFC med ms",
        "beyond max ms",
        "median ratio"
    );
    for r in &rows {
        let ka = rows
            .iter()
            .find(|k| k.interval_cs == r.interval_cs && k.name == "keepalived")
            .map(|k| ms(k.median))
            .unwrap_or(0.0);
        let ratio = if ka > 0.0 {
            format!("{:.3}x", ms(r.median) / ka)
        } else {
            "-".into()
        };
        println!(
            "{:>9} | {:<15} | {:>6} | {:>10.1} | {:>9.1} | {:>8.1} | {:>17.1} | {:>14.1} | {:>12}",
            r.interval_cs,
            r.name,
            r.trials,
            ms(r.median),
            ms(r.max),
            ms(r.mdi),
            r.over_median,
            r.over_max,
            ratio
        );
    }
}

struct Row {
    interval_cs: u16,
    name: &'static str,
    trials: usize,
    median: Duration,
    max: Duration,
    mdi: Duration,
    over_median: f64,
    over_max: f64,
}

fn die(msg: &str) -> ! {
    eprintln!("flexvisor-vrrp-bench: {msg}");
    std::process::exit(3);
}
