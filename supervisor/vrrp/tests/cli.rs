//! The standalone binary's command line: help, configuration errors that name the
//! file, line and field, and exit codes.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flexvisor-vrrp"))
}

#[test]
fn help_exits_zero_and_documents_the_flags() {
    let out = bin().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--vrid",
        "--nopreempt",
        "--tracker",
        "--json",
        "--status-file",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn bad_configuration_exits_3_naming_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("fvcli{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("vrrp.toml");
    std::fs::write(
        &f,
        "[[instance]]\nname = \"vip\"\ninterface = \"eth0\"\nvrid = 300\naddresses = [\"10.0.0.1\"]\n",
    )
    .expect("write");
    let out = bin().arg("--config").arg(&f).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vrrp.toml") && err.contains("line 4") && err.contains("vrid"),
        "{err}"
    );

    std::fs::write(
        &f,
        "[[instance]]\nname = \"vip\"\ninterface = \"eth0\"\nvrid = 5\npriority = 0\naddresses = [\"10.0.0.1\"]\n",
    )
    .expect("write");
    let out = bin()
        .arg("--config")
        .arg(&f)
        .arg("--check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"vip\"") && err.contains("`priority`"),
        "{err}"
    );

    std::fs::write(
        &f,
        "[[instance]]\nname = \"vip\"\ninterface = \"eth0\"\nvrid = 5\naddresses = [\"10.0.0.1/24\"]\n",
    )
    .expect("write");
    let out = bin()
        .arg("--config")
        .arg(&f)
        .arg("--check-config")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_flag_and_missing_interface_are_usage_errors() {
    let out = bin().arg("--frobnicate").output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
    let out = bin()
        .args(["--vrid", "5", "--address", "10.0.0.1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interface"));
}
