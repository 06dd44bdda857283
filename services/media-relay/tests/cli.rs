//! The command line: --help, --check-config with file:line:field errors,
//! readiness on --notify-fd, and --status (text and --json) with health
//! exit codes.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn help_and_usage_errors() {
    let out = Command::new(relay_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--notify-fd") && text.contains("--check-config"),
        "{text}"
    );
    let out = Command::new(relay_bin()).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn check_config_names_file_line_and_field() {
    let dir = TempDir::new("media-relay-cli");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "control = \"127.0.0.1:2223\"\naddress = \"127.0.0.1\"\n",
    )
    .unwrap();
    let out = Command::new(relay_bin())
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "control = \"127.0.0.1:2223\"\naddress = \"127.0.0.1\"\nport_min = 30001\n",
    )
    .unwrap();
    let out = Command::new(relay_bin())
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: field `port_min`", bad.display())),
        "{err}"
    );
    std::fs::write(&bad, "control = \"127.0.0.1:2223\"\naddress = 7\n").unwrap();
    let out = Command::new(relay_bin())
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("address"), "{err}");
}

#[test]
fn notify_fd_is_written_once_listening() {
    let dir = TempDir::new("media-relay-notify");
    let control = free_udp_port();
    let (min, max) = port_range();
    let cfg = dir.path().join("r.toml");
    std::fs::write(
        &cfg,
        format!("control = \"127.0.0.1:{control}\"\naddress = \"127.0.0.1\"\nport_min = {min}\nport_max = {max}\n"),
    )
    .unwrap();
    let fifo = dir.path().join("ready");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // fd 3 of the relay is the FIFO's write end (as s6 hands it over).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec {} --config {} --notify-fd 3 3>{}",
            relay_bin(),
            cfg.display(),
            fifo.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut f = std::fs::File::open(&fifo).unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(
        got, b"\n",
        "readiness is one newline, then the fd is closed"
    );
    // Ready means the control socket answers.
    let mut ng = Ng::new(([127, 0, 0, 1], control).into());
    assert_eq!(ng.ping().get("result").str(), "pong");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn status_prints_calls_with_counters_and_health_codes() {
    let relay = RelayProc::start("");
    let mut ng = relay.ng();
    ng.offer("st@test", "a", &sdp(4000));
    ng.answer("st@test", "a", "b", &sdp(4002));
    let out = Command::new(relay_bin())
        .args(["--status", &relay.control.to_string(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "OK");
    assert_eq!(v["calls"][0]["call-id"], "st@test");
    assert_eq!(v["calls"][0]["totals"]["RTP"]["packets"], 0);
    assert!(v["calls"][0]["tags"]["a"]["medias"][0]["streams"][0]["local port"].is_number());
    let out = Command::new(relay_bin())
        .args(["--status", &relay.control.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("OK:") && text.contains("st@test"),
        "{text}"
    );
    // Nobody listening: CRITICAL.
    let out = Command::new(relay_bin())
        .args([
            "--status",
            &format!("127.0.0.1:{}", free_udp_port()),
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "CRITICAL");
}
