//! The node's role hooks (`hooks.master` / `hooks.backup` of the node
//! configuration) as a pure state machine: `(state, event) -> (state,
//! actions)`. The supervisor loop spawns and kills; this module decides
//! when a hook runs, how a transition that arrives while one runs is
//! handled, and what an operator is told about failures.
//!
//! Policy:
//! - at most one hook runs per node at a time;
//! - a transition while a hook runs **waits** for it (it is not killed):
//!   killing a promote half-way (Redis already master, MariaDB still
//!   read-only) leaves the database in a state neither hook expects, and
//!   the wait is bounded by the hook's timeout anyway;
//! - transitions arriving meanwhile are coalesced: only the latest role's
//!   hook runs afterwards, and not at all if it is the role whose hook just
//!   succeeded (the node went back to where the finished hook put it);
//! - a hook that exits non-zero, is killed at its timeout, or cannot be
//!   started is a failure that stays reported until the next hook run that
//!   succeeds.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The node's VRRP role a hook is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// The hooks of the node configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSet {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub timeout: Duration,
}

impl From<&chassis::node::HookConfig> for HookSet {
    fn from(h: &chassis::node::HookConfig) -> Self {
        HookSet {
            master: h.master.clone(),
            backup: h.backup.clone(),
            timeout: Duration::from_secs(u64::from(h.timeout_s)),
        }
    }
}

impl HookSet {
    pub fn command(&self, role: Role) -> Option<&str> {
        match role {
            Role::Master => self.master.as_deref(),
            Role::Backup => self.backup.as_deref(),
        }
        .filter(|c| !c.trim().is_empty())
    }
}

/// Short name of a hook for messages: the file name of its first word
/// (`/usr/libexec/flexvisor/db-promote --x` → `db-promote`).
pub fn hook_name(command: &str) -> String {
    let first = command.split_whitespace().next().unwrap_or("");
    let base = first.rsplit('/').next().unwrap_or(first);
    if base.is_empty() {
        "hook".to_owned()
    } else {
        base.to_owned()
    }
}

/// `2.3 s`.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The hook being run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub role: Role,
    pub name: String,
    pub command: String,
    pub started: Instant,
    pub deadline: Instant,
    pub timeout: Duration,
    /// SIGKILL sent at the deadline.
    pub killed: bool,
}

/// The outcome of the last finished hook run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub role: Role,
    pub name: String,
    pub ok: bool,
    /// `hook db-promote succeeded after 0.2 s` / `... failed: exit 1 after 2.3 s`.
    pub message: String,
    /// What happened, without the name: `exit 1 after 2.3 s`.
    pub detail: String,
}

/// Hook state of the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub running: Option<Running>,
    /// Role the node moved to while a hook ran; its hook runs next.
    pub pending: Option<Role>,
    pub last: Option<Finished>,
    /// The failure reported until a later run succeeds.
    pub failure: Option<Finished>,
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    /// The node became master or backup.
    Transition(Role),
    /// The spawned hook could not be started.
    SpawnFailed(String),
    /// The hook process ended (`exit code 1`, `killed by SIGKILL`).
    Ended {
        success: bool,
        description: String,
        /// Its last line of output, if any, for the failure message.
        last_output: Option<String>,
    },
    /// Time passed (deadline check).
    Tick,
}

/// What the loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// Run `command` for `role` (own process group, environment set by
    /// the loop).
    Spawn { role: Role, command: String },
    /// SIGKILL the running hook's process group.
    Kill,
    /// A failure: loud (console WARNING, event).
    Failed(String),
    /// Information for the event log.
    Info(String),
}

impl Hooks {
    /// Feed one event; `hooks` is the node's current hook configuration
    /// (`None`: the node has no hooks).
    pub fn on(
        mut self,
        ev: HookEvent,
        now: Instant,
        hooks: Option<&HookSet>,
    ) -> (Self, Vec<HookAction>) {
        let mut out = Vec::new();
        match ev {
            HookEvent::Transition(role) => {
                if let Some(r) = &self.running {
                    self.pending = Some(role);
                    if hooks.and_then(|h| h.command(role)).is_some() {
                        out.push(HookAction::Info(format!(
                            "{} hook waits for the running {} hook {} to end",
                            role.as_str(),
                            r.role.as_str(),
                            r.name
                        )));
                    }
                } else {
                    self.start(role, now, hooks, &mut out);
                }
            }
            HookEvent::SpawnFailed(e) => {
                if let Some(r) = self.running.take() {
                    let f = Finished {
                        role: r.role,
                        ok: false,
                        message: format!("hook {} failed: cannot start: {e}", r.name),
                        detail: format!("cannot start: {e}"),
                        name: r.name,
                    };
                    out.push(HookAction::Failed(f.message.clone()));
                    self.failure = Some(f.clone());
                    self.last = Some(f);
                    self.next(now, hooks, &mut out);
                }
            }
            HookEvent::Ended {
                success,
                description,
                last_output,
            } => {
                if let Some(r) = self.running.take() {
                    let took = secs(now.saturating_duration_since(r.started));
                    let (ok, mut detail) = if r.killed {
                        (
                            false,
                            format!("timed out after {} s, killed", r.timeout.as_secs()),
                        )
                    } else if success {
                        (true, format!("succeeded after {took}"))
                    } else {
                        let why = description.replace("exit code ", "exit ");
                        (false, format!("{why} after {took}"))
                    };
                    if let (false, Some(l)) = (ok, last_output) {
                        detail.push_str(&format!(" (last output: {l})"));
                    }
                    let message = if ok || r.killed {
                        format!("hook {} {detail}", r.name)
                    } else {
                        format!("hook {} failed: {detail}", r.name)
                    };
                    let f = Finished {
                        role: r.role,
                        name: r.name,
                        ok,
                        message: message.clone(),
                        detail,
                    };
                    if ok {
                        self.failure = None;
                        out.push(HookAction::Info(message));
                    } else {
                        self.failure = Some(f.clone());
                        out.push(HookAction::Failed(message));
                    }
                    self.last = Some(f);
                    self.next(now, hooks, &mut out);
                }
            }
            HookEvent::Tick => {
                if let Some(r) = &mut self.running {
                    if !r.killed && now >= r.deadline {
                        r.killed = true;
                        out.push(HookAction::Kill);
                    }
                }
            }
        }
        (self, out)
    }

    /// When the loop must next send [`HookEvent::Tick`].
    pub fn deadline(&self) -> Option<Instant> {
        self.running
            .as_ref()
            .filter(|r| !r.killed)
            .map(|r| r.deadline)
    }

    fn start(
        &mut self,
        role: Role,
        now: Instant,
        hooks: Option<&HookSet>,
        out: &mut Vec<HookAction>,
    ) {
        let Some(h) = hooks else { return };
        let Some(cmd) = h.command(role) else { return };
        self.running = Some(Running {
            role,
            name: hook_name(cmd),
            command: cmd.to_owned(),
            started: now,
            deadline: now + h.timeout,
            timeout: h.timeout,
            killed: false,
        });
        out.push(HookAction::Spawn {
            role,
            command: cmd.to_owned(),
        });
    }

    /// After a run: the pending role's hook, unless it just succeeded.
    fn next(&mut self, now: Instant, hooks: Option<&HookSet>, out: &mut Vec<HookAction>) {
        let Some(p) = self.pending.take() else { return };
        match &self.last {
            Some(l) if l.ok && l.role == p => out.push(HookAction::Info(format!(
                "{} hook {} not run again: the node is {} again and it just succeeded",
                p.as_str(),
                l.name,
                p.as_str()
            ))),
            _ => self.start(p, now, hooks, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set() -> HookSet {
        HookSet {
            master: Some("/usr/libexec/flexvisor/db-promote".into()),
            backup: Some("/usr/libexec/flexvisor/db-demote --now".into()),
            timeout: Duration::from_secs(30),
        }
    }

    fn ended(ok: bool, d: &str) -> HookEvent {
        HookEvent::Ended {
            success: ok,
            description: d.into(),
            last_output: None,
        }
    }

    #[test]
    fn names_are_the_file_name_of_the_first_word() {
        assert_eq!(hook_name("/usr/libexec/flexvisor/db-promote"), "db-promote");
        assert_eq!(hook_name("echo master >> /tmp/x"), "echo");
        assert_eq!(hook_name("  "), "hook");
    }

    #[test]
    fn failure_is_reported_until_a_later_success() {
        let t0 = Instant::now();
        let h = Some(set());
        let (s, a) = Hooks::default().on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        assert_eq!(
            a,
            vec![HookAction::Spawn {
                role: Role::Master,
                command: "/usr/libexec/flexvisor/db-promote".into()
            }]
        );
        let (s, a) = s.on(
            ended(false, "exit code 1"),
            t0 + Duration::from_millis(2300),
            h.as_ref(),
        );
        assert_eq!(
            a,
            vec![HookAction::Failed(
                "hook db-promote failed: exit 1 after 2.3 s".into()
            )]
        );
        assert!(s.failure.is_some() && s.running.is_none());
        let (s, _) = s.on(HookEvent::Transition(Role::Backup), t0, h.as_ref());
        assert!(s.failure.is_some(), "still reported while the next runs");
        let (s, a) = s.on(ended(true, "exit code 0"), t0, h.as_ref());
        assert!(
            matches!(&a[..], [HookAction::Info(m)] if m.starts_with("hook db-demote succeeded"))
        );
        assert!(s.failure.is_none());
    }

    #[test]
    fn timeout_kills_once_and_reports_timed_out() {
        let t0 = Instant::now();
        let h = Some(set());
        let (s, _) = Hooks::default().on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        assert_eq!(s.deadline(), Some(t0 + Duration::from_secs(30)));
        let (s, a) = s.on(HookEvent::Tick, t0 + Duration::from_secs(29), h.as_ref());
        assert!(a.is_empty());
        let (s, a) = s.on(HookEvent::Tick, t0 + Duration::from_secs(30), h.as_ref());
        assert_eq!(a, vec![HookAction::Kill]);
        assert_eq!(s.deadline(), None);
        let (s, a) = s.on(HookEvent::Tick, t0 + Duration::from_secs(31), h.as_ref());
        assert!(a.is_empty());
        let (_, a) = s.on(
            ended(false, "killed by SIGKILL"),
            t0 + Duration::from_secs(30),
            h.as_ref(),
        );
        assert_eq!(
            a,
            vec![HookAction::Failed(
                "hook db-promote timed out after 30 s, killed".into()
            )]
        );
    }

    #[test]
    fn a_transition_waits_for_the_running_hook_then_runs() {
        let t0 = Instant::now();
        let h = Some(set());
        let (s, _) = Hooks::default().on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        let (s, a) = s.on(HookEvent::Transition(Role::Backup), t0, h.as_ref());
        assert!(!a
            .iter()
            .any(|a| matches!(a, HookAction::Spawn { .. } | HookAction::Kill)));
        assert_eq!(s.pending, Some(Role::Backup));
        let (s, a) = s.on(ended(true, "exit code 0"), t0, h.as_ref());
        assert!(a.contains(&HookAction::Spawn {
            role: Role::Backup,
            command: "/usr/libexec/flexvisor/db-demote --now".into()
        }));
        assert_eq!(s.running.as_ref().map(|r| r.role), Some(Role::Backup));
    }

    #[test]
    fn flapping_back_to_the_role_just_hooked_does_not_rerun_it() {
        let t0 = Instant::now();
        let h = Some(set());
        let (s, _) = Hooks::default().on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        let (s, _) = s.on(HookEvent::Transition(Role::Backup), t0, h.as_ref());
        let (s, _) = s.on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        let (s, a) = s.on(ended(true, "exit code 0"), t0, h.as_ref());
        assert!(s.running.is_none());
        assert!(!a.iter().any(|a| matches!(a, HookAction::Spawn { .. })));
        // But a failed hook is retried for the same role.
        let (s, _) = s.on(HookEvent::Transition(Role::Backup), t0, h.as_ref());
        let (s, _) = s.on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        let (s, a) = s.on(ended(false, "exit code 2"), t0, h.as_ref());
        assert!(a.iter().any(|a| matches!(
            a,
            HookAction::Spawn {
                role: Role::Master,
                ..
            }
        )));
        assert!(s.failure.is_some());
    }

    #[test]
    fn no_hooks_no_runs_and_spawn_failure_is_a_failure() {
        let t0 = Instant::now();
        let (s, a) = Hooks::default().on(HookEvent::Transition(Role::Master), t0, None);
        assert!(a.is_empty() && s.running.is_none());
        let h = Some(set());
        let (s, _) = s.on(HookEvent::Transition(Role::Master), t0, h.as_ref());
        let (s, a) = s.on(HookEvent::SpawnFailed("ENOENT".into()), t0, h.as_ref());
        assert_eq!(
            a,
            vec![HookAction::Failed(
                "hook db-promote failed: cannot start: ENOENT".into()
            )]
        );
        assert!(s.running.is_none() && s.failure.is_some());
    }

    proptest! {
        /// Whatever the order of events, at most one hook runs, every
        /// Spawn happens with nothing running, and Kill only targets a
        /// running hook.
        #[test]
        fn never_two_hooks_at_once(evs in proptest::collection::vec(0u8..5, 0..60)) {
            let t0 = Instant::now();
            let h = Some(set());
            let mut s = Hooks::default();
            for (i, e) in evs.into_iter().enumerate() {
                let now = t0 + Duration::from_secs(i as u64 * 7);
                let ev = match e {
                    0 => HookEvent::Transition(Role::Master),
                    1 => HookEvent::Transition(Role::Backup),
                    2 => ended(true, "exit code 0"),
                    3 => ended(false, "exit code 1"),
                    _ => HookEvent::Tick,
                };
                let was_running = s.running.is_some();
                let ended_now = matches!(ev, HookEvent::Ended { .. } | HookEvent::SpawnFailed(_));
                let (n, a) = s.on(ev, now, h.as_ref());
                let spawns = a.iter().filter(|a| matches!(a, HookAction::Spawn { .. })).count();
                prop_assert!(spawns <= 1);
                if spawns == 1 {
                    prop_assert!(!was_running || ended_now);
                    prop_assert!(n.running.is_some());
                }
                if a.contains(&HookAction::Kill) {
                    prop_assert!(n.running.as_ref().is_some_and(|r| r.killed));
                }
                s = n;
            }
        }
    }
}
