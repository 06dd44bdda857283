//! `sip-proxy-bench`: registrations per second with digest authentication
//! against a private MariaDB (and Redis), side by side in one run:
//!
//! - `sip-proxy` (MD5 and SHA-256), bindings in Redis;
//! - `sip-lb` in front of `sip-proxy`, when the sip-lb binary is built;
//! - Kamailio as the anchor peer (auth_db on the same MariaDB, registrar
//!   with usrloc in memory), when `kamailio` and its MySQL module exist.
//!
//! Every registration is REGISTER -> 401 -> REGISTER with Authorization ->
//! 200, over UDP on 127.0.0.1, from `--clients` concurrent UAs, each
//! registering its own share of the subscribers (one contact per AOR);
//! Redis is emptied before every target. CPU is the
//! SIP server's own user+system time (all its processes) per 1000
//! registrations. Build the binaries you compare with the same profile:
//! `cargo build --release -p sip-proxy -p sip-lb`, then run
//! `target/release/sip-proxy-bench`.

use anyhow::{bail, Context};
use sip_proxy::digest::{ha1, Algorithm};
use sip_proxy::subscriber::SubscriberDb;
use sip_proxy::testbed::{find_binary, free_udp_port, MariaDb, Redis, TempDir};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HELP: &str = "\
sip-proxy-bench: registrations/s with digest auth, sip-proxy vs Kamailio

USAGE:
    sip-proxy-bench [--registrations N] [--clients C] [--subscribers S] [--json]

OPTIONS:
    --registrations N   registrations per target (default 5000)
    --clients C         concurrent user agents (default 32)
    --subscribers S     provisioned subscribers (default 1000)
    --json              print the rows as JSON instead of a table
    -h, --help          this text
";

const DOMAIN: &str = "bench.example.com";

struct Opts {
    registrations: u64,
    clients: u64,
    subscribers: u64,
    json: bool,
}

fn parse_opts() -> anyhow::Result<Option<Opts>> {
    let mut o = Opts {
        registrations: 5000,
        clients: 32,
        subscribers: 1000,
        json: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> anyhow::Result<u64> {
            let v = it.next().with_context(|| format!("{name} needs a value"))?;
            v.parse()
                .with_context(|| format!("{name}: {v:?} is not a number"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--registrations" => o.registrations = num("--registrations")?.max(1),
            "--clients" => o.clients = num("--clients")?.clamp(1, 1024),
            "--subscribers" => o.subscribers = num("--subscribers")?.max(1),
            "--json" => o.json = true,
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    o.subscribers = o.subscribers.max(o.clients);
    Ok(Some(o))
}

/// One measured row.
#[derive(Debug, serde::Serialize)]
struct Row {
    target: String,
    ok: u64,
    failed: u64,
    secs: f64,
    per_sec: f64,
    cpu_ms_per_1000: f64,
}

/// CPU seconds (user+system) of `pid` and its direct children.
fn cpu_secs(pid: u32) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(p) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the ")" of the command name.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        if p == pid || ppid == pid {
            let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            total += (ut + st) / tick;
        }
    }
    total
}

struct Proc {
    child: Child,
    _dir: TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sibling_binary(name: &str) -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.with_file_name(name);
    p.is_file().then_some(p)
}

/// Spawns `cmd` with NOTIFY_SOCKET and waits for READY=1.
fn spawn_notified(mut cmd: Command, dir: TempDir, what: &str) -> anyhow::Result<Proc> {
    let sock = dir.path().join("notify");
    let n = UnixDatagram::bind(&sock).context("binding notify socket")?;
    n.set_read_timeout(Some(Duration::from_millis(200)))?;
    let log = std::fs::File::create(dir.path().join("log"))?;
    let child = cmd
        .env("NOTIFY_SOCKET", &sock)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let mut p = Proc { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 64];
    loop {
        if matches!(n.recv(&mut buf), Ok(k) if buf[..k].starts_with(b"READY=1")) {
            return Ok(p);
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            let log = std::fs::read_to_string(p._dir.path().join("log")).unwrap_or_default();
            bail!("{what} exited ({st}) before ready:\n{log}");
        }
        if Instant::now() > deadline {
            bail!("{what} not ready within 60 s");
        }
    }
}

fn start_proxy(db: &MariaDb, redis: &Redis, alg: &str) -> anyhow::Result<(Proc, SocketAddr)> {
    let bin = sibling_binary("sip-proxy")
        .context("sip-proxy binary not found next to the bench: cargo build -p sip-proxy")?;
    let dir = TempDir::new("bench-sip-proxy")?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port("127.0.0.1")?).parse()?;
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{addr}\"\nnode = \"bench\"\ndomains = [\"{DOMAIN}\"]\n\
             database_url = \"{}\"\ndatabase_max_connections = 16\nredis_url = \"{}\"\n\
             spool_dir = \"{}\"\nnonce_secret = \"bench-secret-123\"\nalgorithms = [\"{alg}\"]\n",
            db.url("flexvisor"),
            redis.url(),
            dir.path().join("spool").display()
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&cfg);
    Ok((spawn_notified(cmd, dir, "sip-proxy")?, addr))
}

fn start_lb(proxy: SocketAddr) -> anyhow::Result<Option<(Proc, SocketAddr)>> {
    let Some(bin) = sibling_binary("sip-lb") else {
        return Ok(None);
    };
    let dir = TempDir::new("bench-sip-lb")?;
    let front: SocketAddr = format!("127.0.0.1:{}", free_udp_port("127.0.0.1")?).parse()?;
    let internal = format!("127.0.0.1:{}", free_udp_port("127.0.0.1")?);
    let cfg = dir.path().join("lb.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nudp = \"{front}\"\ninternal = \"{internal}\"\n\n[[proxy]]\nname = \"p1\"\n\
             address = \"{proxy}\"\n\n[flood]\nrate = 1000000.0\nburst = 2000000.0\n"
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&cfg);
    Ok(Some((spawn_notified(cmd, dir, "sip-lb")?, front)))
}

const KAMAILIO_SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS kamailio",
    "CREATE TABLE IF NOT EXISTS kamailio.version (table_name VARCHAR(32) NOT NULL, \
     table_version INT UNSIGNED DEFAULT 0 NOT NULL, CONSTRAINT table_name_idx UNIQUE (table_name))",
    "INSERT IGNORE INTO kamailio.version (table_name, table_version) VALUES ('subscriber', 7)",
    "CREATE TABLE IF NOT EXISTS kamailio.subscriber (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
     username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL, \
     password VARCHAR(64) DEFAULT '' NOT NULL, ha1 VARCHAR(128) DEFAULT '' NOT NULL, \
     ha1b VARCHAR(128) DEFAULT '' NOT NULL, CONSTRAINT account_idx UNIQUE (username, domain))",
];

fn start_kamailio(db: &MariaDb) -> anyhow::Result<Option<(Proc, SocketAddr)>> {
    let Ok(bin) = find_binary("kamailio", "kamailio") else {
        return Ok(None);
    };
    let mpath = Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules");
    if !mpath.join("db_mysql.so").is_file() {
        eprintln!("note: kamailio-mysql-modules missing, Kamailio row skipped");
        return Ok(None);
    }
    let dir = TempDir::new("bench-kamailio")?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port("127.0.0.1")?).parse()?;
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(
        &cfg,
        format!(
            r#"#!KAMAILIO
debug=0
log_stderror=yes
children=2
auto_aliases=no
listen=udp:{addr}
mpath="{mpath}/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "db_mysql.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("auth_db", "db_url", "mysql://root@127.0.0.1:{port}/kamailio")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
modparam("usrloc", "db_mode", 0)
request_route {{
    if (method == "REGISTER") {{
        if (!auth_check("$td", "subscriber", "1")) {{
            auth_challenge("$td", "1");
            exit;
        }}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    sl_send_reply("200", "OK");
}}
"#,
            mpath = mpath.display(),
            port = db.port
        ),
    )?;
    let log = std::fs::File::create(dir.path().join("log"))?;
    let child = Command::new(bin)
        .arg("-f")
        .arg(&cfg)
        .arg("-DD")
        .arg("-E")
        .arg("-m")
        .arg("128")
        .arg("-Y")
        .arg(dir.path())
        .arg("-P")
        .arg(dir.path().join("kamailio.pid"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("spawning kamailio")?;
    let mut p = Proc { child, _dir: dir };
    // Ready once it answers an OPTIONS.
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 2048];
    loop {
        let m = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKready\r\n\
             From: <sip:b@{DOMAIN}>;tag=1\r\nTo: <sip:{addr}>\r\nCall-ID: ready\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            s.local_addr()?
        );
        s.send_to(m.as_bytes(), addr)?;
        if s.recv(&mut buf).is_ok() {
            return Ok(Some((p, addr)));
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            let log = std::fs::read_to_string(p._dir.path().join("log")).unwrap_or_default();
            bail!("kamailio exited ({st}):\n{log}");
        }
        if Instant::now() > deadline {
            bail!("kamailio not answering within 30 s");
        }
    }
}

/// Empties Redis so every target starts from the same state.
fn flush_redis(port: u16) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"FLUSHALL\r\n")?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf)?;
    if !buf[..n].starts_with(b"+OK") {
        bail!("FLUSHALL answered {:?}", String::from_utf8_lossy(&buf[..n]));
    }
    Ok(())
}

/// One UA's registration loop; returns (ok, failed).
fn ua_loop(
    target: SocketAddr,
    alg: Algorithm,
    (subs, clients): (u64, u64),
    next: &AtomicU64,
    total: u64,
    worker: u64,
) -> anyhow::Result<(u64, u64)> {
    // Each UA registers only its own subscribers (worker + k * clients), so
    // every AOR has one contact, as a phone would.
    let slots = (subs / clients).max(1);
    let mut local = 0u64;
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let me = s.local_addr()?;
    let (mut ok, mut failed) = (0, 0);
    let mut buf = [0u8; 8192];
    let mut cseq = 0u32;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            break;
        }
        let user = format!("u{:05}", (worker + clients * (local % slots)) % subs);
        local += 1;
        let call_id = format!("bench-{worker}-{n}");
        let mut auth: Option<String> = None;
        let mut done = false;
        for _attempt in 0..2 {
            cseq += 1;
            let mut msg = format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}.{cseq};rport\r\n\
                 From: <sip:{user}@{DOMAIN}>;tag={worker}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
                 Expires: 600\r\nMax-Forwards: 70\r\n"
            );
            if let Some(a) = &auth {
                msg.push_str(&format!("Authorization: {a}\r\n"));
            }
            msg.push_str("Content-Length: 0\r\n\r\n");
            let resp = exchange(&s, target, &msg, &mut buf);
            match resp {
                Some(r) if r.status == 401 && auth.is_none() => {
                    let ch = r.headers.www_authenticate().ok().and_then(|c| {
                        c.into_iter()
                            .find(|c| c.get("algorithm").unwrap_or("MD5") == alg.name())
                    });
                    let Some(ch) = ch else { break };
                    let realm = ch.get("realm").unwrap_or(DOMAIN).to_string();
                    let nonce = ch.get("nonce").unwrap_or_default().to_string();
                    let h1 = ha1(alg, &user, &realm, &format!("pw-{user}"));
                    let uri = format!("sip:{DOMAIN}");
                    let h2 = alg.hash(&format!("REGISTER:{uri}"));
                    let resp = alg.hash(&format!("{h1}:{nonce}:00000001:c0ffee:auth:{h2}"));
                    auth = Some(format!(
                        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
                         uri=\"{uri}\", response=\"{resp}\", algorithm={}, qop=auth, \
                         nc=00000001, cnonce=\"c0ffee\"",
                        alg.name()
                    ));
                }
                Some(r) if r.status == 200 && auth.is_some() => {
                    done = true;
                    break;
                }
                _ => break,
            }
        }
        if done {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok((ok, failed))
}

/// Sends `msg` and waits for its final response, retransmitting like
/// RFC 3261 Timer E (500 ms, at most 4 tries).
fn exchange(s: &UdpSocket, to: SocketAddr, msg: &str, buf: &mut [u8]) -> Option<sip::Response> {
    let cseq_line = msg.lines().find(|l| l.starts_with("CSeq:"))?.to_string();
    for _ in 0..4 {
        s.send_to(msg.as_bytes(), to).ok()?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            let Ok(n) = s.recv(buf) else { break };
            if let Ok(sip::Message::Response(r)) = sip::Message::parse(&buf[..n]) {
                let same = r
                    .headers
                    .cseq()
                    .map(|c| format!("CSeq: {c}") == cseq_line)
                    .unwrap_or(false);
                if same && r.status >= 200 {
                    return Some(r);
                }
            }
        }
    }
    None
}

fn run_load(
    name: &str,
    target: SocketAddr,
    server_pid: u32,
    alg: Algorithm,
    o: &Opts,
) -> anyhow::Result<Row> {
    let next = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_secs(server_pid);
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..o.clients {
        let next = next.clone();
        let (subs, clients, total) = (o.subscribers, o.clients, o.registrations);
        handles.push(std::thread::spawn(move || {
            ua_loop(target, alg, (subs, clients), &next, total, w)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for h in handles {
        let (a, b) = h
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
        ok += a;
        failed += b;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(server_pid) - cpu0;
    Ok(Row {
        target: name.to_string(),
        ok,
        failed,
        secs,
        per_sec: ok as f64 / secs,
        cpu_ms_per_1000: if ok > 0 {
            cpu * 1000.0 * 1000.0 / ok as f64
        } else {
            0.0
        },
    })
}

async fn provision(db: &MariaDb, subs: u64) -> anyhow::Result<()> {
    let conn = SubscriberDb::connect(&db.url("flexvisor"), 2).await?;
    conn.apply_schema().await?;
    sqlx::query("INSERT INTO customers (id, name) VALUES (1, 'bench')")
        .execute(conn.pool())
        .await?;
    for stmt in KAMAILIO_SCHEMA {
        sqlx::query(stmt).execute(conn.pool()).await?;
    }
    for chunk in (0..subs).collect::<Vec<_>>().chunks(500) {
        let mut ours = String::from(
            "INSERT INTO subscribers (username, domain, password, customer_id) VALUES ",
        );
        let mut kam =
            String::from("INSERT INTO kamailio.subscriber (username, domain, password) VALUES ");
        for (i, n) in chunk.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            ours.push_str(&format!("{sep}('u{n:05}', '{DOMAIN}', 'pw-u{n:05}', 1)"));
            kam.push_str(&format!("{sep}('u{n:05}', '{DOMAIN}', 'pw-u{n:05}')"));
        }
        sqlx::query(&ours).execute(conn.pool()).await?;
        sqlx::query(&kam).execute(conn.pool()).await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let Some(o) = parse_opts()? else {
        return Ok(());
    };
    let db = MariaDb::start()?;
    let redis = Redis::start()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(provision(&db, o.subscribers))?;

    let mut rows = Vec::new();
    if let Some((kam, addr)) = start_kamailio(&db)? {
        rows.push(run_load(
            "kamailio (auth_db MD5, usrloc memory)",
            addr,
            kam.child.id(),
            Algorithm::Md5,
            &o,
        )?);
    }
    for (alg, label) in [
        (Algorithm::Md5, "sip-proxy (MD5, Redis)"),
        (Algorithm::Sha256, "sip-proxy (SHA-256, Redis)"),
    ] {
        flush_redis(redis.port)?;
        let (p, addr) = start_proxy(&db, &redis, alg.name())?;
        rows.push(run_load(label, addr, p.child.id(), alg, &o)?);
        if alg == Algorithm::Md5 {
            if let Some((lb, front)) = start_lb(addr)? {
                flush_redis(redis.port)?;
                // CPU column: the proxy's; the lb's own CPU is reported apart.
                let lb_cpu0 = cpu_secs(lb.child.id());
                let mut row = run_load(
                    "sip-lb -> sip-proxy (MD5, Redis)",
                    front,
                    p.child.id(),
                    alg,
                    &o,
                )?;
                let lb_cpu = cpu_secs(lb.child.id()) - lb_cpu0;
                row.target = format!(
                    "{} [lb {:.1} ms/1000]",
                    row.target,
                    lb_cpu * 1e6 / row.ok.max(1) as f64
                );
                rows.push(row);
            }
        }
    }

    if o.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let anchor = rows
        .iter()
        .find(|r| r.target.starts_with("kamailio"))
        .map(|r| r.per_sec);
    println!(
        "registrations with digest auth: {} per target, {} clients, {} subscribers, loopback UDP",
        o.registrations, o.clients, o.subscribers
    );
    println!(
        "{:<50} {:>7} {:>6} {:>8} {:>9} {:>13} {:>10}",
        "target", "ok", "failed", "secs", "regs/s", "CPU ms/1000", "vs kam."
    );
    for r in &rows {
        let ratio = anchor
            .map(|a| format!("{:.2}x", r.per_sec / a))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "{:<50} {:>7} {:>6} {:>8.2} {:>9.0} {:>13.1} {:>10}",
            r.target, r.ok, r.failed, r.secs, r.per_sec, r.cpu_ms_per_1000, ratio
        );
    }
    if anchor.is_none() {
        println!("(no Kamailio row: install kamailio and kamailio-mysql-modules)");
    }
    Ok(())
}
