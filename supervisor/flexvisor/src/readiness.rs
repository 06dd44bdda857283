//! Readiness notification: the s6-style notification descriptor (the
//! service writes a newline to fd N) and systemd's `sd_notify` datagrams
//! (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `MAINPID=…`). TCP and command readiness reuse
//! the checks of [`crate::probe`].
//!
//! The parsers are pure; the sockets and pipes are created per service.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// One `sd_notify` assignment we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdMessage {
    Ready,
    Stopping,
    Watchdog,
    Status(String),
    /// The service forked: this pid is its main process from now on.
    MainPid(i32),
}

/// Parse an `sd_notify` datagram (newline-separated `KEY=VALUE`); unknown
/// keys and junk are ignored, never an error.
pub fn parse_sd_notify(datagram: &[u8]) -> Vec<SdMessage> {
    let text = String::from_utf8_lossy(datagram);
    text.split('\n')
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            match (k, v) {
                ("READY", "1") => Some(SdMessage::Ready),
                ("STOPPING", "1") => Some(SdMessage::Stopping),
                ("WATCHDOG", "1") => Some(SdMessage::Watchdog),
                ("STATUS", s) => Some(SdMessage::Status(s.chars().take(200).collect())),
                ("MAINPID", p) => p
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|p| *p > 1)
                    .map(SdMessage::MainPid),
                _ => None,
            }
        })
        .collect()
}

/// Whether bytes read from a notification descriptor contain the newline
/// that means ready (s6-supervise semantics: anything before it is ignored).
pub fn notify_fd_ready(bytes: &[u8]) -> bool {
    bytes.contains(&b'\n')
}

/// The pipe of a notify-fd service: we read, the child writes at fd N.
#[derive(Debug)]
pub struct NotifyPipe {
    pub read: OwnedFd,
    /// Ours until the child has it; dropped right after the spawn so EOF
    /// means the service closed its end.
    pub write: Option<OwnedFd>,
}

impl NotifyPipe {
    pub fn new() -> std::io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Self {
            read,
            write: Some(write),
        })
    }

    /// Read what is available; `Some(true)` once a newline came, `None` at
    /// end of file (the service closed it without being ready).
    pub fn poll_ready(&self) -> Option<bool> {
        let mut buf = [0u8; 256];
        let mut ready = false;
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) => return if ready { Some(true) } else { None },
                Ok(n) => ready |= notify_fd_ready(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return Some(ready),
            }
        }
    }
}

/// The `NOTIFY_SOCKET` of one service.
#[derive(Debug)]
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    pub fn bind(dir: &Path, service: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{service}.sock"));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)?;
        sock.set_nonblocking(true)?;
        Ok(Self { path, sock })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Every message waiting.
    pub fn recv_all(&self) -> Vec<SdMessage> {
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.extend(parse_sd_notify(&buf[..n]));
        }
        out
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sd_notify() {
        let m = parse_sd_notify(b"STATUS=warming up\nREADY=1\nMAINPID=4\n\xff\xfe");
        assert_eq!(
            m,
            vec![
                SdMessage::Status("warming up".into()),
                SdMessage::Ready,
                SdMessage::MainPid(4)
            ]
        );
        assert!(parse_sd_notify(b"READY=0").is_empty());
        for bad in [
            "MAINPID=0",
            "MAINPID=1",
            "MAINPID=-5",
            "MAINPID=x",
            "MAINPID=",
        ] {
            assert!(parse_sd_notify(bad.as_bytes()).is_empty(), "{bad}");
        }
    }

    #[test]
    fn notify_fd_needs_newline() {
        assert!(!notify_fd_ready(b"abc"));
        assert!(notify_fd_ready(b"\n"));
    }

    proptest::proptest! {
        #[test]
        fn sd_notify_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_sd_notify(&b);
        }
    }
}
