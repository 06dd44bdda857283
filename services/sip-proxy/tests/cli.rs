//! The command line as the supervisor and an operator use it: `--help`,
//! `--check-config` naming the bad field, `--probe` exit codes, and
//! readiness through `--notify-fd` (a FIFO standing in for the
//! supervisor's pipe).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::io::Read;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sip-proxy"))
}

#[test]
fn help_check_config_and_probe_exit_codes() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--config") && text.contains("--notify-fd") && text.contains("--probe"));

    let dir = sip_proxy::testbed::TempDir::new("cli-test").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:5062\"\ndomains = []\ndatabase_url = \"mysql://x@127.0.0.1/d\"\n\
         redis_url = \"redis://127.0.0.1/\"\nspool_dir = \"/tmp/x\"\nnonce_secret = \"0123456789\"\n",
    )
    .unwrap();
    let out = bin().arg("--check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("domains"), "{err}");

    let out = bin().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(3));

    // Nothing listens on this port: CRITICAL (2), reported as JSON.
    let port = sip_proxy::testbed::free_udp_port("127.0.0.1").unwrap();
    let out = bin()
        .args(["--probe", &format!("127.0.0.1:{port}"), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "CRITICAL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_fd_signals_readiness_and_probe_says_ok() {
    let b = Backends::start(&[], None).await;
    // Reuse the config writer, then stop that instance and start our own.
    let mut p = ProxyProc::start(&b, "");
    p.kill();
    tokio::task::block_in_place(|| {
        let fifo = p.dir.path().join("ready.fifo");
        let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec {} --config {} --notify-fd 3 3>{}",
                env!("CARGO_BIN_EXE_sip-proxy"),
                p.config.display(),
                fifo.display()
            ))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut f = std::fs::File::open(&fifo).unwrap();
        let mut buf = [0u8; 1];
        let n = f.read(&mut buf).unwrap();
        assert_eq!((n, buf[0]), (1, b'\n'));
        let out = bin()
            .args(["--probe", &p.addr.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.starts_with("OK"), "{text}");
    });
}
