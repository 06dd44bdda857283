//! The hardware watchdog (`/dev/watchdog`): fed at a third of its timeout
//! while the supervisor loop runs, closed with the magic character `V` on an
//! orderly shutdown so the timer is disarmed.
//! Kernel doc: Documentation/watchdog/watchdog-api.rst.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

// WDIOC_GETTIMEOUT = _IOR('W', 7, int); WDIOC_KEEPALIVE = _IOR('W', 5, int)
nix::ioctl_read!(wdioc_gettimeout, b'W', 7, libc::c_int);

#[derive(Debug, thiserror::Error)]
#[error("watchdog {path}: {source}")]
pub struct WatchdogError {
    path: String,
    #[source]
    source: std::io::Error,
}

#[derive(Debug)]
pub struct Watchdog {
    file: Option<File>,
    pub interval: Duration,
    next: Instant,
}

impl Watchdog {
    /// Open and arm the device; the feed interval is a third of its timeout.
    pub fn open(path: &Path) -> Result<Self, WatchdogError> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| WatchdogError {
                path: path.display().to_string(),
                source,
            })?;
        let mut timeout: libc::c_int = 0;
        // SAFETY: the fd is open for the call; the kernel writes one int.
        let secs = match unsafe { wdioc_gettimeout(file.as_raw_fd(), &mut timeout) } {
            Ok(_) if timeout > 0 => u64::try_from(timeout).unwrap_or(60),
            _ => 60,
        };
        let interval = Duration::from_millis(secs * 1000 / 3);
        let mut w = Self {
            file: Some(file),
            interval,
            next: Instant::now(),
        };
        w.feed();
        Ok(w)
    }

    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Feed when due.
    pub fn tick(&mut self, now: Instant) {
        if now >= self.next {
            self.feed();
        }
    }

    fn feed(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.write_all(b"\0");
        }
        self.next = Instant::now() + self.interval;
    }

    /// Magic close: disarm and close.
    pub fn disarm(&mut self) {
        if let Some(mut f) = self.file.take() {
            let _ = f.write_all(b"V");
        }
    }
}
