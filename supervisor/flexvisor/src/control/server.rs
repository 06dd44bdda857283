//! The server side of the control socket: non-blocking accept, peer
//! credential check, line framing, buffered replies. Dispatch of requests
//! is the supervisor's (it owns the state they act on).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt};

use super::proto::{Reply, Request, VERSION};

/// Larger pending output means a stuck follower: it is dropped.
const MAX_PENDING: usize = 4 << 20;
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create control socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a connection streams after its request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    Logs(String),
    Events,
}

#[derive(Debug)]
pub struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    pub follow: Option<Follow>,
    pub closed: bool,
    /// Close once `out` is flushed.
    pub close_after_flush: bool,
}

#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    pub conns: Vec<Conn>,
}

impl Server {
    /// Bind `path` (replacing a stale socket), mode 0600.
    pub fn bind(path: &Path) -> Result<Self, ServerError> {
        let err = |source| ServerError::Bind {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            conns: Vec::new(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accept every waiting connection; peers that are neither root nor
    /// our own user get an error line and are closed. Returns the refusals
    /// (for the event log).
    pub fn accept(&mut self) -> Vec<String> {
        let mut refused = Vec::new();
        let me = nix::unistd::geteuid().as_raw();
        while let Ok((stream, _)) = self.listener.accept() {
            let uid = getsockopt(&stream, sockopt::PeerCredentials)
                .map(|c| c.uid())
                .ok();
            let mut conn = Conn::new(stream);
            match uid {
                Some(0) => {}
                Some(u) if u == me => {}
                other => {
                    let who = other.map_or("unknown uid".to_owned(), |u| format!("uid {u}"));
                    let message = format!(
                        "permission denied: the flexvisor control socket accepts root only (you are {who}); run flexctl as root"
                    );
                    refused.push(message.clone());
                    conn.send(&Reply::Error { message });
                    conn.close_after_flush = true;
                }
            }
            self.conns.push(conn);
        }
        refused
    }

    /// Drop closed connections.
    pub fn prune(&mut self) {
        self.conns.retain(|c| !c.closed);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Conn {
    fn new(stream: UnixStream) -> Self {
        let _ = stream.set_nonblocking(true);
        Self {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            follow: None,
            closed: false,
            close_after_flush: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Read what is available and return complete requests (or the error
    /// message for a line that is not a valid request).
    pub fn read_requests(&mut self) -> Vec<Result<Request, String>> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
            if self.inbuf.len() > MAX_REQUEST {
                self.send(&Reply::Error {
                    message: "request line too long".into(),
                });
                self.close_after_flush = true;
                self.inbuf.clear();
                break;
            }
        }
        let mut out = Vec::new();
        while let Some(i) = self.inbuf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=i).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.push(parse_request(line));
        }
        out
    }

    /// Queue one reply line and try to write it.
    pub fn send(&mut self, r: &Reply) {
        if let Ok(mut line) = serde_json::to_vec(r) {
            line.push(b'\n');
            self.out.extend_from_slice(&line);
        }
        if self.out.len() > MAX_PENDING {
            self.closed = true;
            return;
        }
        self.flush();
    }

    /// Write pending output without blocking.
    pub fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        if self.close_after_flush {
            self.closed = true;
        }
    }
}

/// Decode one request line, checking the protocol version.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        v: Option<u32>,
    }
    match serde_json::from_slice::<Versioned>(line) {
        Ok(Versioned { v: Some(VERSION) }) => {}
        Ok(Versioned { v: Some(v) }) => {
            return Err(format!(
                "protocol version {v} not supported (this flexvisor speaks {VERSION})"
            ))
        }
        Ok(Versioned { v: None }) => return Err("request without protocol version `v`".into()),
        Err(e) => return Err(format!("not a JSON request: {e}")),
    }
    serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_checked() {
        assert!(parse_request(br#"{"v":1,"op":"status"}"#).is_ok());
        let e = parse_request(br#"{"v":9,"op":"status"}"#).unwrap_err();
        assert!(e.contains("version 9"), "{e}");
        assert!(parse_request(b"{").is_err());
        let e = parse_request(br#"{"v":1,"op":"dance"}"#).unwrap_err();
        assert!(e.contains("dance"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parse_request_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_request(&b);
        }
    }
}
