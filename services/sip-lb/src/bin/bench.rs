//! sip-lb-bench: sip-lb against Kamailio (stateless dispatcher, Call-ID hash,
//! algorithm 0) relaying the same sipp load to the same two sipp backends on
//! loopback. Prints max messages/s without loss and CPU per 1000 messages
//! for each relay, side by side, with ratios.
//!
//! Run a release build: `cargo run --release -p sip-lb --bin sip-lb-bench`.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PROXY_UAS: &str = include_str!("../../tests/scenarios/proxy_uas.xml");
const OPTIONS_UAC: &str = include_str!("../../tests/scenarios/options_uac.xml");
const CALL_UAC: &str = include_str!("../../tests/scenarios/call_uac.xml");

const HELP: &str = "\
sip-lb-bench: sip-lb vs Kamailio under the same sipp load

USAGE: sip-lb-bench [--step-secs N] [--options-rates R,R,..] [--call-rates R,R,..] [--json] [--keep-temp]

Each relay gets the same ramp of sipp rates (calls/s); a step passes when every
sipp call succeeds with no retransmission (-nr, 2 s receive timeout; a failed
step is retried once, the machine being shared). Reported:
the highest passing step in relayed messages/s, and relay CPU (user+system, all
threads/processes) per 1000 relayed messages at that step and at the first step
(same offered load for both relays). The ramp stops after two lossy steps in a row.
Needs: sipp (sip-tester), kamailio; uses 127.0.0.1..3 only.
";

struct Opts {
    step: u64,
    options_rates: Vec<u32>,
    call_rates: Vec<u32>,
    json: bool,
    keep: bool,
}

fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        step: 4,
        options_rates: vec![500, 1000, 2000, 3000, 4000, 5000, 6000, 8000],
        call_rates: vec![100, 200, 300, 400, 600, 800, 1000, 1300],
        json: false,
        keep: false,
    };
    let mut it = args.iter();
    let rates = |v: Option<&String>| -> Result<Vec<u32>, String> {
        v.ok_or("missing rate list")?
            .split(',')
            .map(|r| {
                r.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad rate {r:?}"))
            })
            .collect()
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => o.json = true,
            "--keep-temp" => o.keep = true,
            "--step-secs" => {
                o.step = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--step-secs needs a number")?
            }
            "--options-rates" => o.options_rates = rates(it.next())?,
            "--call-rates" => o.call_rates = rates(it.next())?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(o))
}

fn free_port(ip: &str) -> u16 {
    loop {
        let Ok(u) = UdpSocket::bind((ip, 0)) else {
            continue;
        };
        let Ok(a) = u.local_addr() else { continue };
        if TcpListener::bind((ip, a.port())).is_ok() {
            return a.port();
        }
    }
}

/// Kills the child (and for Kamailio its process group) on drop.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU ticks (utime+stime) of `pid` and all its descendants.
fn cpu_ticks(pid: u32) -> u64 {
    let mut total = 0;
    let mut pids = vec![pid];
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut table = Vec::new();
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the ")" of comm: state ppid ... utime(14) stime(15).
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 13 {
            continue;
        }
        let ppid: u32 = f[1].parse().unwrap_or(0);
        let t: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        table.push((p, ppid, t));
    }
    let mut i = 0;
    while i < pids.len() {
        let cur = pids[i];
        for &(p, ppid, t) in &table {
            if p == cur {
                total += t;
            }
            if ppid == cur && !pids.contains(&p) {
                pids.push(p);
            }
        }
        i += 1;
    }
    total
}

fn ticks_per_sec() -> f64 {
    // Linux USER_HZ is 100 on every architecture we build for.
    100.0
}

fn start_backend(dir: &Path, ip: &str) -> Result<(Proc, SocketAddr), String> {
    let port = free_port(ip);
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(dir.join("proxy_uas.xml"))
        .args(["-i", ip, "-p", &port.to_string(), "-nostdin", "-bind_local"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("sipp (backend): {e}; install sip-tester"))?;
    Ok((
        Proc {
            child,
            name: "sipp backend",
        },
        format!("{ip}:{port}").parse().map_err(|e| format!("{e}"))?,
    ))
}

fn start_sip_lb(dir: &Path, backends: &[SocketAddr]) -> Result<(Proc, SocketAddr), String> {
    let lb_bin = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("sip-lb");
    let port = free_port("127.0.0.1");
    let internal = free_port("127.0.0.1");
    let mut cfg = format!(
        "[listen]\nudp = \"127.0.0.1:{port}\"\ninternal = \"127.0.0.1:{internal}\"\nworkers = 1\n\
         [keepalive]\ninterval_ms = 2000\n[flood]\nrate = 1000000.0\nburst = 1000000.0\n"
    );
    for (i, b) in backends.iter().enumerate() {
        let _ = write!(cfg, "[[proxy]]\nname = \"p{i}\"\naddress = \"{b}\"\n");
    }
    let path = dir.join("sip-lb.toml");
    std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
    let child = Command::new(&lb_bin)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", lb_bin.display()))?;
    Ok((
        Proc {
            child,
            name: "sip-lb",
        },
        format!("127.0.0.1:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?,
    ))
}

fn kamailio_mpath() -> Result<PathBuf, String> {
    for d in [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
        "/usr/local/lib64/kamailio/modules",
    ] {
        if Path::new(d).join("dispatcher.so").exists() {
            return Ok(PathBuf::from(d));
        }
    }
    Err("kamailio modules (dispatcher.so) not found: install the kamailio package".into())
}

fn start_kamailio(dir: &Path, backends: &[SocketAddr]) -> Result<(Proc, SocketAddr), String> {
    let port = free_port("127.0.0.1");
    let list = dir.join("dispatcher.list");
    let mut l = String::new();
    for b in backends {
        let _ = writeln!(l, "1 sip:{b} 0 0");
    }
    std::fs::write(&list, l).map_err(|e| e.to_string())?;
    let cfg = format!(
        r#"#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{mpath}/"
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "sanity.so"
loadmodule "textops.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "{list}")
modparam("dispatcher", "ds_ping_interval", 2)
modparam("dispatcher", "ds_probing_mode", 1)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check()) {{
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            forward();
            exit;
        }}
    }}
    if (is_method("INVITE|SUBSCRIBE")) {{
        record_route();
    }}
    if (!ds_select_dst("1", "0")) {{
        sl_send_reply("503", "Service Unavailable");
        exit;
    }}
    forward();
    exit;
}}
"#,
        mpath = kamailio_mpath()?.display(),
        list = list.display()
    );
    let path = dir.join("kamailio.cfg");
    std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(&path)
        .args(["-DD", "-E", "-m", "128", "-M", "16"])
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("kamailio.log")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("kamailio: {e}; install the kamailio package"))?;
    Ok((
        Proc {
            child,
            name: "kamailio",
        },
        format!("127.0.0.1:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?,
    ))
}

/// Result of one sipp step.
struct Step {
    ok: bool,
    calls: u64,
    cpu_secs: f64,
    wall: f64,
}

fn run_step(
    dir: &Path,
    scenario: &str,
    target: SocketAddr,
    rate: u32,
    secs: u64,
    relay_pid: u32,
) -> Step {
    let calls = u64::from(rate) * secs;
    let port = free_port("127.0.0.3");
    let before = cpu_ticks(relay_pid);
    let t0 = Instant::now();
    let status = Command::new("sipp")
        .arg("-sf")
        .arg(dir.join(scenario))
        .arg(target.to_string())
        .args(["-s", "service", "-i", "127.0.0.3", "-p", &port.to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args([
            "-nr",
            "-recv_timeout",
            "2000",
            "-timeout",
            &format!("{}s", secs * 4 + 20),
        ])
        // A late 180 after its 200 (multi-worker relays may reorder) is not
        // loss: do not abort calls on unexpected messages; lost ones still
        // time out.
        .args(["-default_behaviors", "all,-abortunexp"])
        .args(["-nostdin", "-l", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let wall = t0.elapsed().as_secs_f64();
    let cpu_secs = cpu_ticks(relay_pid).saturating_sub(before) as f64 / ticks_per_sec();
    Step {
        ok: status.is_ok_and(|s| s.success()),
        calls,
        cpu_secs,
        wall,
    }
}

#[derive(Default, Clone, Copy)]
struct Best {
    msgs_per_sec: f64,
    cpu_ms_per_1000: f64,
    /// CPU per 1000 messages at the first (lowest) rate, the same offered
    /// load for every relay.
    cpu_ref: f64,
}

/// One workload against one relay.
struct Load<'a> {
    dir: &'a Path,
    scenario: &'a str,
    per_call: u64,
    label: &'a str,
}

fn ramp(load: &Load<'_>, target: SocketAddr, pid: u32, rates: &[u32], secs: u64) -> Best {
    let mut best = Best::default();
    let mut failures = 0;
    for &r in rates {
        let (per_call, label) = (load.per_call, load.label);
        let mut s = run_step(load.dir, load.scenario, target, r, secs, pid);
        if !s.ok {
            // The machine is shared: one retry so a scheduling hiccup of the
            // load generator does not end the ramp for either relay.
            eprintln!("  {label}: {r} calls/s: loss, retrying once");
            std::thread::sleep(Duration::from_millis(500));
            s = run_step(load.dir, load.scenario, target, r, secs, pid);
        }
        let msgs = (s.calls * per_call) as f64;
        eprintln!(
            "  {label}: {r} calls/s x {secs}s -> {} ({:.0} msg/s, relay cpu {:.2}s, wall {:.1}s)",
            if s.ok { "ok" } else { "LOSS" },
            msgs / s.wall.max(0.001),
            s.cpu_secs,
            s.wall
        );
        let cpu = s.cpu_secs * 1000.0 / (msgs / 1000.0);
        if Some(&r) == rates.first() {
            best.cpu_ref = cpu;
        }
        if !s.ok {
            // Two lossy steps in a row: saturated (one may be noise).
            failures += 1;
            if failures == 2 {
                break;
            }
            continue;
        }
        failures = 0;
        // Offered rate is what sipp sustained without loss.
        best.msgs_per_sec = f64::from(r) * per_call as f64;
        best.cpu_ms_per_1000 = cpu;
        std::thread::sleep(Duration::from_millis(500));
    }
    best
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sip-lb-bench: {e}");
            return ExitCode::from(3);
        }
    };
    match bench(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sip-lb-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn bench(o: &Opts) -> Result<(), String> {
    let tmp = std::env::temp_dir().join(format!("sip-lb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let _cleanup = (!o.keep).then(|| TempDirGuard(tmp.clone()));
    if o.keep {
        eprintln!("keeping {}", tmp.display());
    }
    for (name, text) in [
        ("proxy_uas.xml", PROXY_UAS),
        ("options_uac.xml", OPTIONS_UAC),
        ("call_uac.xml", CALL_UAC),
    ] {
        std::fs::write(tmp.join(name), text).map_err(|e| e.to_string())?;
    }
    let (_b1, a1) = start_backend(&tmp, "127.0.0.2")?;
    let (_b2, a2) = start_backend(&tmp, "127.0.0.2")?;
    let backends = [a1, a2];
    let mut rows = Vec::new();
    for relay in ["sip-lb", "kamailio"] {
        let (p, target) = if relay == "sip-lb" {
            start_sip_lb(&tmp, &backends)?
        } else {
            start_kamailio(&tmp, &backends)?
        };
        std::thread::sleep(Duration::from_millis(1500));
        let pid = p.child.id();
        eprintln!("{relay} ({}) at {target}", p.name);
        // OPTIONS: request + response through the relay = 2 messages.
        let opt = ramp(
            &Load {
                dir: &tmp,
                scenario: "options_uac.xml",
                per_call: 2,
                label: "OPTIONS",
            },
            target,
            pid,
            &o.options_rates,
            o.step,
        );
        // Call: INVITE 180 200 ACK BYE 200 = 6 messages.
        let call = ramp(
            &Load {
                dir: &tmp,
                scenario: "call_uac.xml",
                per_call: 6,
                label: "calls",
            },
            target,
            pid,
            &o.call_rates,
            o.step,
        );
        rows.push((relay, opt, call));
        drop(p);
        std::thread::sleep(Duration::from_millis(500));
    }
    let (lb, kam) = (&rows[0], &rows[1]);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    if o.json {
        let j = |b: &Best| {
            format!(
                "{{\"max_msgs_per_sec\":{:.0},\"cpu_ms_per_1000_at_max\":{:.2},\"cpu_ms_per_1000_at_first_step\":{:.2}}}",
                b.msgs_per_sec, b.cpu_ms_per_1000, b.cpu_ref
            )
        };
        println!(
            "{{\"options\":{{\"sip_lb\":{},\"kamailio\":{}}},\"calls\":{{\"sip_lb\":{},\"kamailio\":{}}}}}",
            j(&lb.1),
            j(&kam.1),
            j(&lb.2),
            j(&kam.2)
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<9} {:>20} {:>20} {:>22}",
        "load", "relay", "max msg/s (no loss)", "CPU ms/1k msgs @max", "CPU ms/1k @first step"
    );
    for (label, pick) in [("OPTIONS", 1usize), ("calls", 2)] {
        for row in &rows {
            let b = if pick == 1 { row.1 } else { row.2 };
            println!(
                "{:<8} {:<9} {:>20.0} {:>20.2} {:>22.2}",
                label, row.0, b.msgs_per_sec, b.cpu_ms_per_1000, b.cpu_ref
            );
        }
        let (l, k) = if pick == 1 {
            (lb.1, kam.1)
        } else {
            (lb.2, kam.2)
        };
        println!(
            "{:<8} {:<9} {:>19.2}x {:>19.2}x {:>21.2}x",
            label,
            "ratio",
            ratio(l.msgs_per_sec, k.msgs_per_sec),
            ratio(l.cpu_ms_per_1000, k.cpu_ms_per_1000),
            ratio(l.cpu_ref, k.cpu_ref)
        );
    }
    println!(
        "(ratio = sip-lb / kamailio: throughput above 1 and CPU below 1 favour sip-lb. The ramp \
         stops after two lossy steps in a row; the first-step column compares CPU at the same \
         offered load. The machine is shared, so single runs are noisy.)"
    );
    Ok(())
}

struct TempDirGuard(PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
