//! What a started process gets from the spawn path (clone without copying
//! the supervisor, raw set-up calls, exec): its own session and process
//! group, its cgroup before it runs, default signal handling with nothing
//! blocked, /dev/null on stdin, its output captured, its notification
//! descriptor, its limits and user, and a start failure that names the
//! program, the step and the errno.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;
use flexvisor::logs::LogLine;

fn log_lines(sup: &Sup, name: &str) -> Vec<String> {
    let v = sup
        .call(Op::Logs {
            service: name.into(),
            lines: None,
            follow: false,
        })
        .unwrap();
    serde_json::from_value::<Vec<LogLine>>(v)
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect()
}

/// The value after `key` in the service's output (`key=value` lines).
fn field(lines: &[String], key: &str) -> String {
    let prefix = format!("{key}=");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in {lines:#?}"))
        .trim()
        .to_owned()
}

/// Kills flexvisor (the `Sup`), then removes the service cgroup and the
/// instance's directory above it.
struct RemoveCgroups(std::path::PathBuf, Sup);

impl Drop for RemoveCgroups {
    fn drop(&mut self) {
        if let Some(c) = &mut self.1.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        for dir in [Some(self.0.as_path()), self.0.parent()]
            .into_iter()
            .flatten()
        {
            // Empty once its processes are gone; give the kernel a moment.
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn service_leads_its_session_in_its_cgroup_with_clean_signals_and_descriptors() {
    let root =
        cgroup2_root().expect("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
    let sup = Sup::prepare(&[(
        "spawned",
        r#"command = "/bin/sh"
args = ["-c", """
echo stat=$(cat /proc/$$/stat)
echo cgroup=$(grep '^0::' /proc/$$/cgroup)
echo sigblk=$(grep '^SigBlk' /proc/$$/status | cut -f2)
echo sigign=$(grep '^SigIgn' /proc/$$/status | cut -f2)
echo stdin=$(readlink /proc/$$/fd/0)
echo fds=$(ls /proc/$$/fd | sort -n | tr '\n' ' ')
echo nofile=$(ulimit -n)
echo uid=$(id -u)
echo >&3
exec sleep 100000
"""]
user = "nobody"
rlimits = { nofile = 4321 }
[readiness]
kind = "notify-fd"
fd = 3
"#,
    )])
    .launch(&["--cgroup-root", root]);
    // Ready means the notification descriptor reached it as fd 3.
    let st = sup.wait_state("spawned", "ready");
    let pid = st.pid.unwrap();
    wait_for("output", || {
        log_lines(&sup, "spawned")
            .iter()
            .any(|l| l.starts_with("uid="))
    });
    let lines = log_lines(&sup, "spawned");

    let (_, pgrp, session) = flexvisor::process::parse_stat(&field(&lines, "stat")).unwrap();
    assert_eq!(pgrp, pid, "own process group: {lines:#?}");
    assert_eq!(session, pid, "own session: {lines:#?}");
    let cgroup = field(&lines, "cgroup");
    assert!(
        cgroup.ends_with("/spawned"),
        "in the service's cgroup before it ran: {lines:#?}"
    );
    // Killed with the namespace, flexvisor cannot remove its cgroups.
    let _cleanup = RemoveCgroups(
        std::path::Path::new(root).join(cgroup.trim_start_matches("0::/")),
        sup,
    );
    assert_eq!(
        field(&lines, "sigblk"),
        "0000000000000000",
        "nothing blocked"
    );
    let ignored = u64::from_str_radix(&field(&lines, "sigign"), 16).unwrap();
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE back to default (flexvisor ignores it): {lines:#?}"
    );
    assert_eq!(field(&lines, "stdin"), "/dev/null");
    // 0-2, fd 3 (notify) and the descriptor `ls` opens itself.
    let fds: Vec<u32> = field(&lines, "fds")
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(
        fds.iter().take(4).copied().eq(0..4) && fds.len() <= 5,
        "only stdio and the notify fd: {fds:?}"
    );
    assert_eq!(field(&lines, "nofile"), "4321");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(field(&lines, "uid"), nobody.uid.to_string());
}

#[test]
fn start_failures_name_the_program_the_step_and_the_errno() {
    let sup = Sup::prepare(&[
        (
            "missing",
            r#"command = "{dir}/no-such-program"
[restart]
limit = 1
"#,
        ),
        (
            "not-executable",
            r#"command = "{dir}/plain-file"
[restart]
limit = 1
"#,
        ),
        (
            "bad-cwd",
            r#"command = "/bin/true"
cwd = "{dir}/no-such-dir"
[restart]
limit = 1
"#,
        ),
    ]);
    std::fs::write(sup.path("plain-file"), "#!/bin/sh\n").unwrap();
    let d = sup.dir.path().display().to_string();
    let sup = sup.launch(&[]);
    for name in ["missing", "not-executable", "bad-cwd"] {
        sup.wait_state(name, "failed");
    }
    let console = sup.console();
    for want in [
        format!("missing: cannot start: {d}/no-such-program: exec: No such file or directory"),
        format!("not-executable: cannot start: {d}/plain-file: exec: Permission denied"),
        "bad-cwd: cannot start: /bin/true: chdir: No such file or directory".to_owned(),
    ] {
        assert!(console.contains(&want), "no `{want}` in:\n{console}");
    }
    // The failed children were collected, not left as zombies.
    let host = sup.host_pid();
    assert!(
        zombies_of(host).is_empty(),
        "zombies: {:?}",
        zombies_of(host)
    );
}

#[test]
fn a_script_without_interpreter_line_runs_under_sh() {
    let sup = Sup::prepare(&[(
        "script",
        r#"command = "{dir}/script"
args = ["one", "two"]
"#,
    )]);
    std::fs::write(
        sup.path("script"),
        "echo args=$0 $1 $2\nexec sleep 100000\n",
    )
    .unwrap();
    let mut perm = std::fs::metadata(sup.path("script")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(sup.path("script"), perm).unwrap();
    let d = sup.dir.path().display().to_string();
    let sup = sup.launch(&[]);
    sup.wait_state("script", "ready");
    wait_for("output", || {
        log_lines(&sup, "script")
            .iter()
            .any(|l| l.starts_with("args="))
    });
    assert_eq!(
        field(&log_lines(&sup, "script"), "args"),
        format!("{d}/script one two")
    );
}
