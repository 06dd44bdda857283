//! Child processes the harness owns: peers found on `PATH` (a missing one is
//! an error naming its Debian package) and started with their output in a
//! log file, killed and reaped on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a peer process could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("`{binary}` not found on PATH: install the Debian package `{package}` (listed in scripts/deps/apt.txt)")]
    Missing {
        binary: String,
        package: &'static str,
    },
    #[error("cannot start `{binary}`: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{what}` failed ({status}): {output}")]
    Failed {
        what: String,
        status: String,
        output: String,
    },
}

/// Full path of `binary` on `PATH`, or [`ProcError::Missing`].
pub fn require(binary: &str, package: &'static str) -> Result<PathBuf, ProcError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .ok_or_else(|| ProcError::Missing {
            binary: binary.to_owned(),
            package,
        })
}

/// Run `cmd` to completion; its stdout on success, or an error carrying
/// both output streams.
pub fn run(cmd: &mut Command) -> Result<String, ProcError> {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ProcError::Spawn {
            binary: what.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ProcError::Failed {
            what,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// A long-running peer: killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Start `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Daemon, ProcError> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ProcError::Log {
                path: log.to_owned(),
                source,
            })?;
        let err = file.try_clone().map_err(|source| ProcError::Log {
            path: log.to_owned(),
            source,
        })?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|source| ProcError::Spawn {
                binary: format!("{cmd:?}"),
                source,
            })?;
        crate::cleanup::add_pid(child.id());
        Ok(Daemon {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait up to `timeout` for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::cleanup::remove_pid(self.child.id());
    }
}

/// Poll `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
