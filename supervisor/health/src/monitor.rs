//! The async health monitor: keeps the latest readings in memory and
//! publishes the node's health as a `tokio::sync::watch` value plus a
//! stream of events for the supervisor's event log.
//!
//! Readers that block (md sysfs poll, IPMI, rtnetlink) run on their own
//! threads and send updates over a channel; SNMP polls (switch modules,
//! CMM power modules) are tokio tasks. A
//! single aggregator task owns all state, recomputes the [`NodeHealth`] on
//! every update (and once a second, so stale power readings turn
//! CRITICAL), and emits an event whenever a check changes status, md
//! reports an mdadm-style event, the power sources start or stop
//! disagreeing about a PSU (`PowerSourcesDisagree` / `PowerSourcesAgree`)
//! or a power source goes stale or comes back (`PowerSourceUnknown` /
//! `PowerSourceBack`). `services` and `vip` verdicts are pushed
//! in by the supervisor through [`MonitorHandle::push_verdict`].

use crate::config::{self, ConfigError, HealthConfig, ResolvedPowerSource, Secrets};
use crate::power::cmm_snmp::CmmPowerReader;
use crate::power::ipmi::PsuScanner;
use crate::power::PowerReading;
use crate::raid::{self, watch::MdWatcher, RaidSnapshot};
use crate::uplinks::netlink::{LinkEvents, LinkReader};
use crate::uplinks::snmp::SwitchPoller;
use crate::uplinks::{self, ModuleReading, NodeLinks, UplinkReading};
use crate::verdict::{unix_now, CheckKind, CheckVerdict, Finding, Metric, NodeHealth};
use crate::{power, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// One entry for the supervisor's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Unix seconds.
    pub at: u64,
    /// Check it belongs to.
    pub check: CheckKind,
    /// Severity of the new state.
    pub status: Status,
    /// `check-changed` or an mdadm event name (`DegradedArray`).
    pub kind: String,
    /// Human text.
    pub message: String,
}

enum Update {
    Raid(Result<RaidSnapshot, String>),
    Power(usize, String, Result<PowerReading, String>),
    Node(Result<NodeLinks, String>),
    Module(usize, ModuleReading),
    Pushed(CheckVerdict),
    Tick,
}

/// Handle held by the supervisor.
#[derive(Debug)]
pub struct MonitorHandle {
    health: watch::Receiver<NodeHealth>,
    events: broadcast::Sender<HealthEvent>,
    updates: mpsc::UnboundedSender<Update>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Update::Raid(_) => "Raid",
            Update::Power(..) => "Power",
            Update::Node(_) => "Node",
            Update::Module(..) => "Module",
            Update::Pushed(_) => "Pushed",
            Update::Tick => "Tick",
        })
    }
}

impl MonitorHandle {
    /// A receiver of the latest health (cheap to clone; `borrow()` answers
    /// `flexctl health` from memory).
    pub fn health(&self) -> watch::Receiver<NodeHealth> {
        self.health.clone()
    }

    /// The latest health, copied.
    pub fn latest(&self) -> NodeHealth {
        self.health.borrow().clone()
    }

    /// Subscribe to health events.
    pub fn events(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// Push a `services` or `vip` verdict (see [`crate::report::services_verdict`]).
    pub fn push_verdict(&self, v: CheckVerdict) {
        let _ = self.updates.send(Update::Pushed(v));
    }

    /// Stop the readers and the aggregator.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !stop.load(Ordering::SeqCst) && !left.is_zero() {
        let s = left.min(step);
        std::thread::sleep(s);
        left = left.saturating_sub(s);
    }
}

/// Start the monitor. Must be called inside a tokio runtime. Secrets are
/// resolved now, so a missing credential is reported at start.
pub fn spawn(
    cfg: HealthConfig,
) -> Result<(MonitorHandle, tokio::task::JoinHandle<()>), ConfigError> {
    cfg.validate()?;
    let secrets = match &cfg.secrets_file {
        Some(p) => Secrets::load(p)?,
        None => Secrets::default(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let now = unix_now();
    let initial = NodeHealth::new(&cfg.node, initial_checks(&cfg), now);
    let (health_tx, health_rx) = watch::channel(initial);
    let (events_tx, _) = broadcast::channel(256);

    // RAID: sysfs/procfs wake-ups with a slow timer as fallback.
    {
        let tx = tx.clone();
        let stop = stop.clone();
        let root = cfg.system_root.clone();
        let fallback = Duration::from_secs(cfg.raid.fallback_poll_secs.max(1));
        std::thread::Builder::new()
            .name("health-raid".into())
            .spawn(move || raid_loop(&root, fallback, &tx, &stop))
            .map_err(|e| ConfigError::Invalid {
                field: "raid".into(),
                reason: format!("cannot start reader thread: {e}"),
            })?;
    }

    // Power: one thread per IPMI source, one task per CMM SNMP source.
    if let Some(p) = &cfg.power {
        for (i, src) in p.sources.iter().enumerate() {
            let source = config::power_source(src, &secrets, &format!("power.sources[{i}]"))?;
            let tx = tx.clone();
            let stop = stop.clone();
            let poll = Duration::from_secs(p.poll_secs.max(1));
            let timeout = Duration::from_millis(p.timeout_ms.max(1));
            match source {
                ResolvedPowerSource::Ipmi(target) => {
                    std::thread::Builder::new()
                        .name(format!("health-ipmi{i}"))
                        .spawn(move || {
                            let name = target.describe();
                            let mut scanner = PsuScanner::new(target, timeout);
                            while !stop.load(Ordering::SeqCst) {
                                let r = scanner.scan(unix_now()).map_err(|e| e.to_string());
                                if tx.send(Update::Power(i, name.clone(), r)).is_err() {
                                    return;
                                }
                                sleep_unless_stopped(&stop, poll);
                            }
                        })
                        .map_err(|e| ConfigError::Invalid {
                            field: "power".into(),
                            reason: format!("cannot start reader thread: {e}"),
                        })?;
                }
                ResolvedPowerSource::CmmSnmp { address, auth } => {
                    let bays = p.bays.clone();
                    let mut reader = CmmPowerReader::new(&address, auth, timeout);
                    tokio::spawn(async move {
                        let name = reader.describe();
                        while !stop.load(Ordering::SeqCst) {
                            let r = reader
                                .read(&bays, unix_now())
                                .await
                                .map_err(|e| e.to_string());
                            if tx.send(Update::Power(i, name.clone(), r)).is_err() {
                                return;
                            }
                            tokio::time::sleep(poll).await;
                        }
                    });
                }
            }
        }
    }

    // Uplinks: node links from rtnetlink events, switch modules over SNMP.
    if let Some(u) = &cfg.uplinks {
        let tx2 = tx.clone();
        let stop2 = stop.clone();
        let nics = u.nics.clone();
        let bond = u.bond.clone();
        let netns = u.netns.clone();
        let root = cfg.system_root.clone();
        let poll = Duration::from_secs(u.poll_secs.max(1));
        std::thread::Builder::new()
            .name("health-links".into())
            .spawn(move || node_loop(netns, &nics, bond.as_deref(), &root, poll, &tx2, &stop2))
            .map_err(|e| ConfigError::Invalid {
                field: "uplinks".into(),
                reason: format!("cannot start reader thread: {e}"),
            })?;
        for (i, m) in u.modules.iter().enumerate() {
            let auth = config::snmp_auth(&m.snmp, &secrets, &format!("uplinks.modules[{i}].snmp"))?;
            let mut poller =
                SwitchPoller::new(&m.address, auth, Duration::from_millis(u.timeout_ms.max(1)));
            let ports: Vec<String> = m
                .ports
                .uplinks
                .iter()
                .chain(&m.ports.optional_uplinks)
                .chain([&m.ports.node_port])
                .cloned()
                .collect();
            let tx = tx.clone();
            let stop = stop.clone();
            let poll = Duration::from_secs(u.poll_secs.max(1));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let r = match poller.poll(&ports).await {
                        Ok(p) => ModuleReading::Ports(p),
                        Err(e) => ModuleReading::Unreachable(e.to_string()),
                    };
                    if tx.send(Update::Module(i, r)).is_err() {
                        return;
                    }
                    tokio::time::sleep(poll).await;
                }
            });
        }
    }

    // Ticks for staleness.
    {
        let tx = tx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_secs(1));
            while !stop.load(Ordering::SeqCst) {
                iv.tick().await;
                if tx.send(Update::Tick).is_err() {
                    return;
                }
            }
        });
    }

    let agg = Aggregator::new(cfg, health_tx, events_tx.clone());
    let stop_agg = stop.clone();
    let join = tokio::spawn(agg.run(rx, stop_agg));
    Ok((
        MonitorHandle {
            health: health_rx,
            events: events_tx,
            updates: tx,
            stop,
        },
        join,
    ))
}

fn raid_loop(
    root: &std::path::Path,
    fallback: Duration,
    tx: &mpsc::UnboundedSender<Update>,
    stop: &AtomicBool,
) {
    let mut watcher = MdWatcher::new(root).ok();
    let mut arrays = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let snap = raid::read_snapshot(root).map_err(|e| e.to_string());
        let n = snap.as_ref().map(|s| s.arrays.len()).unwrap_or(0);
        if tx.send(Update::Raid(snap)).is_err() {
            return;
        }
        if n != arrays {
            // Arrays came or went: watch the new set of attributes.
            arrays = n;
            watcher = MdWatcher::new(root).ok();
        }
        match watcher.as_mut() {
            Some(w) => {
                // Wake at most every second to notice `stop`.
                let mut waited = Duration::ZERO;
                while waited < fallback && !stop.load(Ordering::SeqCst) {
                    let step = (fallback - waited).min(Duration::from_secs(1));
                    match w.wait(step) {
                        Ok(raid::watch::Wake::Changed(_)) => break,
                        Ok(raid::watch::Wake::Timeout) => waited += step,
                        Err(_) => {
                            sleep_unless_stopped(stop, fallback - waited);
                            break;
                        }
                    }
                }
            }
            None => sleep_unless_stopped(stop, fallback),
        }
    }
}

fn node_loop(
    netns: Option<std::path::PathBuf>,
    nics: &[String],
    bond: Option<&str>,
    root: &std::path::Path,
    poll: Duration,
    tx: &mpsc::UnboundedSender<Update>,
    stop: &AtomicBool,
) {
    if let Some(ns) = netns {
        // This thread is dedicated to link reading: entering the namespace
        // here makes its netlink sockets belong to it.
        let entered = std::fs::File::open(&ns)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = entered {
            let _ = tx.send(Update::Node(Err(format!(
                "cannot enter {}: {e}",
                ns.display()
            ))));
            return;
        }
    }
    let wait = poll.min(Duration::from_secs(1));
    let (mut reader, mut events) = match (
        LinkReader::new(Duration::from_secs(2)),
        LinkEvents::new(wait),
    ) {
        (Ok(r), Ok(e)) => (r, e),
        (Err(e), _) | (_, Err(e)) => {
            let _ = tx.send(Update::Node(Err(e.to_string())));
            return;
        }
    };
    let mut since = Duration::ZERO;
    let mut dirty = true;
    while !stop.load(Ordering::SeqCst) {
        if dirty || since >= poll {
            let r = uplinks::read_node(&mut reader, nics, root, bond).map_err(|e| e.to_string());
            if tx.send(Update::Node(r)).is_err() {
                return;
            }
            since = Duration::ZERO;
        }
        match events.wait() {
            Ok(links) if !links.is_empty() => dirty = true,
            Ok(_) => {
                dirty = false;
                since += wait;
            }
            Err(_) => {
                dirty = false;
                std::thread::sleep(wait);
                since += wait;
            }
        }
    }
}

fn initial_checks(cfg: &HealthConfig) -> Vec<CheckVerdict> {
    let mut v = vec![CheckVerdict::unknown(CheckKind::Raid, "no reading yet")];
    if cfg.power.is_some() {
        v.push(CheckVerdict::unknown(CheckKind::Power, "no reading yet"));
    }
    if cfg.uplinks.is_some() {
        v.push(CheckVerdict::unknown(CheckKind::Uplinks, "no reading yet"));
    }
    v.push(CheckVerdict::unknown(
        CheckKind::Services,
        "not reported by the supervisor yet",
    ));
    v.push(CheckVerdict::unknown(
        CheckKind::Vip,
        "not reported by the supervisor yet",
    ));
    v
}

struct Aggregator {
    cfg: HealthConfig,
    health: watch::Sender<NodeHealth>,
    events: broadcast::Sender<HealthEvent>,
    raid_prev: Option<RaidSnapshot>,
    raid: CheckVerdict,
    power: Vec<(String, Option<PowerReading>, Option<String>)>,
    node: Option<Result<NodeLinks, String>>,
    node_at: u64,
    modules: Vec<Option<ModuleReading>>,
    pushed: BTreeMap<CheckKind, CheckVerdict>,
    started_at: u64,
    last_status: BTreeMap<CheckKind, Status>,
    /// PSU subject -> disagreement text, as last published.
    disagreements: BTreeMap<String, String>,
    /// Power source name -> status, as last published.
    source_status: BTreeMap<String, Status>,
}

impl Aggregator {
    fn new(
        cfg: HealthConfig,
        health: watch::Sender<NodeHealth>,
        events: broadcast::Sender<HealthEvent>,
    ) -> Self {
        let power_names: Vec<String> = cfg
            .power
            .iter()
            .flat_map(|p| p.sources.iter().map(config::describe_source))
            .collect();
        let n_modules = cfg.uplinks.as_ref().map(|u| u.modules.len()).unwrap_or(0);
        let last_status = health
            .borrow()
            .checks
            .iter()
            .map(|c| (c.check, c.status))
            .collect();
        Aggregator {
            cfg,
            health,
            events,
            raid_prev: None,
            raid: CheckVerdict::unknown(CheckKind::Raid, "no reading yet"),
            power: power_names.into_iter().map(|n| (n, None, None)).collect(),
            node: None,
            node_at: 0,
            modules: vec![None; n_modules],
            pushed: BTreeMap::new(),
            started_at: unix_now(),
            last_status,
            disagreements: BTreeMap::new(),
            source_status: BTreeMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Update>, stop: Arc<AtomicBool>) {
        while let Some(u) = rx.recv().await {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            self.apply(u);
            self.publish();
        }
    }

    fn event(&self, check: CheckKind, status: Status, kind: &str, message: String) {
        let _ = self.events.send(HealthEvent {
            at: unix_now(),
            check,
            status,
            kind: kind.to_string(),
            message,
        });
    }

    fn apply(&mut self, u: Update) {
        match u {
            Update::Raid(Ok(snap)) => {
                for e in raid::events::diff(self.raid_prev.as_ref(), &snap) {
                    let status = if e.kind.is_critical() {
                        Status::Critical
                    } else {
                        Status::Warning
                    };
                    self.event(
                        CheckKind::Raid,
                        status,
                        &format!("{:?}", e.kind),
                        e.to_string(),
                    );
                }
                self.raid =
                    raid::verdict(&snap, &self.cfg.raid.expected_arrays).observed(unix_now());
                self.raid_prev = Some(snap);
            }
            Update::Raid(Err(e)) => self.raid = CheckVerdict::unknown(CheckKind::Raid, e),
            Update::Power(i, name, r) => {
                if let Some(slot) = self.power.get_mut(i) {
                    slot.0 = name;
                    match r {
                        Ok(reading) => {
                            slot.1 = Some(reading);
                            slot.2 = None;
                        }
                        Err(e) => slot.2 = Some(e),
                    }
                }
            }
            Update::Node(r) => {
                self.node = Some(r);
                self.node_at = unix_now();
            }
            Update::Module(i, r) => {
                if let Some(slot) = self.modules.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Update::Pushed(v) => {
                self.pushed.insert(v.check, v);
            }
            Update::Tick => {}
        }
    }

    /// Per source: OK (fresh reading, last read fine), WARNING (fresh
    /// reading but the last read failed), UNKNOWN (no reading within the
    /// staleness bound).
    fn source_statuses(&self, now: u64, stale_after: u64) -> Vec<(String, Status)> {
        self.power
            .iter()
            .map(|(name, reading, err)| {
                let fresh = reading
                    .as_ref()
                    .is_some_and(|r| now.saturating_sub(r.observed_at) <= stale_after);
                let status = match (fresh, err) {
                    (true, None) => Status::Ok,
                    (true, Some(_)) => Status::Warning,
                    (false, _) => Status::Unknown,
                };
                (name.clone(), status)
            })
            .collect()
    }

    fn power_verdict(&self, now: u64) -> Option<CheckVerdict> {
        let cfg = self.cfg.power_config()?;
        let readings: Vec<PowerReading> = self
            .power
            .iter()
            .filter_map(|(_, r, _)| r.clone())
            .collect();
        if readings.is_empty() && now.saturating_sub(self.started_at) <= cfg.stale_after_secs {
            // Just started: not knowing yet is not an outage, and neither
            // is a scan that failed (e.g. the CMM busy with every node's
            // SDR read) before the staleness bound has passed.
            let errors: Vec<&str> = self
                .power
                .iter()
                .filter_map(|(_, _, e)| e.as_deref())
                .collect();
            let why = if errors.is_empty() {
                "no reading yet".to_string()
            } else {
                format!("no reading yet; source failing: {}", errors.join("; "))
            };
            return Some(CheckVerdict::unknown(CheckKind::Power, why));
        }
        let mut v = power::verdict(&readings, &cfg, now);
        for (name, _, err) in &self.power {
            if let Some(e) = err {
                v.findings.push(Finding {
                    subject: name.clone(),
                    status: Status::Warning,
                    detail: format!("source failing: {e}"),
                });
            }
        }
        if self.power.len() > 1 {
            for (name, status) in self.source_statuses(now, cfg.stale_after_secs) {
                v.metrics.push(Metric::labelled(
                    "power_source_status",
                    "source",
                    &name,
                    f64::from(status.gauge()),
                ));
            }
        }
        if self.power.iter().any(|(_, _, e)| e.is_some()) {
            let observed = v.observed_at;
            v = CheckVerdict::from_findings(CheckKind::Power, v.findings, v.metrics, v.summary);
            v.observed_at = observed;
        }
        Some(v)
    }

    /// Events for power sources that disagree (or agree again) about a
    /// PSU, and for sources going UNKNOWN (or coming back).
    fn power_source_events(&mut self, power: &CheckVerdict, now: u64) {
        let now_disagree: BTreeMap<String, String> = power
            .findings
            .iter()
            .filter(|f| f.detail.starts_with("sources disagree"))
            .map(|f| (f.subject.clone(), f.detail.clone()))
            .collect();
        for (subject, detail) in &now_disagree {
            if self.disagreements.get(subject) != Some(detail) {
                self.event(
                    CheckKind::Power,
                    Status::Warning,
                    "PowerSourcesDisagree",
                    format!("{subject} {detail}"),
                );
            }
        }
        for subject in self.disagreements.keys() {
            if !now_disagree.contains_key(subject) {
                self.event(
                    CheckKind::Power,
                    Status::Ok,
                    "PowerSourcesAgree",
                    format!("{subject}: power sources agree again"),
                );
            }
        }
        self.disagreements = now_disagree;
        let stale_after = self
            .cfg
            .power
            .as_ref()
            .map(|p| p.stale_after_secs)
            .unwrap_or(0);
        for (name, status) in self.source_statuses(now, stale_after) {
            let before = self.source_status.insert(name.clone(), status);
            match (before, status) {
                (Some(b), Status::Unknown) if b != Status::Unknown => self.event(
                    CheckKind::Power,
                    Status::Warning,
                    "PowerSourceUnknown",
                    format!("{name}: no reading for longer than {stale_after}s"),
                ),
                (Some(Status::Unknown), s) if s != Status::Unknown => self.event(
                    CheckKind::Power,
                    Status::Ok,
                    "PowerSourceBack",
                    format!("{name}: reading again"),
                ),
                _ => {}
            }
        }
    }

    fn uplink_verdict(&self) -> Option<CheckVerdict> {
        let u = self.cfg.uplinks.as_ref()?;
        let node = match &self.node {
            None => {
                return Some(CheckVerdict::unknown(
                    CheckKind::Uplinks,
                    "no link reading yet",
                ))
            }
            Some(Err(e)) => return Some(CheckVerdict::unknown(CheckKind::Uplinks, e.clone())),
            Some(Ok(n)) => n.clone(),
        };
        let modules = u
            .modules
            .iter()
            .zip(&self.modules)
            .map(|(m, r)| {
                (
                    m.ports.name.clone(),
                    r.clone()
                        .unwrap_or_else(|| ModuleReading::Unreachable("no reading yet".into())),
                )
            })
            .collect();
        let ports: Vec<uplinks::ModulePorts> = u.modules.iter().map(|m| m.ports.clone()).collect();
        Some(uplinks::verdict(
            &UplinkReading {
                node,
                modules,
                observed_at: self.node_at,
            },
            &ports,
        ))
    }

    fn publish(&mut self) {
        let now = unix_now();
        let mut checks = vec![self.raid.clone()];
        if let Some(p) = self.power_verdict(now) {
            if self.power.len() > 1 {
                self.power_source_events(&p, now);
            }
            checks.push(p);
        }
        checks.extend(self.uplink_verdict());
        for kind in [CheckKind::Services, CheckKind::Vip] {
            checks.push(self.pushed.get(&kind).cloned().unwrap_or_else(|| {
                CheckVerdict::unknown(kind, "not reported by the supervisor yet")
            }));
        }
        for c in &checks {
            let before = self.last_status.insert(c.check, c.status);
            if let Some(b) = before.filter(|b| *b != c.status) {
                self.event(
                    c.check,
                    c.status,
                    "check-changed",
                    format!("{} {} -> {}: {}", c.check, b, c.status, c.summary),
                );
            }
        }
        let h = NodeHealth::new(&self.cfg.node, checks, now);
        self.health.send_if_modified(|old| {
            // Only wake watchers when something other than the clock changed.
            let mut cmp = h.clone();
            cmp.generated_at = old.generated_at;
            let changed = *old != cmp;
            *old = h;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregator() -> Aggregator {
        let cfg: HealthConfig = serde_json::from_str(
            r#"{"node": "db1a", "raid": {"expected_arrays": []},
                "power": {"n": 3, "stale_after_secs": 60,
                  "bays": [{"bay": 1, "sensor": "PSU1", "feed": "mains"},
                           {"bay": 2, "sensor": "PSU2", "feed": "mains"},
                           {"bay": 3, "sensor": "PSU3", "feed": "mains"},
                           {"bay": 4, "sensor": "PSU4", "feed": "ups"},
                           {"bay": 5, "sensor": "PSU5", "feed": "ups"},
                           {"bay": 6, "sensor": "PSU6", "feed": "ups"}],
                  "sources": [{"kind": "local", "device": "/dev/ipmi0"}]}}"#,
        )
        .expect("config");
        let (health, _) = watch::channel(NodeHealth::new("db1a", initial_checks(&cfg), 0));
        let (events, _) = broadcast::channel(16);
        Aggregator::new(cfg, health, events)
    }

    /// A first scan that fails (CMM busy with every node's SDR read) is
    /// UNKNOWN naming the error until the staleness bound, then CRITICAL.
    #[test]
    fn failing_first_scan_is_not_critical_before_the_bound() {
        let mut a = aggregator();
        let name = a.power[0].0.clone();
        a.apply(Update::Power(
            0,
            name,
            Err("SDR record 0x0000: reservation cancelled repeatedly".into()),
        ));
        let v = a
            .power_verdict(a.started_at + 30)
            .expect("power configured");
        assert_eq!(v.status, Status::Unknown, "{v:?}");
        assert!(v.summary.contains("reservation cancelled"), "{}", v.summary);
        let v = a
            .power_verdict(a.started_at + 61)
            .expect("power configured");
        assert_eq!(v.status, Status::Critical, "{v:?}");
    }
}
