//! What a service inherits, and what the supervisor survives: services get
//! only stdin/stdout/stderr (and their notification descriptor), not
//! descriptors flexvisor inherited; a console that goes away does not take
//! flexvisor down.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::client::Client;
use flexvisor::control::proto::Op;
use std::process::{Child, Command, Stdio};

/// Kills the supervisor if the test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn services_do_not_inherit_stray_descriptors() {
    let sup = Sup::prepare(&[(
        "fds",
        r#"command = "/bin/sh"
args = ["-c", "echo >&5; exec sleep 100000"]
[readiness]
kind = "notify-fd"
fd = 5
"#,
    )]);
    let d = sup.dir.path();
    // flexvisor starts with descriptor 7 open and inheritable.
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "exec 7</dev/null; exec {} --no-init --no-cgroups --services-dir {} --run-dir {} --no-log-files",
            env!("CARGO_BIN_EXE_flexvisor"),
            d.join("services.d").display(),
            d.join("run").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let socket = d.join("run/control.sock");
    let ready_pid = || {
        let st = Client::connect(&socket).and_then(|mut c| c.call(Op::Status));
        st.ok().and_then(|s| {
            (s["services"][0]["state"] == "ready").then(|| s["services"][0]["pid"].as_i64())?
        })
    };
    wait_for("service ready", || ready_pid().is_some());
    let pid = ready_pid().unwrap();
    let mut list: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    list.sort_unstable();
    assert_eq!(list, vec![0, 1, 2, 5], "descriptors of the service");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn closed_console_does_not_kill_the_supervisor() {
    let m = marker();
    let sup = Sup::prepare(&[(
        "talk",
        &format!(
            r#"command = "/bin/sh"
args = ["-c", "exec sleep {m}"]
"#
        ),
    )]);
    let d = sup.dir.path();
    let child = Command::new(env!("CARGO_BIN_EXE_flexvisor"))
        .args(["--no-init", "--no-cgroups", "--no-log-files"])
        .arg("--services-dir")
        .arg(d.join("services.d"))
        .arg("--run-dir")
        .arg(d.join("run"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let socket = d.join("run/control.sock");
    wait_for("control socket", || Client::connect(&socket).is_ok());
    // The console reader goes away; every event now hits a broken pipe.
    drop(child.0.stderr.take());
    for _ in 0..3 {
        Client::connect(&socket)
            .unwrap()
            .call(Op::Restart {
                service: "talk".into(),
            })
            .unwrap();
    }
    wait_for("still answering after console errors", || {
        Client::connect(&socket)
            .and_then(|mut c| c.call(Op::Status))
            .is_ok_and(|s| s["services"][0]["state"] == "ready")
    });
    assert!(child.0.try_wait().unwrap().is_none(), "flexvisor died");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.0.wait().unwrap().success());
    assert!(
        pids_with(&format!("sleep {m}")).is_empty(),
        "service left behind"
    );
}
