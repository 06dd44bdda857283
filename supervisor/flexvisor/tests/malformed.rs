//! Malformed definitions are reported with file, line and field, and
//! flexvisor refuses to start on them (reload is covered in reload.rs).
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::Command;

fn check(services: &[(&str, &str)]) -> (bool, String) {
    let sup = Sup::prepare(services);
    let out = Command::new(env!("CARGO_BIN_EXE_flexvisor"))
        .arg("--check")
        .arg("--services-dir")
        .arg(sup.services_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn syntax_error_names_file_and_line() {
    let (ok, err) = check(&[("bad", "command = \"/bin/true\"\nargs = [\"x\",\n\n")]);
    assert!(!ok);
    assert!(err.contains("bad.toml:4:"), "{err}");
}

#[test]
fn unknown_field_names_field() {
    let (ok, err) = check(&[(
        "typo",
        "command = \"/bin/true\"\nrestart_policy = \"always\"\n",
    )]);
    assert!(!ok);
    assert!(err.contains("typo.toml:2:"), "{err}");
    assert!(err.contains("restart_policy"), "{err}");
}

#[test]
fn dependency_cycle_is_named() {
    let (ok, err) = check(&[
        ("a", "command = \"/bin/true\"\nrequires = [\"b\"]\n"),
        ("b", "command = \"/bin/true\"\nwants = [\"a\"]\n"),
    ]);
    assert!(!ok);
    assert!(err.contains("dependency cycle: a -> b -> a"), "{err}");
}

#[test]
fn missing_requirement_is_named() {
    let (ok, err) = check(&[("a", "command = \"/bin/true\"\nrequires = [\"ghost\"]\n")]);
    assert!(!ok);
    assert!(err.contains("requires `ghost`"), "{err}");
}

#[test]
fn supervisor_refuses_to_start_on_bad_config() {
    let mut sup = Sup::prepare(&[("bad", "command = \"relative\"\n")]);
    let bin = env!("CARGO_BIN_EXE_flexvisor");
    let out = Command::new(bin)
        .arg("--no-init")
        .arg("--services-dir")
        .arg(sup.services_dir())
        .arg("--run-dir")
        .arg(sup.path("run"))
        .arg("--no-log-files")
        .output()
        .unwrap();
    sup.child = None;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:1:"), "{err}");
    assert!(err.contains("absolute path"), "{err}");
}
