//! Proxy pair selection: Call-ID hashing over the pairs and the keepalive
//! health state machine that marks pairs down and up.
//!
//! Pure logic, no sockets: the keepalive task feeds [`Event`]s in and acts on
//! the returned [`Change`]; the relay asks [`PairSet::select`] for a pair.

/// What happened to one pair's keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The next ping is due (the previous one, if any, went unanswered).
    ProbeDue,
    /// A reply to a ping arrived.
    Reply,
}

/// A visible change in a pair's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    None,
    /// The pair stopped answering and is skipped from now on.
    MarkedDown,
    /// The pair answers again and gets its share back.
    MarkedUp,
}

/// Health of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Whether the pair receives traffic.
    pub up: bool,
    /// A ping is out and not answered yet.
    pub outstanding: bool,
    /// Consecutive unanswered pings.
    pub missed: u32,
}

impl Health {
    /// A pair starts up: traffic flows until pings prove otherwise.
    pub const START: Health = Health {
        up: true,
        outstanding: false,
        missed: 0,
    };

    /// The transition function: `failures` consecutive unanswered pings mark
    /// a pair down; one reply marks it up again.
    pub fn step(self, event: Event, failures: u32) -> (Health, Change) {
        match event {
            Event::ProbeDue => {
                let missed = if self.outstanding {
                    self.missed.saturating_add(1)
                } else {
                    self.missed
                };
                let down_now = self.up && missed >= failures;
                let next = Health {
                    up: self.up && !down_now,
                    outstanding: true,
                    missed,
                };
                (
                    next,
                    if down_now {
                        Change::MarkedDown
                    } else {
                        Change::None
                    },
                )
            }
            Event::Reply => {
                let next = Health {
                    up: true,
                    outstanding: false,
                    missed: 0,
                };
                (
                    next,
                    if self.up {
                        Change::None
                    } else {
                        Change::MarkedUp
                    },
                )
            }
        }
    }
}

/// FNV-1a, 64 bit, followed by the murmur3 64-bit finalizer: stable across
/// runs and builds (unlike `DefaultHasher`), so every lb node maps a Call-ID
/// to the same pair. The finalizer matters: plain FNV's low bits depend only
/// on the low bits of the input bytes, so `hash % n` for small `n` would
/// ignore most of each character.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The proxy pairs and their health.
#[derive(Debug, Clone)]
pub struct PairSet {
    health: Vec<Health>,
    failures: u32,
}

impl PairSet {
    /// `n` pairs, all up.
    pub fn new(n: usize, failures: u32) -> PairSet {
        PairSet {
            health: vec![Health::START; n],
            failures,
        }
    }

    /// Feeds one event for pair `i` (out-of-range indexes are ignored).
    pub fn on_event(&mut self, i: usize, event: Event) -> Change {
        let Some(h) = self.health.get_mut(i) else {
            return Change::None;
        };
        let (next, change) = h.step(event, self.failures);
        *h = next;
        change
    }

    /// Whether pair `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.health.get(i).is_some_and(|h| h.up)
    }

    /// Number of pairs up.
    pub fn up_count(&self) -> usize {
        self.health.iter().filter(|h| h.up).count()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.health.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.health.is_empty()
    }

    /// The pair for a Call-ID: `hash % n`, or when that pair is down the next
    /// pair up after it (so only the failed pair's share moves; like
    /// Kamailio dispatcher algorithm 0). `None` when every pair is down.
    pub fn select(&self, call_id: &str) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let n = self.health.len();
        // The modulo result is < n, so it fits usize.
        let start = (fnv1a(call_id.as_bytes()) % n as u64) as usize;
        (0..n).map(|k| (start + k) % n).find(|&j| self.health[j].up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_goes_down_after_failures_and_up_on_first_reply() {
        let mut h = Health::START;
        let mut changes = Vec::new();
        for _ in 0..4 {
            let (n, c) = h.step(Event::ProbeDue, 3);
            h = n;
            changes.push(c);
        }
        // Ping 1 sent; pings 2, 3, 4 each find the previous one unanswered.
        assert_eq!(
            changes,
            [Change::None, Change::None, Change::None, Change::MarkedDown]
        );
        assert!(!h.up);
        let (h2, c) = h.step(Event::ProbeDue, 3);
        assert_eq!(c, Change::None, "already down: no second MarkedDown");
        let (h3, c) = h2.step(Event::Reply, 3);
        assert_eq!(c, Change::MarkedUp);
        assert_eq!(h3, Health::START);
    }

    #[test]
    fn answered_pings_keep_pair_up() {
        let mut h = Health::START;
        for _ in 0..10 {
            h = h.step(Event::ProbeDue, 1).0;
            assert!(h.up);
            h = h.step(Event::Reply, 1).0;
        }
    }

    #[test]
    fn same_call_id_same_pair_and_shares_spread() {
        let set = PairSet::new(4, 3);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let id = format!("{i}-abc@host");
            let p = set.select(&id).unwrap();
            assert_eq!(set.select(&id), Some(p));
            counts[p] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread {counts:?}");
        }
    }

    #[test]
    fn call_ids_differing_only_in_high_bits_still_spread() {
        // These characters share their low nibble: hashing whose low bits see
        // only the low bits of the input would send every id to one pair.
        let chars = ['0', '@', 'P', '`', 'p'];
        let set = PairSet::new(2, 3);
        let mut counts = [0usize; 2];
        for a in chars {
            for b in chars {
                for c in chars {
                    counts[set.select(&format!("{a}{b}{c}")).unwrap()] += 1;
                }
            }
        }
        assert!(counts.iter().all(|&n| n > 30), "{counts:?}");
    }

    #[test]
    fn down_pair_share_goes_to_next_pair_only() {
        let mut set = PairSet::new(3, 1);
        let ids: Vec<String> = (0..300).map(|i| format!("call-{i}")).collect();
        let before: Vec<usize> = ids.iter().map(|c| set.select(c).unwrap()).collect();
        set.on_event(1, Event::ProbeDue);
        assert_eq!(set.on_event(1, Event::ProbeDue), Change::MarkedDown);
        for (id, &b) in ids.iter().zip(&before) {
            let now = set.select(id).unwrap();
            if b == 1 {
                assert_eq!(now, 2, "pair 1's share moves to the next pair");
            } else {
                assert_eq!(now, b, "other calls stay where they were");
            }
        }
        set.on_event(1, Event::ProbeDue);
        set.on_event(2, Event::ProbeDue);
        set.on_event(2, Event::ProbeDue);
        set.on_event(0, Event::ProbeDue);
        set.on_event(0, Event::ProbeDue);
        assert_eq!(set.up_count(), 0);
        assert_eq!(set.select("x"), None);
        assert_eq!(set.on_event(0, Event::Reply), Change::MarkedUp);
        assert_eq!(set.select("x"), Some(0));
    }
}
