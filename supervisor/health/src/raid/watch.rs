//! Wake-ups from the md driver instead of blind polling.
//!
//! md calls `sysfs_notify` on `md/array_state`, `md/sync_action` and
//! `md/degraded` when they change, and wakes pollers of `/proc/mdstat` on
//! array events (kernel `Documentation/admin-guide/md.rst`: "poll/select
//! for POLLPRI"). The protocol: read the file to its end, then poll for
//! `POLLPRI|POLLERR`; after a wake-up re-read from offset 0 to re-arm.
//! Regular files (fixture trees) never raise POLLPRI, so there the wait
//! ends by its timeout: the slow timer fallback.
//!
//! This module blocks; the async monitor runs it on a blocking thread.

use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why [`MdWatcher::wait`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// One of these files signalled a change.
    Changed(Vec<PathBuf>),
    /// Nothing happened within the timeout.
    Timeout,
}

/// Error while watching.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// poll(2) failed.
    #[error("poll on md sysfs attributes failed: {0}")]
    Poll(#[from] nix::Error),
    /// Reading a watched file failed.
    #[error("cannot re-read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Open watch on the md attributes of the arrays present when it was built.
#[derive(Debug)]
pub struct MdWatcher {
    files: Vec<(PathBuf, File)>,
}

fn drain(path: &Path, f: &mut File) -> Result<(), WatchError> {
    let mut buf = [0u8; 4096];
    f.seek(SeekFrom::Start(0))
        .map_err(|source| WatchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            // Some attributes return EBUSY/EINVAL when read at the wrong
            // moment; arming needs a read attempt, not its data.
            Err(e) if e.raw_os_error().is_some() => return Ok(()),
            Err(source) => {
                return Err(WatchError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

impl MdWatcher {
    /// Open `/proc/mdstat` and, for every `md*` under `<root>/sys/block`,
    /// its `array_state`, `sync_action` and `degraded`. Files that do not
    /// exist are skipped; rebuild the watcher when arrays come or go.
    pub fn new(root: &Path) -> Result<MdWatcher, WatchError> {
        let mut paths = vec![root.join("proc/mdstat")];
        if let Ok(entries) = std::fs::read_dir(root.join("sys/block")) {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("md"))
                .collect();
            names.sort();
            for n in names {
                for attr in ["array_state", "sync_action", "degraded"] {
                    paths.push(root.join("sys/block").join(&n).join("md").join(attr));
                }
            }
        }
        let mut files = Vec::new();
        for p in paths {
            if let Ok(mut f) = File::open(&p) {
                drain(&p, &mut f)?;
                files.push((p, f));
            }
        }
        Ok(MdWatcher { files })
    }

    /// Number of files watched.
    pub fn watched(&self) -> usize {
        self.files.len()
    }

    /// Block until a watched attribute changes or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> Result<Wake, WatchError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let hits: Vec<usize> = {
            let mut fds: Vec<PollFd<'_>> = self
                .files
                .iter()
                .map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLPRI | PollFlags::POLLERR))
                .collect();
            let n = loop {
                match nix::poll::poll(&mut fds, timeout) {
                    Err(nix::Error::EINTR) => continue,
                    other => break other?,
                }
            };
            if n == 0 {
                return Ok(Wake::Timeout);
            }
            fds.iter()
                .enumerate()
                .filter(|(_, fd)| {
                    fd.revents()
                        .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR))
                })
                .map(|(i, _)| i)
                .collect()
        };
        let mut changed = Vec::new();
        for i in hits {
            if let Some((p, f)) = self.files.get_mut(i) {
                drain(p, f)?;
                changed.push(p.clone());
            }
        }
        if changed.is_empty() {
            return Ok(Wake::Timeout);
        }
        Ok(Wake::Changed(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_tree_falls_back_to_the_timer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = dir.path().join("sys/block/md0/md");
        std::fs::create_dir_all(&md).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        std::fs::write(dir.path().join("proc/mdstat"), "Personalities :\n").expect("w");
        std::fs::write(md.join("array_state"), "clean\n").expect("w");
        std::fs::write(md.join("sync_action"), "idle\n").expect("w");
        let mut w = MdWatcher::new(dir.path()).expect("watcher");
        assert_eq!(w.watched(), 3);
        assert_eq!(
            w.wait(Duration::from_millis(20)).expect("wait"),
            Wake::Timeout
        );
    }
}
