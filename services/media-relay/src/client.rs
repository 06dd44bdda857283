//! A small ng control client: sends one command, waits for the reply with
//! the same cookie, retransmits on silence. Works against media-relay and
//! rtpengine alike; used by sip-proxy, `media-relay --status` and the bench.

use crate::bencode::{self, Value};
use crate::ng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;

/// Why a command got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("ng control {peer}: {source}")]
    Io {
        /// Relay address.
        peer: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// No reply within the timeout (after retransmissions).
    #[error("ng control {peer}: no reply to {command} within {ms} ms")]
    Timeout {
        /// Relay address.
        peer: SocketAddr,
        /// Command name.
        command: String,
        /// Total wait.
        ms: u64,
    },
    /// The relay answered `result: error`.
    #[error("ng control {peer}: {command} failed: {reason}")]
    Refused {
        /// Relay address.
        peer: SocketAddr,
        /// Command name.
        command: String,
        /// `error-reason`.
        reason: String,
    },
}

/// A control client bound to an ephemeral local port.
#[derive(Debug)]
pub struct Client {
    sock: UdpSocket,
    peer: SocketAddr,
    next: AtomicU64,
    /// Wait per attempt; three attempts are made.
    pub attempt_timeout: Duration,
}

impl Client {
    /// A client for the relay at `peer`.
    pub async fn new(peer: SocketAddr) -> Result<Client, ClientError> {
        let local: SocketAddr = match (peer.ip().is_loopback(), peer.is_ipv4()) {
            (true, true) => ([127, 0, 0, 1], 0).into(),
            (true, false) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
            (false, true) => ([0, 0, 0, 0], 0).into(),
            (false, false) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|source| ClientError::Io { peer, source })?;
        Ok(Client {
            sock,
            peer,
            next: AtomicU64::new(1),
            attempt_timeout: Duration::from_millis(500),
        })
    }

    /// Sends `message` (a dictionary with `command`) and returns the reply
    /// dictionary; `result: error` becomes [`ClientError::Refused`].
    pub async fn call(&self, message: &Value) -> Result<Value, ClientError> {
        let command = message
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let cookie = format!(
            "{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let dg = ng::request(&cookie, message);
        let io = |source| ClientError::Io {
            peer: self.peer,
            source,
        };
        let mut buf = vec![0u8; 65536];
        for _ in 0..3 {
            self.sock.send_to(&dg, self.peer).await.map_err(io)?;
            let deadline = tokio::time::Instant::now() + self.attempt_timeout;
            loop {
                let r = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await;
                let Ok(r) = r else { break };
                let (n, _) = r.map_err(io)?;
                let Ok((c, body)) = ng::split(&buf[..n]) else {
                    continue;
                };
                if c != cookie.as_bytes() {
                    continue; // a late reply to an earlier attempt
                }
                let Ok(v) = bencode::decode(body) else {
                    continue;
                };
                if v.get("result").and_then(Value::as_str) == Some("error") {
                    return Err(ClientError::Refused {
                        peer: self.peer,
                        command,
                        reason: v
                            .get("error-reason")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    });
                }
                return Ok(v);
            }
        }
        Err(ClientError::Timeout {
            peer: self.peer,
            command,
            ms: 3 * self.attempt_timeout.as_millis() as u64,
        })
    }

    /// offer/answer: returns the rewritten SDP.
    pub async fn offer_answer(
        &self,
        command: &str,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        sdp: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let mut d = std::collections::BTreeMap::new();
        d.insert(b"command".to_vec(), Value::str(command));
        d.insert(b"call-id".to_vec(), Value::str(call_id));
        d.insert(b"from-tag".to_vec(), Value::str(from_tag));
        if let Some(t) = to_tag {
            d.insert(b"to-tag".to_vec(), Value::str(t));
        }
        d.insert(b"sdp".to_vec(), Value::Bytes(sdp.to_vec()));
        let v = self.call(&Value::Dict(d)).await?;
        match v.get("sdp") {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(ClientError::Refused {
                peer: self.peer,
                command: command.to_string(),
                reason: "reply without sdp".into(),
            }),
        }
    }

    /// delete: frees the call's ports.
    pub async fn delete(&self, call_id: &str) -> Result<Value, ClientError> {
        self.call(&bencode::dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str(call_id)),
        ]))
        .await
    }
}
