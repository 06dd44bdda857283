//! The service lifecycle as a pure state machine.
//!
//! `down → starting → ready → stopping → backoff → failed`, driven by
//! [`Lifecycle::on`]: `(state, event) → (state, actions)`. No processes,
//! clocks or randomness here: time and jitter come in as arguments, the
//! supervisor loop executes the returned [`Action`]s. The restart policy
//! (first restart immediate, then exponential backoff with jitter, capped;
//! a crash-loop limit of N failures in a window; manual restart resets) lives
//! here too, so it is tested without forking anything.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use super::spec::{Kind, RestartPolicy, RestartSpec};

/// A run that lasted this long counts as stable: the next restart is
/// immediate again.
pub const STABLE_RUN: Duration = Duration::from_secs(10);

/// Where the service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Down,
    Starting,
    Ready,
    Stopping,
    Backoff,
    Failed,
}

/// What happens once a stopping process is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Asked to stop: stay down.
    Down,
    /// Asked to restart: start again, counters reset.
    Restart,
    /// Killed for a start timeout or failed health: counts as a failure.
    Retry,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub success: bool,
    /// `exit code 3`, `killed by SIGSEGV`.
    pub description: String,
}

/// Inputs to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Operator or dependency scheduler wants it up.
    Start,
    /// Operator, reload or shutdown wants it down.
    Stop,
    /// Operator restart: resets the crash-loop counters.
    Restart,
    /// The process could not be started (exec failed, user unknown...).
    SpawnFailed(String),
    /// The readiness mechanism reported ready.
    Ready,
    /// The main process ended.
    Exited(Exit),
    /// The phase timer fired.
    Timeout,
    /// A health probe with `restart = true` turned unhealthy.
    Unhealthy,
    /// A service this one `requires` was restarted and is ready again:
    /// restart to reconnect, keeping the crash-loop counters (this is not
    /// an operator reset).
    DependencyRestarted,
}

/// What the supervisor loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the process (fresh readiness state).
    Spawn,
    /// Send the stop signal to the whole service (group or cgroup).
    Signal(Signal),
    /// SIGKILL everything of the service.
    KillAll,
    /// The main process is gone: kill whatever of the service is left.
    KillRemnants,
    /// (Re)arm the single timer of this service.
    SetTimer(Duration),
    ClearTimer,
    /// Tell the operator (event log, console).
    Report(String),
}

/// Timing and policy the machine needs from the spec.
#[derive(Debug, Clone)]
pub struct Policy {
    pub kind: Kind,
    pub restart: RestartSpec,
    pub stop_signal: Signal,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
}

/// The state of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub phase: Phase,
    after_stop: AfterStop,
    /// A process of this service is running.
    pub running: bool,
    /// Consecutive automatic restarts since the last stable run or reset.
    pub attempt: u32,
    /// Automatic restarts since supervision began (for status).
    pub restarts: u32,
    /// Times of recent failures, for the crash-loop limit.
    failures: VecDeque<Instant>,
    spawned_at: Option<Instant>,
    /// Last process end, for status.
    pub last_exit: Option<String>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// Backoff before automatic restart number `attempt` (0-based): none for
/// the first, then `initial * 2^(attempt-1)` capped at `max`, of which the
/// upper half is scaled by `jitter` (0.0..=1.0).
pub fn backoff(spec: &RestartSpec, attempt: u32, jitter: f64) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let exp = attempt.saturating_sub(1).min(32);
    let base = spec
        .initial_backoff_ms
        .saturating_mul(1u64 << exp)
        .min(spec.max_backoff_ms);
    let j = jitter.clamp(0.0, 1.0);
    // Equal jitter: half fixed, half random, so restarts of many services
    // that died together spread out without ever being immediate.
    let half = base / 2;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rand = ((base - half) as f64 * j) as u64;
    Duration::from_millis(half + rand)
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            phase: Phase::Down,
            after_stop: AfterStop::Down,
            running: false,
            attempt: 0,
            restarts: 0,
            failures: VecDeque::new(),
            spawned_at: None,
            last_exit: None,
        }
    }

    fn reset_counters(&mut self) {
        self.attempt = 0;
        self.failures.clear();
    }

    fn spawn(mut self, now: Instant, p: &Policy, mut acts: Vec<Action>) -> (Self, Vec<Action>) {
        self.phase = Phase::Starting;
        self.running = true;
        self.spawned_at = Some(now);
        acts.push(Action::Spawn);
        acts.push(Action::SetTimer(p.start_timeout));
        (self, acts)
    }

    fn stop(mut self, after: AfterStop, p: &Policy) -> (Self, Vec<Action>) {
        self.phase = Phase::Stopping;
        self.after_stop = after;
        let acts = vec![
            Action::Signal(p.stop_signal),
            Action::SetTimer(p.stop_timeout),
        ];
        (self, acts)
    }

    /// A process ended that should have kept running (or a oneshot failed).
    fn failed_run(
        mut self,
        success: bool,
        now: Instant,
        p: &Policy,
        jitter: f64,
        mut acts: Vec<Action>,
    ) -> (Self, Vec<Action>) {
        if self
            .spawned_at
            .is_some_and(|t| now.saturating_duration_since(t) >= STABLE_RUN)
        {
            self.attempt = 0;
        }
        let restart = match p.restart.policy {
            RestartPolicy::Always => p.kind == Kind::Longrun || !success,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if !restart {
            self.phase = if success { Phase::Down } else { Phase::Failed };
            acts.push(Action::ClearTimer);
            return (self, acts);
        }
        let window = Duration::from_secs(p.restart.window_s);
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() >= p.restart.limit as usize {
            self.phase = Phase::Failed;
            acts.push(Action::ClearTimer);
            acts.push(Action::Report(format!(
                "crash loop: {} failures within {}s; marked failed (flexctl restart resets)",
                self.failures.len(),
                p.restart.window_s
            )));
            return (self, acts);
        }
        let delay = backoff(&p.restart, self.attempt, jitter);
        self.attempt = self.attempt.saturating_add(1);
        self.restarts = self.restarts.saturating_add(1);
        if delay.is_zero() {
            self.spawn(now, p, acts)
        } else {
            self.phase = Phase::Backoff;
            acts.push(Action::SetTimer(delay));
            acts.push(Action::Report(format!(
                "restarting in {} ms (attempt {})",
                delay.as_millis(),
                self.attempt
            )));
            (self, acts)
        }
    }

    /// Feed one event; `jitter` in 0.0..=1.0 is used only when a backoff is
    /// scheduled.
    pub fn on(mut self, ev: Event, now: Instant, p: &Policy, jitter: f64) -> (Self, Vec<Action>) {
        use Phase::*;
        match (self.phase, ev) {
            (Down | Failed | Backoff, Event::Start | Event::Restart) => {
                self.reset_counters();
                self.spawn(now, p, vec![])
            }
            (Stopping, Event::Start | Event::Restart) => {
                self.after_stop = AfterStop::Restart;
                (self, vec![])
            }
            (Starting | Ready, Event::Start) => (self, vec![]),
            (Ready, Event::Restart) if !self.running => {
                self.reset_counters();
                self.spawn(now, p, vec![])
            }
            (Starting | Ready, Event::Restart) => {
                self.reset_counters();
                self.stop(AfterStop::Restart, p)
            }

            (Starting | Ready, Event::Stop) if self.running => self.stop(AfterStop::Down, p),
            (Stopping, Event::Stop) => {
                self.after_stop = AfterStop::Down;
                (self, vec![])
            }
            (_, Event::Stop) => {
                self.phase = Down;
                (self, vec![Action::ClearTimer])
            }

            (Starting, Event::Ready) => {
                self.phase = Ready;
                (
                    self,
                    vec![Action::ClearTimer, Action::Report("ready".into())],
                )
            }
            (_, Event::Ready) => (self, vec![]),

            (Starting, Event::SpawnFailed(why)) => {
                self.running = false;
                self.last_exit = Some(why.clone());
                let acts = vec![Action::Report(format!("cannot start: {why}"))];
                self.failed_run(false, now, p, jitter, acts)
            }
            (_, Event::SpawnFailed(_)) => (self, vec![]),

            (Starting | Ready, Event::Exited(exit)) if self.running => {
                self.running = false;
                self.last_exit = Some(exit.description.clone());
                let mut acts = vec![Action::KillRemnants];
                if p.kind == Kind::Oneshot && self.phase == Starting && exit.success {
                    self.phase = Ready;
                    acts.push(Action::ClearTimer);
                    acts.push(Action::Report("done (exit 0)".into()));
                    return (self, acts);
                }
                acts.push(Action::Report(format!("exited: {}", exit.description)));
                self.failed_run(exit.success, now, p, jitter, acts)
            }
            (Stopping, Event::Exited(exit)) => {
                self.running = false;
                self.last_exit = Some(exit.description);
                let acts = vec![Action::KillRemnants, Action::ClearTimer];
                match self.after_stop {
                    AfterStop::Down => {
                        self.phase = Down;
                        (self, acts)
                    }
                    AfterStop::Restart => self.spawn(now, p, acts),
                    AfterStop::Retry => self.failed_run(false, now, p, jitter, acts),
                }
            }
            (_, Event::Exited(_)) => (self, vec![]),

            (Starting, Event::Timeout) => {
                let (mut s, mut acts) = self.stop(AfterStop::Retry, p);
                s.phase = Stopping;
                acts.insert(0, Action::KillAll);
                acts.retain(|a| !matches!(a, Action::Signal(_)));
                acts.push(Action::Report(format!(
                    "not ready within {} ms; killed",
                    p.start_timeout.as_millis()
                )));
                (s, acts)
            }
            (Stopping, Event::Timeout) => (
                self,
                vec![
                    Action::KillAll,
                    Action::SetTimer(p.stop_timeout),
                    Action::Report(format!(
                        "still running {} ms after {}; sent SIGKILL",
                        p.stop_timeout.as_millis(),
                        p.stop_signal
                    )),
                ],
            ),
            (Backoff, Event::Timeout) => self.spawn(now, p, vec![]),
            (_, Event::Timeout) => (self, vec![]),

            (Ready, Event::Unhealthy) if self.running => {
                let (s, mut acts) = self.stop(AfterStop::Retry, p);
                acts.push(Action::Report("unhealthy; restarting".into()));
                (s, acts)
            }
            (_, Event::Unhealthy) => (self, vec![]),

            (Ready, Event::DependencyRestarted) if !self.running => {
                // A oneshot that is done: run it again.
                self.restarts = self.restarts.saturating_add(1);
                self.spawn(now, p, vec![])
            }
            (Starting | Ready, Event::DependencyRestarted) if self.running => {
                self.restarts = self.restarts.saturating_add(1);
                self.stop(AfterStop::Restart, p)
            }
            (_, Event::DependencyRestarted) => (self, vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(kind: Kind, policy: RestartPolicy) -> Policy {
        Policy {
            kind,
            restart: RestartSpec {
                policy,
                initial_backoff_ms: 100,
                max_backoff_ms: 1_000,
                limit: 3,
                window_s: 60,
            },
            stop_signal: Signal::SIGTERM,
            start_timeout: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(2),
        }
    }

    fn crash() -> Event {
        Event::Exited(Exit {
            success: false,
            description: "exit code 1".into(),
        })
    }

    fn run(l: Lifecycle, evs: &[Event], p: &Policy) -> (Lifecycle, Vec<Action>) {
        let now = Instant::now();
        let mut l = l;
        let mut all = vec![];
        for e in evs {
            let (n, a) = l.on(e.clone(), now, p, 0.5);
            l = n;
            all.extend(a);
        }
        (l, all)
    }

    #[test]
    fn start_ready_stop() {
        let p = policy(Kind::Longrun, RestartPolicy::Always);
        let (l, a) = run(Lifecycle::new(), &[Event::Start], &p);
        assert_eq!(l.phase, Phase::Starting);
        assert!(a.contains(&Action::Spawn));
        let (l, _) = run(l, &[Event::Ready], &p);
        assert_eq!(l.phase, Phase::Ready);
        let (l, a) = run(l, &[Event::Stop], &p);
        assert_eq!(l.phase, Phase::Stopping);
        assert!(a.contains(&Action::Signal(Signal::SIGTERM)));
        let (l, _) = run(l, &[crash()], &p);
        assert_eq!(l.phase, Phase::Down);
    }

    #[test]
    fn first_restart_is_immediate_then_backoff() {
        let p = policy(Kind::Longrun, RestartPolicy::Always);
        let (l, _) = run(Lifecycle::new(), &[Event::Start, Event::Ready], &p);
        let (l, a) = run(l, &[crash()], &p);
        assert_eq!(l.phase, Phase::Starting);
        assert!(a.contains(&Action::Spawn));
        let (l, a) = run(l, &[crash()], &p);
        assert_eq!(l.phase, Phase::Backoff);
        assert!(
            a.contains(&Action::SetTimer(Duration::from_millis(75))),
            "{a:?}"
        );
    }

    #[test]
    fn crash_loop_marks_failed_and_manual_restart_resets() {
        let p = policy(Kind::Longrun, RestartPolicy::Always);
        let (l, _) = run(Lifecycle::new(), &[Event::Start], &p);
        let (l, _) = run(l, &[crash(), crash(), Event::Timeout, crash()], &p);
        assert_eq!(l.phase, Phase::Failed);
        let (l, a) = run(l, &[Event::Restart], &p);
        assert_eq!(l.phase, Phase::Starting);
        assert!(a.contains(&Action::Spawn));
        assert_eq!(l.attempt, 0);
    }

    #[test]
    fn on_failure_does_not_restart_clean_exit() {
        let p = policy(Kind::Longrun, RestartPolicy::OnFailure);
        let ok = Event::Exited(Exit {
            success: true,
            description: "exit code 0".into(),
        });
        let (l, a) = run(Lifecycle::new(), &[Event::Start, ok], &p);
        assert_eq!(l.phase, Phase::Down);
        assert_eq!(a.iter().filter(|a| **a == Action::Spawn).count(), 1);
    }

    #[test]
    fn oneshot_success_is_ready_without_process() {
        let p = policy(Kind::Oneshot, RestartPolicy::Always);
        let ok = Event::Exited(Exit {
            success: true,
            description: "exit code 0".into(),
        });
        let (l, _) = run(Lifecycle::new(), &[Event::Start, ok], &p);
        assert_eq!((l.phase, l.running), (Phase::Ready, false));
        let (l, _) = run(l, &[Event::Stop], &p);
        assert_eq!(l.phase, Phase::Down);
    }

    #[test]
    fn start_timeout_kills_and_counts_as_failure() {
        let p = policy(Kind::Longrun, RestartPolicy::Always);
        let (l, a) = run(Lifecycle::new(), &[Event::Start, Event::Timeout], &p);
        assert_eq!(l.phase, Phase::Stopping);
        assert_eq!(a.iter().filter(|a| **a == Action::KillAll).count(), 1);
        let (l, a) = run(l, &[crash()], &p);
        assert_eq!(l.phase, Phase::Starting, "first retry immediate: {a:?}");
    }

    #[test]
    fn restart_while_ready_stops_then_spawns() {
        let p = policy(Kind::Longrun, RestartPolicy::Never);
        let (l, _) = run(
            Lifecycle::new(),
            &[Event::Start, Event::Ready, Event::Restart],
            &p,
        );
        assert_eq!(l.phase, Phase::Stopping);
        let (l, a) = run(l, &[crash()], &p);
        assert_eq!(l.phase, Phase::Starting);
        assert!(a.contains(&Action::Spawn));
    }

    #[test]
    fn dependency_restart_restarts_without_resetting_the_crash_loop() {
        let p = policy(Kind::Longrun, RestartPolicy::Always);
        let (l, _) = run(Lifecycle::new(), &[Event::Start, Event::Ready, crash()], &p);
        let (l, _) = run(l, &[Event::Ready], &p);
        assert_eq!(l.attempt, 1);
        let (l, a) = run(l, &[Event::DependencyRestarted], &p);
        assert_eq!(l.phase, Phase::Stopping);
        assert!(a.contains(&Action::Signal(Signal::SIGTERM)));
        let (l, a) = run(l, &[crash()], &p);
        assert_eq!(l.phase, Phase::Starting);
        assert!(a.contains(&Action::Spawn));
        assert_eq!((l.attempt, l.failures.len()), (1, 1), "counters kept");
        assert_eq!(l.restarts, 2);
        // Nothing to restart when down or waiting out a backoff.
        let (d, a) = run(Lifecycle::new(), &[Event::DependencyRestarted], &p);
        assert_eq!((d.phase, a.len()), (Phase::Down, 0));
    }

    #[test]
    fn backoff_is_capped() {
        let r = RestartSpec {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..RestartSpec::default()
        };
        assert_eq!(backoff(&r, 0, 1.0), Duration::ZERO);
        assert_eq!(backoff(&r, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&r, 40, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff(&r, 40, 0.0), Duration::from_millis(500));
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Start),
            Just(Event::Stop),
            Just(Event::Restart),
            Just(Event::Ready),
            Just(Event::Timeout),
            Just(Event::Unhealthy),
            Just(Event::DependencyRestarted),
            Just(Event::SpawnFailed("x".into())),
            any::<bool>().prop_map(|success| Event::Exited(Exit {
                success,
                description: String::new()
            })),
        ]
    }

    proptest! {
        /// Spawn is only ever asked for when no process runs, and `running`
        /// matches the phase.
        #[test]
        fn never_two_processes(evs in proptest::collection::vec(any_event(), 0..60), oneshot: bool) {
            let kind = if oneshot { Kind::Oneshot } else { Kind::Longrun };
            let p = policy(kind, RestartPolicy::Always);
            let mut l = Lifecycle::new();
            let now = Instant::now();
            for e in evs {
                let was_running = l.running;
                let is_exit = matches!(e, Event::Exited(_) | Event::SpawnFailed(_));
                let (n, acts) = l.on(e, now, &p, 0.3);
                let spawns = acts.iter().filter(|a| **a == Action::Spawn).count();
                prop_assert!(spawns <= 1);
                if spawns == 1 {
                    prop_assert!(!was_running || is_exit);
                }
                if matches!(n.phase, Phase::Down | Phase::Failed | Phase::Backoff) {
                    prop_assert!(!n.running);
                }
                if n.phase == Phase::Stopping || n.phase == Phase::Starting {
                    prop_assert!(n.running);
                }
                l = n;
            }
        }

        /// Without operator action, crashes at one instant end in `failed`
        /// after at most `limit` failures.
        #[test]
        fn crash_storm_is_bounded(n in 1usize..50) {
            let p = policy(Kind::Longrun, RestartPolicy::Always);
            let now = Instant::now();
            let (mut l, _) = Lifecycle::new().on(Event::Start, now, &p, 0.0);
            let mut spawns = 1;
            for _ in 0..n {
                let (m, acts) = l.on(crash(), now, &p, 0.0);
                let (m, acts2) = m.on(Event::Timeout, now, &p, 0.0);
                spawns += acts.iter().chain(&acts2).filter(|a| **a == Action::Spawn).count();
                l = m;
            }
            prop_assert!(spawns <= p.restart.limit as usize);
        }
    }
}
