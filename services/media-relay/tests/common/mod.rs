//! Shared set-up for the media-relay integration tests: the relay binary
//! in a temporary directory with its own config, a private redis-server,
//! and a small ng control client written independently of the crate's own
//! (so an encoding bug cannot cancel itself out). Everything runs on
//! 127.0.0.1 and is killed/removed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

// ------------------------------------------------------------ temp dirs

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A media port range of 40 ports private to this test (by pid and a
/// counter; the relay skips ports someone else holds anyway).
pub fn port_range() -> (u16, u16) {
    static N: AtomicU32 = AtomicU32::new(0);
    let slot = (std::process::id() % 50) * 8 + N.fetch_add(1, Ordering::Relaxed) % 8;
    let min = 20000 + (slot as u16) * 40;
    (min, min + 39)
}

/// Waits up to `secs` for `f` to return Some.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------- bencode

/// A bencode value (test-side implementation).
#[derive(Debug, Clone, PartialEq)]
pub enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(BTreeMap<String, B>),
}

impl B {
    pub fn s(x: &str) -> B {
        B::S(x.as_bytes().to_vec())
    }
    pub fn get(&self, k: &str) -> &B {
        match self {
            B::D(d) => d
                .get(k)
                .unwrap_or_else(|| panic!("no key {k:?} in {self:?}")),
            _ => panic!("not a dict: {self:?}"),
        }
    }
    pub fn has(&self, k: &str) -> bool {
        matches!(self, B::D(d) if d.contains_key(k))
    }
    pub fn str(&self) -> String {
        match self {
            B::S(s) => String::from_utf8_lossy(s).into_owned(),
            _ => panic!("not a string: {self:?}"),
        }
    }
    pub fn int(&self) -> i64 {
        match self {
            B::I(i) => *i,
            _ => panic!("not an int: {self:?}"),
        }
    }
    pub fn list(&self) -> &[B] {
        match self {
            B::L(l) => l,
            _ => panic!("not a list: {self:?}"),
        }
    }
    pub fn enc(&self, out: &mut Vec<u8>) {
        match self {
            B::I(i) => out.extend(format!("i{i}e").bytes()),
            B::S(s) => {
                out.extend(format!("{}:", s.len()).bytes());
                out.extend(s);
            }
            B::L(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.enc(out));
                out.push(b'e');
            }
            B::D(d) => {
                out.push(b'd');
                for (k, v) in d {
                    B::s(k).enc(out);
                    v.enc(out);
                }
                out.push(b'e');
            }
        }
    }
    pub fn dec(b: &[u8], i: &mut usize) -> B {
        match b[*i] {
            b'i' => {
                let e = b[*i..].iter().position(|c| *c == b'e').unwrap() + *i;
                let n = std::str::from_utf8(&b[*i + 1..e]).unwrap().parse().unwrap();
                *i = e + 1;
                B::I(n)
            }
            b'l' => {
                *i += 1;
                let mut l = Vec::new();
                while b[*i] != b'e' {
                    l.push(B::dec(b, i));
                }
                *i += 1;
                B::L(l)
            }
            b'd' => {
                *i += 1;
                let mut d = BTreeMap::new();
                while b[*i] != b'e' {
                    let k = B::dec(b, i).str();
                    d.insert(k, B::dec(b, i));
                }
                *i += 1;
                B::D(d)
            }
            _ => {
                let c = b[*i..].iter().position(|c| *c == b':').unwrap() + *i;
                let n: usize = std::str::from_utf8(&b[*i..c]).unwrap().parse().unwrap();
                let s = b[c + 1..c + 1 + n].to_vec();
                *i = c + 1 + n;
                B::S(s)
            }
        }
    }
}

/// Builds a dictionary.
pub fn d(pairs: &[(&str, B)]) -> B {
    B::D(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// An ng control client on its own UDP socket.
pub struct Ng {
    pub sock: UdpSocket,
    pub peer: SocketAddr,
    n: u32,
}

impl Ng {
    pub fn new(peer: SocketAddr) -> Ng {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Ng { sock, peer, n: 0 }
    }

    /// Sends raw bytes and returns the raw reply (retries 20 times).
    pub fn raw(&self, dg: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 65536];
        for _ in 0..20 {
            self.sock.send_to(dg, self.peer).unwrap();
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                return buf[..n].to_vec();
            }
        }
        panic!(
            "no reply from {} to {:?}",
            self.peer,
            String::from_utf8_lossy(dg)
        );
    }

    /// Sends a command dictionary; returns the reply dictionary.
    pub fn cmd(&mut self, msg: &B) -> B {
        self.n += 1;
        let cookie = format!("t{}_{}", std::process::id(), self.n);
        let mut dg = format!("{cookie} ").into_bytes();
        msg.enc(&mut dg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..20 {
            self.sock.send_to(&dg, self.peer).unwrap();
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                    let r = &buf[..n];
                    if let Some(rest) = r.strip_prefix(format!("{cookie} ").as_bytes()) {
                        return B::dec(rest, &mut 0);
                    }
                }
            }
        }
        panic!("no reply from {} to {msg:?}", self.peer);
    }

    pub fn ping(&mut self) -> B {
        self.cmd(&d(&[("command", B::s("ping"))]))
    }

    pub fn offer(&mut self, call: &str, from: &str, sdp: &str) -> B {
        self.cmd(&d(&[
            ("command", B::s("offer")),
            ("call-id", B::s(call)),
            ("from-tag", B::s(from)),
            ("sdp", B::s(sdp)),
        ]))
    }

    pub fn answer(&mut self, call: &str, from: &str, to: &str, sdp: &str) -> B {
        self.cmd(&d(&[
            ("command", B::s("answer")),
            ("call-id", B::s(call)),
            ("from-tag", B::s(from)),
            ("to-tag", B::s(to)),
            ("sdp", B::s(sdp)),
        ]))
    }

    pub fn delete(&mut self, call: &str, from: &str) -> B {
        self.cmd(&d(&[
            ("command", B::s("delete")),
            ("call-id", B::s(call)),
            ("from-tag", B::s(from)),
        ]))
    }

    pub fn query(&mut self, call: &str) -> B {
        self.cmd(&d(&[("command", B::s("query")), ("call-id", B::s(call))]))
    }

    pub fn list(&mut self) -> Vec<String> {
        let r = self.cmd(&d(&[("command", B::s("list"))]));
        assert_eq!(r.get("result").str(), "ok", "{r:?}");
        r.get("calls").list().iter().map(B::str).collect()
    }
}

/// An SDP body offering one audio stream at 127.0.0.1:`port`.
pub fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// (c= address, m= port, a=rtcp port) of the first stream of an SDP body.
pub fn sdp_media(body: &str) -> (String, u16, Option<u16>) {
    let mut c = None;
    let mut m = None;
    let mut rtcp = None;
    for l in body.lines() {
        if let Some(v) = l.strip_prefix("c=IN IP4 ") {
            c = Some(v.trim().to_string());
        }
        if let Some(v) = l.strip_prefix("m=audio ") {
            m = v.split(' ').next().and_then(|p| p.parse().ok());
        }
        if let Some(v) = l.strip_prefix("a=rtcp:") {
            rtcp = v.split(' ').next().and_then(|p| p.trim().parse().ok());
        }
    }
    (c.expect("no c= line"), m.expect("no m=audio line"), rtcp)
}

/// Whether `port` on 127.0.0.1 can be bound (i.e. the relay let it go).
pub fn port_is_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

// ---------------------------------------------------------- relay process

/// The media-relay binary under test.
pub struct RelayProc {
    child: Option<Child>,
    pub control: SocketAddr,
    pub metrics: SocketAddr,
    pub range: (u16, u16),
    pub dir: TempDir,
    pub config: PathBuf,
    n: u32,
}

pub fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_media-relay")
}

impl RelayProc {
    /// Starts the relay with `extra` appended to a loopback config.
    pub fn start(extra: &str) -> RelayProc {
        Self::start_with(extra, port_range())
    }

    pub fn start_with(extra: &str, range: (u16, u16)) -> RelayProc {
        let mut r = Self::unstarted(extra, range);
        r.spawn();
        r
    }

    /// Writes the config but does not start the process.
    pub fn unstarted(extra: &str, range: (u16, u16)) -> RelayProc {
        let dir = TempDir::new("media-relay-test");
        let control: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            format!(
                "control = \"{control}\"\naddress = \"127.0.0.1\"\nport_min = {}\nport_max = {}\n\
                 {extra}\n[metrics]\nlisten = \"{metrics}\"\n",
                range.0, range.1
            ),
        )
        .unwrap();
        RelayProc {
            child: None,
            control,
            metrics,
            range,
            dir,
            config,
            n: 0,
        }
    }

    /// (Re)starts the process on the same config; waits for READY=1.
    pub fn spawn(&mut self) {
        self.n += 1;
        let sock_path = self.dir.path().join(format!("notify-{}", self.n));
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("relay.log"))
            .unwrap();
        let mut child = Command::new(relay_bin())
            .arg("--config")
            .arg(&self.config)
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning media-relay");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 64];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if buf[..n].starts_with(b"READY=1") {
                    break;
                }
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("media-relay exited before ready ({st}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "media-relay not ready:\n{}",
                self.log()
            );
        }
        self.child = Some(child);
    }

    pub fn ng(&self) -> Ng {
        Ng::new(self.control)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// SIGKILL (a crash, or the node dying).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// GET `path` from the metrics endpoint.
    pub fn http(&self, path: &str) -> String {
        let mut s = TcpStream::connect(self.metrics).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of an unlabelled metric.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.http("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.kill();
    }
}

// --------------------------------------------------------------- redis

/// A private redis-server on a loopback port.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = TempDir::new("media-relay-redis");
        let bin = [
            "/usr/bin/redis-server",
            "/usr/sbin/redis-server",
            "/usr/local/bin/redis-server",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("redis-server not found: install Debian package redis-server");
        let port = free_tcp_port();
        let child = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server");
        wait_for(30, "redis-server to answer PING", || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            s.write_all(b"PING\r\n").ok()?;
            let mut b = [0u8; 16];
            let n = s.read(&mut b).ok()?;
            b[..n].starts_with(b"+PONG").then_some(())
        });
        Redis {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Runs one command (inline protocol) and returns the raw reply.
    pub fn command(&self, cmd: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        write!(s, "{cmd}\r\n").unwrap();
        let mut out = Vec::new();
        let mut b = [0u8; 4096];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- phones

/// A phone's media socket: sends RTP-like datagrams, receives them.
pub struct Phone {
    pub sock: UdpSocket,
}

impl Phone {
    pub fn new() -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Phone { sock }
    }
    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }
    /// Sends `payload` to `to` until `rx` receives exactly that payload
    /// (other datagrams are skipped); returns it with its source. At most
    /// 20 s.
    pub fn send_until_received_by(
        &self,
        to: SocketAddr,
        payload: &[u8],
        rx: &Phone,
    ) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        wait_for(20, "a relayed packet", || {
            self.sock.send_to(payload, to).unwrap();
            while let Ok((n, src)) = rx.sock.recv_from(&mut buf) {
                if &buf[..n] == payload {
                    return Some((buf[..n].to_vec(), src));
                }
            }
            None
        })
    }

    /// Drops whatever is queued on the socket.
    pub fn drain(&self) {
        let mut buf = vec![0u8; 65536];
        self.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while self.sock.recv_from(&mut buf).is_ok() {}
        self.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
}

/// A minimal RTP packet (version 2, PT 0) with sequence `seq`.
pub fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78]);
    p.extend_from_slice(payload);
    p
}
