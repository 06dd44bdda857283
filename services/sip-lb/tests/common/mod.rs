//! Test harness: starts a real sip-lb process with its own config in a temp
//! dir, sipp peers on 127.0.0.x loopback addresses, and reads the lb's
//! metrics. Every process is killed on drop, also when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const LB_BIN: &str = env!("CARGO_BIN_EXE_sip-lb");

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Fails the test clearly when a peer binary is missing.
pub fn require(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{bin} not found in PATH: install the Debian package {package}"
    );
}

/// A port free for both UDP and TCP on `ip` (checked by binding both).
pub fn free_port(ip: &str) -> u16 {
    for _ in 0..200 {
        let u = UdpSocket::bind((ip, 0)).unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

/// Options for one sip-lb instance.
pub struct LbOpts {
    pub proxies: Vec<SocketAddr>,
    pub tcp: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub keepalive_ms: u64,
    pub failures: u32,
    pub flood_rate: f64,
    pub flood_burst: f64,
    pub contact: &'static str,
    /// (max_connections, idle_secs)
    pub streams: Option<(usize, u64)>,
}

impl LbOpts {
    pub fn new(proxies: Vec<SocketAddr>) -> LbOpts {
        LbOpts {
            proxies,
            tcp: true,
            tls: None,
            keepalive_ms: 300,
            failures: 2,
            flood_rate: 5000.0,
            flood_burst: 10000.0,
            contact: "mark",
            streams: None,
        }
    }
}

/// A running sip-lb.
pub struct Lb {
    child: Child,
    pub dir: tempfile::TempDir,
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub internal: SocketAddr,
    pub metrics: SocketAddr,
}

impl Lb {
    /// Starts sip-lb on 127.0.0.1 and waits for READY=1 on NOTIFY_SOCKET.
    pub fn start(o: LbOpts) -> Lb {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port("127.0.0.1");
        let udp = addr("127.0.0.1", port);
        let tcp = o.tcp.then_some(udp);
        let tls = o
            .tls
            .as_ref()
            .map(|_| addr("127.0.0.1", free_port("127.0.0.1")));
        let internal = addr("127.0.0.1", free_port("127.0.0.1"));
        let metrics = addr("127.0.0.1", free_port("127.0.0.1"));
        let mut cfg = format!("[listen]\nudp = \"{udp}\"\ninternal = \"{internal}\"\n");
        if let Some(t) = tcp {
            cfg += &format!("tcp = \"{t}\"\n");
        }
        if let Some(t) = tls {
            cfg += &format!("tls = \"{t}\"\n");
        }
        if let Some((c, k)) = &o.tls {
            cfg += &format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                c.display(),
                k.display()
            );
        }
        for (i, p) in o.proxies.iter().enumerate() {
            cfg += &format!("[[proxy]]\nname = \"pair{}\"\naddress = \"{p}\"\n", i + 1);
        }
        cfg += &format!(
            "[keepalive]\ninterval_ms = {}\nfailures = {}\n[nat]\ncontact = \"{}\"\n\
             [flood]\nrate = {:.1}\nburst = {:.1}\nban_secs = 60\n[metrics]\nlisten = \"{metrics}\"\n",
            o.keepalive_ms, o.failures, o.contact, o.flood_rate, o.flood_burst
        );
        if let Some((max, idle)) = o.streams {
            cfg += &format!("[streams]\nmax_connections = {max}\nidle_secs = {idle}\n");
        }
        let cfg_path = dir.path().join("sip-lb.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("sip-lb.log")).unwrap();
        let child = Command::new(LB_BIN)
            .arg("--config")
            .arg(&cfg_path)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lb = Lb {
            child,
            dir,
            udp,
            tcp,
            tls,
            internal,
            metrics,
        };
        let mut buf = [0u8; 64];
        match notify.recv(&mut buf) {
            Ok(n) => assert_eq!(&buf[..n], b"READY=1\n"),
            Err(e) => panic!("sip-lb did not signal readiness: {e}\n{}", lb.log()),
        }
        assert!(lb.alive(), "sip-lb exited:\n{}", lb.log());
        lb
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sip-lb.log")).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Raw Prometheus text.
    pub fn metrics_text(&self) -> String {
        let mut s = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Value of one metric line (`name` including labels), 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.metrics_text();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }

    /// Polls until `f` holds (generous timeout only to avoid hanging).
    pub fn wait_until(&self, what: &str, mut f: impl FnMut(&Lb) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}\nmetrics:\n{}",
            self.metrics_text()
        );
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sipp process standing in as a proxy pair (real SIP peer).
pub struct Backend {
    child: Child,
    pub addr: SocketAddr,
    pub messages: PathBuf,
    pub errors: PathBuf,
}

impl Backend {
    pub fn start(dir: &Path, ip: &str) -> Backend {
        Backend::start_on(dir, addr(ip, free_port(ip)))
    }

    pub fn start_on(dir: &Path, a: SocketAddr) -> Backend {
        require("sipp", "sip-tester");
        let tag = format!("be-{}-{}", a.ip(), a.port());
        let messages = dir.join(format!("{tag}.msg"));
        let errors = dir.join(format!("{tag}.err"));
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario("proxy_uas.xml"))
            .args(["-i", &a.ip().to_string(), "-p", &a.port().to_string()])
            .args(["-nostdin", "-trace_msg", "-trace_err"])
            .arg("-message_file")
            .arg(&messages)
            .arg("-error_file")
            .arg(&errors)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let b = Backend {
            child,
            addr: a,
            messages,
            errors,
        };
        // sipp listens once its message file exists.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.messages.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    /// How many requests starting with `method ` this backend received.
    pub fn received(&self, method: &str) -> usize {
        let text = std::fs::read_to_string(&self.messages).unwrap_or_default();
        let needle = format!("\n{method} sip:");
        text.matches(&needle).count()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Result of one sipp UAC run.
pub struct UacRun {
    pub status: ExitStatus,
    pub errors: String,
    pub stdout: String,
}

impl UacRun {
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what}: sipp exit {:?}\nerrors:\n{}\nstdout tail:\n{}",
            self.status.code(),
            self.errors,
            tail(&self.stdout, 3000)
        );
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs a sipp UAC scenario against `target` and waits for it (bounded).
pub fn uac(
    dir: &Path,
    scenario_file: &str,
    target: SocketAddr,
    local_ip: &str,
    calls: u32,
    rate: u32,
    transport: &str,
) -> UacRun {
    require("sipp", "sip-tester");
    let port = free_port(local_ip);
    let errors = dir.join(format!("uac-{local_ip}-{port}.err"));
    let out = dir.join(format!("uac-{local_ip}-{port}.out"));
    let mut child = Command::new("sipp")
        .arg("-sf")
        .arg(scenario(scenario_file))
        .arg(target.to_string())
        .args(["-s", "service", "-i", local_ip, "-p", &port.to_string()])
        .args(["-t", transport])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            "50",
        ])
        .args(["-timeout", "60s", "-nostdin", "-trace_err"])
        .arg("-error_file")
        .arg(&errors)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    UacRun {
        status,
        errors: std::fs::read_to_string(&errors).unwrap_or_default(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
    }
}

/// Sends one UDP request from `from_ip` and returns the first reply, if any.
pub fn udp_exchange(from_ip: &str, to: SocketAddr, msg: &[u8], wait: Duration) -> Option<String> {
    let s = UdpSocket::bind((from_ip, 0)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(msg, to).unwrap();
    let mut buf = vec![0u8; 65536];
    s.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// An OPTIONS request from `local` to the service behind the lb.
pub fn options(local: SocketAddr, lb: SocketAddr, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:service@{lb} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@{local}>;tag=t1\r\nTo: <sip:service@{lb}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}
