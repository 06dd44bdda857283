//! Per-check verdicts and the node-wide [`NodeHealth`] built from them.
//!
//! Each check (raid, power, uplinks, services, vip) produces a
//! [`CheckVerdict`]: a status, a one-line summary a technician reads,
//! findings per subject (array, PSU, uplink, service) and numeric metrics
//! used for perfdata and Prometheus. The overall status is the worst of the
//! checks. Rendering lives in [`crate::report`].

use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The checks a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// md RAID-1 arrays.
    Raid,
    /// Chassis PSU redundancy.
    Power,
    /// Node NICs, bond and switch-module uplinks.
    Uplinks,
    /// Supervised services (verdict pushed in by the supervisor).
    Services,
    /// Shared-IP (VRRP) state (verdict pushed in by the supervisor).
    Vip,
}

impl CheckKind {
    /// All checks in display order.
    pub const ALL: [CheckKind; 5] = [
        CheckKind::Raid,
        CheckKind::Power,
        CheckKind::Uplinks,
        CheckKind::Services,
        CheckKind::Vip,
    ];

    /// Lower-case name used on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Raid => "raid",
            CheckKind::Power => "power",
            CheckKind::Uplinks => "uplinks",
            CheckKind::Services => "services",
            CheckKind::Vip => "vip",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown check name given on the command line.
#[derive(Debug, thiserror::Error)]
#[error("unknown check {0:?}: expected one of raid, power, uplinks, services, vip")]
pub struct UnknownCheck(pub String);

impl std::str::FromStr for CheckKind {
    type Err = UnknownCheck;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownCheck(s.to_string()))
    }
}

/// The status of one subject (an array, a PSU, an uplink, a service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What it is about (`md0`, `PSU3`, `io1:EXT2`, `sip-proxy`).
    pub subject: String,
    /// Its status.
    pub status: Status,
    /// Human detail (`rebuilding 8.5%, finish in 42s`).
    pub detail: String,
}

/// A numeric reading: Prometheus gauge and monitoring-plugin perfdata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name without the `flexvisor_` prefix (`raid_sync_percent`).
    pub name: String,
    /// Label pairs (`array` = `md0`).
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
    /// Unit for perfdata (`%`, `s`, or empty).
    #[serde(default)]
    pub unit: String,
}

impl Metric {
    /// A metric with one label.
    pub fn labelled(name: &str, label: &str, value_of_label: &str, value: f64) -> Metric {
        Metric {
            name: name.to_string(),
            labels: vec![(label.to_string(), value_of_label.to_string())],
            value,
            unit: String::new(),
        }
    }

    /// Same metric with a perfdata unit.
    pub fn with_unit(mut self, unit: &str) -> Metric {
        self.unit = unit.to_string();
        self
    }
}

/// Verdict of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckVerdict {
    /// Which check.
    pub check: CheckKind,
    /// Worst of the findings (or UNKNOWN when there is no reading).
    pub status: Status,
    /// One line for the technician.
    pub summary: String,
    /// Per-subject findings.
    pub findings: Vec<Finding>,
    /// Numbers for perfdata and Prometheus.
    pub metrics: Vec<Metric>,
    /// Unix time (seconds) of the reading this verdict is based on.
    pub observed_at: Option<u64>,
}

impl CheckVerdict {
    /// A verdict whose status is the worst of its findings and whose summary
    /// lists the non-OK findings (or `ok_summary` when all are OK).
    pub fn from_findings(
        check: CheckKind,
        findings: Vec<Finding>,
        metrics: Vec<Metric>,
        ok_summary: String,
    ) -> CheckVerdict {
        let status = Status::worst_of(findings.iter().map(|f| f.status));
        let bad: Vec<String> = findings
            .iter()
            .filter(|f| f.status != Status::Ok)
            .map(|f| format!("{} {}", f.subject, f.detail))
            .collect();
        let summary = if bad.is_empty() {
            ok_summary
        } else {
            bad.join("; ")
        };
        CheckVerdict {
            check,
            status,
            summary,
            findings,
            metrics,
            observed_at: None,
        }
    }

    /// UNKNOWN verdict with a reason (no reading yet, reader error).
    pub fn unknown(check: CheckKind, reason: impl Into<String>) -> CheckVerdict {
        CheckVerdict {
            check,
            status: Status::Unknown,
            summary: reason.into(),
            findings: Vec::new(),
            metrics: Vec::new(),
            observed_at: None,
        }
    }

    /// Set the observation time.
    pub fn observed(mut self, unix_secs: u64) -> CheckVerdict {
        self.observed_at = Some(unix_secs);
        self
    }
}

/// Health of the whole node: what `flexctl health --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// Node name from the profile (`db1a`).
    pub node: String,
    /// Worst of the checks.
    pub overall: Status,
    /// One verdict per check, in [`CheckKind::ALL`] order.
    pub checks: Vec<CheckVerdict>,
    /// Unix time (seconds) this summary was assembled.
    pub generated_at: u64,
}

impl NodeHealth {
    /// Assemble from verdicts; overall is their worst.
    pub fn new(node: &str, mut checks: Vec<CheckVerdict>, generated_at: u64) -> NodeHealth {
        checks.sort_by_key(|c| c.check);
        NodeHealth {
            node: node.to_string(),
            overall: Status::worst_of(checks.iter().map(|c| c.status)),
            checks,
            generated_at,
        }
    }

    /// The verdict of one check, if present.
    pub fn check(&self, kind: CheckKind) -> Option<&CheckVerdict> {
        self.checks.iter().find(|c| c.check == kind)
    }

    /// Only the selected check (as `flexctl health --check X` shows it);
    /// a missing check yields UNKNOWN.
    pub fn select(&self, kind: CheckKind) -> NodeHealth {
        let verdict = self
            .check(kind)
            .cloned()
            .unwrap_or_else(|| CheckVerdict::unknown(kind, "check not configured on this node"));
        NodeHealth::new(&self.node, vec![verdict], self.generated_at)
    }
}

/// Current Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(s: &str, st: Status) -> Finding {
        Finding {
            subject: s.into(),
            status: st,
            detail: "x".into(),
        }
    }

    #[test]
    fn overall_is_worst_and_json_round_trips() {
        let raid = CheckVerdict::from_findings(
            CheckKind::Raid,
            vec![finding("md0", Status::Ok), finding("md1", Status::Warning)],
            vec![],
            "all clean".into(),
        );
        let power = CheckVerdict::unknown(CheckKind::Power, "no reading");
        let h = NodeHealth::new("db1a", vec![power, raid], 7);
        assert_eq!(h.overall, Status::Unknown);
        assert_eq!(h.checks[0].check, CheckKind::Raid);
        assert_eq!(h.checks[0].summary, "md1 x");
        let json = serde_json::to_string(&h).expect("json");
        assert!(json.contains("\"overall\":\"UNKNOWN\""), "{json}");
        let back: NodeHealth = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, h);
        assert_eq!(h.select(CheckKind::Raid).overall, Status::Warning);
        assert_eq!(h.select(CheckKind::Vip).overall, Status::Unknown);
    }

    #[test]
    fn check_names_parse() {
        assert_eq!(
            "uplinks".parse::<CheckKind>().ok(),
            Some(CheckKind::Uplinks)
        );
        assert!("disks".parse::<CheckKind>().is_err());
    }
}
