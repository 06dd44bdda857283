//! Checks: TCP connect and HTTP GET without blocking the loop, and the
//! rise/fall health counter. Command checks are processes started by the
//! supervisor and reaped by the reaper; their exit status is the outcome.
//!
//! Used for `tcp`/`command` readiness and for periodic health probes.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
};
use serde::Serialize;

/// Consecutive-result health: `rise` passes make it healthy, `fall`
/// failures unhealthy. Starts unknown. Pure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    pub healthy: Option<bool>,
    passes: u32,
    failures: u32,
    pub last: Option<String>,
}

impl Health {
    /// Record one result; returns the new verdict when it changed.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32, detail: String) -> Option<bool> {
        self.last = Some(detail);
        if ok {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            if self.healthy != Some(true) && self.passes >= rise {
                self.healthy = Some(true);
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            if self.healthy != Some(false) && self.failures >= fall {
                self.healthy = Some(false);
                return Some(false);
            }
        }
        None
    }
}

/// Parse the status code of an HTTP/1.x status line at the start of `buf`;
/// `None` while the line is incomplete.
pub fn parse_http_status(buf: &[u8]) -> Option<Result<u16, String>> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&buf[..end]);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Some(Err(format!("not an HTTP/1 status line: {line:.80}")));
    }
    Some(
        code.parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| format!("bad status code in: {line:.80}")),
    )
}

#[derive(Debug)]
enum Stage {
    Connecting,
    Sending(Vec<u8>),
    Reading(Vec<u8>),
}

/// An in-flight TCP or HTTP check.
#[derive(Debug)]
pub struct NetCheck {
    sock: OwnedFd,
    stage: Stage,
    http: Option<Vec<u8>>,
}

/// The result of a finished check: `Ok(detail)` pass, `Err(detail)` fail.
pub type Outcome = Result<String, String>;

impl NetCheck {
    /// Begin connecting; an immediate failure is returned as `Err`.
    pub fn start(addr: SocketAddr, http_path: Option<&str>) -> Result<Self, String> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let sock = socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| format!("socket: {e}"))?;
        match connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(e) => return Err(format!("connect {addr}: {}", e.desc())),
        }
        let http = http_path.map(|p| {
            format!("GET {p} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: flexvisor\r\nConnection: close\r\n\r\n")
                .into_bytes()
        });
        Ok(Self {
            sock,
            stage: Stage::Connecting,
            http,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Poll for writability (connecting/sending) or readability.
    pub fn wants_write(&self) -> bool {
        !matches!(self.stage, Stage::Reading(_))
    }

    /// Advance after poll said the socket is ready; `Some` when finished.
    pub fn advance(&mut self) -> Option<Outcome> {
        loop {
            match &mut self.stage {
                Stage::Connecting => {
                    match getsockopt(&self.sock, sockopt::SocketError) {
                        Ok(0) => {}
                        Ok(e) => {
                            return Some(Err(format!("connect: {}", Errno::from_raw(e).desc())))
                        }
                        Err(e) => return Some(Err(format!("connect: {e}"))),
                    }
                    match self.http.take() {
                        None => return Some(Ok("connected".into())),
                        Some(req) => self.stage = Stage::Sending(req),
                    }
                }
                Stage::Sending(req) => match nix::unistd::write(&self.sock, req) {
                    Ok(n) if n == req.len() => self.stage = Stage::Reading(Vec::new()),
                    Ok(n) => {
                        req.drain(..n);
                        return None;
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => return None,
                    Err(e) => return Some(Err(format!("send: {}", e.desc()))),
                },
                Stage::Reading(buf) => {
                    let mut chunk = [0u8; 1024];
                    match nix::unistd::read(&self.sock, &mut chunk) {
                        Ok(0) => {
                            return Some(match parse_http_status(buf) {
                                Some(r) => status_outcome(r),
                                None => Err("connection closed before a status line".into()),
                            })
                        }
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(r) = parse_http_status(buf) {
                                return Some(status_outcome(r));
                            }
                            if buf.len() > 8192 {
                                return Some(Err("status line longer than 8 KiB".into()));
                            }
                        }
                        Err(Errno::EAGAIN | Errno::EINTR) => return None,
                        Err(e) => return Some(Err(format!("recv: {}", e.desc()))),
                    }
                }
            }
        }
    }
}

fn status_outcome(r: Result<u16, String>) -> Outcome {
    match r {
        Ok(c) if (200..400).contains(&c) => Ok(format!("HTTP {c}")),
        Ok(c) => Err(format!("HTTP {c}")),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn rise_and_fall() {
        let mut h = Health::default();
        assert_eq!(h.record(true, 2, 2, String::new()), None);
        assert_eq!(h.record(true, 2, 2, String::new()), Some(true));
        assert_eq!(h.record(false, 2, 2, String::new()), None);
        assert_eq!(h.record(true, 2, 2, String::new()), None);
        assert_eq!(h.record(false, 2, 2, String::new()), None);
        assert_eq!(h.record(false, 2, 2, String::new()), Some(false));
    }

    #[test]
    fn http_status_line() {
        assert_eq!(
            parse_http_status(b"HTTP/1.1 204 No Content\r\n"),
            Some(Ok(204))
        );
        assert_eq!(parse_http_status(b"HTTP/1.1 20"), None);
        assert!(matches!(parse_http_status(b"SSH-2.0\r\n"), Some(Err(_))));
    }

    fn run(mut c: NetCheck) -> Outcome {
        loop {
            let mut pfd = [libc::pollfd {
                fd: c.fd(),
                events: if c.wants_write() {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            }];
            // SAFETY: one valid pollfd on the stack.
            unsafe { libc::poll(pfd.as_mut_ptr(), 1, 5000) };
            if let Some(o) = c.advance() {
                return o;
            }
        }
    }

    #[test]
    fn http_check_against_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 512];
            let n = s.read(&mut b).unwrap();
            assert!(b[..n].starts_with(b"GET /health HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.1 503 Unavailable\r\n\r\n").unwrap();
        });
        let o = run(NetCheck::start(addr, Some("/health")).unwrap());
        t.join().unwrap();
        assert_eq!(o, Err("HTTP 503".into()));
    }

    #[test]
    fn tcp_check_refused_fails() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let o = match NetCheck::start(addr, None) {
            Ok(c) => run(c),
            Err(e) => Err(e),
        };
        assert!(o.is_err(), "{o:?}");
    }
}
