//! The control protocol, version [`VERSION`]: one JSON object per line.
//!
//! A request is `{"v":1,"op":"…",…}`. The server answers with one
//! [`Reply`] line, or for `follow` requests a stream of `log`/`event` lines
//! until the client hangs up. Unknown versions are refused with an `error`.
//! New subsystems (health, VRRP) plug in through [`Op::Subsystem`] and the
//! `subsystems` map of [`Status`] without a protocol change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::logs::LogLine;

pub const VERSION: u32 = 1;

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    pub fn new(op: Op) -> Self {
        Self { v: VERSION, op }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Status,
    Start {
        service: String,
    },
    Stop {
        service: String,
    },
    Restart {
        service: String,
    },
    Logs {
        service: String,
        #[serde(default)]
        lines: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
    Reload,
    Poweroff,
    Reboot,
    Events {
        #[serde(default)]
        follow: bool,
        /// Only events with a greater sequence number.
        #[serde(default)]
        since: u64,
    },
    /// Become master (start `active_services`) or backup (stop them).
    Active {
        master: bool,
    },
    /// A request for a hosted subsystem (`health`, `vrrp`, …).
    Subsystem {
        name: String,
        #[serde(default)]
        request: serde_json::Value,
    },
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Ok {
        #[serde(default)]
        data: serde_json::Value,
    },
    Error {
        message: String,
    },
    Log {
        service: String,
        line: LogLine,
    },
    Event {
        event: Event,
    },
}

/// `status` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub pid1: bool,
    pub hostname: String,
    pub uptime_s: u64,
    /// `starting`, `running`, `stopping`.
    pub state: String,
    /// VRRP master: `active_services` are wanted.
    pub master: bool,
    pub cgroups: bool,
    pub services: Vec<ServiceStatus>,
    /// Status of hosted subsystems by name.
    #[serde(default)]
    pub subsystems: BTreeMap<String, serde_json::Value>,
    /// The node's master/backup hooks.
    #[serde(default)]
    pub hooks: HookStatus,
}

/// Role hooks: what runs, what waits, how the last run went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookStatus {
    /// The hook running now.
    #[serde(default)]
    pub running: Option<HookRun>,
    /// Role (`master`/`backup`) whose hook waits for the running one.
    #[serde(default)]
    pub pending: Option<String>,
    /// The last finished run, e.g. `hook db-promote succeeded after 0.4 s`.
    #[serde(default)]
    pub last: Option<String>,
    /// A failed run (`hook db-promote failed: exit 1 after 2.3 s`), reported
    /// as WARNING until a later run succeeds.
    #[serde(default)]
    pub failure: Option<HookFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// `master` or `backup`.
    pub role: String,
    pub name: String,
    pub pid: Option<i32>,
    pub for_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookFailure {
    /// `master` or `backup`.
    pub role: String,
    pub name: String,
    /// The whole message.
    pub message: String,
    /// Without the name: `exit 1 after 2.3 s`, `timed out after 30 s, killed`.
    pub detail: String,
    /// When it ended (ms since the epoch).
    pub unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `down`, `starting`, `ready`, `stopping`, `backoff`, `failed`.
    pub state: String,
    pub pid: Option<i32>,
    /// Seconds in the current state.
    pub for_s: u64,
    pub restarts: u32,
    pub kind: String,
    /// Runs only while master.
    pub active_only: bool,
    /// The supervisor wants it up.
    pub wanted: bool,
    pub health: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub last_exit: Option<String>,
    /// Dependency it waits for, when down but wanted.
    #[serde(default)]
    pub waiting_for: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request::new(Op::Logs {
            service: "db".into(),
            lines: Some(5),
            follow: true,
        });
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"v":1,"op":"logs","service":"db","lines":5,"follow":true}"#
        );
        let back: Request = serde_json::from_str(r#"{"v":1,"op":"logs","service":"db"}"#).unwrap();
        assert_eq!(
            back.op,
            Op::Logs {
                service: "db".into(),
                lines: None,
                follow: false
            }
        );
        let st: Request = serde_json::from_str(r#"{"v":1,"op":"status"}"#).unwrap();
        assert_eq!(st.op, Op::Status);
    }

    #[test]
    fn reply_wire_format() {
        let r = Reply::Error {
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"error","message":"x"}"#
        );
    }
}
