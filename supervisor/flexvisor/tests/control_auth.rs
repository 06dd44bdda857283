//! The control socket is root-only: the socket file is 0600, and a peer
//! that gets through anyway is checked with SO_PEERCRED and refused with a
//! clear message. Uses the real `flexctl` binary.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

fn as_nobody(flexctl: &PathBuf, socket: &std::path::Path) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(flexctl)
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("setpriv (util-linux) is needed")
}

#[test]
fn non_root_client_is_refused() {
    let fc = flexctl_bin();
    let sup = Sup::start(&[("svc", "command = \"/bin/sleep\"\nargs = [\"100000\"]\n")]);
    sup.wait_console("flexvisor: ready");

    let mode = std::fs::metadata(&sup.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Root works.
    let ok = Command::new(&fc)
        .args(["status", "--socket"])
        .arg(&sup.socket)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("svc"));

    // The run directory must let nobody reach the socket for the next two
    // checks.
    std::fs::set_permissions(sup.path("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(sup.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // File permission layer.
    let out = as_nobody(&fc, &sup.socket);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("accepts root only"), "{err}");

    // Credential layer: even with the file opened up, the peer is refused.
    std::fs::set_permissions(&sup.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&fc, &sup.socket);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("uid 65534"), "{err}");
    assert!(err.contains("root only"), "{err}");
    // And the supervisor is unharmed.
    assert_eq!(sup.service("svc").state, "ready");
}
