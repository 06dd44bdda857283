//! End to end: a subscriber created through the API registers with digest
//! authentication through a real sip-proxy (against the same MariaDB, with
//! its Redis), phone played by sipp; after the subscriber is deleted
//! through the API, the next REGISTER is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sip_proxy::testbed::{free_udp_port, Redis};

const DOMAIN: &str = "example.com";

/// The workspace's sip-proxy binary (built when missing: `cargo test -p
/// web-api` alone does not build other packages' binaries).
fn sip_proxy_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/sip-proxy
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("sip-proxy");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "sip-proxy", "--bin", "sip-proxy"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p sip-proxy");
        assert!(st.success(), "cargo build -p sip-proxy failed");
    }
    assert!(bin.is_file(), "sip-proxy not found at {}", bin.display());
    bin
}

struct Proxy {
    child: Child,
    addr: std::net::SocketAddr,
    dir: TempDir,
}

impl Proxy {
    fn start(db_url: &str, redis: &Redis) -> Proxy {
        let dir = TempDir::new("web-api-e2e-proxy").unwrap();
        let port = free_udp_port("127.0.0.1").unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = dir.path().join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\nnode = \"proxy-webapi-{pid}\"\ndomains = [\"{DOMAIN}\"]\n\
                 database_url = \"{db_url}\"\nredis_url = \"{redis}\"\nspool_dir = \"{spool}\"\n\
                 nonce_secret = \"web-api-e2e\"\nalgorithms = [\"MD5\", \"SHA-256\"]\n",
                pid = std::process::id(),
                redis = redis.url(),
                spool = dir.path().join("spool").display(),
            ),
        )
        .unwrap();
        let sock = dir.path().join("notify");
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let mut child = Command::new(sip_proxy_binary())
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &sock)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 64];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if buf[..n].starts_with(b"READY=1") {
                    break;
                }
            }
            let log = || std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default();
            if let Ok(Some(st)) = child.try_wait() {
                panic!("sip-proxy exited ({st}):\n{}", log());
            }
            assert!(Instant::now() < deadline, "sip-proxy not ready:\n{}", log());
        }
        Proxy { child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs sipp once: REGISTER `user` with `password`, expecting `expect` as
/// the reply to the authenticated REGISTER. Returns (success, traces).
fn sipp_register(proxy: &Proxy, user: &str, password: &str, expect: u16) -> (bool, String) {
    let sipp = find_binary("sipp", "sip-tester").unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("web-api-e2e-sipp").unwrap();
    let xml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/register.xml"),
    )
    .unwrap()
    .replace("{user}", user)
    .replace("{password}", password)
    .replace("{domain}", DOMAIN)
    .replace("{expect}", &expect.to_string());
    let sf = dir.path().join("register.xml");
    std::fs::write(&sf, xml).unwrap();
    let port = free_udp_port("127.0.0.1").unwrap();
    let out = Command::new(sipp)
        .current_dir(dir.path())
        .arg("-sf")
        .arg(&sf)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-nostdin",
        ])
        .args([
            "-timeout",
            "30s",
            "-timeout_error",
            "-trace_err",
            "-trace_msg",
        ])
        .arg(proxy.addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let mut traces = String::from_utf8_lossy(&out.stderr).into_owned();
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            traces.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    (out.status.success(), traces)
}

#[test]
fn subscriber_provisioned_through_the_api_registers_until_deleted() {
    let api = WebApi::start();
    let redis = Redis::start().unwrap_or_else(|e| panic!("starting Redis: {e}"));
    let customer = seed(&api);
    let proxy = Proxy::start(&api.db.url("flexvisor"), &redis);

    // Unknown before provisioning: the authenticated REGISTER is refused.
    let (ok, traces) = sipp_register(&proxy, "erin", "erin-secret-1", 403);
    assert!(
        ok,
        "REGISTER before provisioning should get 403:\n{traces}\n{}",
        proxy.log()
    );

    let sub = api.create(
        "/api/v1/subscribers",
        &format!(
            r#"{{"username": "erin", "domain": "{DOMAIN}", "password": "erin-secret-1", "customer_id": {customer}}}"#
        ),
    );
    let (ok, traces) = sipp_register(&proxy, "erin", "erin-secret-1", 200);
    assert!(
        ok,
        "REGISTER of the provisioned subscriber failed:\n{traces}\n{}",
        proxy.log()
    );
    // A wrong password is not accepted (the proxy challenges again).
    let (ok, traces) = sipp_register(&proxy, "erin", "wrong-password", 401);
    assert!(ok, "wrong password should be challenged again:\n{traces}");

    // Password changed through the API: the old one stops working.
    let r = api.patch(
        &format!("/api/v1/subscribers/{}", sub["id"]),
        r#"{"password": "erin-secret-2"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let (ok, traces) = sipp_register(&proxy, "erin", "erin-secret-1", 401);
    assert!(ok, "old password must be refused:\n{traces}");
    let (ok, traces) = sipp_register(&proxy, "erin", "erin-secret-2", 200);
    assert!(ok, "new password must register:\n{traces}\n{}", proxy.log());

    // Deleted through the API: the next REGISTER is refused.
    assert_eq!(
        api.delete(&format!("/api/v1/subscribers/{}", sub["id"]))
            .status,
        204
    );
    let (ok, traces) = sipp_register(&proxy, "erin", "erin-secret-2", 403);
    assert!(
        ok,
        "REGISTER after deletion should get 403:\n{traces}\n{}",
        proxy.log()
    );
}
