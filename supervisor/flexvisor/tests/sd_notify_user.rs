//! A service that runs as its own user (`user = "nobody"`) and reports
//! readiness with sd_notify can send on its NOTIFY_SOCKET: the socket is
//! owned by that user (flexvisor runs as root and would otherwise create
//! it writable by root only, leaving the service "starting" forever).
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn a_service_running_as_nobody_can_notify_ready() {
    let sup = Sup::prepare(&[(
        "cache",
        r#"command = "/bin/sh"
args = ["-c", "printf READY=1 | socat - UNIX-SENDTO:$NOTIFY_SOCKET; exec sleep 100000"]
user = "nobody"
group = "nogroup"
start_timeout_ms = 30000

[readiness]
kind = "sd-notify"
"#,
    )]);
    // As under /run on a node: the directories are traversable by others
    // (a test's temp dir is 0700).
    for d in ["", "run"] {
        let p = sup.path(d);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sup = sup.launch(&[]);
    sup.wait_state("cache", "ready");
    let sock = sup.path("run/notify/cache.sock");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(std::fs::metadata(&sock).unwrap().uid(), nobody.uid.as_raw());
}
