//! `flexvisor-bench`: flexvisor against s6 (s6-svscan) and runit
//! (runsvdir) on the same workloads, in one run, printed as one table.
//!
//! 1. idle memory with N supervised `sleep` services (supervisor processes
//!    only: flexvisor alone; s6-svscan + N s6-supervise; runsvdir + N runsv),
//! 2. crash-to-respawn latency of a first restart (median over samples,
//!    each sample a different service that ran > 1 s, because s6 and runit
//!    delay restarts of services that die within a second). The services
//!    announce readiness on fd 3 to flexvisor and s6 (runit has no such
//!    protocol): s6-supervise waits 1 s after a death unless the service
//!    was ready more than 1 s before it, so without readiness its figure is
//!    that deliberate second, not its restart path,
//! 3. time from launch to all-ready for M services with readiness,
//! 4. shutdown time of those M services.
//!
//! The supervised service is this binary in service mode (no shell in the
//! way, same program for all three): it writes its pid to a FIFO, signals
//! readiness on fd 3 when asked, and sleeps. For s6 and runit `run` is a
//! symlink to it. Requires s6 and runit (Debian packages `s6`, `runit`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::sync::mpsc::{channel, Receiver};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "flexvisor-bench-{}-{}",
            std::process::id(),
            flexvisor::jitter::seed() % 1_000_000
        ));
        fs::create_dir_all(&p)?;
        Ok(Self(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "flexvisor-bench",
    about = "flexvisor vs s6 vs runit: memory, respawn latency, start and shutdown times"
)]
struct Args {
    /// Services for the idle-memory run.
    #[arg(long, default_value_t = 100)]
    idle: usize,
    /// Services for the start/shutdown run (0: skip it).
    #[arg(long, default_value_t = 500)]
    start: usize,
    /// Crash samples (one service each).
    #[arg(long, default_value_t = 9)]
    crashes: usize,
    /// Supervisors to measure, in order: flexvisor, flexvisor-cgroups
    /// (service cgroups under the cgroup2 mount; s6 and runit have none),
    /// s6, runit.
    #[arg(long, value_delimiter = ',', default_value = "flexvisor,s6,runit")]
    peers: Vec<String>,
    /// The flexvisor binary [default: next to this one].
    #[arg(long)]
    flexvisor: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Figures {
    idle_rss_kib: u64,
    idle_pss_kib: u64,
    idle_processes: usize,
    respawn_median_us: u64,
    respawn_samples_us: Vec<u64>,
    start_all_ready_ms: u64,
    shutdown_ms: u64,
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Pids whose command name (comm) is `comm`.
fn pids_named(comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(d) = fs::read_dir("/proc") {
        for e in d.flatten() {
            if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
                if fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

fn memory(pids: &[u32]) -> (u64, u64) {
    pids.iter().fold((0, 0), |(r, p), pid| {
        (
            r + proc_field(*pid, "status", "VmRSS:"),
            p + proc_field(*pid, "smaps_rollup", "Pss:"),
        )
    })
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Service mode: announce the pid on `fifo`, readiness on `ready_fd`
/// (0: none), then sleep until killed.
fn service(fifo: &Path, ready_fd: i32) -> ! {
    use std::io::Write;
    match fs::OpenOptions::new().write(true).open(fifo) {
        Ok(mut f) => {
            // One write(2) per line: atomic on a FIFO (< PIPE_BUF), so lines
            // of services starting together never interleave.
            let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
        }
        Err(e) => eprintln!("flexvisor-bench service: {}: {e}", fifo.display()),
    }
    if ready_fd > 0 {
        // SAFETY: the supervisor passed this descriptor open; it stays
        // open for the life of this process and is only written once.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(ready_fd) };
        let _ = nix::unistd::write(fd, b"\n");
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Pids announced on the FIFO, with the time they were read.
fn fifo_reader(dir: &Path) -> Result<(PathBuf, Receiver<(i32, Instant)>)> {
    let path = dir.join("pids.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666))?;
    // Read-write so the reader never sees EOF between writers.
    let f = fs::OpenOptions::new().read(true).write(true).open(&path)?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            if let Ok(pid) = line.trim().parse() {
                if tx.send((pid, Instant::now())).is_err() {
                    break;
                }
            }
        }
    });
    Ok((path, rx))
}

fn recv(rx: &Receiver<(i32, Instant)>) -> Result<(i32, Instant)> {
    rx.recv_timeout(Duration::from_secs(60))
        .context("no service announced itself within 60 s")
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

trait Peer {
    fn name(&self) -> &'static str;
    /// Write service definitions for `n` services in `dir`.
    fn prepare(&self, dir: &Path, n: usize, fifo: &Path, ready: bool, exe: &Path) -> Result<()>;
    fn launch(&self, dir: &Path) -> Result<Child>;
    /// Supervisor-side processes (for memory).
    fn processes(&self, child: &Child) -> Vec<u32>;
    /// Block until the supervisor reports all `n` services ready.
    fn wait_ready(
        &self,
        dir: &Path,
        child: &mut Child,
        n: usize,
        rx: &Receiver<(i32, Instant)>,
    ) -> Result<()>;
    fn stop(&self, dir: &Path, child: &mut Child) -> Result<()>;
}

/// An s6/runit service directory whose `run` is this binary.
fn service_dir(sd: &Path, fifo: &Path, ready_fd: i32, exe: &Path) -> Result<()> {
    fs::create_dir_all(sd)?;
    fs::write(sd.join("fifo"), fifo.as_os_str().as_encoded_bytes())?;
    fs::write(sd.join("ready-fd"), ready_fd.to_string())?;
    std::os::unix::fs::symlink(exe, sd.join("run"))?;
    Ok(())
}

thread_local! {
    /// Announcements consumed by runit's readiness wait.
    static RUNIT_SEEN: std::cell::RefCell<Vec<(i32, Instant)>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Flexvisor {
    bin: PathBuf,
    /// cgroup2 mount for service cgroups; `None`: `--no-cgroups`.
    cgroups: Option<PathBuf>,
}

impl Peer for Flexvisor {
    fn name(&self) -> &'static str {
        if self.cgroups.is_some() {
            "flexvisor (cgroups)"
        } else {
            "flexvisor"
        }
    }

    fn prepare(&self, dir: &Path, n: usize, fifo: &Path, ready: bool, exe: &Path) -> Result<()> {
        let sd = dir.join("services.d");
        fs::create_dir_all(&sd)?;
        for i in 0..n {
            let readiness = if ready {
                "\n[readiness]\nkind = \"notify-fd\"\nfd = 3\n"
            } else {
                ""
            };
            fs::write(
                sd.join(format!("s{i:04}.toml")),
                format!(
                    "command = \"{}\"\nargs = [\"--service\", \"{}\", \"{}\"]\nstop_timeout_ms = 5000\n[log]\ntail_lines = 10\n{readiness}",
                    exe.display(),
                    fifo.display(),
                    if ready { 3 } else { 0 }
                ),
            )?;
        }
        Ok(())
    }

    fn launch(&self, dir: &Path) -> Result<Child> {
        let mut cmd = Command::new(&self.bin);
        match &self.cgroups {
            Some(root) => cmd.arg("--cgroup-root").arg(root),
            None => cmd.arg("--no-cgroups"),
        };
        Ok(cmd
            .args(["--no-init", "--no-log-files"])
            .arg("--services-dir")
            .arg(dir.join("services.d"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?)
    }

    fn processes(&self, child: &Child) -> Vec<u32> {
        vec![child.id()]
    }

    fn wait_ready(
        &self,
        _dir: &Path,
        child: &mut Child,
        _n: usize,
        _rx: &Receiver<(i32, Instant)>,
    ) -> Result<()> {
        let err = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(err).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l == "flexvisor: ready" => break,
                Some(Ok(_)) => {}
                _ => bail!("flexvisor ended before ready"),
            }
        }
        // Keep draining so flexvisor never blocks on a full stderr pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(())
    }

    fn stop(&self, _dir: &Path, child: &mut Child) -> Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        child.wait()?;
        Ok(())
    }
}

struct S6;

impl Peer for S6 {
    fn name(&self) -> &'static str {
        "s6 (s6-svscan)"
    }

    fn prepare(&self, dir: &Path, n: usize, fifo: &Path, ready: bool, exe: &Path) -> Result<()> {
        let scan = dir.join("scan");
        fs::create_dir_all(&scan)?;
        for i in 0..n {
            let sd = scan.join(format!("s{i:04}"));
            service_dir(&sd, fifo, if ready { 3 } else { 0 }, exe)?;
            if ready {
                fs::write(sd.join("notification-fd"), "3\n")?;
            }
        }
        Ok(())
    }

    fn launch(&self, dir: &Path) -> Result<Child> {
        Command::new("s6-svscan")
            .args(["-c", "2000"])
            .arg(dir.join("scan"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("s6-svscan (Debian package s6) is required")
    }

    fn processes(&self, child: &Child) -> Vec<u32> {
        let mut p = pids_named("s6-supervise");
        p.push(child.id());
        p
    }

    fn wait_ready(
        &self,
        dir: &Path,
        _child: &mut Child,
        n: usize,
        _rx: &Receiver<(i32, Instant)>,
    ) -> Result<()> {
        let dirs: Vec<PathBuf> = (0..n)
            .map(|i| dir.join("scan").join(format!("s{i:04}")))
            .collect();
        // s6-svwait needs every s6-supervise running; retry until it is.
        wait("s6 all ready", Duration::from_secs(120), || {
            Command::new("s6-svwait")
                .args(["-U", "-a", "-t", "60000"])
                .args(&dirs)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    fn stop(&self, dir: &Path, child: &mut Child) -> Result<()> {
        Command::new("s6-svscanctl")
            .arg("-t")
            .arg(dir.join("scan"))
            .status()?;
        child.wait()?;
        Ok(())
    }
}

struct Runit;

impl Peer for Runit {
    fn name(&self) -> &'static str {
        "runit (runsvdir)"
    }

    fn prepare(&self, dir: &Path, n: usize, fifo: &Path, _ready: bool, exe: &Path) -> Result<()> {
        let scan = dir.join("sv");
        fs::create_dir_all(&scan)?;
        for i in 0..n {
            // runit has no readiness protocol: started is all it knows.
            service_dir(&scan.join(format!("s{i:04}")), fifo, 0, exe)?;
        }
        Ok(())
    }

    fn launch(&self, dir: &Path) -> Result<Child> {
        Command::new("runsvdir")
            .arg("-P")
            .arg(dir.join("sv"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("runsvdir (Debian package runit) is required")
    }

    fn processes(&self, child: &Child) -> Vec<u32> {
        let mut p = pids_named("runsv");
        p.push(child.id());
        p
    }

    fn wait_ready(
        &self,
        _dir: &Path,
        _child: &mut Child,
        n: usize,
        rx: &Receiver<(i32, Instant)>,
    ) -> Result<()> {
        // Count announcements without consuming them for the caller.
        let mut seen = Vec::new();
        for _ in 0..n {
            seen.push(recv(rx)?);
        }
        RUNIT_SEEN.with(|s| s.borrow_mut().extend(seen));
        Ok(())
    }

    fn stop(&self, _dir: &Path, child: &mut Child) -> Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
            nix::sys::signal::Signal::SIGHUP,
        )?;
        child.wait()?;
        Ok(())
    }
}

/// Median time for the bench itself to fork+exec one service until it
/// announces its pid: the floor under every respawn figure.
fn exec_baseline(exe: &Path, samples: usize) -> Result<u64> {
    let dir = Scratch::new()?;
    let (fifo, rx) = fifo_reader(dir.path())?;
    let mut times = Vec::new();
    for _ in 0..samples.max(1) {
        let t0 = Instant::now();
        let mut child = Command::new(exe)
            .arg("--service")
            .arg(&fifo)
            .arg("0")
            .stdin(Stdio::null())
            .spawn()?;
        let (_, at) = recv(&rx)?;
        times.push(micros(at.saturating_duration_since(t0)));
        child.kill()?;
        child.wait()?;
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn measure(peer: &dyn Peer, args: &Args, exe: &Path) -> Result<Figures> {
    let mut f = Figures::default();

    // 1 + 2: idle memory, then first-restart latency on the same set.
    {
        let dir = Scratch::new()?;
        let (fifo, rx) = fifo_reader(dir.path())?;
        let n = args.idle.max(args.crashes);
        peer.prepare(dir.path(), n, &fifo, true, exe)?;
        let mut child = peer.launch(dir.path())?;
        if let Some(err) = child.stderr.take() {
            // Drain flexvisor's console so it never blocks.
            std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
        }
        let mut pids = Vec::new();
        for _ in 0..n {
            pids.push(recv(&rx)?.0);
        }
        // Let everything settle (and pass s6/runit's one-second rule).
        std::thread::sleep(Duration::from_millis(2500));
        let procs = peer.processes(&child);
        let (rss, pss) = memory(&procs);
        f.idle_rss_kib = rss;
        f.idle_pss_kib = pss;
        f.idle_processes = procs.len();
        for pid in pids.clone().iter().take(args.crashes) {
            let t0 = Instant::now();
            nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL)?;
            let (new, at) = recv(&rx)?;
            pids.push(new);
            f.respawn_samples_us
                .push(micros(at.saturating_duration_since(t0)));
            // Space the samples so one restart does not queue behind another.
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut s = f.respawn_samples_us.clone();
        s.sort_unstable();
        f.respawn_median_us = s.get(s.len() / 2).copied().unwrap_or(0);
        peer.stop(dir.path(), &mut child)?;
        wait("idle services gone", Duration::from_secs(60), || {
            !pids.iter().any(|p| alive(*p))
        })?;
    }

    // 3 + 4: start many with readiness, then shut down.
    if args.start > 0 {
        let dir = Scratch::new()?;
        let (fifo, rx) = fifo_reader(dir.path())?;
        peer.prepare(dir.path(), args.start, &fifo, true, exe)?;
        let t0 = Instant::now();
        let mut child = peer.launch(dir.path())?;
        peer.wait_ready(dir.path(), &mut child, args.start, &rx)?;
        f.start_all_ready_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut pids: Vec<i32> =
            RUNIT_SEEN.with(|s| s.borrow_mut().drain(..).map(|(p, _)| p).collect());
        while pids.len() < args.start {
            pids.push(recv(&rx)?.0);
        }
        std::thread::sleep(Duration::from_millis(500));
        let t1 = Instant::now();
        peer.stop(dir.path(), &mut child)?;
        wait("services gone", Duration::from_secs(120), || {
            !pids.iter().any(|p| alive(*p))
        })?;
        f.shutdown_ms = u64::try_from(t1.elapsed().as_millis()).unwrap_or(u64::MAX);
    }
    Ok(f)
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv
        .first()
        .is_some_and(|a| a.ends_with("/run") || a == "run")
    {
        // s6 / runit: configuration from the service directory.
        let fifo = fs::read_to_string("fifo").context("./fifo")?;
        let fd = fs::read_to_string("ready-fd").unwrap_or_default();
        service(Path::new(fifo.trim()), fd.trim().parse().unwrap_or(0));
    }
    if argv.get(1).map(String::as_str) == Some("--service") {
        let fifo = argv.get(2).context("--service FIFO FD")?;
        let fd = argv.get(3).and_then(|f| f.parse().ok()).unwrap_or(0);
        service(Path::new(fifo), fd);
    }
    let args = Args::parse();
    let exe = std::env::current_exe()?;
    let fv = match &args.flexvisor {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("flexvisor"),
    };
    if !fv.exists() {
        bail!("{} not found; build it or pass --flexvisor", fv.display());
    }
    let mut peers: Vec<Box<dyn Peer>> = Vec::new();
    for p in &args.peers {
        peers.push(match p.as_str() {
            "flexvisor" => Box::new(Flexvisor {
                bin: fv.clone(),
                cgroups: None,
            }),
            "flexvisor-cgroups" => {
                let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                    .into_iter()
                    .map(PathBuf::from)
                    .find(|p| flexvisor::cgroup::is_cgroup2(p))
                    .context("flexvisor-cgroups: no cgroup2 mount at /sys/fs/cgroup[/unified]")?;
                Box::new(Flexvisor {
                    bin: fv.clone(),
                    cgroups: Some(root),
                })
            }
            "s6" => Box::new(S6),
            "runit" => Box::new(Runit),
            other => bail!("unknown peer `{other}` (flexvisor, flexvisor-cgroups, s6, runit)"),
        });
    }
    eprintln!("flexvisor-bench: measuring the service start itself ...");
    let baseline = exec_baseline(&exe, args.crashes)?;
    let mut rows = Vec::new();
    for p in &peers {
        eprintln!("flexvisor-bench: measuring {} ...", p.name());
        let f = measure(p.as_ref(), &args, &exe)?;
        rows.push((p.name(), f));
    }
    if args.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, f)| serde_json::json!({"supervisor": n, "figures": f}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"exec_baseline_us": baseline, "rows": v})
            )?
        );
        return Ok(());
    }
    let Some(fv) = rows
        .iter()
        .find(|(n, _)| *n == "flexvisor")
        .map(|(_, f)| f.clone())
    else {
        bail!("--peers must include flexvisor for the table");
    };
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            "-".to_owned()
        } else {
            #[allow(clippy::cast_precision_loss)]
            let r = a as f64 / b as f64;
            format!("{r:.2}x")
        }
    };
    println!(
        "| supervisor | idle RSS, {} services (KiB, procs) | idle PSS (KiB) | first respawn, median of {} (us) | start {} w/ readiness to all-ready (ms) | shutdown of {} (ms) |",
        args.idle, args.crashes, args.start, args.start
    );
    println!("|---|---|---|---|---|---|");
    for (name, f) in &rows {
        println!(
            "| {name} | {} ({}) | {} | {} | {} | {} |",
            f.idle_rss_kib,
            f.idle_processes,
            f.idle_pss_kib,
            f.respawn_median_us,
            f.start_all_ready_ms,
            f.shutdown_ms
        );
    }
    for (name, f) in rows.iter().filter(|(n, _)| !n.starts_with("flexvisor")) {
        println!(
            "| flexvisor / {name} | {} | {} | {} | {} | {} |",
            ratio(fv.idle_rss_kib, f.idle_rss_kib),
            ratio(fv.idle_pss_kib, f.idle_pss_kib),
            ratio(fv.respawn_median_us, f.respawn_median_us),
            ratio(fv.start_all_ready_ms, f.start_all_ready_ms),
            ratio(fv.shutdown_ms, f.shutdown_ms)
        );
    }
    println!(
        "\nBaseline: the bench itself starting one service (fork+exec until it announces itself), median {baseline} us;\nevery respawn figure includes this."
    );
    println!("runit has no readiness protocol: its all-ready is every service started.");
    println!("Respawned services announce readiness (fd 3) to flexvisor and s6: s6-supervise\nrespawns at once only a service that was ready over 1 s before it died, else after 1 s.");
    Ok(())
}
