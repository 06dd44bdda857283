//! `media-relay-bench`: RTP forwarding throughput and CPU cost of
//! media-relay next to rtpengine's userspace forwarding (Debian's
//! `rtpengine-daemon`, kernel module off) in the same run, on loopback.
//!
//! For each relay: start it, set up `--calls` calls over ng (offer +
//! answer, the same client for both), then push `--packets` RTP packets
//! per direction through every call with a bounded window of packets in
//! flight (so loopback buffers never overflow and loss means the relay
//! dropped them). The default window is 1 (ping-pong per direction, all
//! calls in parallel): rtpengine 10.5 in userspace drops bursts ("Too many
//! packets in UDP receive queue (more than 50), aborting loop") once ~8
//! packets per stream are in flight with 20 calls, and every loss stalls a
//! flow here for 200 ms, which would measure the stall, not forwarding. Reported: packets relayed per second, CPU time of the
//! relay process per 1000 packets (utime + stime from /proc), and the
//! ratios media-relay / rtpengine.
//!
//! Run a release build for meaningful figures:
//! `cargo build --release -p media-relay && target/release/media-relay-bench`

use anyhow::{bail, Context};
use media_relay::bencode::{dict, Value};
use media_relay::client::Client;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HELP: &str = "\
media-relay-bench: RTP relay throughput, media-relay vs rtpengine (userspace)

USAGE:
    media-relay-bench [--calls N] [--packets N] [--window N] [--relay-bin PATH]
                      [--rtpengine PATH] [--json]

    --calls N       concurrent calls (default 20)
    --packets N     packets per call and direction (default 5000)
    --window N      packets in flight per call and direction (default 1)
    --relay-bin P   media-relay binary (default: next to this binary)
    --rtpengine P   rtpengine binary (default /usr/bin/rtpengine); when it is
                    missing the baseline is a plain kernel UDP forwarder
    --json          print the results as JSON
";

struct Opts {
    calls: usize,
    packets: u64,
    window: u64,
    relay_bin: PathBuf,
    rtpengine: PathBuf,
    json: bool,
}

fn parse() -> anyhow::Result<Option<Opts>> {
    let exe = std::env::current_exe()?;
    let mut o = Opts {
        calls: 20,
        packets: 5000,
        window: 1,
        relay_bin: exe.with_file_name("media-relay"),
        rtpengine: PathBuf::from("/usr/bin/rtpengine"),
        json: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().context(format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--calls" => o.calls = val()?.parse()?,
            "--packets" => o.packets = val()?.parse()?,
            "--window" => o.window = val()?.parse()?,
            "--relay-bin" => o.relay_bin = val()?.into(),
            "--rtpengine" => o.rtpengine = val()?.into(),
            "--json" => o.json = true,
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if o.calls == 0 || o.packets == 0 || o.window == 0 {
        bail!("--calls, --packets and --window must be at least 1");
    }
    Ok(Some(o))
}

fn free_udp() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// utime + stime of `pid` in milliseconds (all threads).
fn cpu_ms(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100.
    let hz = 100u64;
    Ok((utime + stime) * 1000 / hz)
}

/// A relay process under test, killed on drop.
struct Proc {
    child: Child,
    _dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn tmpdir(name: &str) -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn start_media_relay(o: &Opts, ctl: u16, min: u16) -> anyhow::Result<Proc> {
    let dir = tmpdir("media-relay-bench")?;
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "control = \"127.0.0.1:{ctl}\"\naddress = \"127.0.0.1\"\nport_min = {min}\nport_max = {}\ntimeout_secs = 600\n",
            min + 999
        ),
    )?;
    let child = Command::new(&o.relay_bin)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", o.relay_bin.display()))?;
    Ok(Proc { child, _dir: dir })
}

fn start_rtpengine(o: &Opts, ctl: u16, min: u16) -> anyhow::Result<Proc> {
    let dir = tmpdir("rtpengine-bench")?;
    let child = Command::new(&o.rtpengine)
        .args([
            "--foreground",
            "--log-stderr",
            "--table=-1",
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ctl}"),
            &format!("--port-min={min}"),
            &format!("--port-max={}", min + 999),
            "--log-level=3",
            "--num-threads=2",
            &format!("--pidfile={}", dir.join("pid").display()),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log"))?)
        .spawn()
        .with_context(|| format!("starting {}", o.rtpengine.display()))?;
    Ok(Proc { child, _dir: dir })
}

/// Baseline when rtpengine is missing: a plain userspace UDP forwarder
/// with one socket per direction, relaying by kernel syscalls only.
fn start_udp_forwarder(
    pairs: &[(UdpSocket, SocketAddr)],
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut v = Vec::new();
    for (s, to) in pairs {
        let s = s.try_clone()?;
        let to = *to;
        v.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok(n) = s.recv(&mut buf) {
                let _ = s.send_to(&buf[..n], to);
            }
        }));
    }
    Ok(v)
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    )
}

fn media_port(sdp: &[u8]) -> anyhow::Result<u16> {
    let text = String::from_utf8_lossy(sdp);
    text.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .context("no m=audio port in the relay's SDP")
}

/// One call: two phones and the relay ports they send to.
struct Call {
    a: UdpSocket,
    b: UdpSocket,
    to_a_side: SocketAddr,
    to_b_side: SocketAddr,
}

async fn setup_calls(ctl: SocketAddr, n: usize, tag: &str) -> anyhow::Result<Vec<Call>> {
    let c = Client::new(ctl).await?;
    // Wait for the control socket.
    let mut up = false;
    for _ in 0..100 {
        if c.call(&dict([("command", Value::str("ping"))]))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !up {
        bail!("relay at {ctl} does not answer ng ping");
    }
    let mut calls = Vec::new();
    for i in 0..n {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        let id = format!("bench-{tag}-{i}");
        let off = c
            .offer_answer(
                "offer",
                &id,
                "ta",
                None,
                sdp(a.local_addr()?.port()).as_bytes(),
            )
            .await?;
        let ans = c
            .offer_answer(
                "answer",
                &id,
                "ta",
                Some("tb"),
                sdp(b.local_addr()?.port()).as_bytes(),
            )
            .await?;
        calls.push(Call {
            a,
            b,
            to_b_side: ([127, 0, 0, 1], media_port(&off)?).into(),
            to_a_side: ([127, 0, 0, 1], media_port(&ans)?).into(),
        });
    }
    Ok(calls)
}

static SSRC: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0x1000_0000);

struct Result1 {
    name: String,
    sent: u64,
    received: u64,
    secs: f64,
    cpu_ms: u64,
}

/// Sends `packets` per call and direction with at most `window` in flight.
fn blast(
    calls: &[Call],
    packets: u64,
    window: u64,
    pid: Option<u32>,
    name: &str,
) -> anyhow::Result<Result1> {
    let mut pkt = vec![0x80u8, 8, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    pkt.extend(std::iter::repeat_n(0xd5u8, 160));
    // Prime: one packet each way so both relays have latched.
    for c in calls {
        c.a.set_read_timeout(Some(Duration::from_millis(500)))?;
        c.b.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 512];
        for _ in 0..20 {
            c.a.send_to(&pkt, c.to_a_side)?;
            if c.b.recv(&mut buf).is_ok() {
                break;
            }
        }
        for _ in 0..20 {
            c.b.send_to(&pkt, c.to_b_side)?;
            if c.a.recv(&mut buf).is_ok() {
                break;
            }
        }
    }
    let cpu0 = pid.map(cpu_ms).transpose()?.unwrap_or(0);
    let t0 = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| -> anyhow::Result<()> {
        for c in calls {
            for (tx, rx, to) in [(&c.a, &c.b, c.to_a_side), (&c.b, &c.a, c.to_b_side)] {
                let (sent, received) = (sent.clone(), received.clone());
                let mut pkt = pkt.clone();
                // One SSRC per sender, as real phones have.
                let ssrc = SSRC.fetch_add(1, Ordering::Relaxed);
                pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
                s.spawn(move || {
                    let mut buf = [0u8; 512];
                    let mut inflight = 0u64;
                    let mut done = 0u64;
                    let mut got = 0u64;
                    let _ = rx.set_read_timeout(Some(Duration::from_millis(200)));
                    while done < packets {
                        while inflight < window && done < packets {
                            // Real RTP: sequence +1, timestamp +160 per packet.
                            let seq = (done as u16).wrapping_add(1);
                            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                            let ts = (done as u32).wrapping_mul(160);
                            pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                            if tx.send_to(&pkt, to).is_ok() {
                                done += 1;
                                inflight += 1;
                            }
                        }
                        match rx.recv(&mut buf) {
                            Ok(_) => {
                                got += 1;
                                inflight -= 1;
                            }
                            // A lost packet: stop waiting for it.
                            Err(_) => inflight = 0,
                        }
                    }
                    // Drain the tail.
                    while inflight > 0 {
                        match rx.recv(&mut buf) {
                            Ok(_) => {
                                got += 1;
                                inflight -= 1;
                            }
                            Err(_) => break,
                        }
                    }
                    sent.fetch_add(done, Ordering::Relaxed);
                    received.fetch_add(got, Ordering::Relaxed);
                });
            }
        }
        Ok(())
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = pid.map(cpu_ms).transpose()?.unwrap_or(0);
    Ok(Result1 {
        name: name.into(),
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        secs,
        cpu_ms: cpu1.saturating_sub(cpu0),
    })
}

fn main() -> anyhow::Result<()> {
    let Some(o) = parse()? else { return Ok(()) };
    if !o.relay_bin.is_file() {
        bail!(
            "{} not found: cargo build --release -p media-relay (or pass --relay-bin)",
            o.relay_bin.display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();

    // media-relay
    let ctl = free_udp()?;
    let relay = start_media_relay(&o, ctl, 42000)?;
    let calls = rt.block_on(setup_calls(([127, 0, 0, 1], ctl).into(), o.calls, "mr"))?;
    results.push(blast(
        &calls,
        o.packets,
        o.window,
        Some(relay.child.id()),
        "media-relay",
    )?);
    drop(calls);
    drop(relay);

    // rtpengine, or the plain forwarder baseline.
    let peer_note = if o.rtpengine.is_file() {
        let ctl = free_udp()?;
        let rtpe = start_rtpengine(&o, ctl, 44000)?;
        let calls = rt.block_on(setup_calls(([127, 0, 0, 1], ctl).into(), o.calls, "re"))?;
        results.push(blast(
            &calls,
            o.packets,
            o.window,
            Some(rtpe.child.id()),
            "rtpengine (userspace)",
        )?);
        "rtpengine: Debian rtpengine-daemon, --table=-1 (no kernel forwarding), --num-threads=2"
    } else {
        // Two forwarding sockets per call, in this process (CPU not isolated).
        let mut calls = Vec::new();
        let mut pairs = Vec::new();
        for _ in 0..o.calls {
            let a = UdpSocket::bind("127.0.0.1:0")?;
            let b = UdpSocket::bind("127.0.0.1:0")?;
            let fa = UdpSocket::bind("127.0.0.1:0")?;
            let fb = UdpSocket::bind("127.0.0.1:0")?;
            calls.push(Call {
                to_a_side: fa.local_addr()?,
                to_b_side: fb.local_addr()?,
                a: a.try_clone()?,
                b: b.try_clone()?,
            });
            pairs.push((fa, b.local_addr()?));
            pairs.push((fb, a.local_addr()?));
        }
        let _threads = start_udp_forwarder(&pairs)?;
        results.push(blast(
            &calls,
            o.packets,
            o.window,
            None,
            "plain UDP forwarder",
        )?);
        "rtpengine not installed: baseline is a plain UDP forwarder thread per socket (CPU not measured)"
    };

    let pps = |r: &Result1| r.received as f64 / r.secs;
    let cpu_per_k = |r: &Result1| r.cpu_ms as f64 * 1000.0 / r.received.max(1) as f64;
    if o.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "relay": r.name, "sent": r.sent, "received": r.received,
                    "seconds": r.secs, "packets_per_second": pps(r),
                    "cpu_ms_per_1000_packets": cpu_per_k(r),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"calls": o.calls, "results": rows, "peer": peer_note})
        );
        return Ok(());
    }
    println!(
        "{} calls x 2 directions x {} packets (172-byte RTP), window {} in flight",
        o.calls, o.packets, o.window
    );
    println!(
        "{:<24} {:>10} {:>10} {:>8} {:>12} {:>16}",
        "relay", "sent", "relayed", "secs", "packets/s", "CPU ms/1000 pkts"
    );
    for r in &results {
        println!(
            "{:<24} {:>10} {:>10} {:>8.2} {:>12.0} {:>16.3}",
            r.name,
            r.sent,
            r.received,
            r.secs,
            pps(r),
            cpu_per_k(r)
        );
    }
    if let [ours, peer] = &results[..] {
        println!(
            "ratio media-relay/{}: throughput {:.2}x, CPU per packet {:.2}x",
            peer.name,
            pps(ours) / pps(peer),
            if peer.cpu_ms > 0 {
                cpu_per_k(ours) / cpu_per_k(peer)
            } else {
                f64::NAN
            }
        );
    }
    println!("{peer_note}");
    Ok(())
}
