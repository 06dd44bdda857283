//! Per-source flood protection: a token bucket per source address and a ban
//! list for sources that exhaust their bucket.
//!
//! Pure logic over a caller-supplied clock, so tests need no sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process the packet.
    Allow,
    /// Drop: this packet exceeded the rate and the source is banned from now.
    BanStarted,
    /// Drop: the source is banned.
    Banned,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets and bans per source address.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    ban: Duration,
    buckets: HashMap<IpAddr, Bucket>,
    banned: HashMap<IpAddr, Instant>,
}

impl Limiter {
    /// `rate` packets per second sustained, `burst` at once, bans of `ban`.
    pub fn new(rate: f64, burst: f64, ban: Duration) -> Limiter {
        Limiter {
            rate,
            burst,
            ban,
            buckets: HashMap::new(),
            banned: HashMap::new(),
        }
    }

    /// Accounts one packet from `src` at `now`.
    pub fn check(&mut self, src: IpAddr, now: Instant) -> Verdict {
        if let Some(&until) = self.banned.get(&src) {
            if now < until {
                return Verdict::Banned;
            }
            self.banned.remove(&src);
            self.buckets.remove(&src);
        }
        let b = self.buckets.entry(src).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allow
        } else {
            self.banned.insert(src, now + self.ban);
            Verdict::BanStarted
        }
    }

    /// Number of sources banned at `now`.
    pub fn banned_count(&self, now: Instant) -> usize {
        self.banned.values().filter(|&&u| now < u).count()
    }

    /// Forgets full buckets and expired bans (call periodically to bound memory).
    pub fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed * rate < burst
        });
        self.banned.retain(|_, &mut until| now < until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_ban_then_recovery() {
        let t0 = Instant::now();
        let mut l = Limiter::new(10.0, 5.0, Duration::from_secs(30));
        for _ in 0..5 {
            assert_eq!(l.check(ip("192.0.2.1"), t0), Verdict::Allow);
        }
        assert_eq!(l.check(ip("192.0.2.1"), t0), Verdict::BanStarted);
        assert_eq!(l.check(ip("192.0.2.1"), t0), Verdict::Banned);
        // Another source is unaffected.
        assert_eq!(l.check(ip("192.0.2.2"), t0), Verdict::Allow);
        assert_eq!(l.banned_count(t0), 1);
        // Still banned later even though tokens refilled.
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_secs(29)),
            Verdict::Banned
        );
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(l.check(ip("192.0.2.1"), t1), Verdict::Allow);
        l.prune(t1 + Duration::from_secs(10));
        assert_eq!(l.banned_count(t1), 0);
    }

    #[test]
    fn sustained_rate_within_limit_is_never_banned() {
        let t0 = Instant::now();
        let mut l = Limiter::new(100.0, 10.0, Duration::from_secs(30));
        for i in 0..10_000u64 {
            // 50 packets per second.
            let t = t0 + Duration::from_millis(i * 20);
            assert_eq!(l.check(ip("192.0.2.9"), t), Verdict::Allow);
        }
    }
}
