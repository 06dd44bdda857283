//! PID-1 duties: the early mounts, the hostname, the network from the node
//! configuration, Ctrl-Alt-Del as a signal, and the end of the system
//! (sync, unmount, `reboot(2)`). Outside PID 1 only the subreaper flag is
//! set. Supervision itself is the same in both cases.

pub mod netlink;

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};

/// How the system ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    Poweroff,
    Reboot,
    /// Not PID 1: just exit.
    Exit,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("mount {what} on {target}: {source}")]
    Mount {
        what: &'static str,
        target: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("set hostname `{name}`: {source}")]
    Hostname {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("become child subreaper: {0}")]
    Subreaper(#[source] nix::Error),
}

/// (fstype, target, flags, data, mode of the mount point)
const MOUNTS: &[(&str, &str, u64, &str)] = &[
    ("proc", "/proc", 0, ""),
    ("sysfs", "/sys", 0, ""),
    ("devtmpfs", "/dev", 0, "mode=0755"),
    ("devpts", "/dev/pts", 0, "gid=5,mode=620,ptmxmode=666"),
    ("tmpfs", "/run", 0, "mode=0755"),
    ("tmpfs", "/tmp", 0, "mode=1777"),
    ("cgroup2", "/sys/fs/cgroup", 0, "nsdelegate"),
];

fn mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(target)))
        .unwrap_or(false)
}

/// Mount the early filesystems that are not mounted yet. Returns the
/// failures (the boot goes on without them).
pub fn mount_early() -> Vec<InitError> {
    let mut errs = Vec::new();
    for (fstype, target, _, data) in MOUNTS {
        if mounted(target) {
            continue;
        }
        let _ = std::fs::create_dir_all(target);
        let flags = MsFlags::MS_NOSUID
            | if *fstype == "devtmpfs" || *fstype == "devpts" {
                MsFlags::empty()
            } else {
                MsFlags::MS_NODEV
            }
            | if matches!(*fstype, "proc" | "sysfs" | "cgroup2" | "devpts") {
                MsFlags::MS_NOEXEC
            } else {
                MsFlags::empty()
            };
        let data = (!data.is_empty()).then_some(*data);
        if let Err(source) = mount(Some(*fstype), *target, Some(*fstype), flags, data) {
            if source != nix::errno::Errno::EBUSY {
                errs.push(InitError::Mount {
                    what: fstype,
                    target,
                    source,
                });
            }
        }
    }
    errs
}

pub fn set_hostname(name: &str) -> Result<(), InitError> {
    nix::unistd::sethostname(name).map_err(|source| InitError::Hostname {
        name: name.to_owned(),
        source,
    })
}

/// Outside PID 1: orphans of our services are reparented to us.
pub fn become_subreaper() -> Result<(), InitError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(InitError::Subreaper)
}

/// As PID 1: make Ctrl-Alt-Del send SIGINT instead of rebooting at once.
pub fn trap_ctrl_alt_del() {
    let _ = nix::sys::reboot::set_cad_enabled(false);
}

/// The end of a PID 1: kill what is left, sync, unmount everything but the
/// root (deepest first, lazily), remount the root read-only, reboot(2).
pub fn finish(halt: Halt) -> ! {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), nix::sys::signal::SIGKILL);
    nix::unistd::sync();
    let mut targets: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
        .filter(|t| t != "/")
        .collect();
    targets.reverse();
    for t in targets {
        let _ = umount2(Path::new(&t), MntFlags::MNT_DETACH);
    }
    let _ = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    );
    nix::unistd::sync();
    let mode = match halt {
        Halt::Reboot => RebootMode::RB_AUTOBOOT,
        Halt::Poweroff | Halt::Exit => RebootMode::RB_POWER_OFF,
    };
    let _ = reboot(mode);
    // reboot(2) only returns on failure; PID 1 must never exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
