//! The hosting thread: a current-thread tokio runtime running the health
//! monitor, the VRRP instances and `/metrics`, and the pipes + channels
//! that carry their news to the poll loop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use flexvisor_health::config::HealthConfig;
use flexvisor_health::monitor::{self, MonitorHandle};
use flexvisor_health::report::{self, ServiceReport};
use flexvisor_health::verdict::{CheckVerdict, Finding, Metric};
use flexvisor_health::{CheckKind, NodeHealth, Status as HStatus};
use flexvisor_vrrp::state::State;
use flexvisor_vrrp::{Health, Instance, InstanceConfig, Status, TransitionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Read end polled by the supervisor, write end poked by the thread.
#[derive(Debug)]
pub struct Wake {
    read: OwnedFd,
    write: Arc<OwnedFd>,
}

impl Wake {
    pub fn new() -> Result<Self, nix::Error> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        Ok(Wake {
            read,
            write: Arc::new(write),
        })
    }
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
    /// Empty the pipe (the channel holds the news).
    pub fn drain(&self) {
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(self.read.as_fd(), &mut buf), Ok(n) if n > 0) {}
    }
    fn poker(&self) -> Poker {
        Poker(self.write.clone())
    }
}

#[derive(Debug, Clone)]
struct Poker(Arc<OwnedFd>);

impl Poker {
    fn poke(&self) {
        // A full pipe already wakes the loop: EAGAIN is fine.
        let _ = nix::unistd::write(self.0.as_fd(), b"!");
    }
}

/// News for the `health` subsystem.
#[derive(Debug)]
pub enum HealthMsg {
    Health(Box<NodeHealth>),
    Event(String),
}

/// News for the `vrrp` subsystem.
#[derive(Debug)]
pub enum VrrpMsg {
    /// Watchers of the running instances' status.
    Started(Vec<watch::Receiver<Status>>),
    Transition(TransitionEvent),
    Event(String),
    /// Loud line for the console.
    Console(String),
}

/// Requests from the poll loop.
#[derive(Debug)]
pub enum ToHosted {
    Services(Vec<ServiceReport>),
    /// Stop the VRRP instances (priority 0); answered when done.
    StopVrrp(std_mpsc::Sender<()>),
    /// The node's backup hook succeeded (its stores are copies of the
    /// master's): instances that hold preemption may preempt from now on.
    ReleasePreempt,
    /// Reload: run these instances from now on (removed or changed ones
    /// stopped with priority 0, added or changed ones started); answered
    /// with a summary for the event log.
    SetVrrp(Vec<InstanceConfig>, std_mpsc::Sender<String>),
}

/// What the thread runs.
#[derive(Debug)]
pub struct Plan {
    pub health: Option<HealthConfig>,
    /// Local-only fallback if the full health configuration cannot start.
    pub health_fallback: Option<HealthConfig>,
    pub metrics: Option<SocketAddr>,
    /// `None`: VRRP not run at all.
    pub vrrp: Option<Vec<InstanceConfig>>,
    pub bay_mismatch: bool,
}

/// Loop-side ends.
#[derive(Debug)]
pub struct Ends {
    pub health_rx: std_mpsc::Receiver<HealthMsg>,
    pub health_wake: Wake,
    pub vrrp_rx: std_mpsc::Receiver<VrrpMsg>,
    pub vrrp_wake: Wake,
    pub to_hosted: mpsc::UnboundedSender<ToHosted>,
}

struct Out {
    health: std_mpsc::Sender<HealthMsg>,
    health_poke: Poker,
    vrrp: std_mpsc::Sender<VrrpMsg>,
    vrrp_poke: Poker,
}

impl Out {
    fn health(&self, m: HealthMsg) {
        let _ = self.health.send(m);
        self.health_poke.poke();
    }
    fn vrrp(&self, m: VrrpMsg) {
        let _ = self.vrrp.send(m);
        self.vrrp_poke.poke();
    }
}

/// Start the hosting thread.
pub fn start(plan: Plan) -> Result<Ends, super::HostedError> {
    let health_wake = Wake::new().map_err(super::HostedError::Pipe)?;
    let vrrp_wake = Wake::new().map_err(super::HostedError::Pipe)?;
    let (htx, health_rx) = std_mpsc::channel();
    let (vtx, vrrp_rx) = std_mpsc::channel();
    let (to_hosted, rx) = mpsc::unbounded_channel();
    let out = Out {
        health: htx,
        health_poke: health_wake.poker(),
        vrrp: vtx,
        vrrp_poke: vrrp_wake.poker(),
    };
    std::thread::Builder::new()
        .name("flexvisor-hosted".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    out.health(HealthMsg::Event(format!("cannot start tokio: {e}")));
                    return;
                }
            };
            rt.block_on(run(plan, rx, out));
        })
        .map_err(super::HostedError::Thread)?;
    Ok(Ends {
        health_rx,
        health_wake,
        vrrp_rx,
        vrrp_wake,
        to_hosted,
    })
}

fn start_monitor(plan: &Plan, out: &Out) -> Option<MonitorHandle> {
    let cfg = plan.health.clone()?;
    match monitor::spawn(cfg) {
        Ok((h, _task)) => Some(h),
        Err(e) => {
            out.health(HealthMsg::Event(format!(
                "cannot start the full health monitor: {e}; checking local disks and NICs only"
            )));
            let fb = plan.health_fallback.clone()?;
            match monitor::spawn(fb) {
                Ok((h, _task)) => Some(h),
                Err(e) => {
                    out.health(HealthMsg::Event(format!(
                        "cannot start health monitor: {e}"
                    )));
                    None
                }
            }
        }
    }
}

/// Verdict of one tracker (`raid`, `power`, `uplinks`, `services`, `vip`,
/// `service:NAME`) from the node health; unknown names are UNKNOWN.
pub fn tracker_health(h: &NodeHealth, tracker: &str) -> Health {
    let status = if let Some(svc) = tracker.strip_prefix("service:") {
        h.check(CheckKind::Services)
            .and_then(|c| c.findings.iter().find(|f| f.subject == svc))
            .map(|f| f.status)
    } else {
        tracker
            .parse::<CheckKind>()
            .ok()
            .and_then(|k| h.check(k))
            .map(|c| c.status)
    };
    Health::from_exit_code(status.unwrap_or(HStatus::Unknown).exit_code())
}

/// The `vip` verdict from the instances' states; `blocked` (wrong bay) and
/// instances that could not start (`failed`: name, error) are CRITICAL.
pub fn vip_verdict(
    statuses: &[Status],
    blocked: Option<&str>,
    failed: &[(String, String)],
    now: u64,
) -> CheckVerdict {
    let mut findings = Vec::new();
    let mut metrics = Vec::new();
    if let Some(why) = blocked {
        findings.push(Finding {
            subject: "vrrp".into(),
            status: HStatus::Critical,
            detail: why.to_owned(),
        });
    }
    for (name, e) in failed {
        findings.push(Finding {
            subject: name.clone(),
            status: HStatus::Critical,
            detail: format!("not running: {e}"),
        });
    }
    for s in statuses {
        let (st, detail) = match s.state {
            State::Master => (HStatus::Ok, format!("master, priority {}", s.priority)),
            State::Backup => (HStatus::Ok, format!("backup, priority {}", s.priority)),
            State::Initialize => (HStatus::Unknown, "initializing".to_owned()),
            State::Fault => (
                HStatus::Critical,
                format!("fault: {}", s.fault.clone().unwrap_or_default()),
            ),
        };
        metrics.push(Metric::labelled(
            "vip_status",
            "instance",
            &s.name,
            f64::from(st.gauge()),
        ));
        findings.push(Finding {
            subject: s.name.clone(),
            status: st,
            detail,
        });
    }
    let masters = statuses.iter().filter(|s| s.state == State::Master).count();
    let summary = match blocked {
        Some(why) => why.to_owned(),
        None if statuses.is_empty() && failed.is_empty() => {
            "no shared address on this node".to_owned()
        }
        None => format!("{masters}/{} instance(s) master", statuses.len()),
    };
    CheckVerdict::from_findings(CheckKind::Vip, findings, metrics, summary).observed(now)
}

/// Names of the instances to stop and of the configurations to start when
/// `old` becomes `new`: removed and changed ones stop, added and changed
/// ones start (plus `failed` ones, which get another try).
pub fn vrrp_changes(
    old: &[InstanceConfig],
    new: &[InstanceConfig],
    failed: &[String],
) -> (Vec<String>, Vec<String>) {
    let stop = old
        .iter()
        .filter(|o| !new.contains(o))
        .map(|o| o.name.clone())
        .collect();
    let start = new
        .iter()
        .filter(|n| !old.contains(n) || failed.contains(&n.name))
        .map(|n| n.name.clone())
        .collect();
    (stop, start)
}

async fn run(mut plan: Plan, mut rx: mpsc::UnboundedReceiver<ToHosted>, out: Out) {
    let mon = start_monitor(&plan, &out);
    let mut health_rx = mon.as_ref().map(MonitorHandle::health);
    let mut events = mon.as_ref().map(MonitorHandle::events);
    if let Some(h) = &health_rx {
        out.health(HealthMsg::Health(Box::new(h.borrow().clone())));
    }
    if let (Some(addr), Some(h)) = (plan.metrics, &health_rx) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                out.health(HealthMsg::Event(format!(
                    "metrics on http://{addr}/metrics"
                )));
                tokio::spawn(serve_metrics(l, h.clone()));
            }
            Err(e) => out.health(HealthMsg::Event(format!(
                "cannot bind metrics on {addr}: {e}"
            ))),
        }
    }

    let (ttx, mut trx) = mpsc::unbounded_channel::<TransitionEvent>();
    let mut instances: Vec<Instance> = Vec::new();
    let mut blocked: Option<String> = None;
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut vrrp_on = plan.vrrp.is_some();
    if plan.bay_mismatch && vrrp_on {
        let why = "WRONG BAY (bay-check: mismatch): shared addresses NOT taken, staying backup";
        out.vrrp(VrrpMsg::Console(why.to_owned()));
        out.vrrp(VrrpMsg::Event(why.to_owned()));
        blocked = Some(why.to_owned());
    } else if let Some(cfgs) = plan.vrrp.clone() {
        let current = health_rx.as_ref().map(|h| h.borrow().clone());
        for cfg in cfgs {
            let verdicts: BTreeMap<String, Health> = cfg
                .trackers
                .iter()
                .map(|t| {
                    let v = current
                        .as_ref()
                        .map_or(Health::Unknown, |h| tracker_health(h, &t.name));
                    (t.name.clone(), v)
                })
                .collect();
            let name = cfg.name.clone();
            match Instance::start(cfg, verdicts, ttx.clone()).await {
                Ok(i) => instances.push(i),
                Err(e) => {
                    let m = format!("instance {name} cannot start: {e}");
                    out.vrrp(VrrpMsg::Console(m.clone()));
                    out.vrrp(VrrpMsg::Event(m));
                    failed.push((name, e.to_string()));
                }
            }
        }
        out.vrrp(VrrpMsg::Started(
            instances.iter().map(Instance::watch).collect(),
        ));
    }
    let mut last_trackers: BTreeMap<(String, String), Health> = BTreeMap::new();
    let mut preempt_released = false;
    let mut last_vip: Option<(HStatus, String)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        // Trackers and the vip verdict follow every wake-up.
        if let (Some(h), true) = (&health_rx, vrrp_on) {
            let nh = h.borrow().clone();
            for (cfg_name, tname) in plan.vrrp.iter().flatten().flat_map(|c| {
                c.trackers
                    .iter()
                    .map(move |t| (c.name.clone(), t.name.clone()))
            }) {
                let v = tracker_health(&nh, &tname);
                let key = (cfg_name.clone(), tname.clone());
                if last_trackers.get(&key) != Some(&v) {
                    if let Some(i) = instances.iter().find(|i| i.name() == cfg_name) {
                        if i.set_tracker(&tname, v).await.is_ok() {
                            last_trackers.insert(key, v);
                        }
                    }
                }
            }
        }
        if let Some(m) = &mon {
            let statuses: Vec<Status> = instances.iter().map(Instance::status).collect();
            let v = if plan.vrrp.is_none() {
                CheckVerdict::from_findings(
                    CheckKind::Vip,
                    Vec::new(),
                    Vec::new(),
                    "VRRP not run by this flexvisor".to_owned(),
                )
                .observed(flexvisor_health::verdict::unix_now())
            } else {
                vip_verdict(
                    &statuses,
                    blocked.as_deref(),
                    &failed,
                    flexvisor_health::verdict::unix_now(),
                )
            };
            let key = (v.status, v.summary.clone() + &format!("{:?}", v.findings));
            if last_vip.as_ref() != Some(&key) {
                last_vip = Some(key);
                m.push_verdict(v);
            }
        }
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(ToHosted::Services(list)) => {
                    if let Some(m) = &mon {
                        m.push_verdict(report::services_verdict(&list, flexvisor_health::verdict::unix_now()));
                    }
                }
                Some(ToHosted::SetVrrp(cfgs, ack)) => {
                    let msg = if !vrrp_on || plan.vrrp.is_none() {
                        "VRRP not running here (disabled or stopped): vips not applied".to_owned()
                    } else if blocked.is_some() {
                        "wrong bay: vips not applied, no instance runs".to_owned()
                    } else {
                        let old = plan.vrrp.clone().unwrap_or_default();
                        let failed_names: Vec<String> =
                            failed.iter().map(|(n, _)| n.clone()).collect();
                        let (stop, start) = vrrp_changes(&old, &cfgs, &failed_names);
                        let mut kept = Vec::new();
                        for i in instances.drain(..) {
                            if stop.iter().any(|n| n == i.name()) {
                                let name = i.name().to_owned();
                                if let Err(e) = i.stop().await {
                                    out.vrrp(VrrpMsg::Event(format!("instance {name}: stop: {e}")));
                                }
                            } else {
                                kept.push(i);
                            }
                        }
                        instances = kept;
                        failed.retain(|(n, _)| !stop.contains(n) && !start.contains(n));
                        let current = health_rx.as_ref().map(|h| h.borrow().clone());
                        for cfg in cfgs.iter().filter(|c| start.contains(&c.name)) {
                            let verdicts: BTreeMap<String, Health> = cfg
                                .trackers
                                .iter()
                                .map(|t| {
                                    let v = current
                                        .as_ref()
                                        .map_or(Health::Unknown, |h| tracker_health(h, &t.name));
                                    (t.name.clone(), v)
                                })
                                .collect();
                            let name = cfg.name.clone();
                            match Instance::start(cfg.clone(), verdicts, ttx.clone()).await {
                                Ok(i) => {
                                    if preempt_released {
                                        let _ = i.hold_preempt(false).await;
                                    }
                                    instances.push(i);
                                }
                                Err(e) => {
                                    let m = format!("instance {name} cannot start: {e}");
                                    out.vrrp(VrrpMsg::Console(m.clone()));
                                    out.vrrp(VrrpMsg::Event(m));
                                    failed.push((name, e.to_string()));
                                }
                            }
                        }
                        last_trackers.retain(|(i, _), _| !start.contains(i));
                        plan.vrrp = Some(cfgs);
                        out.vrrp(VrrpMsg::Started(
                            instances.iter().map(Instance::watch).collect(),
                        ));
                        format!(
                            "vips applied: stopped [{}], started [{}]",
                            stop.join(", "),
                            start.join(", ")
                        )
                    };
                    let _ = ack.send(msg);
                }
                Some(ToHosted::ReleasePreempt) => {
                    preempt_released = true;
                    for i in &instances {
                        let _ = i.hold_preempt(false).await;
                    }
                }
                Some(ToHosted::StopVrrp(ack)) => {
                    for i in instances.drain(..) {
                        let name = i.name().to_owned();
                        if let Err(e) = i.stop().await {
                            out.vrrp(VrrpMsg::Event(format!("instance {name}: stop: {e}")));
                        }
                    }
                    vrrp_on = false;
                    let _ = ack.send(());
                }
            },
            changed = async {
                match health_rx.as_mut() {
                    Some(h) => h.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => {
                match (changed, health_rx.as_mut()) {
                    (true, Some(h)) => {
                        let nh = h.borrow_and_update().clone();
                        out.health(HealthMsg::Health(Box::new(nh)));
                    }
                    _ => health_rx = None,
                }
            },
            ev = async {
                match events.as_mut() {
                    Some(e) => e.recv().await.ok(),
                    None => std::future::pending().await,
                }
            } => {
                if let Some(e) = ev {
                    out.health(HealthMsg::Event(format!("{} {}: {}", e.check, e.kind, e.message)));
                }
            },
            t = trx.recv() => {
                if let Some(t) = t {
                    out.vrrp(VrrpMsg::Transition(t));
                }
            },
            _ = tick.tick() => {},
        }
    }
    for i in instances {
        let _ = i.stop().await;
    }
}

async fn serve_metrics(l: tokio::net::TcpListener, h: watch::Receiver<NodeHealth>) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let h = h.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read up to the end of the request head, bounded in size and time.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("");
            let mut parts = line.split_whitespace();
            let (status, body) = match (parts.next(), parts.next()) {
                (Some("GET"), Some("/metrics")) => {
                    let body = report::prometheus(&h.borrow());
                    ("200 OK", body)
                }
                (Some("GET"), Some(_)) => ("404 Not Found", "only /metrics here\n".to_owned()),
                _ => ("405 Method Not Allowed", "GET /metrics only\n".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health_with_services() -> NodeHealth {
        let services = report::services_verdict(
            &[
                ServiceReport {
                    name: "web-api".into(),
                    status: HStatus::Critical,
                    detail: "failed".into(),
                },
                ServiceReport {
                    name: "redis".into(),
                    status: HStatus::Ok,
                    detail: "ready".into(),
                },
            ],
            1,
        );
        let raid = CheckVerdict::from_findings(
            CheckKind::Raid,
            vec![Finding {
                subject: "md0".into(),
                status: HStatus::Warning,
                detail: "rebuilding".into(),
            }],
            Vec::new(),
            String::new(),
        );
        NodeHealth::new("n", vec![raid, services], 1)
    }

    #[test]
    fn vrrp_changes_stop_removed_and_changed_and_start_added_changed_failed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
        let lb = chassis::node::resolve(&loaded.profile, 5, None).unwrap();
        let old = super::super::instance_configs(&lb).unwrap();
        assert!(old.len() >= 2);
        let mut new = old.clone();
        new[0].priority = new[0].priority.saturating_sub(1);
        let gone = new.pop().unwrap();
        let mut added = gone.clone();
        added.name = "extra".into();
        new.push(added);
        let (stop, start) = vrrp_changes(&old, &new, &[]);
        assert_eq!(stop, vec![old[0].name.clone(), gone.name.clone()]);
        assert_eq!(start, vec![old[0].name.clone(), "extra".to_owned()]);
        assert_eq!(vrrp_changes(&old, &old, &[]), (vec![], vec![]));
        let (stop, start) = vrrp_changes(&old, &old, &[old[1].name.clone()]);
        assert!(stop.is_empty());
        assert_eq!(start, vec![old[1].name.clone()]);
    }

    #[test]
    fn trackers_read_checks_and_single_services() {
        let h = health_with_services();
        assert_eq!(tracker_health(&h, "raid"), Health::Warning);
        assert_eq!(tracker_health(&h, "services"), Health::Critical);
        assert_eq!(tracker_health(&h, "service:web-api"), Health::Critical);
        assert_eq!(tracker_health(&h, "service:redis"), Health::Ok);
        // Not reported / not a check: UNKNOWN, which does not count as failing.
        assert_eq!(tracker_health(&h, "power"), Health::Unknown);
        assert_eq!(tracker_health(&h, "service:nope"), Health::Unknown);
        assert_eq!(tracker_health(&h, "disks"), Health::Unknown);
    }

    #[test]
    fn vip_verdict_is_critical_when_blocked_and_ok_without_instances() {
        let v = vip_verdict(&[], Some("WRONG BAY"), &[], 5);
        assert_eq!(v.status, HStatus::Critical);
        assert!(v.summary.contains("WRONG BAY"));
        let v = vip_verdict(&[], None, &[("db1-int".into(), "no eth9".into())], 5);
        assert_eq!(v.status, HStatus::Critical);
        assert!(v.summary.contains("db1-int"), "{}", v.summary);
        let v = vip_verdict(&[], None, &[], 5);
        assert_eq!(v.status, HStatus::Ok);
        assert_eq!(v.observed_at, Some(5));
    }
}
