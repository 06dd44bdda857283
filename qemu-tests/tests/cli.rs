//! The command line: help, the scenario list, and bad input named with
//! its location and exit code 3.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qemu-tests"))
}

#[test]
fn help_and_list_name_every_scenario() {
    let help = bin().arg("--help").output().unwrap();
    assert!(help.status.success());
    let h = String::from_utf8_lossy(&help.stdout);
    assert!(
        h.contains("--profile") && h.contains("--json") && h.contains("Exit codes"),
        "{h}"
    );
    let list = bin().arg("--list").output().unwrap();
    let l = String::from_utf8_lossy(&list.stdout);
    for s in [
        "smoke",
        "cold-boot",
        "power-cut",
        "disk-failure",
        "uplink-loss",
        "psu-failure",
        "split-brain",
        "sip-call-failover",
    ] {
        assert!(
            l.lines().any(|x| x.starts_with(s)),
            "{s} missing from:\n{l}"
        );
    }
}

#[test]
fn bad_profile_and_unknown_scenario_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.toml");
    std::fs::write(&p, "schema = 1\nname = \"x\"\nbogus_key = 3\n").unwrap();
    let out = bin().arg("--profile").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("broken.toml:"), "{e}");

    let good = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../chassis-profiles/c5-50k.toml"
    );
    let out = bin()
        .args(["--profile", good, "--scenario", "meltdown"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("no scenario \"meltdown\"") && e.contains("split-brain"),
        "{e}"
    );
}
