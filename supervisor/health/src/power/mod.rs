//! Chassis power: six PSUs in N+N (N=3, one half on mains, one on UPS), read
//! over IPMI from the chassis management module and/or the local BMC, and
//! turned into a verdict per feed.
//!
//! - OK: each feed has N working PSUs.
//! - WARNING: redundancy lost but at least N PSUs still work (names PSU and
//!   feed); predictive failure; the CMM's redundancy sensor disagrees with
//!   the PSU states; two sources disagree; one source stale or failing.
//! - CRITICAL: fewer than N working PSUs, or no reading from any source for
//!   longer than the staleness bound.
//!
//! # Two sources
//!
//! The PSUs are read over IPMI ([`ipmi`], with the SDR access of
//! [`sdr_partial`]) and, when the profile gives SNMP for the CMM, from the
//! CMM's power module table ([`cmm_snmp`]). The verdict uses every source
//! whose last reading is within the staleness bound:
//!
//! - **The worse reading wins.** A PSU counts as working only if every fresh
//!   source that lists it says it works; a PSU one source lists and the
//!   other does not is judged by the source that lists it. A false "down"
//!   costs a WARNING and a VRRP weight; a false "working" could hide the
//!   loss of the last redundant PSU, so the safer error is chosen.
//! - **Disagreement is reported**, never averaged away: a WARNING finding
//!   `PSUn sources disagree: <source> says <state>, <source> says <state>;
//!   counted as <working|down>` (table, plugin line, `flexctl health
//!   --json`), the gauge `flexvisor_power_source_disagreement{bay,feed}`
//!   on `/metrics`, and `PowerSourcesDisagree` / `PowerSourcesAgree`
//!   events from the monitor when the set of disagreeing bays changes.
//! - **A source that stops answering** keeps its last reading until the
//!   bound; after that it is ignored and reported as a WARNING finding
//!   `UNKNOWN: no reading for Ns (bound Bs), verdict from <other> alone`
//!   (and `flexvisor_power_source_status{source} 3`). With no fresh source
//!   at all the check is CRITICAL, as the issue asks.

pub mod cmm_snmp;
pub mod ipmi;
pub mod sdr_partial;

use crate::status::Status;
use crate::verdict::{CheckKind, CheckVerdict, Finding, Metric};
use serde::{Deserialize, Serialize};

/// Which power feed a PSU bay is wired to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feed {
    /// Utility mains.
    Mains,
    /// UPS-backed feed.
    Ups,
}

impl Feed {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Mains => "mains",
            Feed::Ups => "ups",
        }
    }
}

/// One PSU bay as the profile describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsuBay {
    /// Bay number (1..6).
    pub bay: u8,
    /// SDR sensor name for this bay (`PSU1`); matched exactly.
    pub sensor: String,
    /// Feed the bay is wired to.
    pub feed: Feed,
}

/// Power configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerConfig {
    /// PSU bays.
    pub bays: Vec<PsuBay>,
    /// N in N+N: PSUs needed to carry the chassis.
    pub n: u32,
    /// Seconds after which a missing reading is CRITICAL.
    pub stale_after_secs: u64,
}

/// State of one PSU sensor (type 08h offsets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsuState {
    /// Sensor name.
    pub name: String,
    /// Sensor number.
    pub sensor_number: u8,
    /// The sensor gave a reading.
    pub readable: bool,
    /// Offset 0: presence detected.
    pub present: bool,
    /// Offset 1: failure detected.
    pub failed: bool,
    /// Offset 2: predictive failure.
    pub predictive_failure: bool,
    /// Offsets 3/4: input lost (or lost / out of range).
    pub input_lost: bool,
    /// Offset 5: input out of range but present.
    pub input_out_of_range: bool,
    /// Offset 6: configuration error.
    pub config_error: bool,
    /// Free text from the source (the CMM's `powerModuleDetails`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl PsuState {
    /// Delivers power: readable, present, no failure, input present.
    pub fn is_working(&self) -> bool {
        self.readable && self.present && !self.failed && !self.input_lost && !self.config_error
    }

    /// Short reason when not working (or when working with a warning).
    pub fn problem(&self) -> Option<&'static str> {
        if !self.readable {
            Some("no reading")
        } else if !self.present {
            Some("not present")
        } else if self.failed {
            Some("failed")
        } else if self.input_lost {
            Some("input lost")
        } else if self.config_error {
            Some("configuration error")
        } else if self.predictive_failure {
            Some("predictive failure")
        } else if self.input_out_of_range {
            Some("input out of range")
        } else {
            None
        }
    }
}

/// Power unit redundancy (generic reading type 0Bh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Redundancy {
    /// Fully redundant.
    Full,
    /// Redundancy degraded.
    Degraded,
    /// Redundancy lost.
    Lost,
    /// Non-redundant, sufficient resources.
    NonRedundantSufficient,
    /// Non-redundant, insufficient resources.
    InsufficientResources,
    /// No state bit set, or the sensor is unreadable.
    NoState,
}

impl Redundancy {
    fn text(self) -> &'static str {
        match self {
            Redundancy::Full => "fully redundant",
            Redundancy::Degraded => "redundancy degraded",
            Redundancy::Lost => "redundancy lost",
            Redundancy::NonRedundantSufficient => "non-redundant (sufficient)",
            Redundancy::InsufficientResources => "insufficient resources",
            Redundancy::NoState => "no state",
        }
    }
}

/// One scan of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerReading {
    /// Where it came from (`ipmi-lan cmm:623`).
    pub source: String,
    /// PSU sensors.
    pub psus: Vec<PsuState>,
    /// Redundancy sensor, if the source has one.
    pub redundancy: Option<Redundancy>,
    /// Unix seconds of the scan.
    pub observed_at: u64,
}

impl PowerReading {
    fn psu(&self, sensor: &str) -> Option<&PsuState> {
        self.psus.iter().find(|p| p.name == sensor)
    }
}

/// How a PSU reading compares with another source's: sources disagree when
/// their classes differ (or one does not list the PSU at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Working, no problem.
    Ok,
    /// Working with a problem (predictive failure, CMM "warning").
    Degraded,
    /// Not delivering power (failed, absent, input lost, no reading).
    Down,
}

fn class(s: &PsuState) -> Class {
    if !s.is_working() {
        Class::Down
    } else if s.problem().is_some() {
        Class::Degraded
    } else {
        Class::Ok
    }
}

fn says(s: Option<&PsuState>) -> String {
    match s {
        None => "no such PSU".to_string(),
        Some(s) => s.problem().unwrap_or("ok").to_string(),
    }
}

/// The power verdict from the latest reading of each source, in
/// configuration order. `now` is Unix seconds.
///
/// Readings older than `stale_after_secs` are ignored; with none left the
/// verdict is CRITICAL. With several fresh sources, each bay takes the
/// **worse** of their readings (a PSU counts as working only if every
/// source that lists it says so), and a bay on which they differ (or that
/// one source does not list) gets a WARNING `sources disagree` finding
/// and `power_source_disagreement{bay} 1`. A source whose reading went
/// stale while another is fresh gets a WARNING finding naming it UNKNOWN.
pub fn verdict(readings: &[PowerReading], cfg: &PowerConfig, now: u64) -> CheckVerdict {
    let is_fresh = |r: &PowerReading| now.saturating_sub(r.observed_at) <= cfg.stale_after_secs;
    let fresh: Vec<&PowerReading> = readings.iter().filter(|r| is_fresh(r)).collect();
    let Some(primary) = fresh.iter().copied().max_by_key(|r| r.observed_at) else {
        let age = readings
            .iter()
            .map(|r| now.saturating_sub(r.observed_at))
            .min();
        let detail = match age {
            Some(a) => format!("no PSU reading for {a}s (bound {}s)", cfg.stale_after_secs),
            None => "no PSU reading yet".to_string(),
        };
        let mut v = CheckVerdict::from_findings(
            CheckKind::Power,
            vec![Finding {
                subject: "power".to_string(),
                status: Status::Critical,
                detail,
            }],
            Vec::new(),
            String::new(),
        );
        v.summary = v.summary.trim_start_matches("power ").to_string();
        return v;
    };
    let several = readings.len() > 1;

    let mut findings = Vec::new();
    let mut disagreements = Vec::new();
    let mut metrics = Vec::new();
    let mut working_total = 0u32;
    let mut per_feed: Vec<(Feed, u32, Vec<String>)> = Vec::new();
    for bay in &cfg.bays {
        let views: Vec<(&PowerReading, Option<&PsuState>)> =
            fresh.iter().map(|r| (*r, r.psu(&bay.sensor))).collect();
        // The worse reading wins; on a tie the earlier source's text.
        let mut state: Option<(&PowerReading, &PsuState)> = None;
        for (r, s) in &views {
            if let Some(s) = s {
                if state.is_none_or(|(_, w)| class(s) > class(w)) {
                    state = Some((r, s));
                }
            }
        }
        let disagree = views.len() > 1 && {
            let classes: Vec<Option<Class>> = views.iter().map(|(_, s)| s.map(class)).collect();
            classes.iter().any(|c| *c != classes[0])
        };
        let working = state.is_some_and(|(_, s)| s.is_working());
        let problem = match state {
            Some((_, s)) => s.problem(),
            None => Some("sensor not found"),
        };
        if working {
            working_total += 1;
        }
        let entry = match per_feed.iter_mut().position(|(f, _, _)| *f == bay.feed) {
            Some(i) => &mut per_feed[i],
            None => {
                per_feed.push((bay.feed, 0, Vec::new()));
                let last = per_feed.len() - 1;
                &mut per_feed[last]
            }
        };
        if working {
            entry.1 += 1;
        } else {
            entry.2.push(format!("PSU{} ({})", bay.bay, bay.sensor));
        }
        let status = match (working, problem) {
            (true, None) => Status::Ok,
            (true, Some(_)) | (false, _) => Status::Warning,
        };
        let mut detail = format!("{} on {} feed", problem.unwrap_or("ok"), bay.feed.as_str());
        if let Some((r, s)) = state.filter(|_| problem.is_some()) {
            if !s.detail.is_empty() {
                detail.push_str(&format!(" ({:?})", s.detail));
            }
            if disagree {
                detail.push_str(&format!(" per {}", r.source));
            }
        }
        findings.push(Finding {
            subject: format!("PSU{}", bay.bay),
            status,
            detail,
        });
        if disagree {
            let said: Vec<String> = views
                .iter()
                .map(|(r, s)| format!("{} says {}", r.source, says(*s)))
                .collect();
            disagreements.push(Finding {
                subject: format!("PSU{}", bay.bay),
                status: Status::Warning,
                detail: format!(
                    "sources disagree: {}; counted as {} (the worse reading wins)",
                    said.join(", "),
                    if working { "working" } else { "down" }
                ),
            });
        }
        let labels = vec![
            ("bay".to_string(), bay.bay.to_string()),
            ("feed".to_string(), bay.feed.as_str().to_string()),
        ];
        metrics.push(Metric {
            name: "psu_working".to_string(),
            labels: labels.clone(),
            value: if working { 1.0 } else { 0.0 },
            unit: String::new(),
        });
        if several {
            metrics.push(Metric {
                name: "power_source_disagreement".to_string(),
                labels,
                value: if disagree { 1.0 } else { 0.0 },
                unit: String::new(),
            });
        }
    }
    for (feed, working, _) in &per_feed {
        metrics.push(Metric::labelled(
            "power_feed_working_psus",
            "feed",
            feed.as_str(),
            f64::from(*working),
        ));
    }
    metrics.push(Metric::labelled(
        "power_working_psus",
        "chassis",
        "self",
        f64::from(working_total),
    ));

    if working_total < cfg.n {
        findings.push(Finding {
            subject: "chassis".to_string(),
            status: Status::Critical,
            detail: format!(
                "only {working_total} of {} PSUs working, {} needed",
                cfg.bays.len(),
                cfg.n
            ),
        });
    }
    for (feed, working, down) in &per_feed {
        if *working < cfg.n && working_total >= cfg.n {
            findings.push(Finding {
                subject: format!("{} feed", feed.as_str()),
                status: Status::Warning,
                detail: format!(
                    "redundancy lost: {working} of {} working, down: {}",
                    cfg.n,
                    down.join(", ")
                ),
            });
        }
    }
    let redundancy = fresh
        .iter()
        .filter(|r| r.redundancy.is_some())
        .max_by_key(|r| r.observed_at)
        .and_then(|r| r.redundancy);
    if let Some(r) = redundancy {
        let ours_full = per_feed.iter().all(|(_, w, _)| *w >= cfg.n);
        let status = match r {
            Redundancy::Full if ours_full => Status::Ok,
            Redundancy::Full => Status::Warning,
            Redundancy::InsufficientResources => Status::Critical,
            Redundancy::NoState => Status::Unknown,
            _ => Status::Warning,
        };
        let detail = if r == Redundancy::Full && !ours_full {
            "reports fully redundant but PSU states say otherwise".to_string()
        } else {
            r.text().to_string()
        };
        findings.push(Finding {
            subject: "redundancy sensor".to_string(),
            status,
            detail,
        });
    }
    findings.extend(disagreements);
    let fresh_names: Vec<&str> = fresh.iter().map(|r| r.source.as_str()).collect();
    for stale in readings.iter().filter(|r| !is_fresh(r)) {
        findings.push(Finding {
            subject: stale.source.clone(),
            status: Status::Warning,
            detail: format!(
                "UNKNOWN: no reading for {}s (bound {}s), verdict from {} alone",
                now.saturating_sub(stale.observed_at),
                cfg.stale_after_secs,
                fresh_names.join(", ")
            ),
        });
    }
    let sources = if fresh_names.len() > 1 {
        format!("{} agree", fresh_names.join(", "))
    } else {
        primary.source.clone()
    };
    let ok = format!(
        "{working_total}/{} PSUs working, N+N={}+{} redundant ({sources})",
        cfg.bays.len(),
        cfg.n,
        cfg.n,
    );
    let observed = fresh
        .iter()
        .map(|r| r.observed_at)
        .min()
        .unwrap_or(primary.observed_at);
    CheckVerdict::from_findings(CheckKind::Power, findings, metrics, ok).observed(observed)
}

#[cfg(test)]
mod tests;
