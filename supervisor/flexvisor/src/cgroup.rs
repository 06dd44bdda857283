//! cgroup v2: one cgroup per service, so stop and restart kill the whole
//! tree (`cgroup.kill`, Linux ≥ 5.14; before that every pid in
//! `cgroup.procs`), even processes that left the service's process group.
//!
//! Used only when the root is a writable cgroup2 mount; otherwise the
//! supervisor falls back to the service's process group (see `process`).
//! Kernel doc: Documentation/admin-guide/cgroup-v2.rst.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The directory under which service cgroups are created.
#[derive(Debug, Clone)]
pub struct Cgroups {
    base: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `path` is a cgroup2 mount.
pub fn is_cgroup2(path: &Path) -> bool {
    // The field's integer type differs between glibc and musl.
    #[allow(clippy::unnecessary_cast, clippy::cast_possible_wrap)]
    let magic = |s: nix::sys::statfs::Statfs| s.filesystem_type().0 as i64;
    nix::sys::statfs::statfs(path)
        .map(|s| magic(s) == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Our own cgroup path relative to the cgroup2 root (`0::/path`).
fn own_cgroup() -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_owned())
}

impl Cgroups {
    /// Set up the service cgroups under `root` (a cgroup2 mount), inside the
    /// supervisor's own cgroup. `None` when `root` is not cgroup2 or not
    /// writable: the caller then uses process groups only. `system`: this
    /// is the node's init, which gets the stable name `services`.
    pub fn detect(root: &Path, system: bool) -> Option<Self> {
        if !is_cgroup2(root) {
            return None;
        }
        let own = own_cgroup().unwrap_or_else(|| "/".to_owned());
        let parent = root.join(own.trim_start_matches('/'));
        // The system supervisor gets stable names; a nested one (tests,
        // development) a unique directory so several can run side by side.
        let name = if system && own == "/" {
            "services".to_owned()
        } else {
            format!("flexvisor-{:08x}", crate::jitter::seed() as u32)
        };
        let base = parent.join(name);
        match fs::create_dir(&base) {
            Ok(()) => Some(Self { base }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(Self { base }),
            Err(_) => None,
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The cgroup directory of `service`, created when missing.
    pub fn service(&self, service: &str) -> Result<PathBuf, CgroupError> {
        let dir = self.base.join(service);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(dir),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    /// Remove the cgroup of `service` (it must be empty).
    pub fn remove(&self, service: &str) {
        let _ = fs::remove_dir(self.base.join(service));
    }

    /// Remove every service cgroup and the base; best effort at exit.
    pub fn remove_all(&self) {
        if let Ok(entries) = fs::read_dir(&self.base) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
        let _ = fs::remove_dir(&self.base);
    }
}

/// Pids currently in the cgroup at `dir`.
pub fn pids(dir: &Path) -> Vec<Pid> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Send `sig` to every process of the cgroup.
pub fn signal(dir: &Path, sig: Signal) {
    for p in pids(dir) {
        let _ = kill(p, sig);
    }
}

/// Kill everything in the cgroup, with `cgroup.kill` when the kernel has it.
pub fn kill_all(dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.kill");
    match fs::OpenOptions::new().write(true).open(&path) {
        Ok(mut f) => f.write_all(b"1").map_err(io_err(&path)),
        Err(_) => {
            signal(dir, Signal::SIGKILL);
            Ok(())
        }
    }
}
