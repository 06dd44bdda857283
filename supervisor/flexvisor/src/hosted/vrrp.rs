//! The `vrrp` subsystem: instance states, transitions to events and to
//! master/backup, priority 0 on orderly shutdown.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use flexvisor_vrrp::state::State;
use flexvisor_vrrp::Status;
use tokio::sync::{mpsc, watch};

use super::bridge::{ToHosted, VrrpMsg, Wake};
use crate::subsystem::{Subsystem, SubsystemCtx};
use crate::supervisor::console;

/// Bound on waiting for the instances to send priority 0 at shutdown.
const STOP_BOUND: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct VrrpSub {
    rx: std_mpsc::Receiver<VrrpMsg>,
    wake: Wake,
    to_hosted: mpsc::UnboundedSender<ToHosted>,
    watchers: Vec<watch::Receiver<Status>>,
    states: BTreeMap<String, State>,
    master: bool,
    /// Whether the supervisor has been told a role yet: the first
    /// transition (usually Initialize -> Backup at boot) is reported even
    /// though `master` starts false, so a db node booting as backup runs
    /// its demote hook (read_only on, Redis replica of the peer).
    reported: bool,
    /// Held preemption released (after the first successful backup hook).
    released: bool,
}

impl VrrpSub {
    pub fn new(
        rx: std_mpsc::Receiver<VrrpMsg>,
        wake: Wake,
        to_hosted: mpsc::UnboundedSender<ToHosted>,
    ) -> Self {
        VrrpSub {
            rx,
            wake,
            to_hosted,
            watchers: Vec::new(),
            states: BTreeMap::new(),
            master: false,
            reported: false,
            released: false,
        }
    }

    fn statuses(&self) -> Vec<Status> {
        self.watchers.iter().map(|w| w.borrow().clone()).collect()
    }
}

impl Subsystem for VrrpSub {
    fn name(&self) -> &str {
        "vrrp"
    }
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.statuses()).unwrap_or_default()
    }
    fn request(&mut self, _request: serde_json::Value) -> Result<serde_json::Value, String> {
        serde_json::to_value(self.statuses()).map_err(|e| e.to_string())
    }
    fn fds(&self) -> Vec<RawFd> {
        vec![self.wake.fd()]
    }
    fn on_readable(&mut self, _fd: RawFd, cx: &mut SubsystemCtx) {
        self.wake.drain();
        while let Ok(m) = self.rx.try_recv() {
            match m {
                VrrpMsg::Started(w) => self.watchers = w,
                VrrpMsg::Event(e) => cx.events.push(e),
                VrrpMsg::Console(c) => console(&c),
                VrrpMsg::Transition(t) => {
                    cx.events.push(format!(
                        "{} {:?} -> {:?} (priority {}): {}",
                        t.instance, t.from, t.to, t.priority, t.cause
                    ));
                    self.states.insert(t.instance.clone(), t.to);
                    // Master while any instance is master.
                    let master = self.states.values().any(|s| *s == State::Master);
                    if master != self.master || !self.reported {
                        self.master = master;
                        self.reported = true;
                        cx.set_master = Some(master);
                    }
                }
            }
        }
    }
    fn on_hook_succeeded(&mut self, role: crate::hooks::Role, cx: &mut SubsystemCtx) {
        let held = self.statuses().iter().any(|s| s.preempt_held);
        if role == crate::hooks::Role::Backup && !self.released && held {
            self.released = true;
            if self.to_hosted.send(ToHosted::ReleasePreempt).is_ok() {
                cx.events.push(
                    "preemption released: the backup hook has copied the master's stores"
                        .to_owned(),
                );
            }
        }
    }
    fn on_shutdown(&mut self, cx: &mut SubsystemCtx) {
        let (tx, rx) = std_mpsc::channel();
        if self.to_hosted.send(ToHosted::StopVrrp(tx)).is_ok() {
            match rx.recv_timeout(STOP_BOUND) {
                Ok(()) => cx
                    .events
                    .push("instances stopped (priority 0 sent)".to_owned()),
                Err(_) => cx.events.push(format!(
                    "instances did not stop within {} ms",
                    STOP_BOUND.as_millis()
                )),
            }
        }
        if self.master {
            self.master = false;
            cx.set_master = Some(false);
        }
    }
}
