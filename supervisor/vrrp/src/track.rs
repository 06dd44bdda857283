//! Effective priority from health trackers (the "priority adjusted by health").
//!
//! Pure: a configured priority plus tracker specifications and their latest verdicts
//! give an effective priority, an optional fault, and a sentence saying why. A tracker
//! with a weight adjusts the priority (keepalived's convention: a positive weight is
//! added while the tracker is healthy, a negative one while it is CRITICAL); a tracker
//! without a weight forces the fault state while CRITICAL. The result is clamped to
//! 1..=254 whenever any adjustment applies, so an adjusted address owner (255) competes
//! like any other router.

use std::collections::BTreeMap;
use std::fmt;

/// A health verdict as the health crate reports it (Nagios-style exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Health {
    /// Exit code 0.
    Ok,
    /// Exit code 1: degraded but serving; does not count as failing.
    Warning,
    /// Exit code 2: failing.
    Critical,
    /// Exit code 3: the check could not decide; does not count as failing.
    Unknown,
}

impl Health {
    /// Maps a health-style exit code (0 OK, 1 WARNING, 2 CRITICAL, else UNKNOWN).
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            0 => Health::Ok,
            1 => Health::Warning,
            2 => Health::Critical,
            _ => Health::Unknown,
        }
    }

    fn failing(self) -> bool {
        self == Health::Critical
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Ok => "OK",
            Health::Warning => "WARNING",
            Health::Critical => "CRITICAL",
            Health::Unknown => "UNKNOWN",
        })
    }
}

/// One tracker of an instance: a name the supervisor reports verdicts under, and its
/// weight (`None`: failing forces the fault state).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackerSpec {
    /// Name, e.g. "raid", "power", "uplinks", "service:sip-proxy".
    pub name: String,
    /// Priority adjustment, -253..=253; absent: fault when CRITICAL.
    #[serde(default)]
    pub weight: Option<i16>,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Priority to advertise, 1..=255.
    pub priority: u8,
    /// Set when a weightless tracker is CRITICAL: the instance must be in Fault.
    pub fault: Option<String>,
    /// Human explanation, e.g. "configured 150; raid CRITICAL -50 => 100".
    pub why: String,
}

/// Computes the effective priority. Trackers without a reported verdict count as OK,
/// so an instance does not fault before its first health check has run.
pub fn evaluate(
    configured: u8,
    specs: &[TrackerSpec],
    verdicts: &BTreeMap<String, Health>,
) -> Verdict {
    let mut adj: i32 = 0;
    let mut parts = Vec::new();
    let mut faults = Vec::new();
    for spec in specs {
        let health = verdicts.get(&spec.name).copied().unwrap_or(Health::Ok);
        match spec.weight {
            None if health.failing() => faults.push(format!("{} {health}", spec.name)),
            None => {}
            Some(w) => {
                let applies = if w > 0 {
                    !health.failing()
                } else {
                    health.failing()
                };
                if applies && w != 0 {
                    adj += i32::from(w);
                    parts.push(format!("{} {health} {w:+}", spec.name));
                }
            }
        }
    }
    let priority = if adj == 0 {
        configured.max(1)
    } else {
        // Clamped into 1..=254 just above, so the conversion cannot fail.
        u8::try_from((i32::from(configured) + adj).clamp(1, 254)).unwrap_or(1)
    };
    let mut why = format!("configured {configured}");
    if !parts.is_empty() {
        why.push_str("; ");
        why.push_str(&parts.join(", "));
    }
    why.push_str(&format!(" => {priority}"));
    let fault = if faults.is_empty() {
        None
    } else {
        let f = faults.join(", ");
        why.push_str(&format!("; fault: {f}"));
        Some(f)
    };
    Verdict {
        priority,
        fault,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(name: &str, weight: Option<i16>) -> TrackerSpec {
        TrackerSpec {
            name: name.into(),
            weight,
        }
    }

    #[test]
    fn negative_weight_applies_when_critical_and_clamps() {
        let specs = [spec("raid", Some(-50)), spec("power", Some(-200))];
        let mut v = BTreeMap::new();
        assert_eq!(evaluate(150, &specs, &v).priority, 150);
        v.insert("raid".into(), Health::Critical);
        let r = evaluate(150, &specs, &v);
        assert_eq!(r.priority, 100);
        assert!(r.why.contains("raid CRITICAL -50"), "{}", r.why);
        v.insert("power".into(), Health::Critical);
        assert_eq!(evaluate(150, &specs, &v).priority, 1);
        v.insert("raid".into(), Health::Warning);
        v.insert("power".into(), Health::Ok);
        assert_eq!(evaluate(150, &specs, &v).priority, 150);
    }

    #[test]
    fn positive_weight_applies_while_healthy() {
        let specs = [spec("uplinks", Some(20))];
        let mut v = BTreeMap::new();
        assert_eq!(evaluate(240, &specs, &v).priority, 254);
        v.insert("uplinks".into(), Health::Critical);
        assert_eq!(evaluate(240, &specs, &v).priority, 240);
    }

    #[test]
    fn weightless_tracker_faults() {
        let specs = [spec("service:db", None)];
        let mut v = BTreeMap::new();
        v.insert("service:db".into(), Health::Critical);
        let r = evaluate(100, &specs, &v);
        assert_eq!(r.fault.as_deref(), Some("service:db CRITICAL"));
        v.insert("service:db".into(), Health::Unknown);
        assert_eq!(evaluate(100, &specs, &v).fault, None);
    }

    #[test]
    fn owner_keeps_255_only_without_adjustment() {
        let specs = [spec("raid", Some(-10))];
        let mut v = BTreeMap::new();
        assert_eq!(evaluate(255, &specs, &v).priority, 255);
        v.insert("raid".into(), Health::Critical);
        assert_eq!(evaluate(255, &specs, &v).priority, 245);
    }

    proptest! {
        #[test]
        fn adjusted_priority_stays_in_1_to_254(
            configured in 1u8..=255,
            weights in proptest::collection::vec((-253i16..=253, 0i32..4), 0..6),
        ) {
            let specs: Vec<_> = weights.iter().enumerate()
                .map(|(i, (w, _))| spec(&format!("t{i}"), Some(*w))).collect();
            let v: BTreeMap<_, _> = weights.iter().enumerate()
                .map(|(i, (_, h))| (format!("t{i}"), Health::from_exit_code(*h))).collect();
            let r = evaluate(configured, &specs, &v);
            prop_assert!(r.priority >= 1);
            prop_assert!(r.priority <= 254 || r.priority == configured);
            prop_assert!(r.fault.is_none());
        }
    }
}
