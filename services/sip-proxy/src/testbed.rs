//! Real peers for the integration tests and the bench binary: a private
//! MariaDB server and a private Redis server, each in its own temporary
//! directory on a free loopback port, killed and removed on drop.
//!
//! This module starts processes and is meant for tests and benchmarks only;
//! the proxy itself never calls it. A missing peer binary is an error that
//! names the Debian package to install, never a silent skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Why a peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("{binary} not found in PATH or /usr/sbin: install Debian package {package}")]
    MissingBinary {
        binary: &'static str,
        package: &'static str,
    },
    #[error("creating temporary directory {path}: {source}")]
    TempDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("running {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what} not ready after {secs} s; log:\n{log}")]
    NotReady {
        what: String,
        secs: u64,
        log: String,
    },
}

/// A directory under the system temp dir removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory whose name contains the pid and a counter.
    pub fn new(prefix: &str) -> Result<Self, TestbedError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| TestbedError::TempDir {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Finds a peer binary in PATH, /usr/sbin or /usr/bin.
pub fn find_binary(binary: &'static str, package: &'static str) -> Result<PathBuf, TestbedError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/bin".into());
    dirs.push("/usr/local/bin".into());
    dirs.into_iter()
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .ok_or(TestbedError::MissingBinary { binary, package })
}

/// Returns a loopback port that was free a moment ago.
pub fn free_tcp_port(ip: &str) -> Result<u16, TestbedError> {
    let l = TcpListener::bind((ip, 0)).map_err(|source| TestbedError::Spawn {
        what: format!("binding {ip}:0 to find a free port"),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| TestbedError::Spawn {
            what: "reading local address".into(),
            source,
        })
}

/// Returns a UDP port on `ip` that was free a moment ago.
pub fn free_udp_port(ip: &str) -> Result<u16, TestbedError> {
    let s = std::net::UdpSocket::bind((ip, 0)).map_err(|source| TestbedError::Spawn {
        what: format!("binding udp {ip}:0 to find a free port"),
        source,
    })?;
    s.local_addr()
        .map(|a| a.port())
        .map_err(|source| TestbedError::Spawn {
            what: "reading local address".into(),
            source,
        })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn read_log(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = s.lines().rev().take(30).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn is_bind_error(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("Can't start server: Bind")
}

fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A private MariaDB server with grant tables disabled, listening on a
/// loopback port; database `flexvisor` exists. It can be killed and started
/// again on the same port and data directory ("central database down, then
/// back").
#[derive(Debug)]
pub struct MariaDb {
    child: Option<Child>,
    pub port: u16,
    pub socket: PathBuf,
    // Dropped after the child is killed (field order).
    dir: TempDir,
}

impl MariaDb {
    /// Initialises a data directory and starts `mariadbd`; returns once it
    /// accepts connections and database `flexvisor` has been created.
    /// Retries (new port, new directory) when another process grabbed the
    /// port between choosing and binding it.
    pub fn start() -> Result<Self, TestbedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once() {
                Err(TestbedError::Failed { detail, .. })
                    if attempt < 3 && is_bind_error(&detail) => {}
                other => return other,
            }
        }
    }

    fn start_once() -> Result<Self, TestbedError> {
        let install = find_binary("mariadb-install-db", "mariadb-server")?;
        let dir = TempDir::new("mariadb")?;
        // Private temporary files: bootstraps running at the same time and
        // sharing /tmp have tripped over each other's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|source| TestbedError::TempDir {
            path: tmp.clone(),
            source,
        })?;
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if running_as_root() {
            cmd.arg("--user=root");
        }
        let out = cmd.output().map_err(|source| TestbedError::Spawn {
            what: install.display().to_string(),
            source,
        })?;
        if !out.status.success() {
            return Err(TestbedError::Failed {
                what: "mariadb-install-db".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let mut me = Self {
            child: None,
            port: free_tcp_port("127.0.0.1")?,
            socket: dir.path().join("mysqld.sock"),
            dir,
        };
        me.resume()?;
        me.client("CREATE DATABASE IF NOT EXISTS flexvisor")?;
        Ok(me)
    }

    /// Starts the server (again) on the same port and data directory and
    /// waits until it accepts connections. Nothing happens if it runs.
    pub fn resume(&mut self) -> Result<(), TestbedError> {
        if self.child.is_some() {
            return Ok(());
        }
        let daemon = find_binary("mariadbd", "mariadb-server")?;
        let log = self.dir.path().join("mysqld.err");
        let mut cmd = Command::new(&daemon);
        cmd.arg("--no-defaults")
            .arg(format!(
                "--datadir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!(
                "--tmpdir={}",
                self.dir.path().join("tmp").display()
            ))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-grant-tables")
            .arg("--skip-name-resolve")
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg("--innodb-buffer-pool-size=32M")
            // Many test servers at once must not exhaust fs.aio-max-nr.
            .arg("--innodb-use-native-aio=0")
            .arg("--innodb-log-file-size=16M")
            .arg("--max-connections=500")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if running_as_root() {
            cmd.arg("--user=root");
        }
        let mut child = cmd.spawn().map_err(|source| TestbedError::Spawn {
            what: daemon.display().to_string(),
            source,
        })?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestbedError::Failed {
                    what: format!("mariadbd (exit {status})"),
                    detail: read_log(&log),
                });
            }
            if self.socket.exists() && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                kill_child(&mut child);
                return Err(TestbedError::NotReady {
                    what: "mariadbd".into(),
                    secs: 90,
                    log: read_log(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL, like a crashed or unreachable db node);
    /// [`MariaDb::resume`] brings it back with its data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Runs SQL through the `mariadb` client as root over the socket,
    /// returning its standard output (tab-separated, no column names).
    pub fn client(&self, sql: &str) -> Result<String, TestbedError> {
        let client = find_binary("mariadb", "mariadb-client")?;
        let out = Command::new(&client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("-uroot")
            .arg("--batch")
            .arg("--skip-column-names")
            .arg("-e")
            .arg(sql)
            .output()
            .map_err(|source| TestbedError::Spawn {
                what: client.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(TestbedError::Failed {
                what: format!("mariadb -e {sql:.80}"),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// URL for sqlx over TCP to database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private, non-persistent Redis server on a loopback port.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` and returns once it answers PING (retrying on
    /// another port if the chosen one was taken meanwhile).
    pub fn start() -> Result<Self, TestbedError> {
        let dir = TempDir::new("sip-proxy-redis")?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_tcp_port("127.0.0.1")?;
            match Self::spawn(&dir, port) {
                Ok(child) => {
                    return Ok(Self {
                        child,
                        port,
                        _dir: dir,
                    })
                }
                Err(TestbedError::Failed { detail, .. })
                    if attempt < 3 && is_bind_error(&detail) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Kills the server (simulating an outage); `restart` brings it back.
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub fn restart(&mut self) -> Result<(), TestbedError> {
        kill_child(&mut self.child);
        self.child = Self::spawn(&self._dir, self.port)?;
        Ok(())
    }

    fn spawn(dir: &TempDir, port: u16) -> Result<Child, TestbedError> {
        let bin = find_binary("redis-server", "redis-server")?;
        let log = dir.path().join("redis.log");
        let child = Command::new(&bin)
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .arg("--daemonize")
            .arg("no")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| TestbedError::Spawn {
                what: bin.display().to_string(),
                source,
            })?;
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestbedError::Failed {
                    what: format!("redis-server (exit {status})"),
                    detail: read_log(&log),
                });
            }
            if ping(port) {
                return Ok(child);
            }
            if Instant::now() > deadline {
                kill_child(&mut child);
                return Err(TestbedError::NotReady {
                    what: "redis-server".into(),
                    secs: 30,
                    log: read_log(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
