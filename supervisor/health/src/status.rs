//! The four-level status every check reports, ordered so that the worst wins.
//!
//! This follows the monitoring-plugin convention (Nagios, Icinga): the exit
//! code of a check command is 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. For
//! "worst of" purposes UNKNOWN ranks between WARNING and CRITICAL: a check
//! that cannot tell is more worrying than a known warning, but a known
//! failure is worse than not knowing.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Outcome of one check, or of the whole node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Everything the check looks at is as it should be.
    Ok,
    /// Redundancy reduced or work in progress; no outage.
    Warning,
    /// Outage, or one more failure away from one.
    Critical,
    /// The check could not produce a reading.
    Unknown,
}

impl Status {
    /// Monitoring-plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// Rank used by [`Status::worst`]: OK < WARNING < UNKNOWN < CRITICAL.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        }
    }

    /// The more severe of two statuses.
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Worst of many; OK for an empty list.
    pub fn worst_of<I: IntoIterator<Item = Status>>(items: I) -> Status {
        items.into_iter().fold(Status::Ok, Status::worst)
    }

    /// Upper-case label as printed by monitoring plugins.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Gauge value for Prometheus: the exit code.
    pub fn gauge(self) -> i32 {
        self.exit_code()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_beats_unknown_beats_warning() {
        assert_eq!(
            Status::worst_of([Status::Ok, Status::Warning]),
            Status::Warning
        );
        assert_eq!(
            Status::worst_of([Status::Unknown, Status::Warning]),
            Status::Unknown
        );
        assert_eq!(
            Status::worst_of([Status::Unknown, Status::Critical]),
            Status::Critical
        );
        assert_eq!(Status::worst_of([]), Status::Ok);
    }

    #[test]
    fn exit_codes_follow_plugin_convention() {
        let codes: Vec<i32> = [
            Status::Ok,
            Status::Warning,
            Status::Critical,
            Status::Unknown,
        ]
        .iter()
        .map(|s| s.exit_code())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3]);
    }
}
