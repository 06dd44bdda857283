//! The rebuild as the operator follows it: per array, rebuilding (with the
//! kernel's percentage and estimate), waiting, or clean; from the same
//! snapshots the health monitor reads.

use flexvisor_health::raid::RaidSnapshot;
use serde::Serialize;

/// Where one array's rebuild stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum ArrayProgress {
    /// All members in sync, nothing running.
    Clean,
    /// Recovery running.
    Rebuilding {
        /// Tenths of a percent, when the kernel says.
        per_mille: Option<u32>,
        /// Kernel's estimate of the time left.
        finish_secs: Option<u64>,
    },
    /// Members missing and no recovery running (queued behind another
    /// array's recovery: md runs them one after the other on a disk).
    Waiting {
        /// Devices still missing.
        missing: u32,
    },
    /// A member is faulty again (the new disk failed during the rebuild).
    Failed {
        /// Faulty members.
        faulty: Vec<String>,
    },
    /// The array is gone or stopped.
    Absent,
}

impl std::fmt::Display for ArrayProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArrayProgress::Clean => write!(f, "clean"),
            ArrayProgress::Rebuilding {
                per_mille,
                finish_secs,
            } => {
                write!(f, "rebuilding")?;
                if let Some(p) = per_mille {
                    write!(f, " {}.{}%", p / 10, p % 10)?;
                }
                if let Some(s) = finish_secs {
                    write!(f, ", about {s} s left")?;
                }
                Ok(())
            }
            ArrayProgress::Waiting { missing } => {
                write!(f, "waiting to rebuild ({missing} device(s) missing)")
            }
            ArrayProgress::Failed { faulty } => write!(f, "FAILED: faulty {}", faulty.join(",")),
            ArrayProgress::Absent => write!(f, "absent"),
        }
    }
}

/// Progress of `array` in `snap`. `ignore_faulty` lists members already
/// known faulty before the replacement (they are not a new failure).
pub fn of(snap: &RaidSnapshot, array: &str, ignore_faulty: &[String]) -> ArrayProgress {
    let Some(a) = snap.array(array) else {
        return ArrayProgress::Absent;
    };
    if !a.running {
        return ArrayProgress::Absent;
    }
    let faulty: Vec<String> = a
        .members
        .iter()
        .filter(|m| m.faulty && !ignore_faulty.contains(&m.device))
        .map(|m| m.device.clone())
        .collect();
    if !faulty.is_empty() {
        return ArrayProgress::Failed { faulty };
    }
    if let Some(s) = a.sync.as_ref().filter(|s| s.waiting.is_none()) {
        if s.action == "recovery" || a.missing > 0 {
            return ArrayProgress::Rebuilding {
                per_mille: s.per_mille,
                finish_secs: s.finish_secs,
            };
        }
    }
    if a.missing > 0 {
        return ArrayProgress::Waiting { missing: a.missing };
    }
    ArrayProgress::Clean
}

/// Whether every entry is clean.
pub fn all_clean(p: &[(String, ArrayProgress)]) -> bool {
    p.iter().all(|(_, s)| *s == ArrayProgress::Clean)
}

/// The first failure, if any.
pub fn failure(p: &[(String, ArrayProgress)]) -> Option<String> {
    p.iter().find_map(|(a, s)| match s {
        ArrayProgress::Failed { .. } | ArrayProgress::Absent => Some(format!("{a}: {s}")),
        _ => None,
    })
}

/// One line for the operator: `md0 clean, md1 rebuilding 42.5%`.
pub fn line(p: &[(String, ArrayProgress)]) -> String {
    p.iter()
        .map(|(a, s)| format!("{a} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}
