//! The command line: --help, --check-config with errors naming
//! file:line:field, usage errors, gen-cert output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_names_every_command() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for word in [
        "--config",
        "--check-config",
        "--notify-fd",
        "gen-cert",
        "admin add",
        "SIGTERM",
    ] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
    let (code, _, err) = run(&["--bogus"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--bogus"), "{err}");
    let (code, _, err) = run(&["admin", "remove"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("admin add"), "{err}");
}

#[test]
fn check_config_accepts_good_and_names_file_line_field_of_bad() {
    let dir = TempDir::new("web-api-cli").unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (code, out, err) = run(&[
        "gen-cert",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--name",
        "web1.example.net",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web1.example.net"));
    assert!(std::fs::read_to_string(&cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .contains("PRIVATE KEY"));

    let good = format!(
        "listen = \"127.0.0.1:8443\"\ndatabase_url = \"mysql://web:pw@127.0.0.1:3306/flexvisor\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let path = dir.path().join("web-api.toml");
    let p = path.to_str().unwrap();
    std::fs::write(&path, &good).unwrap();
    let (code, out, err) = run(&["--config", p, "--check-config"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("OK"), "{out}");
    assert!(!out.contains(":pw@"), "password must be redacted: {out}");

    for (text, expect) in [
        (
            good.replace("127.0.0.1:8443", "127.0.0.1"),
            format!("{p}:1: field `listen`"),
        ),
        (
            good.replace("mysql://", "http://"),
            format!("{p}:2: field `database_url`"),
        ),
        (
            format!("{good}max_connections = 0\n"),
            "max_connections".to_string(),
        ),
        (
            good.replace("listen = \"127.0.0.1:8443\"", "listen = 8443"),
            format!("{p}: TOML parse error at line 1"),
        ),
        (
            good.replace(&*key.to_string_lossy(), "/nonexistent/key.pem"),
            "/nonexistent/key.pem".to_string(),
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let (code, _, err) = run(&["--config", p, "--check-config"]);
        assert_eq!(code, Some(2), "{text}\n{err}");
        assert!(err.contains(&expect), "expected {expect:?} in: {err}");
    }
    // max_connections inside [tls] is an unknown field there; at top level
    // (before [tls]) it is range-checked with its line.
    std::fs::write(&path, format!("max_connections = 0\n{good}")).unwrap();
    let (code, _, err) = run(&["--config", p, "--check-config"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("{p}:1: field `max_connections`")),
        "{err}"
    );
}
