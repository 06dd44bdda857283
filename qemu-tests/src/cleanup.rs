//! Last-resort cleanup when the harness is interrupted (SIGINT/SIGTERM):
//! drop guards do not run then, so everything a run starts is also noted
//! here and removed by [`run_all`]: VMs by pid file (checked to still be
//! qemu), simulator processes by pid, namespaces by name.

use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Registry {
    pidfiles: Vec<PathBuf>,
    pids: Vec<u32>,
    netns: Vec<String>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pidfiles: Vec::new(),
    pids: Vec::new(),
    netns: Vec::new(),
});

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut g)
}

/// Note a VM pid file.
pub fn add_pidfile(p: PathBuf) {
    with(|r| r.pidfiles.push(p));
}

/// Forget a VM pid file (its guard cleaned up).
pub fn remove_pidfile(p: &std::path::Path) {
    with(|r| r.pidfiles.retain(|x| x != p));
}

/// Note a child process.
pub fn add_pid(pid: u32) {
    with(|r| r.pids.push(pid));
}

/// Forget a child process (reaped by its guard).
pub fn remove_pid(pid: u32) {
    with(|r| r.pids.retain(|x| *x != pid));
}

/// Note a namespace.
pub fn add_netns(name: &str) {
    with(|r| r.netns.push(name.to_owned()));
}

/// Forget a namespace (deleted by its guard).
pub fn remove_netns(name: &str) {
    with(|r| r.netns.retain(|x| x != name));
}

fn kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Kill and remove everything still noted: simulators first (so no BMC
/// restarts a VM), then VMs, then namespaces.
pub fn run_all() {
    let (pidfiles, pids, netns) = with(|r| {
        (
            std::mem::take(&mut r.pidfiles),
            std::mem::take(&mut r.pids),
            std::mem::take(&mut r.netns),
        )
    });
    for p in pids {
        kill(p);
    }
    for f in pidfiles {
        let pid: Option<u32> = std::fs::read_to_string(&f)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = pid {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.starts_with("qemu") {
                kill(pid);
            }
        }
    }
    for n in netns {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &n])
            .output();
    }
}
