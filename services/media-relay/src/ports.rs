//! The media port range: RTP on even ports, RTCP on the next odd one
//! (RFC 3550 §11). The pool only books ports; binding them is the
//! caller's job, which tells the pool when a port turned out to be taken
//! by someone else.

use std::collections::BTreeSet;

/// Bookkeeping of the RTP ports of a range.
#[derive(Debug)]
pub struct PortPool {
    min: u16,
    max: u16,
    used: BTreeSet<u16>,
    next: u16,
}

impl PortPool {
    /// A pool over `[min, max]`; `min` is rounded up to even.
    pub fn new(min: u16, max: u16) -> PortPool {
        let min = min.saturating_add(min % 2);
        PortPool {
            min,
            max,
            used: BTreeSet::new(),
            next: min,
        }
    }

    /// Number of RTP ports (pairs) in the range.
    pub fn capacity(&self) -> usize {
        if self.max <= self.min {
            return 0;
        }
        usize::from((self.max - self.min) / 2) + usize::from((self.max - self.min) % 2)
    }

    /// RTP ports booked now.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Free RTP ports in allocation order, starting after the last one
    /// handed out (so a just-freed port is reused last).
    pub fn candidates(&self) -> Vec<u16> {
        let mut out = Vec::new();
        let cap = self.capacity();
        let mut p = self.next;
        for _ in 0..cap {
            if p < self.min || p.checked_add(1).is_none_or(|rtcp| rtcp > self.max) {
                p = self.min;
            }
            if !self.used.contains(&p) {
                out.push(p);
            }
            p = p.checked_add(2).unwrap_or(self.min);
        }
        out
    }

    /// Books `port` (and its RTCP port); false when it is booked already or
    /// outside the range.
    pub fn take(&mut self, port: u16) -> bool {
        if !port.is_multiple_of(2)
            || port < self.min
            || port.checked_add(1).is_none_or(|r| r > self.max)
        {
            return false;
        }
        if !self.used.insert(port) {
            return false;
        }
        self.next = port.checked_add(2).unwrap_or(self.min);
        true
    }

    /// Returns `port` to the pool.
    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hands_out_even_ports_round_robin() {
        let mut p = PortPool::new(30001, 30009);
        assert_eq!(p.capacity(), 4);
        assert_eq!(p.candidates(), vec![30002, 30004, 30006, 30008]);
        assert!(p.take(30002));
        assert!(!p.take(30002));
        assert!(!p.take(30003), "odd ports are RTCP");
        assert!(!p.take(30010), "outside the range");
        assert_eq!(p.candidates(), vec![30004, 30006, 30008]);
        p.release(30002);
        assert_eq!(p.candidates(), vec![30004, 30006, 30008, 30002]);
        assert_eq!(p.in_use(), 0);
    }

    proptest! {
        #[test]
        fn never_hands_out_a_booked_port(ops in proptest::collection::vec((any::<bool>(), 0usize..8), 0..60)) {
            let mut p = PortPool::new(40000, 40015);
            let mut booked = BTreeSet::new();
            for (take, i) in ops {
                if take {
                    if let Some(port) = p.candidates().first().copied() {
                        prop_assert!(!booked.contains(&port));
                        prop_assert!(p.take(port));
                        booked.insert(port);
                    }
                } else if let Some(port) = booked.iter().nth(i).copied() {
                    p.release(port);
                    booked.remove(&port);
                }
                prop_assert_eq!(p.in_use(), booked.len());
                prop_assert_eq!(p.candidates().len() + booked.len(), p.capacity());
            }
        }
    }
}
