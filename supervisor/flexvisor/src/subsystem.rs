//! Hosted subsystems: the hook through which the health monitor and the
//! VRRP instances run inside the supervisor loop.
//!
//! A subsystem contributes descriptors to poll and a deadline, reports
//! status (shown under `subsystems` in `flexctl status --json`) and answers
//! requests sent with `Op::Subsystem` (so `flexctl health` / `flexctl vip`
//! need no protocol change). Through [`SubsystemCtx`] it appends events and
//! switches master/backup (VRRP starting/stopping `active_services`).

use std::os::fd::RawFd;
use std::time::Instant;

use crate::control::proto::ServiceStatus;

/// What a subsystem asks of the supervisor after a callback.
#[derive(Debug, Default)]
pub struct SubsystemCtx {
    /// Messages for the event log.
    pub events: Vec<String>,
    /// Become master (`true`) or backup.
    pub set_master: Option<bool>,
}

pub trait Subsystem {
    /// Name used in `status` and `Op::Subsystem { name }`.
    fn name(&self) -> &str;
    /// Current status as JSON.
    fn status(&self) -> serde_json::Value;
    /// Answer a request.
    fn request(&mut self, request: serde_json::Value) -> Result<serde_json::Value, String>;
    /// Descriptors to poll for reading.
    fn fds(&self) -> Vec<RawFd> {
        Vec::new()
    }
    /// One of [`Subsystem::fds`] is readable.
    fn on_readable(&mut self, _fd: RawFd, _cx: &mut SubsystemCtx) {}
    /// When [`Subsystem::on_tick`] is next due.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn on_tick(&mut self, _now: Instant, _cx: &mut SubsystemCtx) {}
    /// The services' states, offered just before a due [`Subsystem::on_tick`]
    /// (the health monitor turns them into its `services` verdict).
    fn on_services(&mut self, _services: &[ServiceStatus]) {}
    /// A role hook ran to success (VRRP releases held preemption after the
    /// first backup hook: the node's stores are copies of the master's).
    fn on_hook_succeeded(&mut self, _role: crate::hooks::Role, _cx: &mut SubsystemCtx) {}
    /// Orderly shutdown begins, before any service is stopped (VRRP sends
    /// priority 0 here so the standby takes over at once). May block briefly.
    fn on_shutdown(&mut self, _cx: &mut SubsystemCtx) {}
}
