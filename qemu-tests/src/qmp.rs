//! A QMP client for one VM: greeting, capability negotiation, commands with
//! their replies, and asynchronous events, each event also appended to a
//! JSON-lines log kept with the run's output.
//!
//! Protocol: qemu's `docs/interop/qmp-spec.rst`: one JSON object per line;
//! replies carry `return` or `error` (and our `id`), events carry `event`.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Errors talking QMP.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP {path}: connection closed by qemu")]
    Closed { path: PathBuf },
    #[error("QMP {path}: gave up waiting for {what}")]
    Timeout { path: PathBuf, what: String },
    #[error("QMP {path}: not JSON: {line:?}")]
    Garbage { path: PathBuf, line: String },
    #[error("QMP {path}: `{command}` failed: {class}: {desc}")]
    Command {
        path: PathBuf,
        command: String,
        class: String,
        desc: String,
    },
}

/// One QMP event as qemu sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name (`SHUTDOWN`, `DEVICE_DELETED`, ...).
    pub name: String,
    /// Its `data` member (`null` when absent).
    pub data: Value,
}

/// A negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    path: PathBuf,
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
    pending: Vec<Event>,
    log: Option<File>,
    /// The version object from the greeting.
    pub version: Value,
}

impl Qmp {
    /// Connect to `path` (retrying until `timeout` while qemu starts),
    /// read the greeting and enter command mode. Events are appended to
    /// `event_log` when given.
    pub fn connect(
        path: &Path,
        timeout: Duration,
        event_log: Option<&Path>,
    ) -> Result<Qmp, QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(source) if Instant::now() >= deadline => {
                    return Err(QmpError::Connect {
                        path: path.to_owned(),
                        source,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let io = |source| QmpError::Io {
            path: path.to_owned(),
            source,
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(io)?;
        let log = match event_log {
            Some(p) => Some(
                File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(io)?,
            ),
            None => None,
        };
        let mut q = Qmp {
            path: path.to_owned(),
            stream,
            buf: Vec::new(),
            next_id: 1,
            pending: Vec::new(),
            log,
            version: Value::Null,
        };
        let greeting = q.read_message(
            deadline.max(Instant::now() + Duration::from_secs(5)),
            "greeting",
        )?;
        q.version = greeting
            .get("QMP")
            .and_then(|v| v.get("version"))
            .cloned()
            .unwrap_or(Value::Null);
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    /// Run `command` with `arguments`; its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let line = format!("{msg}\n");
        self.stream
            .write_all(line.as_bytes())
            .map_err(|source| self.io(source))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.read_message(deadline, &format!("reply to `{command}`"))?;
            if m.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            let err = m.get("error").cloned().unwrap_or(Value::Null);
            return Err(QmpError::Command {
                path: self.path.clone(),
                command: command.to_owned(),
                class: err["class"].as_str().unwrap_or("?").to_owned(),
                desc: err["desc"].as_str().unwrap_or("?").to_owned(),
            });
        }
    }

    /// Wait for event `name` (one already received counts) and take it.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Event, QmpError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|e| e.name == name) {
                return Ok(self.pending.remove(i));
            }
            self.read_message(deadline, &format!("event {name}"))?;
        }
    }

    /// Events received so far and not yet taken.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending)
    }

    /// `quit`: qemu exits at once, like pulling the node's power.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `system_powerdown`: ACPI power button.
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(|_| ())
    }

    /// `set_link`: carrier of NIC `netdev`/device id on or off.
    pub fn set_link(&mut self, name: &str, up: bool) -> Result<(), QmpError> {
        self.execute("set_link", Some(json!({ "name": name, "up": up })))
            .map(|_| ())
    }

    /// `device_del`: unplug device `id` (the guest must release it; wait for
    /// `DEVICE_DELETED` to know it did).
    pub fn device_del(&mut self, id: &str) -> Result<(), QmpError> {
        self.execute("device_del", Some(json!({ "id": id })))
            .map(|_| ())
    }

    /// `blockdev-add` of a raw file as node `node_name`.
    pub fn blockdev_add_file(&mut self, node_name: &str, file: &Path) -> Result<(), QmpError> {
        self.execute(
            "blockdev-add",
            Some(json!({
                "node-name": node_name,
                "driver": "raw",
                "file": { "driver": "file", "filename": file.display().to_string() },
            })),
        )
        .map(|_| ())
    }

    /// `device_add` of a virtio disk with id `id` on block node `node_name`.
    pub fn add_virtio_disk(
        &mut self,
        id: &str,
        node_name: &str,
        serial: &str,
    ) -> Result<(), QmpError> {
        self.execute(
            "device_add",
            Some(json!({ "driver": "virtio-blk-pci", "id": id, "drive": node_name, "serial": serial })),
        )
        .map(|_| ())
    }

    /// `query-status`: `running`, `paused`, `shutdown`, ...
    pub fn status(&mut self) -> Result<String, QmpError> {
        let r = self.execute("query-status", None)?;
        Ok(r["status"].as_str().unwrap_or("unknown").to_owned())
    }

    fn io(&self, source: std::io::Error) -> QmpError {
        if matches!(
            source.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ) {
            QmpError::Closed {
                path: self.path.clone(),
            }
        } else {
            QmpError::Io {
                path: self.path.clone(),
                source,
            }
        }
    }

    /// Read one message; events are queued (and logged) and also returned.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Value, QmpError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line).trim().to_owned();
                if text.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(&text).map_err(|_| QmpError::Garbage {
                    path: self.path.clone(),
                    line: text.clone(),
                })?;
                if let Some(name) = v.get("event").and_then(Value::as_str) {
                    if let Some(log) = &mut self.log {
                        let _ = writeln!(log, "{text}");
                    }
                    self.pending.push(Event {
                        name: name.to_owned(),
                        data: v.get("data").cloned().unwrap_or(Value::Null),
                    });
                }
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(QmpError::Timeout {
                    path: self.path.clone(),
                    what: what.to_owned(),
                });
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(QmpError::Closed {
                        path: self.path.clone(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(self.io(e)),
            }
        }
    }
}
