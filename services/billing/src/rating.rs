//! Rating: billing profiles, destination lookup by longest prefix, billing
//! intervals and the cost of a call, all in exact integer arithmetic in the
//! smallest currency unit (cents, or whatever the profile's currency uses).
//!
//! This module is pure; [`crate::central`] loads the profiles from MariaDB.
//!
//! Rules (documented in the crate README as well):
//! * The call's duration is rounded up to whole seconds.
//! * A call of 0 s is billed 0 s (only the connect fee); otherwise the
//!   first interval is billed whole, then each started next interval.
//! * cost = connect_fee + ceil(rate_per_minute × billed_secs / 60): one
//!   single rounding up, per call, at the end.

use std::collections::{BTreeMap, HashMap};

/// One fee row of a profile: what calls to `prefix…` cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    /// Destination prefix (digits, matched against the callee's user part
    /// without a leading `+`); the empty prefix matches every destination.
    pub prefix: String,
    /// Price of one minute, in the smallest currency unit.
    pub rate_per_minute: u64,
    /// Charged once per answered call, in the smallest currency unit.
    pub connect_fee: u64,
    /// Seconds billed for the first interval (≥ 1).
    pub first_interval: u32,
    /// Seconds of each following interval (≥ 1).
    pub next_interval: u32,
}

/// A billing profile: a named set of fees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: u64,
    pub name: String,
    pub currency: String,
    /// Fees by prefix.
    pub fees: BTreeMap<String, Fee>,
}

/// Every profile and which customer uses which.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    pub profiles: HashMap<u64, Profile>,
    /// customer id → profile id.
    pub customers: HashMap<u64, u64>,
}

/// The outcome of rating one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rating {
    Rated {
        profile_id: u64,
        prefix: String,
        billed_secs: u64,
        /// In the smallest currency unit.
        cost: u64,
        currency: String,
    },
    /// No profile applied; the CDR is still transferred, flagged.
    Unrated { reason: String },
}

/// Seconds billed for a call of `duration_ms` under `first`/`next`
/// intervals. `None` only on arithmetic overflow (a call of ~10^11 years).
pub fn billed_seconds(duration_ms: u64, first: u32, next: u32) -> Option<u64> {
    let secs = duration_ms.div_ceil(1000);
    let (first, next) = (u64::from(first.max(1)), u64::from(next.max(1)));
    if secs == 0 {
        return Some(0);
    }
    if secs <= first {
        return Some(first);
    }
    let rest = secs - first;
    let intervals = rest.div_ceil(next);
    intervals.checked_mul(next)?.checked_add(first)
}

/// Cost of `billed_secs` at `fee`, in the smallest currency unit.
pub fn cost(fee: &Fee, billed_secs: u64) -> Option<u64> {
    let usage = u128::from(fee.rate_per_minute) * u128::from(billed_secs);
    let usage = u64::try_from(usage.div_ceil(60)).ok()?;
    usage.checked_add(fee.connect_fee)
}

/// The destination digits of a callee AOR/URI: the user part, without a
/// `sip:`/`sips:`/`tel:` scheme and without a leading `+`.
pub fn destination(callee: &str) -> &str {
    let s = callee
        .strip_prefix("sip:")
        .or_else(|| callee.strip_prefix("sips:"))
        .or_else(|| callee.strip_prefix("tel:"))
        .unwrap_or(callee);
    let user = s.split(['@', ';']).next().unwrap_or(s);
    user.strip_prefix('+').unwrap_or(user)
}

impl Profile {
    /// The fee with the longest prefix that `dest` starts with.
    pub fn lookup(&self, dest: &str) -> Option<&Fee> {
        // Walk the prefixes of dest from the longest down: at most
        // len(dest)+1 map lookups, independent of the number of fees.
        let mut ends: Vec<usize> = dest.char_indices().map(|(i, _)| i).collect();
        ends.push(dest.len());
        ends.iter()
            .rev()
            .find_map(|&end| self.fees.get(&dest[..end]))
    }
}

impl Profiles {
    /// Rates a call of `duration_ms` by `customer` to `callee`.
    pub fn rate(&self, customer: Option<u64>, callee: &str, duration_ms: u64) -> Rating {
        let Some(customer) = customer else {
            return Rating::Unrated {
                reason: "caller has no customer".into(),
            };
        };
        let Some(pid) = self.customers.get(&customer) else {
            return Rating::Unrated {
                reason: format!("no billing profile for customer {customer}"),
            };
        };
        let Some(profile) = self.profiles.get(pid) else {
            return Rating::Unrated {
                reason: format!("customer {customer}: billing profile {pid} does not exist"),
            };
        };
        let dest = destination(callee);
        let Some(fee) = profile.lookup(dest) else {
            return Rating::Unrated {
                reason: format!("profile {}: no fee for destination {dest}", profile.name),
            };
        };
        let billed = billed_seconds(duration_ms, fee.first_interval, fee.next_interval);
        match billed.and_then(|b| cost(fee, b).map(|c| (b, c))) {
            Some((billed_secs, cost)) => Rating::Rated {
                profile_id: profile.id,
                prefix: fee.prefix.clone(),
                billed_secs,
                cost,
                currency: profile.currency.clone(),
            },
            None => Rating::Unrated {
                reason: format!("cost overflow for {duration_ms} ms"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fee(prefix: &str, rate: u64, connect: u64, first: u32, next: u32) -> Fee {
        Fee {
            prefix: prefix.into(),
            rate_per_minute: rate,
            connect_fee: connect,
            first_interval: first,
            next_interval: next,
        }
    }

    #[test]
    fn intervals_60_60_1_1_30_6() {
        assert_eq!(billed_seconds(0, 60, 60), Some(0));
        assert_eq!(billed_seconds(1, 60, 60), Some(60));
        assert_eq!(billed_seconds(60_000, 60, 60), Some(60));
        assert_eq!(billed_seconds(60_001, 60, 60), Some(120));
        assert_eq!(billed_seconds(61_000, 1, 1), Some(61));
        assert_eq!(billed_seconds(60_500, 1, 1), Some(61));
        assert_eq!(billed_seconds(10_000, 30, 6), Some(30));
        assert_eq!(billed_seconds(31_000, 30, 6), Some(36));
        assert_eq!(billed_seconds(36_000, 30, 6), Some(36));
        assert_eq!(billed_seconds(37_000, 30, 6), Some(42));
    }

    #[test]
    fn cost_rounds_up_once() {
        let f = fee("49", 10, 5, 1, 1);
        assert_eq!(cost(&f, 0), Some(5));
        assert_eq!(cost(&f, 7), Some(5 + 2)); // 70/60 = 1.17 -> 2
        assert_eq!(cost(&f, 60), Some(15));
        assert_eq!(cost(&fee("", u64::MAX, 1, 1, 1), 120), None);
    }

    #[test]
    fn longest_prefix_wins_and_destination_is_normalised() {
        let mut fees = BTreeMap::new();
        for f in [
            fee("", 1, 0, 1, 1),
            fee("49", 2, 0, 1, 1),
            fee("4930", 3, 0, 1, 1),
        ] {
            fees.insert(f.prefix.clone(), f);
        }
        let p = Profile {
            id: 1,
            name: "p".into(),
            currency: "EUR".into(),
            fees,
        };
        assert_eq!(p.lookup("4930123").map(|f| f.rate_per_minute), Some(3));
        assert_eq!(p.lookup("4989").map(|f| f.rate_per_minute), Some(2));
        assert_eq!(p.lookup("1555").map(|f| f.rate_per_minute), Some(1));
        assert_eq!(
            destination("sip:+4930123@example.com;user=phone"),
            "4930123"
        );
        assert_eq!(destination("4930@d"), "4930");
        assert_eq!(destination("tel:+1555"), "1555");
    }

    #[test]
    fn unrated_reasons() {
        let ps = Profiles::default();
        assert!(matches!(ps.rate(None, "1@d", 1000), Rating::Unrated { .. }));
        match ps.rate(Some(4), "1@d", 1000) {
            Rating::Unrated { reason } => assert!(reason.contains("customer 4"), "{reason}"),
            r => panic!("{r:?}"),
        }
    }

    proptest! {
        #[test]
        fn billed_covers_duration_by_less_than_one_interval(
            ms in 0u64..10_000_000_000, first in 1u32..3600, next in 1u32..3600
        ) {
            let secs = ms.div_ceil(1000);
            let billed = billed_seconds(ms, first, next).unwrap();
            prop_assert!(billed >= secs);
            if secs == 0 {
                prop_assert_eq!(billed, 0);
            } else if secs <= u64::from(first) {
                prop_assert_eq!(billed, u64::from(first));
            } else {
                prop_assert!(billed - secs < u64::from(next));
                prop_assert_eq!((billed - u64::from(first)) % u64::from(next), 0);
            }
        }

        #[test]
        fn billed_is_monotonic(a in 0u64..10_000_000, b in 0u64..10_000_000, first in 1u32..600, next in 1u32..600) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(billed_seconds(lo, first, next) <= billed_seconds(hi, first, next));
        }

        #[test]
        fn one_one_bills_exact_seconds(ms in 0u64..10_000_000_000) {
            prop_assert_eq!(billed_seconds(ms, 1, 1), Some(ms.div_ceil(1000)));
        }

        #[test]
        fn cost_is_exact_ceiling(rate in 0u64..1_000_000, connect in 0u64..1_000_000, secs in 0u64..1_000_000) {
            let f = fee("", rate, connect, 1, 1);
            let c = cost(&f, secs).unwrap();
            let usage = c - connect;
            // usage is the least integer with usage*60 >= rate*secs.
            prop_assert!(u128::from(usage) * 60 >= u128::from(rate) * u128::from(secs));
            prop_assert!(usage == 0 || u128::from(usage - 1) * 60 < u128::from(rate) * u128::from(secs));
        }

        #[test]
        fn cost_is_additive_over_whole_minutes(rate in 0u64..1_000_000, m1 in 0u64..10_000, m2 in 0u64..10_000) {
            let f = fee("", rate, 0, 60, 60);
            prop_assert_eq!(
                cost(&f, (m1 + m2) * 60).unwrap(),
                cost(&f, m1 * 60).unwrap() + cost(&f, m2 * 60).unwrap()
            );
        }
    }
}
