//! The API speaks HTTPS only, with the certificate named in the config:
//! a client trusting that certificate verifies the server (by IP and by
//! name), a client trusting another one refuses it, and plain HTTP or
//! garbage on the port gets no answer and does not hurt the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::{Read as _, Write as _};
use std::process::Command;

#[test]
fn https_only_and_verified_against_the_configured_certificate() {
    let api = WebApi::start();
    // Verified by IP address SAN (what every other test does).
    assert_eq!(api.get("/api/v1/domains").status, 200);

    // Verified by DNS name SAN.
    let out = Command::new(curl_bin())
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&api.cert)
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", api.port))
        .arg(format!("https://localhost:{}/health", api.port))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    // A client trusting a different certificate refuses the server
    // (curl exit 60: peer certificate cannot be authenticated).
    let other = TempDir::new("web-api-other-ca").unwrap();
    let (oc, ok) = (other.path().join("c.pem"), other.path().join("k.pem"));
    let st = Command::new(bin())
        .args(["gen-cert", "--cert"])
        .arg(&oc)
        .arg("--key")
        .arg(&ok)
        .output()
        .unwrap();
    assert!(st.status.success());
    let out = Command::new(curl_bin())
        .args(["-sS", "-o", "/dev/null", "--cacert"])
        .arg(&oc)
        .arg(format!("{}/health", api.base()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60), "{out:?}");

    // Plain HTTP on the HTTPS port: no HTTP answer.
    let out = Command::new(curl_bin())
        .args(["-sS", "-o", "/dev/null", "--max-time", "20"])
        .arg(format!("http://127.0.0.1:{}/health", api.port))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "plain HTTP must not be served: {out:?}"
    );

    // Garbage instead of a ClientHello: the connection is closed.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    s.write_all(&[0u8; 4096]).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);

    // Still serving, and the failed handshakes are counted.
    assert_eq!(api.get("/api/v1/domains").status, 200);
    let m = api.request("GET", "/metrics", None, Auth::None).raw;
    let failures: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("web_api_tls_handshake_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 3, "{m}");
}
