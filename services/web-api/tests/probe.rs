//! `web-api probe`: health-style exit codes for the supervisor and
//! operators: 0 while the daemon serves and reaches its database, 2 when the
//! database is gone or the daemon is down, 3 for an unusable configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::process::Command;

fn probe(config: &std::path::Path) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(bin())
        .args(["probe", "--json", "--timeout-ms", "20000", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), v)
}

#[test]
fn probe_exit_codes_follow_daemon_and_database() {
    let mut api = WebApi::start();
    let (code, v) = probe(&api.config);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["status"], "OK");

    // A different certificate in the config: the server is not trusted.
    let other = TempDir::new("web-api-probe-other").unwrap();
    let (oc, ok) = (other.path().join("c.pem"), other.path().join("k.pem"));
    assert!(Command::new(bin())
        .args(["gen-cert", "--cert"])
        .arg(&oc)
        .arg("--key")
        .arg(&ok)
        .status()
        .unwrap()
        .success());
    let text = std::fs::read_to_string(&api.config).unwrap();
    let wrong = other.path().join("wrong-cert.toml");
    std::fs::write(
        &wrong,
        text.replace(api.cert.to_str().unwrap(), oc.to_str().unwrap()),
    )
    .unwrap();
    let (code, v) = probe(&wrong);
    assert_eq!(code, Some(2), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("certificate"), "{v}");

    // Unusable configuration: UNKNOWN.
    let bad = other.path().join("bad.toml");
    std::fs::write(&bad, "listen = 1\n").unwrap();
    let (code, v) = probe(&bad);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["status"], "UNKNOWN");

    // Database gone: CRITICAL.
    kill_database(&api);
    let (code, v) = probe(&api.config);
    assert_eq!(code, Some(2), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("503"), "{v}");

    // Daemon stopped: CRITICAL.
    api.terminate();
    assert_eq!(api.wait_exit(), Some(0), "{}", api.log());
    let (code, v) = probe(&api.config);
    assert_eq!(code, Some(2), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("connect"), "{v}");
}
