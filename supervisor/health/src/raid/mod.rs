//! Linux md RAID health: parsing `/proc/mdstat` and the md sysfs tree, a
//! combined [`RaidSnapshot`], its verdict, and mdadm-monitor-like events.
//!
//! Pure parts (parser, snapshot merge, verdict, event differ) are separate
//! from the reads ([`read_snapshot`]) and from the kernel wake-ups
//! ([`watch`]), so they are tested without root. Holds no async code.

pub mod events;
pub mod mdstat;
pub mod sysfs;
pub mod watch;

use crate::status::Status;
use crate::verdict::{CheckKind, CheckVerdict, Finding, Metric};
use mdstat::{Activity, MdStat, UnparsedLine};
use serde::{Deserialize, Serialize};
use std::path::Path;
use sysfs::{ArrayState, SysfsArray};

/// Error reading the RAID state from the system.
#[derive(Debug, thiserror::Error)]
pub enum RaidError {
    /// `/proc/mdstat` unreadable (md driver not loaded, wrong root).
    #[error("cannot read {path}: {source}")]
    Mdstat {
        /// Path tried.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// sysfs unreadable or malformed.
    #[error(transparent)]
    Sysfs(#[from] sysfs::SysfsError),
}

/// One member of an array, merged from mdstat and sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// Device name (`sda1`).
    pub device: String,
    /// Marked faulty.
    pub faulty: bool,
    /// Spare (no active role).
    pub spare: bool,
    /// In sync with the array (sysfs `in_sync`; from mdstat: not faulty and
    /// not spare).
    pub in_sync: bool,
    /// Its disk was removed and md has not failed it yet (sysfs only).
    #[serde(default)]
    pub gone: bool,
}

/// A running or waiting sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncSnapshot {
    /// `recovery`, `resync`, `check`, `repair`, `reshape`.
    pub action: String,
    /// Progress in tenths of a percent, when known.
    pub per_mille: Option<u32>,
    /// Kernel's finish estimate in seconds.
    pub finish_secs: Option<u64>,
    /// KiB/s.
    pub speed_kib_s: Option<u64>,
    /// `PENDING` / `DELAYED` when waiting rather than running.
    pub waiting: Option<String>,
}

/// One array as the node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArraySnapshot {
    /// `md0`.
    pub name: String,
    /// Running (active / clean / read-only...).
    pub running: bool,
    /// sysfs `array_state` or mdstat activity word.
    pub state: String,
    /// Personality.
    pub level: Option<String>,
    /// Devices missing from the array (sysfs `degraded`, or mdstat `[n/m]`).
    pub missing: u32,
    /// Members.
    pub members: Vec<MemberSnapshot>,
    /// Sync running or waiting.
    pub sync: Option<SyncSnapshot>,
    /// sysfs `mismatch_cnt`.
    pub mismatch_cnt: Option<u64>,
    /// mdstat lines of this array that did not parse.
    pub unparsed: Vec<UnparsedLine>,
}

/// All arrays at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaidSnapshot {
    /// Arrays sorted by name.
    pub arrays: Vec<ArraySnapshot>,
    /// mdstat lines outside any array that did not parse.
    pub unparsed: Vec<UnparsedLine>,
}

impl RaidSnapshot {
    /// Array by name.
    pub fn array(&self, name: &str) -> Option<&ArraySnapshot> {
        self.arrays.iter().find(|a| a.name == name)
    }
}

/// Map sysfs `sync_action` words to mdstat's words.
fn action_word(sysfs_action: &str) -> &str {
    match sysfs_action {
        "recover" => "recovery",
        other => other,
    }
}

/// Merge what mdstat and sysfs say. sysfs wins for states and counts (it is
/// per-attribute and not subject to formatting changes); mdstat supplies the
/// finish estimate and speed, and everything for arrays sysfs lacks.
pub fn merge(stat: &MdStat, sysfs: &[SysfsArray]) -> RaidSnapshot {
    let mut names: Vec<&str> = stat.arrays.iter().map(|a| a.name.as_str()).collect();
    names.extend(sysfs.iter().map(|a| a.name.as_str()));
    names.sort();
    names.dedup();
    let arrays = names
        .into_iter()
        .map(|name| {
            let m = stat.arrays.iter().find(|a| a.name == name);
            let s = sysfs.iter().find(|a| a.name == name);
            merge_one(name, m, s)
        })
        .collect();
    RaidSnapshot {
        arrays,
        unparsed: stat.unparsed.clone(),
    }
}

fn merge_one(name: &str, m: Option<&mdstat::MdArray>, s: Option<&SysfsArray>) -> ArraySnapshot {
    let running = match (s, m) {
        (Some(s), _) => s.array_state.is_running(),
        (None, Some(m)) => m.activity == Activity::Active,
        (None, None) => false,
    };
    let state = match (s, m) {
        (Some(s), _) => match &s.array_state {
            ArrayState::Other(o) => o.clone(),
            st => serde_json::to_value(st)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        (None, Some(m)) => match m.activity {
            Activity::Active => "active".to_string(),
            Activity::Inactive => "inactive".to_string(),
        },
        (None, None) => String::new(),
    };
    let level = s
        .map(|s| s.level.clone())
        .filter(|l| !l.is_empty())
        .or_else(|| m.and_then(|m| m.level.clone()));
    let mdstat_missing = m
        .and_then(|m| match (m.raid_disks, m.working_disks) {
            (Some(n), Some(w)) => Some(n.saturating_sub(w)),
            _ => None,
        })
        .or_else(|| {
            m.and_then(|m| m.slots_up.as_ref())
                .map(|slots| slots.iter().filter(|up| !**up).count() as u32)
        });
    let missing = s.and_then(|s| s.degraded).or(mdstat_missing).unwrap_or(0);
    let members = match s {
        Some(s) if !s.members.is_empty() => s
            .members
            .iter()
            .map(|d| MemberSnapshot {
                device: d.device.clone(),
                faulty: d.state.faulty,
                spare: d.state.spare || (d.slot.is_none() && !d.state.journal && !d.state.faulty),
                in_sync: d.state.in_sync,
                gone: d.gone,
            })
            .collect(),
        _ => m
            .map(|m| {
                let mut v: Vec<MemberSnapshot> = m
                    .members
                    .iter()
                    .map(|d| MemberSnapshot {
                        device: d.device.clone(),
                        faulty: d.faulty,
                        spare: d.spare,
                        in_sync: !d.faulty && !d.spare,
                        gone: false,
                    })
                    .collect();
                v.sort_by(|a, b| a.device.cmp(&b.device));
                v
            })
            .unwrap_or_default(),
    };
    // Members being rebuilt are not in sync yet even though mdstat lists
    // them without flags: correct that when mdstat is the only source.
    // The same for a member queued for recovery (`resync=DELAYED` while
    // another array on the disk rebuilds first).
    let syncing = m.is_some_and(|m| m.progress.is_some() || m.pending.is_some());
    let members = if s.is_none() && syncing && missing > 0 {
        let mut v = members;
        let mut to_mark = missing as usize;
        // The rebuilding device carries the highest descriptor index.
        if let Some(m) = m {
            let mut by_index: Vec<&mdstat::Member> =
                m.members.iter().filter(|d| !d.faulty && !d.spare).collect();
            // Only members beyond the working count can be rebuilding.
            if let Some(w) = m.working_disks {
                to_mark = to_mark.min(by_index.len().saturating_sub(w as usize));
            }
            by_index.sort_by_key(|d| std::cmp::Reverse(d.index));
            for d in by_index {
                if to_mark == 0 {
                    break;
                }
                if let Some(ms) = v.iter_mut().find(|x| x.device == d.device) {
                    ms.in_sync = false;
                    to_mark -= 1;
                }
            }
        }
        v
    } else {
        members
    };
    let sync = sync_of(m, s);
    ArraySnapshot {
        name: name.to_string(),
        running,
        state,
        level,
        missing,
        members,
        sync,
        mismatch_cnt: s.and_then(|s| s.mismatch_cnt),
        unparsed: m.map(|m| m.unparsed.clone()).unwrap_or_default(),
    }
}

fn sync_of(m: Option<&mdstat::MdArray>, s: Option<&SysfsArray>) -> Option<SyncSnapshot> {
    let from_mdstat = m.and_then(|m| {
        m.progress
            .as_ref()
            .map(|p| SyncSnapshot {
                action: p.action.as_str().to_string(),
                per_mille: Some(p.per_mille),
                finish_secs: p.finish_secs,
                speed_kib_s: p.speed_kib_s,
                waiting: None,
            })
            .or_else(|| {
                m.pending.as_ref().map(|p| SyncSnapshot {
                    action: p.action.as_str().to_string(),
                    per_mille: None,
                    finish_secs: None,
                    speed_kib_s: None,
                    waiting: Some(p.reason.clone()),
                })
            })
    });
    let sysfs_action = s
        .and_then(|s| s.sync_action.as_deref())
        .filter(|a| *a != "idle" && *a != "frozen");
    match (from_mdstat, sysfs_action) {
        (Some(mut snap), Some(action)) => {
            // sysfs tells repair apart from resync; mdstat does not.
            if action == "repair" {
                snap.action = "repair".to_string();
            }
            Some(snap)
        }
        (Some(snap), None) => Some(snap),
        (None, Some(action)) => {
            let per_mille = s.and_then(|s| s.sync_completed).and_then(|(done, total)| {
                (total > 0)
                    .then(|| u32::try_from(done.saturating_mul(1000) / total).unwrap_or(1000))
            });
            Some(SyncSnapshot {
                action: action_word(action).to_string(),
                per_mille,
                finish_secs: None,
                speed_kib_s: None,
                waiting: None,
            })
        }
        (None, None) => None,
    }
}

/// Read `/proc/mdstat` and `/sys/block/md*/md` under `root` and merge them.
/// A missing `sys/block` (fixture trees with mdstat only) is tolerated.
pub fn read_snapshot(root: &Path) -> Result<RaidSnapshot, RaidError> {
    let path = root.join("proc/mdstat");
    let text = std::fs::read_to_string(&path).map_err(|source| RaidError::Mdstat {
        path: path.clone(),
        source,
    })?;
    let stat = mdstat::parse(&text);
    let arrays = if sysfs::block_dir(root).is_dir() {
        sysfs::read_arrays(root)?
    } else {
        Vec::new()
    };
    Ok(merge(&stat, &arrays))
}

fn fmt_finish(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Verdict for one array.
pub fn array_finding(a: &ArraySnapshot) -> Finding {
    let (status, detail) = array_status(a);
    Finding {
        subject: a.name.clone(),
        status,
        detail,
    }
}

fn array_status(a: &ArraySnapshot) -> (Status, String) {
    if let Some(line) = a.unparsed.first() {
        return (
            Status::Unknown,
            format!(
                "unrecognised mdstat line {}: {:?} ({})",
                line.line_no, line.text, line.reason
            ),
        );
    }
    if !a.running {
        return (
            Status::Critical,
            format!(
                "array {}",
                if a.state.is_empty() {
                    "inactive"
                } else {
                    &a.state
                }
            ),
        );
    }
    if a.state == "broken" {
        return (
            Status::Critical,
            "array broken (member missing)".to_string(),
        );
    }
    let faulty: Vec<&str> = a
        .members
        .iter()
        .filter(|m| m.faulty)
        .map(|m| m.device.as_str())
        .collect();
    if !faulty.is_empty() {
        return (
            Status::Critical,
            format!("faulty member {}", faulty.join(",")),
        );
    }
    let gone: Vec<&str> = a
        .members
        .iter()
        .filter(|m| m.gone)
        .map(|m| m.device.as_str())
        .collect();
    if !gone.is_empty() {
        return (
            Status::Critical,
            format!(
                "member {} gone (disk removed; md fails it at its next write)",
                gone.join(",")
            ),
        );
    }
    let rebuilding = a.sync.as_ref().filter(|s| s.waiting.is_none());
    if let Some(sync) = rebuilding {
        let pct = sync
            .per_mille
            .map(|p| format!(" {:.1}%", f64::from(p) / 10.0))
            .unwrap_or_default();
        let finish = sync
            .finish_secs
            .map(|s| format!(", finish in {}", fmt_finish(s)))
            .unwrap_or_default();
        let verb = match sync.action.as_str() {
            "recovery" => "rebuilding",
            "check" => "checking",
            "repair" => "repairing",
            "reshape" => "reshaping",
            "resync" => "resyncing",
            other => other,
        };
        let missing = if a.missing > 0 {
            format!(" ({} device(s) missing)", a.missing)
        } else {
            String::new()
        };
        return (Status::Warning, format!("{verb}{pct}{finish}{missing}"));
    }
    // A replacement member waiting for its turn (md rebuilds the arrays
    // of one disk one after the other): the node still runs on one disk,
    // but the repair is under way, as for a running rebuild.
    let incoming = a.members.iter().any(|m| !m.faulty && !m.in_sync);
    if let Some(waiting) = a.sync.as_ref().and_then(|s| s.waiting.as_ref()) {
        if a.missing > 0 && incoming {
            return (
                Status::Warning,
                format!(
                    "rebuild queued ({waiting}), {} device(s) missing",
                    a.missing
                ),
            );
        }
    }
    if a.missing > 0 {
        let waiting = a
            .sync
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .map(|w| format!(", {w} rebuild"))
            .unwrap_or_default();
        return (
            Status::Critical,
            format!("degraded, {} device(s) missing{waiting}", a.missing),
        );
    }
    if let Some(waiting) = a.sync.as_ref().and_then(|s| s.waiting.as_ref()) {
        let action = a
            .sync
            .as_ref()
            .map(|s| s.action.as_str())
            .unwrap_or("resync");
        return (Status::Warning, format!("{action} {waiting}"));
    }
    if let Some(n) = a.mismatch_cnt.filter(|n| *n > 0) {
        return (
            Status::Warning,
            format!("{n} mismatched sectors found by the last check"),
        );
    }
    let n = a.members.iter().filter(|m| m.in_sync).count();
    (Status::Ok, format!("clean, {n} member(s) in sync"))
}

/// The RAID verdict: per-array findings, expected-but-missing arrays as
/// CRITICAL, unparsed mdstat lines as UNKNOWN.
pub fn verdict(snapshot: &RaidSnapshot, expected: &[String]) -> CheckVerdict {
    let mut findings: Vec<Finding> = Vec::new();
    let mut metrics = Vec::new();
    for a in &snapshot.arrays {
        let f = array_finding(a);
        metrics.push(Metric::labelled(
            "raid_array_status",
            "array",
            &a.name,
            f64::from(f.status.gauge()),
        ));
        metrics.push(Metric::labelled(
            "raid_missing_devices",
            "array",
            &a.name,
            f64::from(a.missing),
        ));
        let pct = a
            .sync
            .as_ref()
            .and_then(|s| s.per_mille)
            .map(|p| f64::from(p) / 10.0)
            .unwrap_or(if a.sync.is_some() { 0.0 } else { 100.0 });
        metrics.push(Metric::labelled("raid_sync_percent", "array", &a.name, pct).with_unit("%"));
        if let Some(n) = a.mismatch_cnt {
            metrics.push(Metric::labelled(
                "raid_mismatch_sectors",
                "array",
                &a.name,
                n as f64,
            ));
        }
        findings.push(f);
    }
    for name in expected {
        if snapshot.array(name).is_none() {
            findings.push(Finding {
                subject: name.clone(),
                status: Status::Critical,
                detail: "expected by the profile but not present".to_string(),
            });
            metrics.push(Metric::labelled("raid_array_status", "array", name, 2.0));
        }
    }
    for line in &snapshot.unparsed {
        findings.push(Finding {
            subject: "mdstat".to_string(),
            status: Status::Unknown,
            detail: format!(
                "unrecognised line {}: {:?} ({})",
                line.line_no, line.text, line.reason
            ),
        });
    }
    let ok = format!("{} array(s) clean", snapshot.arrays.len());
    CheckVerdict::from_findings(CheckKind::Raid, findings, metrics, ok)
}

#[cfg(test)]
mod tests;
