//! Shared set-up for the integration tests: real MariaDB and Redis from
//! `sip_proxy::testbed`, subscriber rows, and helpers to run the proxy and
//! sipp. Every peer is killed and its directory removed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sip_proxy::calls::Calls;
use sip_proxy::spool::{read_all, Event, EventKind};
use sip_proxy::subscriber::SubscriberDb;
use sip_proxy::testbed::{free_udp_port, MariaDb, Redis, TempDir};

pub struct Backends {
    pub db: MariaDb,
    pub redis: Redis,
    pub subs: SubscriberDb,
}

/// One subscriber row to provision.
pub struct Sub<'a> {
    pub user: &'a str,
    pub domain: &'a str,
    pub password: &'a str,
    pub customer: u64,
    pub max_calls: Option<u32>,
}

impl<'a> Sub<'a> {
    /// A subscriber of [`DOMAIN`].
    pub fn new(user: &'a str, password: &'a str, customer: u64, max_calls: Option<u32>) -> Self {
        Sub {
            user,
            domain: DOMAIN,
            password,
            customer,
            max_calls,
        }
    }
}

impl Backends {
    /// Starts MariaDB and Redis, applies the schema, creates customers 1
    /// (customer_max) and 2 (unlimited), and the given subscribers.
    pub async fn start(subs: &[Sub<'_>], customer_max: Option<u32>) -> Backends {
        let db = MariaDb::start().unwrap_or_else(|e| panic!("starting MariaDB: {e}"));
        let redis = Redis::start().unwrap_or_else(|e| panic!("starting Redis: {e}"));
        let conn = SubscriberDb::connect(&db.url("flexvisor"), 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        conn.apply_schema().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO customers (id, name, max_concurrent_calls) VALUES (1, 'acme', ?), (2, 'free', NULL)")
            .bind(customer_max)
            .execute(conn.pool())
            .await
            .unwrap();
        for s in subs {
            sqlx::query("INSERT INTO subscribers (username, domain, password, customer_id, max_concurrent_calls) VALUES (?, ?, ?, ?, ?)")
                .bind(s.user)
                .bind(s.domain)
                .bind(s.password)
                .bind(s.customer)
                .bind(s.max_calls)
                .execute(conn.pool())
                .await
                .unwrap();
        }
        Backends {
            db,
            redis,
            subs: conn,
        }
    }

    pub async fn redis_conn(&self) -> redis::aio::ConnectionManager {
        let client = redis::Client::open(self.redis.url()).unwrap();
        redis::aio::ConnectionManager::new(client).await.unwrap()
    }

    /// A handle on the call counters for reading them, as no proxy node.
    pub async fn calls(&self) -> Calls {
        Calls::new(self.redis_conn().await, "observer", 60)
    }
}

/// A free UDP port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_udp_port("127.0.0.1").unwrap()
}

/// Asserts that no call is counted any more under any of `keys`.
pub async fn assert_counters_free(calls: &Calls, keys: &[&str]) {
    let now = unix_now();
    for key in keys {
        assert_eq!(calls.count(key, now).await.unwrap(), 0, "{key}");
    }
}

pub const DOMAIN: &str = "example.com";
pub const NONCE_SECRET: &str = "test-nonce-secret";

/// The `sip-proxy` binary running against the test backends.
pub struct ProxyProc {
    child: Option<Child>,
    pub addr: std::net::SocketAddr,
    pub dir: TempDir,
    pub config: PathBuf,
    pub spool: PathBuf,
}

impl ProxyProc {
    /// Writes a config (MD5 offered first: sipp 3.6 only speaks MD5) and
    /// starts the proxy; returns once it sent READY=1 on NOTIFY_SOCKET.
    pub fn start(b: &Backends, extra: &str) -> ProxyProc {
        let dir = TempDir::new("sip-proxy-under-test").unwrap();
        let port = free_udp_port("127.0.0.1").unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let spool = dir.path().join("spool");
        let config = dir.path().join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\nnode = \"proxy-test-{pid}\"\ndomains = [\"{DOMAIN}\"]\n\
                 database_url = \"{db}\"\nredis_url = \"{redis}\"\nspool_dir = \"{spool}\"\n\
                 nonce_secret = \"{NONCE_SECRET}\"\nalgorithms = [\"MD5\", \"SHA-256\"]\n{extra}\n",
                pid = std::process::id(),
                db = b.db.url("flexvisor"),
                redis = b.redis.url(),
                spool = spool.display(),
            ),
        )
        .unwrap();
        let mut p = ProxyProc {
            child: None,
            addr,
            dir,
            config,
            spool,
        };
        p.spawn();
        p
    }

    /// (Re)starts the process with the same config and waits for READY=1.
    pub fn spawn(&mut self) {
        let sock_path = self
            .dir
            .path()
            .join(format!("notify-{}", Instant::now().elapsed().as_nanos()));
        let _ = std::fs::remove_file(&sock_path);
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::File::create(self.dir.path().join("proxy.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sip-proxy"))
            .arg("--config")
            .arg(&self.config)
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning sip-proxy");
        wait_ready(&mut child, &notify, "sip-proxy", 60, || self.log());
        self.child = Some(child);
    }

    /// Asserts that the proxy still answers an OPTIONS probe.
    pub fn assert_answers_options(&self) {
        let probe = sip_proxy::probe::probe(&self.addr.to_string());
        assert!(
            matches!(probe, sip_proxy::probe::ProbeResult::Ok { .. }),
            "{probe:?}"
        );
    }

    /// The accounting events in the spool so far.
    pub fn events(&self) -> Vec<Event> {
        read_all(&self.spool).unwrap()
    }

    /// Waits up to `secs` for the first event of `kind` in the spool.
    pub fn wait_for_event(&self, kind: EventKind, secs: u64, what: &str) -> Event {
        wait_for(secs, what, || {
            read_all(&self.spool)
                .ok()
                .and_then(|evs| evs.into_iter().find(|e| e.kind == kind))
        })
    }

    /// SIGKILLs the proxy (simulated crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Waits until `child` sends READY=1 on `notify`, for at most `secs`;
/// panics with `log()` if it exits first or does not make it in time.
fn wait_ready(
    child: &mut Child,
    notify: &UnixDatagram,
    what: &str,
    secs: u64,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 64];
    loop {
        if let Ok(n) = notify.recv(&mut buf) {
            if buf[..n].starts_with(b"READY=1") {
                return;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited before ready ({st}):\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready in {secs} s:\n{}",
            log()
        );
    }
}

/// How many of `evs` are of `kind`.
pub fn count_events(evs: &[Event], kind: EventKind) -> usize {
    evs.iter().filter(|e| e.kind == kind).count()
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A sipp process running one generated scenario.
pub struct Sipp {
    child: Option<Child>,
    pub name: String,
    dir: TempDir,
}

/// Scenario placeholders: {user} {domain} {password} {callee} {pause}.
pub struct Vars<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub callee: &'a str,
    pub pause_ms: u64,
    pub expect: u16,
    pub expires: u32,
}

impl Default for Vars<'_> {
    fn default() -> Self {
        Vars {
            user: "alice",
            password: "",
            callee: "bob",
            pause_ms: 500,
            expect: 200,
            expires: 300,
        }
    }
}

impl<'a> Vars<'a> {
    /// A call by `user` (authenticating with `password`) to `callee`.
    pub fn call(user: &'a str, password: &'a str, callee: &'a str) -> Self {
        Vars {
            user,
            password,
            callee,
            ..Vars::default()
        }
    }
}

pub fn scenario(file: &str, v: &Vars<'_>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("{user}", v.user)
        .replace("{password}", v.password)
        .replace("{callee}", v.callee)
        .replace("{domain}", DOMAIN)
        .replace("{pause}", &v.pause_ms.to_string())
        .replace("{expect}", &v.expect.to_string())
        .replace("{expires}", &v.expires.to_string())
}

impl Sipp {
    /// Starts sipp with `xml` from 127.0.0.1:`local_port` towards `target`.
    pub fn start(
        name: &str,
        xml: &str,
        local_port: u16,
        target: std::net::SocketAddr,
        uas: bool,
    ) -> Sipp {
        let bin =
            sip_proxy::testbed::find_binary("sipp", "sip-tester").unwrap_or_else(|e| panic!("{e}"));
        let dir = TempDir::new(&format!("sipp-{name}")).unwrap();
        let sf = dir.path().join("scenario.xml");
        std::fs::write(&sf, xml).unwrap();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(&sf)
            .arg("-i")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(local_port.to_string())
            .arg("-m")
            .arg("1")
            .arg("-nostdin")
            .arg("-timeout")
            .arg("60s")
            .arg("-timeout_error")
            .arg("-trace_err")
            .arg("-trace_msg")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !uas {
            cmd.arg(target.to_string());
        }
        let child = cmd.spawn().expect("spawning sipp");
        Sipp {
            child: Some(child),
            name: name.into(),
            dir,
        }
    }

    /// sipp playing the scenario `file` with `v` from 127.0.0.1:`port`
    /// towards `target`.
    pub fn client(
        name: &str,
        file: &str,
        v: &Vars<'_>,
        port: u16,
        target: std::net::SocketAddr,
    ) -> Sipp {
        Sipp::start(name, &scenario(file, v), port, target, false)
    }

    /// sipp answering one call as `user` on 127.0.0.1:`port` (uas.xml).
    pub fn answer(name: &str, user: &str, port: u16, target: std::net::SocketAddr) -> Sipp {
        let v = Vars {
            user,
            ..Vars::default()
        };
        Sipp::start(name, &scenario("uas.xml", &v), port, target, true)
    }

    /// Waits for sipp to end (up to 90 s); panics with its traces unless it
    /// exited 0 (every call passed its scenario).
    pub fn expect_success(self) {
        self.expect_success_or(String::new);
    }

    /// As [`Sipp::expect_success`], adding `context()` (peers' logs) to the
    /// failure message.
    pub fn expect_success_or(mut self, context: impl FnOnce() -> String) {
        let code = self.wait();
        assert_eq!(
            code,
            Some(0),
            "sipp {} failed (exit {code:?}):\n{}{}",
            self.name,
            self.traces(),
            context()
        );
    }

    /// Exit code of sipp, None when it had to be killed.
    pub fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// sipp's error and message traces, for failure messages.
    pub fn traces(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    let t = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: String = t
                        .chars()
                        .rev()
                        .take(6000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    out.push_str(&format!("--- {}\n{tail}\n", p.display()));
                }
            }
        }
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Registers `user` with sipp (digest MD5) from 127.0.0.1:`port`.
pub fn sipp_register(proxy: &ProxyProc, user: &str, password: &str, port: u16) {
    let v = Vars {
        user,
        password,
        ..Vars::default()
    };
    Sipp::client(
        &format!("register-{user}"),
        "register.xml",
        &v,
        port,
        proxy.addr,
    )
    .expect_success();
}

/// A call between two sipp phones: the callee answers on `callee_port`
/// (where it is registered), the caller places the call `v` from a free
/// port and holds it for `v.pause_ms`.
pub struct SippCall {
    pub caller: Sipp,
    pub callee: Sipp,
}

impl SippCall {
    pub fn start(
        name: &str,
        v: &Vars<'_>,
        callee_port: u16,
        target: std::net::SocketAddr,
    ) -> SippCall {
        let callee = Sipp::answer(&format!("{name}-callee"), v.callee, callee_port, target);
        let caller = Sipp::client(&format!("{name}-caller"), "uac.xml", v, free_port(), target);
        SippCall { caller, callee }
    }

    /// Both phones completed their scenario (caller checked first).
    pub fn expect_success(self) {
        self.caller.expect_success();
        self.callee.expect_success();
    }
}

/// The call `v` from a free port is refused with `v.expect` (uac_fail.xml).
pub fn sipp_call_refused(name: &str, v: &Vars<'_>, target: std::net::SocketAddr) {
    Sipp::client(name, "uac_fail.xml", v, free_port(), target).expect_success();
}

/// Polls `f` every 50 ms until it returns Some, for at most `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal UDP user agent for what sipp cannot do (SHA-256 digest,
/// stale nonces, Path, inspecting what the proxy forwards).
pub struct Ua {
    pub sock: std::net::UdpSocket,
    pub proxy: std::net::SocketAddr,
    seq: u32,
}

impl Ua {
    pub fn new(proxy: std::net::SocketAddr) -> Ua {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Ua {
            sock,
            proxy,
            seq: 0,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Builds a request from this UA; `extra` are full header lines.
    pub fn build(
        &mut self,
        method: &str,
        ruri: &str,
        from: &str,
        to: &str,
        call_id: &str,
        extra: &[String],
    ) -> String {
        self.seq += 1;
        let mut s = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK{call_id}x{seq};rport\r\n\
             From: <{from}>;tag=ua{seq0}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\n",
            addr = self.addr(),
            seq = self.seq,
            seq0 = call_id.len(),
        );
        for h in extra {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    }

    /// Sends `msg` to the proxy (retransmitting) and returns the first final
    /// response (>= 200).
    pub fn transact(&self, msg: &str) -> sip::Response {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 65535];
        self.sock.send_to(msg.as_bytes(), self.proxy).unwrap();
        loop {
            assert!(Instant::now() < deadline, "no final response to:\n{msg}");
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Ok(sip::Message::Response(r)) = sip::Message::parse(&buf[..n]) {
                        if r.status >= 200 {
                            return r;
                        }
                    }
                }
                Err(_) => {
                    self.sock.send_to(msg.as_bytes(), self.proxy).unwrap();
                }
            }
        }
    }

    /// A REGISTER for `user`@[`DOMAIN`] to `sip:DOMAIN` with `extra`
    /// header lines.
    pub fn register_request(&mut self, user: &str, call_id: &str, extra: &[String]) -> String {
        let aor = format!("sip:{user}@{DOMAIN}");
        self.build("REGISTER", REGISTRAR, &aor, &aor, call_id, extra)
    }

    /// REGISTERs `user` with `extra` header lines; when challenged (401),
    /// repeats the request answering the first challenge with `password`.
    pub fn register(
        &mut self,
        user: &str,
        password: &str,
        call_id: &str,
        extra: &[String],
    ) -> Registration {
        let req = self.register_request(user, call_id, extra);
        let challenge = self.transact(&req);
        if challenge.status != 401 {
            return Registration {
                reply: challenge.clone(),
                challenge,
            };
        }
        let ch = &challenge.headers.www_authenticate().unwrap()[0];
        let mut extra = extra.to_vec();
        extra.push(authorization(ch, user, password));
        let req = self.register_request(user, call_id, &extra);
        Registration {
            reply: self.transact(&req),
            challenge,
        }
    }

    /// INVITEs `to_aor` as `user`@[`DOMAIN`]: expects 407, ACKs it, and
    /// sends the INVITE again answering the challenge for `algorithm` with
    /// `password`. Returns the authenticated INVITE as sent; its responses
    /// are left on the socket.
    pub fn send_authenticated_invite(
        &mut self,
        to_aor: &str,
        user: &str,
        password: &str,
        algorithm: &str,
        call_id: &str,
    ) -> String {
        let from = format!("sip:{user}@{DOMAIN}");
        let first = self.build("INVITE", to_aor, &from, to_aor, call_id, &[]);
        let r = self.transact(&first);
        assert_eq!(r.status, 407);
        // ACK for the 407: same branch as the INVITE (RFC 3261 §17.1.1.3).
        let ack = first
            .replacen("INVITE sip:", "ACK sip:", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
        self.sock.send_to(ack.as_bytes(), self.proxy).unwrap();
        let ch = r
            .headers
            .proxy_authenticate()
            .unwrap()
            .into_iter()
            .find(|c| c.get("algorithm") == Some(algorithm))
            .unwrap();
        let pa = format!(
            "Proxy-Authorization: {}",
            answer_challenge(&ch, "INVITE", to_aor, user, password)
        );
        let invite = self.build("INVITE", to_aor, &from, to_aor, call_id, &[pa]);
        self.sock.send_to(invite.as_bytes(), self.proxy).unwrap();
        invite
    }

    /// Waits up to `secs` for a response on this UA's socket for which
    /// `wanted` holds.
    pub fn wait_response(
        &self,
        secs: u64,
        what: &str,
        mut wanted: impl FnMut(&sip::Response) -> bool,
    ) -> sip::Response {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 65535];
        loop {
            assert!(Instant::now() < deadline, "{what}");
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if let Ok(sip::Message::Response(r)) = sip::Message::parse(&buf[..n]) {
                    if wanted(&r) {
                        return r;
                    }
                }
            }
        }
    }

    /// Waits for a request to arrive on this UA's socket.
    pub fn recv_request(&self, secs: u64) -> (sip::Request, std::net::SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 65535];
        loop {
            assert!(
                Instant::now() < deadline,
                "no request arrived at {}",
                self.addr()
            );
            if let Ok((n, src)) = self.sock.recv_from(&mut buf) {
                if let Ok(sip::Message::Request(r)) = sip::Message::parse(&buf[..n]) {
                    return (r, src);
                }
            }
        }
    }
}

/// The Request-URI of every REGISTER in these tests.
pub const REGISTRAR: &str = "sip:example.com";

/// The first response to a REGISTER (the challenge, when there was one) and
/// the final reply.
pub struct Registration {
    pub challenge: sip::Response,
    pub reply: sip::Response,
}

/// An `Authorization:` header line answering the REGISTER challenge `ch`.
pub fn authorization(ch: &sip::Auth, user: &str, password: &str) -> String {
    format!(
        "Authorization: {}",
        answer_challenge(ch, "REGISTER", REGISTRAR, user, password)
    )
}

/// Digest credentials answering `challenge` (a WWW-/Proxy-Authenticate value).
pub fn answer_challenge(
    challenge: &sip::Auth,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
) -> String {
    use sip_proxy::digest::{ha1, Algorithm};
    let alg = Algorithm::parse(challenge.get("algorithm")).unwrap();
    let realm = challenge.get("realm").unwrap();
    let nonce = challenge.get("nonce").unwrap();
    answer_with_nonce(
        alg,
        realm,
        nonce,
        method,
        uri,
        user,
        &ha1(alg, user, realm, password),
    )
}

/// Digest credentials for an explicit nonce and HA1.
pub fn answer_with_nonce(
    alg: sip_proxy::digest::Algorithm,
    realm: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    user: &str,
    ha1: &str,
) -> String {
    // A new cnonce per answer, as real clients do: the proxy refuses a
    // response it has already seen (replay protection).
    static CNONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let cnonce = format!(
        "{:08x}",
        CNONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    let resp = alg.hash(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"{cnonce}\"",
        alg.name()
    )
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `sip-lb` binary of this workspace (built with `cargo build -p sip-lb`
/// when it is not there yet), relaying between 127.0.0.1 front and the proxy.
pub struct LbProc {
    child: Child,
    pub front: std::net::SocketAddr,
    dir: TempDir,
}

pub fn sip_lb_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/sip-lb
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("sip-lb");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "sip-lb"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p sip-lb");
        assert!(st.success(), "cargo build -p sip-lb failed");
    }
    assert!(
        bin.is_file(),
        "sip-lb binary not found at {}",
        bin.display()
    );
    bin
}

impl LbProc {
    pub fn start(proxy: std::net::SocketAddr) -> LbProc {
        let dir = TempDir::new("sip-lb-for-proxy").unwrap();
        let front: std::net::SocketAddr =
            format!("127.0.0.1:{}", free_udp_port("127.0.0.1").unwrap())
                .parse()
                .unwrap();
        let internal = format!("127.0.0.1:{}", free_udp_port("127.0.0.1").unwrap());
        let config = dir.path().join("lb.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\nudp = \"{front}\"\ninternal = \"{internal}\"\n\n[[proxy]]\nname = \"proxy1\"\naddress = \"{proxy}\"\n\n\
                 [keepalive]\ninterval_ms = 500\n\n[flood]\nrate = 100000.0\nburst = 200000.0\n"
            ),
        )
        .unwrap();
        let sock_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("lb.log")).unwrap();
        let mut child = Command::new(sip_lb_binary())
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning sip-lb");
        wait_ready(&mut child, &notify, "sip-lb", 30, || {
            std::fs::read_to_string(dir.path().join("lb.log")).unwrap_or_default()
        });
        LbProc { child, front, dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lb.log")).unwrap_or_default()
    }
}

impl Drop for LbProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
