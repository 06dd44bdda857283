//! A blocking client of the control socket, for `flexctl` and tests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::proto::{Op, Reply, Request};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach flexvisor at {}: {source} (is it running? use --socket or FLEXVISOR_SOCKET)", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("permission denied on {}: the flexvisor control socket accepts root only; run flexctl as root", path.display())]
    Denied { path: PathBuf },
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("flexvisor closed the connection without replying")]
    Closed,
    #[error("unreadable reply from flexvisor: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("{0}")]
    Refused(String),
}

#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let s = UnixStream::connect(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::Denied {
                    path: path.to_owned(),
                }
            } else {
                ClientError::Connect {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Ok(Self {
            reader: BufReader::new(s),
        })
    }

    fn send(&mut self, op: Op) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(&Request::new(op))?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line)?;
        Ok(())
    }

    /// Next reply line; `None` at end of stream.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(&line)?))
    }

    /// One request, one reply: the data of `ok`, or the server's error.
    pub fn call(&mut self, op: Op) -> Result<serde_json::Value, ClientError> {
        self.send(op)?;
        match self.next_reply()? {
            Some(Reply::Ok { data }) => Ok(data),
            Some(Reply::Error { message }) => Err(ClientError::Refused(message)),
            Some(other) => Err(ClientError::Refused(format!("unexpected reply {other:?}"))),
            None => Err(ClientError::Closed),
        }
    }

    /// A request whose replies stream: `each` gets every line after the
    /// first `ok` and returns false to stop.
    pub fn stream(
        &mut self,
        op: Op,
        mut each: impl FnMut(Reply) -> bool,
    ) -> Result<(), ClientError> {
        self.call(op)?;
        while let Some(r) = self.next_reply()? {
            if let Reply::Error { message } = r {
                return Err(ClientError::Refused(message));
            }
            if !each(r) {
                break;
            }
        }
        Ok(())
    }
}

/// Convenience: connect, call once.
pub fn call(socket: &Path, op: Op) -> Result<serde_json::Value, ClientError> {
    Client::connect(socket)?.call(op)
}
