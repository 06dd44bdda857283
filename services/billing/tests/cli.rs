//! The command line an operator and the supervisor see: --help,
//! --check-config errors with file:line:field, notify-fd readiness,
//! `status --json` verdicts and exit codes, graceful SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::Command;

fn billing(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_billing"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_and_bad_arguments() {
    let out = billing(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--config",
        "--once",
        "--check-config",
        "--notify-fd",
        "status",
    ] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
    let out = billing(&["--bogus"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn check_config_names_file_line_and_field() {
    let dir = billing::testbed::TempDir::new("billing-cli").unwrap();
    let path = dir.path().join("billing.toml");
    std::fs::write(
        &path,
        "spool_dir = \"/var/spool/sip-proxy\"\nstate_dir = \"/var/lib/billing\"\n\
         central_url = \"mysql://b@10.0.0.1/flexvisor\"\nbatch_lines = 0\n",
    )
    .unwrap();
    let out = billing(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: field `batch_lines`", path.display())),
        "{err}"
    );
    std::fs::write(
        &path,
        "spool_dir = \"/s\"\nstate_dir = \"/l\"\ncentral_url = \"mysql://b@h/f\"\n",
    )
    .unwrap();
    let out = billing(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn readiness_status_and_graceful_sigterm() {
    let env = Env::start("");
    // No daemon has ever run: UNKNOWN.
    let out = billing(&["status", "--json", "--config", env.config.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut daemon = Daemon::start(&env, "cli");
    let spool = env.spool_writer(1 << 20);
    call(&spool, "s-1", now_ms() - 100_000, 5_000, Some(1), "4989");
    wait_for(60, "the CDR", || (env.count("1") == 1).then_some(()));
    // The row is visible in the central table a moment before the daemon
    // records the commit in its status file: wait for the status to say so.
    wait_for(30, "the commit in the status file", || {
        (env.status()["committed_total"] == 1).then_some(())
    });
    let out = billing(&["status", "--json", "--config", env.config.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["verdict"], "OK");
    assert_eq!(v["status"]["committed_total"], 1);
    assert!(v["status"]["last_commit_ms"].as_u64().is_some());

    // An operator's --once while the daemon runs is refused, not raced.
    let out = env.run_once();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another billing process"), "{err}");

    let st = daemon.terminate();
    assert!(st.success(), "{st}: {}", daemon.log());
    let out = billing(&["status", "--config", env.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));

    // A daemon killed without notice is CRITICAL.
    let mut daemon = Daemon::start(&env, "cli2");
    wait_for(30, "a status from the new daemon", || {
        let s = env.status();
        (s["running"] == true).then_some(())
    });
    daemon.kill9();
    let out = billing(&["status", "--config", env.config.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
