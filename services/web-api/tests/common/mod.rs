//! Shared set-up for the web-api integration tests: a private MariaDB (from
//! `sip_proxy::testbed`, the same peer the sip-proxy tests use), a
//! self-signed certificate made by `web-api gen-cert`, an admin made by
//! `web-api admin add`, the daemon started with `--notify-fd`, and curl as the
//! HTTPS client verifying the server against that certificate.
//! Every process is killed and every directory removed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
pub use sip_proxy::testbed::{find_binary, free_tcp_port, MariaDb, TempDir};

pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "admin-password-1";

/// The web-api binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_web-api")
}

/// curl, or a failing test that names the package.
pub fn curl_bin() -> PathBuf {
    find_binary("curl", "curl").unwrap_or_else(|e| panic!("{e}"))
}

/// A running web-api with its own MariaDB, certificate and admin.
pub struct WebApi {
    child: Option<Child>,
    pub port: u16,
    pub dir: TempDir,
    pub config: PathBuf,
    pub cert: PathBuf,
    pub db: MariaDb,
}

/// Who a request claims to be.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    None,
    Admin,
    Basic(&'a str, &'a str),
}

/// An HTTP reply as curl saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: Value,
    pub raw: String,
}

impl Reply {
    /// The `field` of a JSON error body.
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

impl WebApi {
    /// Starts MariaDB and the API (schema applied by the daemon), and adds
    /// admin [`ADMIN`] with password [`ADMIN_PW`].
    pub fn start() -> WebApi {
        Self::start_with("")
    }

    /// Like [`WebApi::start`] with extra config lines.
    pub fn start_with(extra: &str) -> WebApi {
        let db = MariaDb::start().unwrap_or_else(|e| panic!("starting MariaDB: {e}"));
        let dir = TempDir::new("web-api-test").unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = Command::new(bin())
            .args(["gen-cert", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--name", "localhost", "--name", "127.0.0.1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "gen-cert: {out:?}");
        let port = free_tcp_port("127.0.0.1").unwrap();
        let config = dir.path().join("web-api.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"{db}\"\nshutdown_grace_secs = 60\n{extra}\n\n[tls]\ncert = \"{c}\"\nkey = \"{k}\"\n",
                db = db.url("flexvisor"),
                c = cert.display(),
                k = key.display()
            ),
        )
        .unwrap();
        admin_add(&config, ADMIN, ADMIN_PW);
        let mut w = WebApi {
            child: None,
            port,
            dir,
            config,
            cert,
            db,
        };
        w.spawn();
        w
    }

    /// Starts the daemon and waits for its newline on the notify fd.
    pub fn spawn(&mut self) {
        let ready = self.dir.path().join("ready");
        std::fs::write(&ready, "").unwrap();
        let log = std::fs::File::create(self.log_path()).unwrap();
        // fd 3 is the readiness file, opened by the shell as a supervisor would.
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg("exec \"$0\" --config \"$1\" --notify-fd 3 3>>\"$2\"")
            .arg(bin())
            .arg(&self.config)
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning web-api");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::fs::read(&ready).unwrap_or_default().contains(&b'\n') {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("web-api exited before ready ({st}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "web-api not ready in 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("web-api.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            signal("TERM", &c.id().to_string());
        }
    }

    /// Waits (at most 60 s) for the daemon to exit; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("web-api did not exit in 60 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One request through curl, verifying the server certificate.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>, auth: Auth<'_>) -> Reply {
        curl(
            &self.base(),
            &self.cert,
            method,
            path,
            body,
            auth,
            self.dir.path(),
        )
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, Auth::Admin)
    }
    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, Some(body), Auth::Admin)
    }
    pub fn put(&self, path: &str, body: &str) -> Reply {
        self.request("PUT", path, Some(body), Auth::Admin)
    }
    pub fn patch(&self, path: &str, body: &str) -> Reply {
        self.request("PATCH", path, Some(body), Auth::Admin)
    }
    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, Auth::Admin)
    }

    /// POSTs and asserts 201; the created object.
    pub fn create(&self, path: &str, body: &str) -> Value {
        let r = self.post(path, body);
        assert_eq!(r.status, 201, "POST {path} {body}: {}", r.raw);
        r.body
    }

    /// A connection to the test database.
    pub async fn pool(&self) -> sqlx::MySqlPool {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .connect(&self.db.url("flexvisor"))
            .await
            .unwrap()
    }
}

impl Drop for WebApi {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `web-api admin add` with `password` on stdin.
pub fn admin_add(config: &Path, user: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(["admin", "add", "--config"])
        .arg(config)
        .args(["--username", user, "--iterations", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "admin add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One HTTPS request with curl against `base`, trusting only `ca`.
pub fn curl(
    base: &str,
    ca: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
    auth: Auth<'_>,
    scratch: &Path,
) -> Reply {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let hdr = scratch.join(format!("curl-{n}.headers"));
    let out_file = scratch.join(format!("curl-{n}.body"));
    let mut cmd = Command::new(curl_bin());
    cmd.args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(["-X", method, "-D"])
        .arg(&hdr)
        .arg("-o")
        .arg(&out_file)
        .args(["-w", "%{http_code}"]);
    match auth {
        Auth::None => {}
        Auth::Admin => {
            cmd.args(["-u", &format!("{ADMIN}:{ADMIN_PW}")]);
        }
        Auth::Basic(u, p) => {
            cmd.args(["-u", &format!("{u}:{p}")]);
        }
    }
    if body.is_some() {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    cmd.arg(format!("{base}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(b) = body {
        stdin.write_all(b.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {path} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let status: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let raw = std::fs::read_to_string(&out_file).unwrap_or_default();
    let headers = std::fs::read_to_string(&hdr).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_file(&hdr);
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        raw,
    }
}

/// Creates domain example.com and customer 1 ("acme"); returns the customer id.
pub fn seed(api: &WebApi) -> u64 {
    api.create("/api/v1/domains", r#"{"name": "example.com"}"#);
    let c = api.create(
        "/api/v1/customers",
        r#"{"name": "acme", "max_concurrent_calls": 10}"#,
    );
    c["id"].as_u64().unwrap()
}

/// Sends signal `sig` (e.g. "TERM") to `pid` with the shell's kill builtin.
pub fn signal(sig: &str, pid: &str) {
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -{sig} \"$0\""))
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// SIGKILLs the test's mariadbd (database outage).
pub fn kill_database(api: &WebApi) {
    let pid = std::fs::read_to_string(api.db.dir().join("mysqld.pid")).unwrap();
    signal("KILL", &pid);
}
