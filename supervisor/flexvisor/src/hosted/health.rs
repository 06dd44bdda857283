//! The `health` subsystem: the latest node health in the poll loop.

use std::os::fd::RawFd;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use flexvisor_health::report::ServiceReport;
use flexvisor_health::{NodeHealth, Status as HStatus};
use tokio::sync::mpsc;

use super::bridge::{HealthMsg, ToHosted, Wake};
use crate::control::proto::ServiceStatus;
use crate::subsystem::{Subsystem, SubsystemCtx};
use crate::supervisor::console;

/// How often service states are offered to the monitor.
const SERVICES_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct HealthSub {
    rx: std_mpsc::Receiver<HealthMsg>,
    wake: Wake,
    to_hosted: mpsc::UnboundedSender<ToHosted>,
    latest: Option<NodeHealth>,
    last_line: Option<String>,
    last_services: Vec<ServiceReport>,
    next: Instant,
}

impl HealthSub {
    pub fn new(
        rx: std_mpsc::Receiver<HealthMsg>,
        wake: Wake,
        to_hosted: mpsc::UnboundedSender<ToHosted>,
    ) -> Self {
        HealthSub {
            rx,
            wake,
            to_hosted,
            latest: None,
            last_line: None,
            last_services: Vec::new(),
            next: Instant::now(),
        }
    }
}

/// The console line of a health state: `health <STATUS> <summary>`.
pub fn console_line(h: &NodeHealth) -> String {
    let bad: Vec<String> = h
        .checks
        .iter()
        .filter(|c| c.status != HStatus::Ok)
        .map(|c| format!("{} {}: {}", c.check, c.status.label(), c.summary))
        .collect();
    let summary = if bad.is_empty() {
        "all checks OK".to_owned()
    } else {
        bad.join("; ")
    };
    format!("health {} {summary}", h.overall.label())
}

/// A service's state as a health finding. Active-only services that are
/// not wanted (standby node) are OK: being down is their job there.
pub fn service_report(s: &ServiceStatus) -> ServiceReport {
    let status = match s.state.as_str() {
        _ if !s.wanted && s.state == "down" => HStatus::Ok,
        "ready" if s.health != Some(false) => HStatus::Ok,
        "failed" => HStatus::Critical,
        "ready" => HStatus::Critical,
        _ => HStatus::Warning,
    };
    let detail = match (&s.state[..], s.wanted, s.health) {
        ("down", false, _) => "down (not wanted here now)".to_owned(),
        ("ready", _, Some(false)) => "ready but failing its probe".to_owned(),
        (st, _, _) => match &s.last_exit {
            Some(e) if st != "ready" => format!("{st} (last exit: {e})"),
            _ => st.to_owned(),
        },
    };
    ServiceReport {
        name: s.name.clone(),
        status,
        detail,
    }
}

impl Subsystem for HealthSub {
    fn name(&self) -> &str {
        "health"
    }
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(&self.latest).unwrap_or_default()
    }
    fn request(&mut self, _request: serde_json::Value) -> Result<serde_json::Value, String> {
        match &self.latest {
            Some(h) => serde_json::to_value(h).map_err(|e| e.to_string()),
            None => Err("the health monitor has not reported yet".to_owned()),
        }
    }
    fn fds(&self) -> Vec<RawFd> {
        vec![self.wake.fd()]
    }
    fn on_readable(&mut self, _fd: RawFd, cx: &mut SubsystemCtx) {
        self.wake.drain();
        while let Ok(m) = self.rx.try_recv() {
            match m {
                HealthMsg::Event(e) => cx.events.push(e),
                HealthMsg::Health(h) => {
                    let line = console_line(&h);
                    if self.last_line.as_deref() != Some(&line) {
                        console(&line);
                        self.last_line = Some(line);
                    }
                    self.latest = Some(*h);
                }
            }
        }
    }
    fn deadline(&self) -> Option<Instant> {
        Some(self.next)
    }
    fn on_services(&mut self, services: &[ServiceStatus]) {
        let list: Vec<ServiceReport> = services.iter().map(service_report).collect();
        if list != self.last_services {
            let _ = self.to_hosted.send(ToHosted::Services(list.clone()));
            self.last_services = list;
        }
    }
    fn on_tick(&mut self, now: Instant, _cx: &mut SubsystemCtx) {
        self.next = now + SERVICES_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flexvisor_health::verdict::{CheckVerdict, Finding};
    use flexvisor_health::CheckKind;

    fn svc(state: &str, wanted: bool, health: Option<bool>) -> ServiceStatus {
        ServiceStatus {
            name: "s".into(),
            state: state.into(),
            pid: None,
            for_s: 0,
            restarts: 0,
            kind: "longrun".into(),
            active_only: true,
            wanted,
            health,
            status: None,
            last_exit: Some("exit 1".into()),
            waiting_for: None,
        }
    }

    #[test]
    fn service_states_map_to_health() {
        assert_eq!(
            service_report(&svc("down", false, None)).status,
            HStatus::Ok
        );
        assert_eq!(
            service_report(&svc("ready", true, None)).status,
            HStatus::Ok
        );
        assert_eq!(
            service_report(&svc("ready", true, Some(false))).status,
            HStatus::Critical
        );
        assert_eq!(
            service_report(&svc("failed", true, None)).status,
            HStatus::Critical
        );
        let r = service_report(&svc("backoff", true, None));
        assert_eq!(r.status, HStatus::Warning);
        assert_eq!(r.detail, "backoff (last exit: exit 1)");
        // Wanted but down (waiting for a dependency) is not OK.
        assert_eq!(
            service_report(&svc("down", true, None)).status,
            HStatus::Warning
        );
    }

    #[test]
    fn console_line_names_the_failing_checks() {
        let raid = CheckVerdict::from_findings(
            CheckKind::Raid,
            vec![Finding {
                subject: "md0".into(),
                status: HStatus::Critical,
                detail: "degraded [U_]".into(),
            }],
            Vec::new(),
            String::new(),
        );
        let h = NodeHealth::new("n", vec![raid], 1);
        assert_eq!(
            console_line(&h),
            "health CRITICAL raid CRITICAL: md0 degraded [U_]"
        );
        let ok = NodeHealth::new("n", Vec::new(), 1);
        assert_eq!(console_line(&ok), "health OK all checks OK");
    }
}
