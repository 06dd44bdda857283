//! A db pair on loopback for the hook tests: two MariaDB servers in
//! master/master replication and two Redis servers, each in its own
//! temporary directory on a free 127.0.0.1 port, killed and removed on drop.
//!
//! The test drives and inspects the servers with the stock clients
//! (`mariadb`, `redis-cli`), never with the code under test. A missing
//! binary fails the test with the Debian package to install.
//!
//! Start state (C5, node A active): A's MariaDB writable and Redis master;
//! B's MariaDB `read_only = ON`, B's Redis a replica of A's, link up.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const DB: &str = "flexvisor";
const FAILOVER_PW: &str = "fo-secret";
const APP_PW: &str = "app-secret";
const REPL_PW: &str = "repl-secret";

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
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

pub fn find(binary: &str, package: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{binary} not found: install Debian package {package}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Poll `f` until it is true; panic naming `what` after a generous bound
/// (the bound only prevents hangs; nothing is timed).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let v: Vec<&str> = s.lines().rev().take(30).collect();
    v.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A MariaDB server with the binary log on, as one node of the pair.
pub struct Maria {
    child: Option<Child>,
    pub port: u16,
    pub socket: PathBuf,
    dir: TempDir,
}

impl Maria {
    pub fn start(server_id: u32) -> Maria {
        let install = find("mariadb-install-db", "mariadb-server");
        let daemon = find("mariadbd", "mariadb-server");
        find("mariadb", "mariadb-client");
        let dir = TempDir::new(&format!("db-failover-maria{server_id}"));
        let data = dir.path().join("data");
        // Private temporary files: concurrent bootstraps sharing /tmp have been
        // seen to trip over each other's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let root = running_as_root();
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg(format!("--tmpdir={}", tmp.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if root {
            cmd.arg("--user=root");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let socket = dir.path().join("mysqld.sock");
        let log = dir.path().join("mysqld.err");
        let mut cmd = Command::new(&daemon);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-name-resolve")
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--server-id={server_id}"))
            .arg("--log-bin=mysql-bin")
            .arg("--relay-log=relay-bin")
            .arg("--binlog-format=ROW")
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--innodb-use-native-aio=0")
            .arg("--innodb-log-file-size=16M")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if root {
            cmd.arg("--user=root");
        }
        let child = cmd.spawn().unwrap();
        let mut m = Maria {
            child: Some(child),
            port,
            socket,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(st))) = m.child.as_mut().map(|c| c.try_wait()) {
                panic!("mariadbd exited ({st}):\n{}", log_tail(&log));
            }
            if m.socket.exists() && m.try_sql("SELECT 1").is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd not ready after 60 s:\n{}",
                log_tail(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m.sql(&format!(
            "SET sql_log_bin = 0;
             CREATE DATABASE {DB};
             CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;
             CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{REPL_PW}';
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
             CREATE USER 'failover'@'localhost' IDENTIFIED BY '{FAILOVER_PW}';
             GRANT ALL PRIVILEGES ON *.* TO 'failover'@'localhost';
             CREATE USER 'failover'@'127.0.0.1' IDENTIFIED BY '{FAILOVER_PW}';
             GRANT ALL PRIVILEGES ON *.* TO 'failover'@'127.0.0.1';
             CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{APP_PW}';
             GRANT SELECT, INSERT, UPDATE, DELETE ON {DB}.* TO 'app'@'127.0.0.1';"
        ));
        m
    }

    /// Run SQL as root over the socket; tab-separated rows without headers.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(find("mariadb", "mariadb-client"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("mariadb :{}: {sql}: {e}", self.port))
    }

    /// Run SQL as the application (no SUPER, no READ_ONLY ADMIN) over TCP,
    /// as the C5 services connect.
    pub fn app(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(find("mariadb", "mariadb-client"))
            .arg("--no-defaults")
            .args(["-h127.0.0.1", &format!("-P{}", self.port), "-uapp"])
            .arg(format!("-p{APP_PW}"))
            .args(["-N", "-B", DB, "-e", sql])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn read_only(&self) -> bool {
        self.sql("SELECT @@global.read_only") == "1"
    }

    /// `SHOW SLAVE STATUS` field.
    pub fn slave_field(&self, name: &str) -> String {
        // Not through sql(): -N would drop the field names of \G output.
        let out = Command::new(find("mariadb", "mariadb-client"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "-e", "SHOW SLAVE STATUS\\G"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        out.lines()
            .filter_map(|l| l.trim().split_once(": "))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    }

    /// Replicate from `peer` (binlog positions from the start).
    pub fn replicate_from(&self, peer: &Maria, delay_s: u32) {
        self.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
             MASTER_PASSWORD='{REPL_PW}', MASTER_USE_GTID=no, MASTER_CONNECT_RETRY=1, \
             MASTER_DELAY={delay_s}; START SLAVE;",
            peer.port
        ));
    }

    /// `(File, Position)` of `SHOW MASTER STATUS`.
    pub fn binlog_pos(&self) -> (String, u64) {
        let s = self.sql("SHOW MASTER STATUS");
        let mut f = s.split('\t');
        (
            f.next().unwrap().to_owned(),
            f.next().unwrap().parse().unwrap(),
        )
    }

    /// Kill the server (a crash: no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A non-persistent Redis server.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    netns: Option<String>,
    dir: TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_in(None, free_port())
    }

    /// Start in network namespace `netns` (its own loopback) when given.
    pub fn start_in(netns: Option<&str>, port: u16) -> Redis {
        let bin = find("redis-server", "redis-server");
        find("redis-cli", "redis-tools");
        let dir = TempDir::new("db-failover-redis");
        let log = dir.path().join("redis.log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // As the image's redis.conf for db nodes.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut r = Redis {
            child: Some(child),
            port,
            netns: netns.map(str::to_owned),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while r.try_cli(&["PING"]).as_deref() != Ok("PONG") {
            if let Some(Ok(Some(st))) = r.child.as_mut().map(|c| c.try_wait()) {
                panic!("redis-server exited ({st}):\n{}", log_tail(&log));
            }
            assert!(
                Instant::now() < deadline,
                "redis-server not ready:\n{}",
                log_tail(&log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let cli = find("redis-cli", "redis-tools");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(cli);
                c
            }
            None => Command::new(cli),
        };
        let out = cmd
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        let so = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // redis-cli prints server errors on stdout with exit 0.
        if !out.status.success() || so.starts_with("ERR") || so.starts_with("READONLY") {
            Err(format!(
                "{so}{}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        } else {
            Ok(so)
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("redis-cli :{} {args:?}: {e}", self.port))
    }

    /// First line of `ROLE`: `master` or `slave`.
    pub fn role(&self) -> Vec<String> {
        self.cli(&["ROLE"]).lines().map(str::to_owned).collect()
    }

    /// `master_link_status` from `INFO replication` (`up`/`down`), if a replica.
    pub fn link(&self) -> Option<String> {
        self.cli(&["INFO", "replication"]).lines().find_map(|l| {
            l.trim()
                .strip_prefix("master_link_status:")
                .map(str::to_owned)
        })
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which node of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// The two db nodes on loopback.
pub struct Pair {
    pub maria_a: Maria,
    pub maria_b: Maria,
    pub redis_a: Redis,
    pub redis_b: Redis,
    pub creds: PathBuf,
    dir: TempDir,
}

/// How the hook ran.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "--json output: {e}\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_db-failover"))
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl Pair {
    /// Start the pair with `delay_b` seconds of MASTER_DELAY on B's
    /// replication from A (0 normally).
    pub fn start_with_delay(delay_b: u32) -> Pair {
        let (maria_a, maria_b) = std::thread::scope(|s| {
            let a = s.spawn(|| Maria::start(1));
            let b = s.spawn(|| Maria::start(2));
            (a.join().unwrap(), b.join().unwrap())
        });
        let redis_a = Redis::start();
        let redis_b = Redis::start();
        maria_a.replicate_from(&maria_b, 0);
        maria_b.replicate_from(&maria_a, delay_b);
        for (n, m) in [("A", &maria_a), ("B", &maria_b)] {
            wait_for(&format!("{n}'s replication threads running"), || {
                m.slave_field("Slave_IO_Running") == "Yes"
                    && m.slave_field("Slave_SQL_Running") == "Yes"
            });
        }
        maria_b.sql("SET GLOBAL read_only = ON");
        redis_b.cli(&["REPLICAOF", "127.0.0.1", &redis_a.port.to_string()]);
        wait_for("B's Redis linked to A's", || {
            redis_b.link().as_deref() == Some("up")
        });
        let dir = TempDir::new("db-failover-pair");
        let creds = dir.path().join("secrets");
        std::fs::write(
            &creds,
            format!(
                "# test accounts\nmariadb.user = failover\nmariadb.password = \"{FAILOVER_PW}\"\n"
            ),
        )
        .unwrap();
        Pair {
            maria_a,
            maria_b,
            redis_a,
            redis_b,
            creds,
            dir,
        }
    }

    pub fn start() -> Pair {
        Pair::start_with_delay(0)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn maria(&self, s: Side) -> &Maria {
        match s {
            Side::A => &self.maria_a,
            Side::B => &self.maria_b,
        }
    }

    pub fn redis(&self, s: Side) -> &Redis {
        match s {
            Side::A => &self.redis_a,
            Side::B => &self.redis_b,
        }
    }

    /// Flags that point the hook at node `s` and its peer.
    pub fn flags(&self, s: Side) -> Vec<String> {
        let peer = match s {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        vec![
            "--peer-host".into(),
            "127.0.0.1".into(),
            "--redis-port".into(),
            self.redis(s).port.to_string(),
            "--peer-redis-port".into(),
            self.redis(peer).port.to_string(),
            "--mysql-socket".into(),
            self.maria(s).socket.display().to_string(),
            "--credentials".into(),
            self.creds.display().to_string(),
            "--json".into(),
        ]
    }

    /// Run `db-failover ACTION` for node `s`.
    pub fn hook(&self, action: &str, s: Side) -> Run {
        run(Command::new(bin()).arg(action).args(self.flags(s)))
    }
}
