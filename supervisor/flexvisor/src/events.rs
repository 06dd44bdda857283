//! The in-memory event log: numbered records that every subsystem appends
//! to (service transitions, reaped orphans, reloads, health and VRRP later),
//! streamed by `flexctl events -f`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub unix_ms: u64,
    /// `service`, `supervisor`, `reaper`, `reload`, or a subsystem name.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub message: String,
}

/// A bounded ring of events with increasing sequence numbers.
#[derive(Debug)]
pub struct EventLog {
    next: u64,
    ring: VecDeque<Event>,
    cap: usize,
}

impl EventLog {
    pub fn new(cap: usize) -> Self {
        Self {
            next: 1,
            ring: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Append; returns the stored event.
    pub fn push(&mut self, source: &str, service: Option<&str>, message: String) -> &Event {
        self.push_at(source, service, message, crate::logs::now_ms())
    }

    /// Append an event that happened at `unix_ms` (held back for a while).
    pub fn push_at(
        &mut self,
        source: &str,
        service: Option<&str>,
        message: String,
        unix_ms: u64,
    ) -> &Event {
        let e = Event {
            seq: self.next,
            unix_ms,
            source: source.to_owned(),
            service: service.map(str::to_owned),
            message,
        };
        self.next += 1;
        if self.ring.len() == self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back(e);
        // Just pushed, so the ring is not empty.
        &self.ring[self.ring.len() - 1]
    }

    /// Events with `seq > after`.
    pub fn since(&self, after: u64) -> impl Iterator<Item = &Event> {
        self.ring.iter().filter(move |e| e.seq > after)
    }

    pub fn last_seq(&self) -> u64 {
        self.next - 1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_keeps_newest_and_numbers_increase() {
        let mut l = super::EventLog::new(3);
        for i in 0..5 {
            l.push("t", None, format!("m{i}"));
        }
        let seqs: Vec<u64> = l.since(0).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(l.since(4).count(), 1);
    }
}
