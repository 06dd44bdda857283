//! At first boot flexvisor runs the hook of the node's first VRRP state
//! while its own Redis/MariaDB may still be starting: the hook keeps
//! retrying the local servers for `--start-wait` seconds instead of failing
//! on the first refused connection; with no wait it fails and says why.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn promote_waits_for_a_local_redis_that_is_still_starting() {
    let mut p = Pair::start();
    let port = p.redis_b.port;
    p.redis_b.kill();

    // No wait: the refused connection is the answer, naming the server.
    let r = run(Command::new(bin())
        .arg("promote")
        .args(p.flags(Side::B))
        .args(["--start-wait", "0"]));
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains(&format!("redis 127.0.0.1:{port}")),
        "{r:?}"
    );

    // With the default wait, Redis coming up 2 s later is found.
    let child = Command::new(bin())
        .arg("promote")
        .args(p.flags(Side::B))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let redis = Redis::start_in(None, port);
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.json()["redis"]["state"], "master", "{r:?}");
    assert_eq!(redis.role()[0], "master");
}
