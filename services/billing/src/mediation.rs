//! Mediation: pairing start and stop events of one dialog into a CDR.
//!
//! A dialog is identified by Call-ID, From-tag and To-tag. The state (calls
//! started and not yet stopped) is a plain map that the daemon persists with
//! its progress; [`Mediator::on_event`] and [`Mediator::sweep`] are pure
//! functions of that state and their input, so every outcome is unit-tested
//! without files or databases:
//!
//! * start then stop → CDR `ok`;
//! * start without stop for longer than the maximum call length → CDR
//!   `orphaned` (reason `timeout`), emitted by [`Mediator::sweep`];
//! * stop without start → CDR `error` ("stop without start"), never dropped;
//!   unless the stop carries the answer time (the pair partner ended a call
//!   that the failed proxy started): then it is the call's `ok` CDR;
//! * a second start for a dialog already open → CDR `error` ("duplicate
//!   start"), the first start stays open.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventKind};
use crate::rating::{Profiles, Rating};

/// Outcome of mediation for one CDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Orphaned,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Orphaned => "orphaned",
            Status::Error => "error",
        }
    }
}

/// One call detail record, as inserted into the central `cdrs` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    /// Unique key (hex SHA-256 of the dialog identity, see [`dialog_key`]):
    /// replaying a batch cannot insert a second row.
    pub key: String,
    pub status: Status,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub caller: String,
    pub callee: String,
    pub caller_customer: Option<u64>,
    pub callee_customer: Option<u64>,
    /// Call start (Unix ms). The proxy records `start` at answer time, so
    /// this equals `answer_ms` until the spool carries the INVITE time.
    pub start_ms: Option<u64>,
    pub answer_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub duration_ms: u64,
    /// Who ended the call (`bye`, `timeout`, …).
    pub reason: Option<String>,
    pub node: String,
    /// What went wrong, for `orphaned` and `error` records.
    pub error: Option<String>,
    /// Spool file and line of the event that completed this record.
    pub source: String,
    pub rated: bool,
    pub profile_id: Option<u64>,
    pub prefix: Option<String>,
    pub billed_secs: Option<u64>,
    /// In the smallest currency unit.
    pub cost: Option<u64>,
    pub currency: Option<String>,
    pub unrated_reason: Option<String>,
}

impl Cdr {
    /// Fills the rating columns: `ok` records are rated against the
    /// caller's customer profile, others are left unrated with the reason.
    pub fn rate(&mut self, profiles: &Profiles) {
        let rating = match self.status {
            Status::Ok => profiles.rate(self.caller_customer, &self.callee, self.duration_ms),
            Status::Orphaned => Rating::Unrated {
                reason: "orphaned: duration unknown".into(),
            },
            Status::Error => Rating::Unrated {
                reason: "error record".into(),
            },
        };
        match rating {
            Rating::Rated {
                profile_id,
                prefix,
                billed_secs,
                cost,
                currency,
            } => {
                self.rated = true;
                self.profile_id = Some(profile_id);
                self.prefix = Some(prefix);
                self.billed_secs = Some(billed_secs);
                self.cost = Some(cost);
                self.currency = Some(currency);
                self.unrated_reason = None;
            }
            Rating::Unrated { reason } => {
                self.rated = false;
                self.profile_id = None;
                self.prefix = None;
                self.billed_secs = None;
                self.cost = None;
                self.currency = None;
                self.unrated_reason = Some(reason);
            }
        }
    }
}

/// A call started and not yet stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCall {
    pub start: Event,
    /// `file:line` of the start event.
    pub source: String,
}

/// The mediation state: open calls by dialog key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mediator {
    pub open: BTreeMap<String, OpenCall>,
}

/// Hex SHA-256 over `kind` and the NUL-separated parts.
fn hash_key(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The unique key of a dialog's CDR (`ok` or `orphaned`).
pub fn dialog_key(ev: &Event) -> String {
    hash_key("dialog", &[&ev.call_id, &ev.from_tag, &ev.to_tag])
}

fn event_key(kind: &str, ev: &Event) -> String {
    hash_key(
        kind,
        &[
            &ev.call_id,
            &ev.from_tag,
            &ev.to_tag,
            &ev.time_ms.to_string(),
        ],
    )
}

fn base(ev: &Event, key: String, status: Status, source: String) -> Cdr {
    Cdr {
        key,
        status,
        call_id: ev.call_id.clone(),
        from_tag: ev.from_tag.clone(),
        to_tag: ev.to_tag.clone(),
        caller: ev.caller.clone(),
        callee: ev.callee.clone(),
        caller_customer: ev.caller_customer,
        callee_customer: ev.callee_customer,
        start_ms: None,
        answer_ms: None,
        end_ms: None,
        duration_ms: 0,
        reason: ev.reason.clone(),
        node: ev.node.clone(),
        error: None,
        source,
        rated: false,
        profile_id: None,
        prefix: None,
        billed_secs: None,
        cost: None,
        currency: None,
        unrated_reason: None,
    }
}

impl Mediator {
    /// Feeds one event read at `source` (`file:line`); returns the CDR it
    /// completes, if any (unrated; see [`Cdr::rate`]).
    pub fn on_event(&mut self, ev: Event, source: String) -> Option<Cdr> {
        let key = dialog_key(&ev);
        match ev.kind {
            EventKind::Start => {
                if self.open.contains_key(&key) {
                    let mut cdr = base(&ev, event_key("start", &ev), Status::Error, source);
                    cdr.start_ms = Some(ev.time_ms);
                    cdr.answer_ms = Some(ev.time_ms);
                    cdr.error = Some("duplicate start for an open call".into());
                    return Some(cdr);
                }
                self.open.insert(key, OpenCall { start: ev, source });
                None
            }
            EventKind::Stop => match self.open.remove(&key) {
                Some(open) => {
                    let s = &open.start;
                    let mut cdr = base(s, key, Status::Ok, source);
                    cdr.start_ms = Some(s.time_ms);
                    cdr.answer_ms = Some(s.time_ms);
                    cdr.end_ms = Some(ev.time_ms);
                    cdr.duration_ms = ev.time_ms.saturating_sub(s.time_ms);
                    cdr.reason = ev.reason.clone();
                    if ev.time_ms < s.time_ms {
                        cdr.error = Some(format!(
                            "stop ({}) before start ({}); duration set to 0",
                            ev.time_ms, s.time_ms
                        ));
                    }
                    Some(cdr)
                }
                None if ev.answer_ms.is_some_and(|a| a <= ev.time_ms) => {
                    // Started on the pair partner (lost in a failover): the
                    // stop knows the answer time, the record is complete.
                    let answer = ev.answer_ms.unwrap_or(ev.time_ms);
                    let mut cdr = base(&ev, key, Status::Ok, source);
                    cdr.start_ms = Some(answer);
                    cdr.answer_ms = Some(answer);
                    cdr.end_ms = Some(ev.time_ms);
                    cdr.duration_ms = ev.time_ms - answer;
                    Some(cdr)
                }
                None => {
                    let mut cdr = base(&ev, event_key("stop", &ev), Status::Error, source);
                    cdr.end_ms = Some(ev.time_ms);
                    cdr.error = Some("stop without start".into());
                    Some(cdr)
                }
            },
        }
    }

    /// Closes every call started more than `max_call_ms` before `now_ms` as
    /// `orphaned`, oldest first.
    pub fn sweep(&mut self, now_ms: u64, max_call_ms: u64) -> Vec<Cdr> {
        let expired: Vec<String> = self
            .open
            .iter()
            .filter(|(_, c)| c.start.time_ms.saturating_add(max_call_ms) < now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Cdr> = expired
            .into_iter()
            .filter_map(|k| self.open.remove(&k).map(|c| (k, c)))
            .map(|(key, c)| {
                let mut cdr = base(&c.start, key, Status::Orphaned, c.source);
                cdr.start_ms = Some(c.start.time_ms);
                cdr.answer_ms = Some(c.start.time_ms);
                cdr.reason = Some("timeout".into());
                cdr.error = Some(format!(
                    "no stop event within the maximum call length ({} s)",
                    max_call_ms / 1000
                ));
                cdr
            })
            .collect();
        out.sort_by_key(|c| c.start_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(kind: EventKind, call: &str, t: u64) -> Event {
        Event {
            kind,
            call_id: call.into(),
            time_ms: t,
            from_tag: "f".into(),
            to_tag: "t".into(),
            caller: "a@d".into(),
            callee: "49301@d".into(),
            caller_customer: Some(1),
            callee_customer: Some(2),
            node: "proxy1a".into(),
            reason: (kind == EventKind::Stop).then(|| "bye".into()),
            answer_ms: None,
        }
    }

    #[test]
    fn stop_with_answer_time_and_no_start_is_the_calls_ok_cdr() {
        // Started on proxy1a, which failed; proxy1b ended it.
        let mut m = Mediator::default();
        let mut stop = ev(EventKind::Stop, "c", 90_000);
        stop.answer_ms = Some(30_000);
        let cdr = m.on_event(stop.clone(), "b:3".into()).unwrap();
        assert_eq!(cdr.status, Status::Ok);
        assert_eq!(cdr.duration_ms, 60_000);
        assert_eq!(cdr.answer_ms, Some(30_000));
        assert_eq!(cdr.node, "proxy1a");
        // The same dialog key as the start + stop record: the orphan that
        // proxy1a's billing makes of its start later meets this record.
        let mut a = Mediator::default();
        a.on_event(ev(EventKind::Start, "c", 30_000), "a:1".into());
        let orphan = a.sweep(10_000_000, 1_000).pop().unwrap();
        assert_eq!(orphan.key, cdr.key);
        // An answer time after the stop is not believed: error record.
        stop.answer_ms = Some(95_000);
        assert_eq!(
            m.on_event(stop, "b:4".into()).unwrap().status,
            Status::Error
        );
    }

    #[test]
    fn start_then_stop_is_one_ok_cdr() {
        let mut m = Mediator::default();
        assert!(m
            .on_event(ev(EventKind::Start, "c", 1000), "f:1".into())
            .is_none());
        let cdr = m
            .on_event(ev(EventKind::Stop, "c", 61_500), "f:2".into())
            .unwrap();
        assert_eq!(cdr.status, Status::Ok);
        assert_eq!(cdr.duration_ms, 60_500);
        assert_eq!((cdr.start_ms, cdr.end_ms), (Some(1000), Some(61_500)));
        assert_eq!(cdr.reason.as_deref(), Some("bye"));
        assert_eq!(cdr.source, "f:2");
        assert_eq!(cdr.key.len(), 64);
        assert!(cdr.key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(m.open.is_empty());
    }

    #[test]
    fn stop_without_start_is_an_error_record() {
        let mut m = Mediator::default();
        let cdr = m
            .on_event(ev(EventKind::Stop, "c", 5), "f:9".into())
            .unwrap();
        assert_eq!(cdr.status, Status::Error);
        assert_eq!(cdr.error.as_deref(), Some("stop without start"));
    }

    #[test]
    fn different_tags_are_different_dialogs() {
        let mut m = Mediator::default();
        m.on_event(ev(EventKind::Start, "c", 1), "f:1".into());
        let mut stop = ev(EventKind::Stop, "c", 2);
        stop.to_tag = "other".into();
        assert_eq!(
            m.on_event(stop, "f:2".into()).unwrap().status,
            Status::Error
        );
        assert_eq!(m.open.len(), 1);
    }

    #[test]
    fn sweep_orphans_only_old_calls() {
        let mut m = Mediator::default();
        m.on_event(ev(EventKind::Start, "old", 1_000), "f:1".into());
        m.on_event(ev(EventKind::Start, "new", 9_000), "f:2".into());
        let out = m.sweep(10_000, 5_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].call_id, "old");
        assert_eq!(out[0].status, Status::Orphaned);
        assert_eq!(out[0].key, dialog_key(&ev(EventKind::Start, "old", 0)));
        assert_eq!(m.open.len(), 1);
        // A late stop for the orphan becomes an error record with its own key.
        let late = m
            .on_event(ev(EventKind::Stop, "old", 20_000), "f:3".into())
            .unwrap();
        assert_eq!(late.status, Status::Error);
        assert_ne!(late.key, out[0].key);
    }

    #[test]
    fn duplicate_start_keeps_the_first() {
        let mut m = Mediator::default();
        m.on_event(ev(EventKind::Start, "c", 1), "f:1".into());
        let dup = m
            .on_event(ev(EventKind::Start, "c", 2), "f:2".into())
            .unwrap();
        assert_eq!(dup.status, Status::Error);
        let cdr = m
            .on_event(ev(EventKind::Stop, "c", 10), "f:3".into())
            .unwrap();
        assert_eq!(cdr.duration_ms, 9);
    }

    proptest! {
        /// Every stop yields exactly one record; every start ends paired,
        /// orphaned or as a duplicate error: no event disappears.
        #[test]
        fn nothing_is_lost(ops in proptest::collection::vec((any::<bool>(), 0u8..8, 1u64..1000), 0..200)) {
            let mut m = Mediator::default();
            let (mut starts, mut stops, mut ok, mut stop_err, mut dup) = (0, 0, 0, 0, 0);
            for (is_start, call, t) in ops {
                let kind = if is_start { EventKind::Start } else { EventKind::Stop };
                let out = m.on_event(ev(kind, &call.to_string(), t), "f:1".into());
                match (is_start, out.map(|c| c.status)) {
                    (true, None) => starts += 1,
                    (true, Some(Status::Error)) => { starts += 1; dup += 1; }
                    (false, Some(Status::Ok)) => { stops += 1; ok += 1; }
                    (false, Some(Status::Error)) => { stops += 1; stop_err += 1; }
                    (s, o) => prop_assert!(false, "start={s} gave {o:?}"),
                }
            }
            let swept = m.sweep(u64::MAX, 0).len();
            prop_assert!(m.open.is_empty());
            prop_assert_eq!(stops, ok + stop_err);
            prop_assert_eq!(starts, ok + swept + dup);
        }
    }
}
