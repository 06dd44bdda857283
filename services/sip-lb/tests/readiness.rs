//! Process behaviour a supervisor relies on: readiness on NOTIFY_SOCKET and
//! on an s6 notification fd, clear config errors with exit code 2, --help,
//! and the health probe's exit codes.

mod common;
use common::*;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn help_lists_usage() {
    let out = Command::new(LB_BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--config FILE") && text.contains("--notify-fd") && text.contains("probe")
    );
}

#[test]
fn bad_config_names_file_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lb.toml");
    std::fs::write(&p, "[listen]\nudp = \"127.0.0.1:5060\"\ninternal = 5070\n").unwrap();
    let out = Command::new(LB_BIN)
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&p.display().to_string()) && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn notify_fd_gets_a_newline_once_listening() {
    require("mkfifo", "coreutils");
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let port = free_port("127.0.0.1");
    let cfg = dir.path().join("lb.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nudp = \"127.0.0.1:{port}\"\ninternal = \"127.0.0.1:{}\"\n[[proxy]]\nname = \"p\"\naddress = \"{}\"\n",
            free_port("127.0.0.1"),
            be.addr
        ),
    )
    .unwrap();
    let fifo = dir.path().join("ready");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // The shell opens the fifo as fd 3 for sip-lb, as s6-supervise would.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec \"{LB_BIN}\" --config \"{}\" --notify-fd 3 3>\"{}\"",
            cfg.display(),
            fifo.display()
        ))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&fifo).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let finished = reader.is_finished();
    let got_ready = finished.then(|| reader.join().unwrap());
    // Once ready it must actually answer: probe exits 0 (all pairs up).
    let probe = Command::new(LB_BIN)
        .args(["probe", &format!("127.0.0.1:{port}"), "--json"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got_ready.as_deref(),
        Some("\n"),
        "notification fd got a newline and was closed"
    );
    let out = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(probe.status.code(), Some(0), "{out}");
    assert!(out.contains("\"pairs_up\":1"), "{out}");
}

#[test]
fn probe_reports_warning_when_a_pair_is_down_and_critical_without_lb() {
    let dir = tempfile::tempdir().unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    // Nothing listens at the second pair's address.
    let dead = addr("127.0.0.3", free_port("127.0.0.3"));
    let lb = Lb::start(LbOpts::new(vec![be.addr, dead]));
    lb.wait_until("pair2 down", |lb| {
        lb.metric("sip_lb_pair_up{pair=\"pair2\"}") == 0
    });
    let out = Command::new(LB_BIN)
        .args(["probe", &lb.udp.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1/2 proxy pairs up"));
    let nobody = addr("127.0.0.1", free_port("127.0.0.1"));
    let out = Command::new(LB_BIN)
        .args(["probe", &nobody.to_string(), "--timeout-ms", "500"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
