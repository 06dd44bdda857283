//! The one place that reaps children: `waitpid(-1, WNOHANG)` until nothing
//! is left, after every SIGCHLD.
//!
//! Nothing else in the supervisor waits for a process (no `tokio::process`,
//! no `Child::wait`), so a pid is never reaped behind the supervisor's back.
//! The caller maps each reaped pid to its owner (a service, a check, a
//! hook); pids it does not know are orphans reparented to PID 1 or to the
//! subreaper, and are only logged.

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::service::Exit;

/// One reaped process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub pid: Pid,
    pub exit: Exit,
}

/// Reap every child that has ended, without blocking.
pub fn reap_all() -> Vec<Reaped> {
    let mut out = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(status) => {
                if let Some(r) = describe(status) {
                    out.push(r);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    out
}

/// Turn a terminal wait status into a [`Reaped`]; stops/continues are not
/// ends and give `None`.
pub fn describe(status: WaitStatus) -> Option<Reaped> {
    match status {
        WaitStatus::Exited(pid, code) => Some(Reaped {
            pid,
            exit: Exit {
                success: code == 0,
                description: format!("exit code {code}"),
            },
        }),
        WaitStatus::Signaled(pid, sig, core) => Some(Reaped {
            pid,
            exit: Exit {
                success: false,
                description: format!(
                    "killed by {}{}",
                    sig.as_str(),
                    if core { " (core dumped)" } else { "" }
                ),
            },
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn describes_exit_and_signal() {
        let p = Pid::from_raw(42);
        let e = describe(WaitStatus::Exited(p, 3)).unwrap();
        assert_eq!(e.exit.description, "exit code 3");
        assert!(!e.exit.success);
        let s = describe(WaitStatus::Signaled(p, Signal::SIGSEGV, true)).unwrap();
        assert_eq!(s.exit.description, "killed by SIGSEGV (core dumped)");
        assert!(describe(WaitStatus::Stopped(p, Signal::SIGSTOP)).is_none());
    }
}
