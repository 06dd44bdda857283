//! Events in the style of `mdadm --monitor` (mdadm(8), "MONITOR MODE"),
//! computed as a pure function of the previous and the new snapshot.
//!
//! Like mdadm, a rebuild reports `Rebuild20/40/60/80` once when progress
//! crosses into a new 20% band (only the highest band crossed since the last
//! snapshot), and an array seen degraded for the first time reports
//! `DegradedArray` even without a previous snapshot.

use super::{ArraySnapshot, RaidSnapshot};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Event kinds, named as mdadm names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaidEventKind {
    /// A new array appeared.
    NewArray,
    /// A member was marked faulty.
    Fail,
    /// The array is missing devices (first seen, or became so).
    DegradedArray,
    /// A recovery/resync/check/reshape started.
    RebuildStarted,
    /// Progress crossed 20%.
    Rebuild20,
    /// Progress crossed 40%.
    Rebuild40,
    /// Progress crossed 60%.
    Rebuild60,
    /// Progress crossed 80%.
    Rebuild80,
    /// The sync finished (or was aborted).
    RebuildFinished,
    /// A device that was rebuilding or spare is now an in-sync member.
    SpareActive,
    /// An array that was there has gone.
    DeviceDisappeared,
}

impl RaidEventKind {
    fn for_band(band: u32) -> Option<RaidEventKind> {
        match band {
            1 => Some(RaidEventKind::Rebuild20),
            2 => Some(RaidEventKind::Rebuild40),
            3 => Some(RaidEventKind::Rebuild60),
            4 => Some(RaidEventKind::Rebuild80),
            _ => None,
        }
    }

    /// CRITICAL-class events in mdadm's sense (sent to the mail address).
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            RaidEventKind::Fail | RaidEventKind::DegradedArray | RaidEventKind::DeviceDisappeared
        )
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaidEvent {
    /// What happened.
    pub kind: RaidEventKind,
    /// Array (`md0`).
    pub array: String,
    /// Member device when the event is about one.
    pub device: Option<String>,
    /// Extra text (sync action).
    pub detail: Option<String>,
}

impl fmt::Display for RaidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} /dev/{}", self.kind, self.array)?;
        if let Some(d) = &self.device {
            write!(f, " /dev/{d}")?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

fn ev(kind: RaidEventKind, array: &str, device: Option<&str>, detail: Option<&str>) -> RaidEvent {
    RaidEvent {
        kind,
        array: array.to_string(),
        device: device.map(str::to_string),
        detail: detail.map(str::to_string),
    }
}

/// Events between two snapshots. `prev = None` is the first look (start of
/// monitoring): only current problems are reported (DegradedArray, Fail,
/// RebuildStarted), as mdadm does on its first scan.
pub fn diff(prev: Option<&RaidSnapshot>, new: &RaidSnapshot) -> Vec<RaidEvent> {
    let mut out = Vec::new();
    for a in &new.arrays {
        let old = prev.and_then(|p| p.array(&a.name));
        if prev.is_some() && old.is_none() {
            out.push(ev(RaidEventKind::NewArray, &a.name, None, None));
        }
        diff_array(old, a, &mut out);
    }
    if let Some(p) = prev {
        for a in &p.arrays {
            if new.array(&a.name).is_none() {
                out.push(ev(RaidEventKind::DeviceDisappeared, &a.name, None, None));
            }
        }
    }
    out
}

fn running_sync(a: &ArraySnapshot) -> Option<&super::SyncSnapshot> {
    a.sync.as_ref().filter(|s| s.waiting.is_none())
}

fn diff_array(old: Option<&ArraySnapshot>, a: &ArraySnapshot, out: &mut Vec<RaidEvent>) {
    // An unreadable stanza says nothing reliable: no events from it (the
    // verdict reports it as UNKNOWN instead).
    if !a.unparsed.is_empty() || old.is_some_and(|o| !o.unparsed.is_empty()) {
        return;
    }
    for m in &a.members {
        let was_faulty = old
            .and_then(|o| o.members.iter().find(|x| x.device == m.device))
            .is_some_and(|x| x.faulty);
        if m.faulty && !was_faulty {
            out.push(ev(RaidEventKind::Fail, &a.name, Some(&m.device), None));
        }
    }
    // A member that vanished from the list after being in sync was removed
    // hot (device unplugged): mdadm reports that as Fail too.
    if let Some(o) = old {
        for m in &o.members {
            if !m.faulty && m.in_sync && !a.members.iter().any(|x| x.device == m.device) {
                out.push(ev(
                    RaidEventKind::Fail,
                    &a.name,
                    Some(&m.device),
                    Some("removed"),
                ));
            }
        }
    }
    let was_degraded = old.is_some_and(|o| o.missing > 0);
    if a.missing > 0 && !was_degraded {
        out.push(ev(RaidEventKind::DegradedArray, &a.name, None, None));
    }

    let old_sync = old.and_then(running_sync);
    let new_sync = running_sync(a);
    match (old_sync, new_sync) {
        (None, Some(s)) => {
            out.push(ev(
                RaidEventKind::RebuildStarted,
                &a.name,
                None,
                Some(&s.action),
            ));
            if let Some(kind) = s.per_mille.and_then(|p| RaidEventKind::for_band(p / 200)) {
                // Started watching mid-way (first look): report the band.
                if old.is_some() {
                    out.push(ev(kind, &a.name, None, Some(&s.action)));
                }
            }
        }
        (Some(o), Some(s)) => {
            if let (Some(op), Some(np)) = (o.per_mille, s.per_mille) {
                if np > op && np / 200 > op / 200 {
                    if let Some(kind) = RaidEventKind::for_band(np / 200) {
                        out.push(ev(kind, &a.name, None, Some(&s.action)));
                    }
                }
            }
        }
        (Some(o), None) => {
            out.push(ev(
                RaidEventKind::RebuildFinished,
                &a.name,
                None,
                Some(&o.action),
            ));
        }
        (None, None) => {}
    }

    if let Some(o) = old {
        for m in &a.members {
            let before = o.members.iter().find(|x| x.device == m.device);
            let was_active = before.is_some_and(|x| x.in_sync && !x.faulty);
            if m.in_sync && !m.faulty && !was_active {
                out.push(ev(
                    RaidEventKind::SpareActive,
                    &a.name,
                    Some(&m.device),
                    None,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemberSnapshot, SyncSnapshot};
    use super::*;

    fn member(d: &str, faulty: bool, in_sync: bool) -> MemberSnapshot {
        MemberSnapshot {
            device: d.into(),
            faulty,
            spare: !in_sync && !faulty,
            in_sync,
            gone: false,
        }
    }

    fn array(members: Vec<MemberSnapshot>, missing: u32, sync: Option<u32>) -> RaidSnapshot {
        RaidSnapshot {
            arrays: vec![ArraySnapshot {
                name: "md0".into(),
                running: true,
                state: "clean".into(),
                level: Some("raid1".into()),
                missing,
                members,
                sync: sync.map(|p| SyncSnapshot {
                    action: "recovery".into(),
                    per_mille: Some(p),
                    finish_secs: None,
                    speed_kib_s: None,
                    waiting: None,
                }),
                mismatch_cnt: Some(0),
                unparsed: vec![],
            }],
            unparsed: vec![],
        }
    }

    fn kinds(evs: &[RaidEvent]) -> Vec<RaidEventKind> {
        evs.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn full_failure_and_rebuild_cycle() {
        use RaidEventKind::*;
        let clean = array(
            vec![member("sda1", false, true), member("sdb1", false, true)],
            0,
            None,
        );
        assert!(diff(None, &clean).is_empty());
        let failed = array(
            vec![member("sda1", false, true), member("sdb1", true, false)],
            1,
            None,
        );
        assert_eq!(
            kinds(&diff(Some(&clean), &failed)),
            vec![Fail, DegradedArray]
        );
        let removed = array(vec![member("sda1", false, true)], 1, None);
        assert!(diff(Some(&failed), &removed).is_empty());
        let r10 = array(
            vec![member("sda1", false, true), member("sdb1", false, false)],
            1,
            Some(100),
        );
        assert_eq!(kinds(&diff(Some(&removed), &r10)), vec![RebuildStarted]);
        let r45 = array(
            vec![member("sda1", false, true), member("sdb1", false, false)],
            1,
            Some(450),
        );
        assert_eq!(kinds(&diff(Some(&r10), &r45)), vec![Rebuild40]);
        let r47 = array(
            vec![member("sda1", false, true), member("sdb1", false, false)],
            1,
            Some(470),
        );
        assert!(diff(Some(&r45), &r47).is_empty());
        let r85 = array(
            vec![member("sda1", false, true), member("sdb1", false, false)],
            1,
            Some(850),
        );
        assert_eq!(kinds(&diff(Some(&r47), &r85)), vec![Rebuild80]);
        let done = array(
            vec![member("sda1", false, true), member("sdb1", false, true)],
            0,
            None,
        );
        assert_eq!(
            kinds(&diff(Some(&r85), &done)),
            vec![RebuildFinished, SpareActive]
        );
        let e = &diff(Some(&r85), &done)[1];
        assert_eq!(e.to_string(), "SpareActive /dev/md0 /dev/sdb1");
    }

    #[test]
    fn first_look_reports_current_problems_only() {
        use RaidEventKind::*;
        let degraded = array(
            vec![member("sda1", false, true), member("sdb1", true, false)],
            1,
            Some(500),
        );
        assert_eq!(
            kinds(&diff(None, &degraded)),
            vec![Fail, DegradedArray, RebuildStarted]
        );
    }

    #[test]
    fn vanished_array_and_new_array() {
        use RaidEventKind::*;
        let clean = array(vec![member("sda1", false, true)], 0, None);
        let empty = RaidSnapshot::default();
        assert_eq!(kinds(&diff(Some(&clean), &empty)), vec![DeviceDisappeared]);
        assert_eq!(kinds(&diff(Some(&empty), &clean)), vec![NewArray]);
    }

    #[test]
    fn hot_removed_in_sync_member_is_a_fail() {
        let both = array(
            vec![member("sda1", false, true), member("sdb1", false, true)],
            0,
            None,
        );
        let one = array(vec![member("sda1", false, true)], 1, None);
        let evs = diff(Some(&both), &one);
        assert_eq!(evs[0].kind, RaidEventKind::Fail);
        assert_eq!(evs[0].device.as_deref(), Some("sdb1"));
        assert_eq!(evs[1].kind, RaidEventKind::DegradedArray);
    }
}
