//! The supervisor loop: one thread, one `poll(2)`, a signalfd, and the
//! executor of the lifecycle machine's actions.
//!
//! Owns the services at run time (pid, timers, log pipe, readiness channel,
//! probes), the control server, the event log and hosted subsystems. All
//! decisions about a single service are made by [`crate::service::lifecycle`];
//! this module decides *when* to feed it (dependencies, shutdown order,
//! reload, master/backup) and performs the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::cgroup::{self, Cgroups};
use crate::config::{self, Config};
use crate::control::proto::{HookFailure, HookRun, HookStatus, Op, Reply, ServiceStatus, Status};
use crate::control::server::{Follow, Server};
use crate::events::EventLog;
use crate::hooks::{HookAction, HookEvent, HookSet, Hooks, Role};
use crate::init::Halt;
use crate::jitter::Jitter;
use crate::logs::LogSink;
use crate::probe::{Health, NetCheck};
use crate::process::{self, Launch};
use crate::readiness::{NotifyPipe, NotifySocket, SdMessage};
use crate::reaper;
use crate::reload;
use crate::service::spec::{ProbeCheck, ProbeSpec};
use crate::service::{Action, Event, Exit, Kind, Lifecycle, Phase, Policy, Readiness, ServiceSpec};
use crate::subsystem::{Subsystem, SubsystemCtx};
use crate::watchdog::Watchdog;

/// Name of the hooks' log (`flexctl logs hooks`, `<log-dir>/hooks.log`),
/// unless a service has that name.
pub const HOOK_LOG: &str = "hooks";

/// How the supervisor runs; filled from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub services_dir: PathBuf,
    pub node_config: Option<PathBuf>,
    pub run_dir: PathBuf,
    pub log_dir: Option<PathBuf>,
    pub socket: PathBuf,
    /// cgroup2 mount to create service cgroups under; `None` disables.
    pub cgroup_root: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    pub watchdog: Option<PathBuf>,
    /// Start `active_services` at boot.
    pub master: bool,
    /// Performing PID-1 duties.
    pub init: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Control(#[from] crate::control::server::ServerError),
    #[error("signal setup: {0}")]
    Signals(#[source] nix::Error),
    #[error("log pipe for `{service}`: {source}")]
    LogPipe {
        service: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
enum CheckRun {
    Net(NetCheck, Instant),
    Cmd(Pid, Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Readiness,
    Probe(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Main(String),
    /// A main process replaced through `MAINPID=`.
    Former(String),
    Check(String, Slot),
    Hook,
}

#[derive(Debug)]
struct ProbeRt {
    spec: ProbeSpec,
    health: Health,
    next: Instant,
    run: Option<CheckRun>,
}

#[derive(Debug)]
struct Svc {
    spec: ServiceSpec,
    life: Lifecycle,
    wanted: bool,
    active_only: bool,
    /// Removed by reload: dropped once down.
    removed: bool,
    pid: Option<Pid>,
    /// Process group of the last main process (for remnants).
    pgid: Option<Pid>,
    /// Session the service was started in (its first process's pid).
    sid: Option<Pid>,
    since: Instant,
    timer: Option<Instant>,
    logs: LogSink,
    notify_pipe: Option<NotifyPipe>,
    notify_sock: Option<NotifySocket>,
    status_text: Option<String>,
    cgroup: Option<PathBuf>,
    ready_run: Option<CheckRun>,
    ready_next: Option<Instant>,
    probes: Vec<ProbeRt>,
    waiting_for: Option<String>,
    /// sd_notify watchdog: restart unless `WATCHDOG=1` comes before this.
    wd_deadline: Option<Instant>,
    /// Required services that were restarted while this one ran: once all
    /// are ready again, this one is restarted (once).
    follow: BTreeSet<String>,
    /// A main process adopted through `MAINPID=` may not be our child (its
    /// parent can reap it before we ever see it): its pidfd says when it
    /// ends.
    main_pidfd: Option<std::os::fd::OwnedFd>,
}

impl Svc {
    fn policy(&self) -> Policy {
        Policy {
            kind: self.spec.kind,
            restart: self.spec.restart.clone(),
            stop_signal: self.spec.stop_signal,
            start_timeout: Duration::from_millis(self.spec.start_timeout_ms),
            stop_timeout: Duration::from_millis(self.spec.stop_timeout_ms),
        }
    }

    fn settled_down(&self) -> bool {
        !self.life.running && matches!(self.life.phase, Phase::Down | Phase::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Running,
    Stopping {
        deadline: Instant,
        halt: Halt,
        killed: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signal,
    Listener,
    Conn(usize),
    Log(usize),
    NotifyPipe(usize),
    NotifySock(usize),
    Ready(usize),
    Probe(usize, usize),
    Subsystem(usize, RawFd),
    HookLog,
    MainPid(usize),
}

/// The running supervisor.
pub struct Supervisor {
    opts: Options,
    config: Config,
    svcs: BTreeMap<String, Svc>,
    pids: HashMap<Pid, Owner>,
    /// Role hooks (one at a time) and the process running one.
    hooks: Hooks,
    hook_pid: Option<Pid>,
    hook_started_ms: u64,
    hook_failed_ms: u64,
    /// Output of every hook run (`flexctl logs hooks`, `hooks.log`).
    hook_logs: LogSink,
    /// The node configuration as loaded (absolute), for hooks.
    node_config_path: Option<PathBuf>,
    events: EventLog,
    /// Console lines and events held back while a crashed service is
    /// restarted (see [`Supervisor::hold_output`]).
    held: Option<Vec<Held>>,
    /// User and group ids of services, looked up once (cleared on reload).
    identities: process::Identities,
    server: Server,
    cgroups: Option<Cgroups>,
    jitter: Jitter,
    watchdog: Option<Watchdog>,
    master: bool,
    /// A role (master or backup) has been set since start: the first
    /// `set_master` runs its hook even when it repeats the boot default.
    role_set: bool,
    /// A role hook held back until the node has announced ready (or
    /// started degraded): at boot the first VRRP state comes within
    /// seconds, while e.g. MariaDB may still be initialising its datadir;
    /// the hook acts on those services, so it waits for them.
    deferred_hook: Option<Role>,
    /// The node is master but its `active_services` wait for the master
    /// hook to end: a promote makes the stores they write to writable
    /// (a Redis replica refuses writes), so they start after it.
    active_held: bool,
    mode: Mode,
    announced: bool,
    started: Instant,
    sigfd: SignalFd,
    subsystems: Vec<Box<dyn Subsystem>>,
    /// Applies changed `vips` of a reloaded node configuration.
    vips_changed: Option<VipsChanged>,
}

/// An event (and console line) waiting for [`Supervisor::release_output`].
#[derive(Debug)]
struct Held {
    source: String,
    service: Option<String>,
    message: String,
    unix_ms: u64,
    /// The console line, if any.
    console: Option<String>,
}

impl Held {
    fn new(source: &str, service: Option<&str>, message: String, console: Option<String>) -> Self {
        Self {
            source: source.to_owned(),
            service: service.map(str::to_owned),
            message,
            unix_ms: crate::logs::now_ms(),
            console,
        }
    }
}

/// Callback applying a reloaded node configuration's `vips`; `Ok` is a
/// summary for the event log.
pub type VipsChanged = Box<dyn FnMut(&chassis::NodeConfig) -> Result<String, String>>;

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("services", &self.svcs.len())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Signals handled through the signalfd.
fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPWR,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGQUIT,
    ] {
        s.add(sig);
    }
    s
}

/// Write one line to the console (stderr). Never panics: a closed or
/// broken console must not take the supervisor (PID 1) down.
pub fn console(msg: &str) {
    use std::io::Write;
    // One write(2) per line, so lines never interleave with services'.
    let line = format!("flexvisor: {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

impl Supervisor {
    /// Load the configuration and set up the loop; nothing is started yet.
    pub fn new(opts: Options) -> Result<Self, SupervisorError> {
        let config = config::load(opts.node_config.as_deref(), &opts.services_dir)?;
        let mask = handled_signals();
        mask.thread_block().map_err(SupervisorError::Signals)?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(SupervisorError::Signals)?;
        let server = Server::bind(&opts.socket)?;
        let cgroups = opts
            .cgroup_root
            .as_deref()
            .and_then(|r| Cgroups::detect(r, opts.init));
        let watchdog = match &opts.watchdog {
            None => None,
            Some(p) => match Watchdog::open(p) {
                Ok(w) => Some(w),
                Err(e) => {
                    console(&format!("{e}; running without hardware watchdog"));
                    None
                }
            },
        };
        if let Some(log_dir) = &opts.log_dir {
            let _ = std::fs::create_dir_all(log_dir);
        }
        let hook_logs = LogSink::new(
            HOOK_LOG,
            opts.log_dir.as_deref(),
            crate::service::spec::LogSpec::default(),
        )
        .map_err(|source| SupervisorError::LogPipe {
            service: HOOK_LOG.to_owned(),
            source,
        })?;
        let node_config_path = opts
            .node_config
            .as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
        let mut s = Self {
            master: opts.master,
            role_set: false,
            deferred_hook: None,
            active_held: false,
            opts,
            config: config.clone(),
            svcs: BTreeMap::new(),
            pids: HashMap::new(),
            hooks: Hooks::default(),
            hook_pid: None,
            hook_started_ms: 0,
            hook_failed_ms: 0,
            hook_logs,
            node_config_path,
            events: EventLog::new(2000),
            held: None,
            identities: process::Identities::default(),
            server,
            cgroups,
            jitter: Jitter::new(crate::jitter::seed()),
            watchdog,
            mode: Mode::Running,
            announced: false,
            started: Instant::now(),
            sigfd,
            subsystems: Vec::new(),
            vips_changed: None,
        };
        for (name, spec) in config.specs {
            s.add_service(name, spec)?;
        }
        let cg = s
            .cgroups
            .as_ref()
            .map_or("off (process groups)".to_owned(), |c| {
                c.base().display().to_string()
            });
        s.emit(
            "supervisor",
            None,
            format!("{} services loaded; cgroups: {cg}", s.svcs.len()),
        );
        Ok(s)
    }

    /// Called on reload when the node configuration's `vips` changed (the
    /// hosted VRRP instances are re-made from them).
    pub fn on_vips_changed(&mut self, f: VipsChanged) {
        self.vips_changed = Some(f);
    }

    /// Host a subsystem (health monitor, VRRP): its status appears in
    /// `status`, its requests arrive through `Op::Subsystem`.
    pub fn add_subsystem(&mut self, sub: Box<dyn Subsystem>) {
        self.subsystems.push(sub);
    }

    fn add_service(&mut self, name: String, spec: ServiceSpec) -> Result<(), SupervisorError> {
        let logs = LogSink::new(&name, self.opts.log_dir.as_deref(), spec.log.clone()).map_err(
            |source| SupervisorError::LogPipe {
                service: name.clone(),
                source,
            },
        )?;
        if let Some(e) = logs.file_error() {
            let e = e.to_owned();
            self.emit("logs", Some(&name), e);
        }
        let active_only = self.config.active.contains(&name);
        let now = Instant::now();
        let probes = spec
            .probes
            .iter()
            .map(|p| ProbeRt {
                spec: p.clone(),
                health: Health::default(),
                next: now,
                run: None,
            })
            .collect();
        self.svcs.insert(
            name,
            Svc {
                wanted: !active_only || (self.master && !self.active_held),
                active_only,
                removed: false,
                life: Lifecycle::new(),
                pid: None,
                pgid: None,
                sid: None,
                since: now,
                timer: None,
                logs,
                notify_pipe: None,
                notify_sock: None,
                status_text: None,
                cgroup: None,
                ready_run: None,
                ready_next: None,
                probes,
                waiting_for: None,
                wd_deadline: None,
                follow: BTreeSet::new(),
                main_pidfd: None,
                spec,
            },
        );
        Ok(())
    }

    /// Append to the event log, echo on the console, stream to followers.
    fn emit(&mut self, source: &str, service: Option<&str>, message: String) {
        let line = match service {
            Some(s) => format!("{s}: {message}"),
            None => message.clone(),
        };
        self.emit_line(source, service, message, line);
    }

    /// Print `line` on the console and log `message` as an event.
    fn emit_line(&mut self, source: &str, service: Option<&str>, message: String, line: String) {
        if let Some(held) = &mut self.held {
            held.push(Held::new(source, service, message, Some(line)));
            return;
        }
        console(&line);
        self.push_event(source, service, message);
    }

    /// Append to the event log and stream to followers (no console line).
    fn push_event(&mut self, source: &str, service: Option<&str>, message: String) {
        if let Some(held) = &mut self.held {
            held.push(Held::new(source, service, message, None));
            return;
        }
        let unix_ms = crate::logs::now_ms();
        self.publish(source, service, message, unix_ms);
    }

    fn publish(&mut self, source: &str, service: Option<&str>, message: String, unix_ms: u64) {
        let ev = self
            .events
            .push_at(source, service, message, unix_ms)
            .clone();
        for c in &mut self.server.conns {
            if c.follow == Some(Follow::Events) {
                c.send(&Reply::Event { event: ev.clone() });
            }
        }
    }

    /// Hold console lines and events back until [`Self::release_output`]:
    /// between a crash and the respawn, a console write (a slow serial
    /// line, or a pipe whose reader wakes up and takes the CPU) and
    /// streaming to followers would delay the new process. Order and
    /// timestamps are kept. Returns whether this call started holding.
    fn hold_output(&mut self) -> bool {
        if self.held.is_some() {
            return false;
        }
        self.held = Some(Vec::new());
        true
    }

    fn release_output(&mut self) {
        for h in self.held.take().unwrap_or_default() {
            if let Some(line) = &h.console {
                console(line);
            }
            self.publish(&h.source, h.service.as_deref(), h.message, h.unix_ms);
        }
    }

    /// Feed one event to a service and execute the resulting actions,
    /// including events those actions cause.
    fn feed(&mut self, name: &str, ev: Event) {
        let mut queue = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            let Some(svc) = self.svcs.get_mut(name) else {
                return;
            };
            let before = svc.life.phase;
            let policy = svc.policy();
            let j = self.jitter.next_f64();
            let ended = matches!(ev, Event::Exited(_) | Event::SpawnFailed(_));
            let (life, actions) = std::mem::take(&mut svc.life).on(ev, Instant::now(), &policy, j);
            svc.life = life;
            if svc.life.phase != before {
                svc.since = Instant::now();
            }
            if ended && svc.life.phase == Phase::Down {
                // Ended and the policy says stay down: the scheduler must
                // not start it again until someone asks.
                svc.wanted = false;
            }
            if before == Phase::Ready && svc.life.phase != Phase::Ready && svc.wanted {
                // Going through a restart (crash, manual, health, reload,
                // its own dependency), not being stopped.
                self.mark_followers(name);
            }
            for a in actions {
                self.execute(name, a, &mut queue);
            }
        }
    }

    fn execute(&mut self, name: &str, action: Action, queue: &mut VecDeque<Event>) {
        match action {
            Action::Spawn => match self.spawn(name) {
                Ok(immediate_ready) => {
                    if immediate_ready {
                        queue.push_back(Event::Ready);
                    }
                }
                Err(e) => queue.push_back(Event::SpawnFailed(e)),
            },
            Action::Signal(sig) => self.signal(name, sig),
            Action::KillAll | Action::KillRemnants => self.kill_all(name),
            Action::SetTimer(d) => {
                if let Some(s) = self.svcs.get_mut(name) {
                    s.timer = Some(Instant::now() + d);
                }
            }
            Action::ClearTimer => {
                if let Some(s) = self.svcs.get_mut(name) {
                    s.timer = None;
                }
            }
            Action::Report(msg) => self.emit("service", Some(name), msg),
        }
    }

    /// Start the main process; `Ok(true)` when it counts as ready at once.
    fn spawn(&mut self, name: &str) -> Result<bool, String> {
        let cgroup = match (&self.cgroups, self.svcs.get(name)) {
            (Some(cg), Some(_)) => match cg.service(name) {
                Ok(dir) => Some(dir),
                Err(e) => {
                    self.emit(
                        "service",
                        Some(name),
                        format!("no cgroup ({e}); using process group"),
                    );
                    None
                }
            },
            _ => None,
        };
        let Some(svc) = self.svcs.get_mut(name) else {
            return Err("unknown service".into());
        };
        let identity = self
            .identities
            .get(svc.spec.user.as_deref(), svc.spec.group.as_deref())
            .map_err(|e| e.to_string())?;
        let mut launch = Launch::service(&svc.spec);
        launch
            .env
            .push(("FLEXVISOR_SERVICE".into(), name.to_owned()));
        launch.cgroup_procs = cgroup.as_ref().map(|d| d.join("cgroup.procs"));
        svc.cgroup = cgroup;
        svc.notify_pipe = None;
        svc.ready_run = None;
        svc.ready_next = None;
        svc.status_text = None;
        svc.wd_deadline = None;
        for p in &mut svc.probes {
            p.health = Health::default();
            p.run = None;
        }
        let mut notify_fd = None;
        match &svc.spec.readiness {
            Readiness::NotifyFd { fd } => {
                let pipe = NotifyPipe::new().map_err(|e| format!("notify pipe: {e}"))?;
                notify_fd = Some(*fd);
                svc.notify_pipe = Some(pipe);
            }
            Readiness::SdNotify => {
                if svc.notify_sock.is_none() {
                    let sock = NotifySocket::bind(&self.opts.run_dir.join("notify"), name)
                        .map_err(|e| format!("notify socket: {e}"))?;
                    // A service running as its own user must be able to
                    // send on it: the socket is its own.
                    if let Some(id) = &identity {
                        let (uid, gid) = (id.uid, id.gid);
                        nix::unistd::chown(&sock.path, Some(uid), Some(gid)).map_err(|e| {
                            format!("notify socket {}: chown: {e}", sock.path.display())
                        })?;
                    }
                    svc.notify_sock = Some(sock);
                }
                if let Some(ns) = &svc.notify_sock {
                    // Drop stale messages of a previous instance.
                    let _ = ns.recv_all();
                    launch
                        .env
                        .push(("NOTIFY_SOCKET".into(), ns.path.display().to_string()));
                }
                if let Some(ms) = svc.spec.watchdog_ms {
                    launch
                        .env
                        .push(("WATCHDOG_USEC".into(), (ms * 1000).to_string()));
                }
            }
            Readiness::Tcp { .. } | Readiness::Command { .. } => {
                svc.ready_next = Some(Instant::now());
            }
            Readiness::None => {}
        }
        launch.identity = identity;
        let notify = match (&svc.notify_pipe, notify_fd) {
            (Some(NotifyPipe { write: Some(w), .. }), Some(fd)) => Some((w, fd)),
            _ => None,
        };
        let spawned = process::spawn(&launch, svc.logs.writer(), notify);
        // Our copy of the write end must go, or EOF would never come.
        if let Some(p) = &mut svc.notify_pipe {
            p.write = None;
        }
        let pid = spawned.map_err(|e| e.to_string())?;
        svc.pid = Some(pid);
        svc.pgid = Some(pid);
        svc.sid = Some(pid);
        svc.main_pidfd = None;
        self.pids.insert(pid, Owner::Main(name.to_owned()));
        self.emit("service", Some(name), format!("started, pid {pid}"));
        let svc = &self.svcs[name];
        Ok(svc.spec.kind == Kind::Longrun && svc.spec.readiness == Readiness::None)
    }

    fn signal(&mut self, name: &str, sig: Signal) {
        let Some(svc) = self.svcs.get(name) else {
            return;
        };
        if let Some(dir) = &svc.cgroup {
            cgroup::signal(dir, sig);
        }
        if let Some(pg) = svc.pgid {
            let _ = killpg(pg, sig);
        }
    }

    fn kill_all(&mut self, name: &str) {
        let Some(svc) = self.svcs.get(name) else {
            return;
        };
        if let Some(dir) = &svc.cgroup {
            let _ = cgroup::kill_all(dir);
        }
        if let Some(pg) = svc.pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    }

    // ----- scheduling -------------------------------------------------

    /// `name` is being restarted: the services that `requires` it and run
    /// now are restarted once it is ready again (`wants` dependents are
    /// left alone).
    fn mark_followers(&mut self, name: &str) {
        let hard: Vec<String> = self
            .config
            .graph
            .dependents(name)
            .filter(|d| self.config.graph.deps(d).any(|e| e.name == name && e.hard))
            .cloned()
            .collect();
        for d in hard {
            if let Some(s) = self.svcs.get_mut(&d) {
                if s.wanted && (s.life.running || s.life.phase == Phase::Ready) {
                    s.follow.insert(name.to_owned());
                }
            }
        }
    }

    /// Restart the services whose restarted requirements are all ready
    /// again; true when it restarted something. One restart per recovery,
    /// however many of its requirements went through a restart, and the
    /// dependent's crash-loop counters are kept (no storm, no reset).
    fn follow_restarts(&mut self) -> bool {
        let due: Vec<(String, Vec<String>)> = self
            .svcs
            .iter()
            .filter(|(_, s)| !s.follow.is_empty())
            .filter(|(_, s)| {
                s.follow.iter().all(|d| {
                    self.svcs
                        .get(d)
                        .is_none_or(|x| x.life.phase == Phase::Ready)
                })
            })
            .map(|(n, s)| (n.clone(), s.follow.iter().cloned().collect()))
            .collect();
        let mut acted = false;
        for (n, deps) in due {
            let Some(s) = self.svcs.get_mut(&n) else {
                continue;
            };
            s.follow.clear();
            if !s.wanted || !(s.life.running || s.life.phase == Phase::Ready) {
                continue;
            }
            acted = true;
            self.emit(
                "service",
                Some(&n),
                format!(
                    "restarting: required {} restarted and is ready again",
                    deps.join(", ")
                ),
            );
            self.feed(&n, Event::DependencyRestarted);
        }
        acted
    }

    /// Start what may start, stop what must stop, in dependency order.
    fn schedule(&mut self) {
        // A start can make a dependent startable at once (readiness
        // `none`), a stop can unblock a dependency: repeat until stable.
        for _ in 0..=self.svcs.len() {
            if !self.schedule_pass() {
                break;
            }
        }
        self.announce();
    }

    /// One pass; true when it started or stopped something.
    fn schedule_pass(&mut self) -> bool {
        let followed = self.follow_restarts();
        let order: Vec<String> = self.config.graph.start_order().to_vec();
        let mut to_start = Vec::new();
        for name in &order {
            let Some(svc) = self.svcs.get(name) else {
                continue;
            };
            if !svc.wanted || svc.life.phase != Phase::Down {
                continue;
            }
            let mut waiting = None;
            for dep in self.config.graph.deps(name) {
                let Some(d) = self.svcs.get(dep.name) else {
                    continue;
                };
                let ok = match d.life.phase {
                    Phase::Ready => true,
                    Phase::Failed => !dep.hard,
                    Phase::Down => !dep.hard && !d.wanted,
                    _ => false,
                };
                if !ok {
                    let why = if d.life.phase == Phase::Failed {
                        format!("{} (failed)", dep.name)
                    } else {
                        dep.name.to_owned()
                    };
                    waiting = Some(why);
                    break;
                }
            }
            if let Some(svc) = self.svcs.get_mut(name) {
                svc.waiting_for = waiting.clone();
            }
            if waiting.is_none() {
                to_start.push(name.clone());
            }
        }
        let mut acted = followed || !to_start.is_empty();
        for n in to_start {
            self.feed(&n, Event::Start);
        }

        let mut to_stop = Vec::new();
        // Services dropped by a reload are not in the graph any more.
        let dropped: Vec<String> = self
            .svcs
            .iter()
            .filter(|(_, s)| s.removed)
            .map(|(n, _)| n.clone())
            .collect();
        for name in dropped.iter().chain(order.iter().rev()) {
            let Some(svc) = self.svcs.get(name) else {
                continue;
            };
            if svc.wanted || matches!(svc.life.phase, Phase::Down | Phase::Stopping) {
                continue;
            }
            if svc.life.phase == Phase::Failed && !svc.life.running {
                continue;
            }
            // Dependents being stopped too go first.
            let blocked = self.config.graph.dependents(name).any(|d| {
                self.svcs
                    .get(d)
                    .is_some_and(|ds| !ds.wanted && !ds.settled_down())
            });
            if !blocked {
                to_stop.push(name.clone());
            }
        }
        acted |= !to_stop.is_empty();
        for n in to_stop {
            self.feed(&n, Event::Stop);
        }

        // Services removed by reload are dropped once down.
        let gone: Vec<String> = self
            .svcs
            .iter()
            .filter(|(_, s)| s.removed && s.settled_down())
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            if let Some(mut s) = self.svcs.remove(&n) {
                let _ = s.logs.drain_final();
                if let Some(cg) = &self.cgroups {
                    cg.remove(&n);
                }
                self.emit("reload", Some(&n), "removed".into());
            }
        }

        acted
    }

    /// Say `flexvisor: ready` once, when every wanted service is ready.
    fn announce(&mut self) {
        if !self.announced && self.mode == Mode::Running {
            let wanted: Vec<&Svc> = self.svcs.values().filter(|s| s.wanted).collect();
            if wanted.iter().all(|s| s.life.phase == Phase::Ready) {
                self.announced = true;
                console("ready");
                self.events.push("supervisor", None, "ready".into());
                self.run_deferred_hook();
            } else if wanted
                .iter()
                .all(|s| matches!(s.life.phase, Phase::Ready | Phase::Failed))
                && wanted.iter().any(|s| s.life.phase == Phase::Failed)
            {
                self.announced = true;
                let failed: Vec<&str> = wanted
                    .iter()
                    .filter(|s| s.life.phase == Phase::Failed)
                    .map(|s| s.spec.name.as_str())
                    .collect();
                self.emit(
                    "supervisor",
                    None,
                    format!("started degraded; failed: {}", failed.join(", ")),
                );
                self.run_deferred_hook();
            }
        }
    }

    /// Run the role hook held back while the node was starting.
    fn run_deferred_hook(&mut self) {
        if let Some(role) = self.deferred_hook.take() {
            self.feed_hook(HookEvent::Transition(role));
        }
    }

    // ----- requests ---------------------------------------------------

    /// Become master (true) or backup: start or stop `active_services`
    /// and run the node's hook. The VRRP subsystem calls this.
    pub fn set_master(&mut self, master: bool) {
        if self.master == master && self.role_set {
            return;
        }
        self.role_set = true;
        self.master = master;
        self.active_held = false;
        if !master {
            for s in self.svcs.values_mut().filter(|s| s.active_only) {
                s.wanted = false;
            }
        }
        self.emit(
            "supervisor",
            None,
            format!("now {}", if master { "master" } else { "backup" }),
        );
        let role = if master { Role::Master } else { Role::Backup };
        if self.announced {
            self.feed_hook(HookEvent::Transition(role));
        } else {
            // Only the latest role matters once the services are up.
            self.deferred_hook = Some(role);
        }
        if master {
            if self.master_hook_outstanding() && self.svcs.values().any(|s| s.active_only) {
                self.active_held = true;
                self.emit(
                    "supervisor",
                    None,
                    "active services wait for the master hook".into(),
                );
            } else {
                self.want_active();
            }
        }
    }

    /// Whether the master hook has yet to run or to end (held back until
    /// ready, running, or queued behind a running backup hook).
    fn master_hook_outstanding(&self) -> bool {
        let has_hook = self
            .hook_set()
            .is_some_and(|h| h.command(Role::Master).is_some());
        has_hook
            && (self.deferred_hook == Some(Role::Master)
                || self
                    .hooks
                    .running
                    .as_ref()
                    .is_some_and(|r| r.role == Role::Master)
                || self.hooks.pending == Some(Role::Master))
    }

    /// The master's `active_services` become wanted.
    fn want_active(&mut self) {
        for s in self
            .svcs
            .values_mut()
            .filter(|s| s.active_only && !s.removed)
        {
            s.wanted = true;
        }
    }

    /// Start the held `active_services` once the master hook has ended
    /// (whatever its outcome: a failed promote is reported loudly, and the
    /// node holds the shared address, so it serves as well as it can).
    fn release_active(&mut self) {
        if self.active_held && self.master && !self.master_hook_outstanding() {
            self.active_held = false;
            self.want_active();
            self.emit(
                "supervisor",
                None,
                "master hook ended; starting active services".into(),
            );
        }
    }

    /// The node's hooks from the configuration in force.
    fn hook_set(&self) -> Option<HookSet> {
        self.config
            .node
            .as_ref()
            .and_then(|n| n.hooks.as_ref())
            .map(HookSet::from)
    }

    /// Feed the hook machine and execute what it asks, including the
    /// events those actions cause (a spawn that fails).
    fn feed_hook(&mut self, ev: HookEvent) {
        let set = self.hook_set();
        let mut queue = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            let (h, actions) = std::mem::take(&mut self.hooks).on(ev, Instant::now(), set.as_ref());
            self.hooks = h;
            for a in actions {
                match a {
                    HookAction::Spawn { role, command } => {
                        if let Err(e) = self.spawn_hook(role, &command) {
                            queue.push_back(HookEvent::SpawnFailed(e));
                        }
                    }
                    HookAction::Kill => {
                        if let Some(pid) = self.hook_pid {
                            let _ = killpg(pid, Signal::SIGKILL);
                        }
                    }
                    HookAction::Failed(msg) => {
                        self.hook_failed_ms = crate::logs::now_ms();
                        let line = format!("WARNING: {msg}");
                        self.emit_line("hook", None, msg, line);
                    }
                    HookAction::Info(msg) => self.emit("hook", None, msg),
                }
            }
        }
        self.release_active();
    }

    /// Start a hook: `/bin/sh -c COMMAND` in its own session and process
    /// group, output to the hook log, with the role and node in its
    /// environment.
    fn spawn_hook(&mut self, role: Role, command: &str) -> Result<(), String> {
        let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()];
        let mut l = Launch::command(&argv, None);
        l.env
            .push(("FLEXVISOR_VRRP_STATE".into(), role.as_str().to_owned()));
        if let Some(p) = &self.node_config_path {
            l.env
                .push(("FLEXVISOR_NODE_CONFIG".into(), p.display().to_string()));
        }
        if let Some(n) = &self.config.node {
            l.env.push(("FLEXVISOR_NODE".into(), n.hostname.clone()));
            l.env.push(("FLEXVISOR_PAIR".into(), n.pair.name.clone()));
        }
        // Output of earlier runs is not this run's "last output".
        self.pump_hook_logs(false);
        let pid = process::spawn(&l, self.hook_logs.writer(), None).map_err(|e| e.to_string())?;
        self.pids.insert(pid, Owner::Hook);
        self.hook_pid = Some(pid);
        self.hook_started_ms = crate::logs::now_ms();
        self.emit(
            "hook",
            None,
            format!("{} hook `{command}` started, pid {pid}", role.as_str()),
        );
        Ok(())
    }

    /// Read hook output; stream it to `flexctl logs hooks -f`.
    fn pump_hook_logs(&mut self, last: bool) -> Vec<crate::logs::LogLine> {
        let lines = if last {
            self.hook_logs.drain_final()
        } else {
            self.hook_logs.drain()
        };
        if !self.svcs.contains_key(HOOK_LOG) {
            for c in &mut self.server.conns {
                if c.follow.as_ref() == Some(&Follow::Logs(HOOK_LOG.to_owned())) {
                    for l in &lines {
                        c.send(&Reply::Log {
                            service: HOOK_LOG.to_owned(),
                            line: l.clone(),
                        });
                    }
                }
            }
        }
        lines
    }

    /// The hooks as shown by `status`.
    fn hook_status(&self) -> HookStatus {
        let now = Instant::now();
        HookStatus {
            running: self.hooks.running.as_ref().map(|r| HookRun {
                role: r.role.as_str().to_owned(),
                name: r.name.clone(),
                pid: self.hook_pid.map(Pid::as_raw),
                for_s: now.saturating_duration_since(r.started).as_secs(),
            }),
            pending: self.hooks.pending.map(|r| r.as_str().to_owned()),
            last: self.hooks.last.as_ref().map(|f| f.message.clone()),
            failure: self.hooks.failure.as_ref().map(|f| HookFailure {
                role: f.role.as_str().to_owned(),
                name: f.name.clone(),
                message: f.message.clone(),
                detail: f.detail.clone(),
                unix_ms: self.hook_failed_ms,
            }),
        }
    }

    /// The services as offered to hosted subsystems (the health monitor's
    /// `services` check): a failed hook run is one more WARNING entry,
    /// `hook:NAME`, until a hook run succeeds.
    fn services_for_health(&self) -> Vec<ServiceStatus> {
        let mut list = self.status().services;
        if let Some(f) = &self.hooks.failure {
            list.push(ServiceStatus {
                name: format!("hook:{}", f.name),
                state: format!("{} hook failed", f.role.as_str()),
                pid: None,
                for_s: 0,
                restarts: 0,
                kind: "hook".into(),
                active_only: false,
                wanted: true,
                health: None,
                status: None,
                last_exit: Some(f.detail.clone()),
                waiting_for: None,
            });
        }
        list
    }

    /// Manual start: the service and what it requires become wanted.
    fn request_start(&mut self, name: &str) -> Result<(), String> {
        self.known(name)?;
        let needed = self.config.graph.closure([name]);
        for n in &needed {
            if let Some(s) = self.svcs.get_mut(n) {
                let was_failed = s.life.phase == Phase::Failed;
                s.wanted = true;
                if was_failed && n == name {
                    // Operator action resets the crash-loop verdict.
                    self.feed(n, Event::Stop);
                }
            }
        }
        Ok(())
    }

    /// Manual stop: the service and what hard-requires it.
    fn request_stop(&mut self, name: &str) -> Result<(), String> {
        self.known(name)?;
        let mut names = self.config.graph.hard_dependents(name);
        names.insert(name.to_owned());
        for n in names {
            if let Some(s) = self.svcs.get_mut(&n) {
                s.wanted = false;
            }
        }
        Ok(())
    }

    fn request_restart(&mut self, name: &str) -> Result<(), String> {
        self.known(name)?;
        if let Some(s) = self.svcs.get_mut(name) {
            s.wanted = true;
        }
        self.emit("service", Some(name), "restart requested".into());
        self.feed(name, Event::Restart);
        Ok(())
    }

    fn known(&self, name: &str) -> Result<(), String> {
        if self.svcs.contains_key(name) {
            Ok(())
        } else {
            Err(format!(
                "no service `{name}` (known: {})",
                self.svcs.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        }
    }

    /// Re-read the configuration; apply it only if it is valid.
    pub fn reload(&mut self) -> Result<reload::Diff, String> {
        let loaded = config::load(self.opts.node_config.as_deref(), &self.opts.services_dir)
            .map_err(|e| e.to_string())
            .and_then(|c| match &c.node {
                // Shared addresses are checked here too, so bad vips keep
                // the running configuration (at boot they only keep VRRP off).
                Some(n) => crate::hosted::instance_configs(n)
                    .map(|_| c)
                    .map_err(|e| e.to_string()),
                None => Ok(c),
            });
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("reload rejected, running configuration kept:\n{e}");
                self.emit("reload", None, msg.clone());
                return Err(msg);
            }
        };
        let diff = reload::diff(&self.config.specs, &new.specs);
        // Users and groups may have changed with the configuration.
        self.identities.clear();
        let active_changed = new.active != self.config.active;
        let vips_changed = match (&self.config.node, &new.node) {
            (Some(a), Some(b)) => a.vips != b.vips || a.pair != b.pair,
            _ => false,
        }
        .then(|| new.node.clone())
        .flatten();
        self.config = new.clone();
        for name in &diff.removed {
            if let Some(s) = self.svcs.get_mut(name) {
                s.wanted = false;
                s.removed = true;
            }
        }
        for name in &diff.changed {
            let spec = new.specs[name].clone();
            if let Some(s) = self.svcs.get_mut(name) {
                s.logs.set_spec(spec.log.clone());
                s.probes = spec
                    .probes
                    .iter()
                    .map(|p| ProbeRt {
                        spec: p.clone(),
                        health: Health::default(),
                        next: Instant::now(),
                        run: None,
                    })
                    .collect();
                if s.spec.readiness != spec.readiness {
                    s.notify_sock = None;
                }
                s.spec = spec;
                if s.life.running || s.life.phase == Phase::Ready {
                    self.feed(name, Event::Restart);
                }
            }
        }
        for name in &diff.added {
            // Removed by an earlier reload but still stopping: take it back
            // instead of losing track of its process.
            if let Some(s) = self.svcs.get_mut(name) {
                s.removed = false;
                s.wanted = true;
                s.spec = new.specs[name].clone();
                self.feed(name, Event::Restart);
                continue;
            }
            if let Err(e) = self.add_service(name.clone(), new.specs[name].clone()) {
                self.emit("reload", Some(name), e.to_string());
            }
        }
        if active_changed {
            for (n, s) in &mut self.svcs {
                s.active_only = new.active.contains(n);
                s.wanted = !s.removed && (!s.active_only || (self.master && !self.active_held));
            }
        }
        if let Some(node) = vips_changed {
            match self.vips_changed.as_mut().map(|f| f(&node)) {
                Some(Ok(m)) => self.emit("reload", None, m),
                Some(Err(e)) => self.emit("reload", None, format!("WARNING: {e}")),
                None => self.emit(
                    "reload",
                    None,
                    "vips changed but VRRP is not hosted here (--no-vrrp): not applied".into(),
                ),
            }
        }
        self.emit(
            "reload",
            None,
            format!(
                "applied: added [{}], removed [{}], changed [{}]",
                diff.added.join(", "),
                diff.removed.join(", "),
                diff.changed.join(", ")
            ),
        );
        Ok(diff)
    }

    fn begin_shutdown(&mut self, halt: Halt) {
        if let Mode::Stopping { .. } = self.mode {
            return;
        }
        // Hosted subsystems first: VRRP gives up the shared addresses
        // (priority 0) before the services behind them stop.
        for k in 0..self.subsystems.len() {
            let mut cx = SubsystemCtx::default();
            self.subsystems[k].on_shutdown(&mut cx);
            let nm = self.subsystems[k].name().to_owned();
            self.apply_ctx(&nm, cx);
        }
        let deadline = Instant::now() + self.opts.shutdown_timeout;
        self.mode = Mode::Stopping {
            deadline,
            halt,
            killed: false,
        };
        for s in self.svcs.values_mut() {
            s.wanted = false;
        }
        self.emit(
            "supervisor",
            None,
            format!(
                "shutting down ({halt:?}), bound {} ms",
                self.opts.shutdown_timeout.as_millis()
            ),
        );
    }

    pub fn status(&self) -> Status {
        let now = Instant::now();
        let services = self
            .config
            .graph
            .start_order()
            .iter()
            .filter_map(|n| self.svcs.get(n))
            .chain(self.svcs.values().filter(|s| s.removed))
            .map(|s| ServiceStatus {
                name: s.spec.name.clone(),
                state: serde_json::to_value(s.life.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                pid: s.pid.map(Pid::as_raw),
                for_s: now.saturating_duration_since(s.since).as_secs(),
                restarts: s.life.restarts,
                kind: match s.spec.kind {
                    Kind::Longrun => "longrun".into(),
                    Kind::Oneshot => "oneshot".into(),
                },
                active_only: s.active_only,
                // Held for the master hook: wanted, and shown waiting.
                wanted: s.wanted || (self.active_held && s.active_only && !s.removed),
                health: if s.probes.is_empty() {
                    None
                } else {
                    s.probes
                        .iter()
                        .map(|p| p.health.healthy)
                        .try_fold(true, |acc, h| h.map(|h| acc && h))
                },
                status: s.status_text.clone(),
                last_exit: s.life.last_exit.clone(),
                waiting_for: if self.active_held && s.active_only && !s.removed {
                    Some("the master hook".to_owned())
                } else if s.wanted && s.life.phase == Phase::Down {
                    s.waiting_for.clone()
                } else {
                    None
                },
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            pid1: std::process::id() == 1,
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            uptime_s: self.started.elapsed().as_secs(),
            state: match self.mode {
                Mode::Stopping { .. } => "stopping",
                Mode::Running if self.announced => "running",
                Mode::Running => "starting",
            }
            .into(),
            master: self.master,
            cgroups: self.cgroups.is_some(),
            services,
            subsystems: self
                .subsystems
                .iter()
                .map(|s| (s.name().to_owned(), s.status()))
                .collect(),
            hooks: self.hook_status(),
        }
    }

    fn handle_request(&mut self, conn: usize, op: Op) {
        let reply = match op {
            Op::Status => Ok(serde_json::to_value(self.status()).unwrap_or_default()),
            Op::Start { service } => self
                .request_start(&service)
                .map(|()| serde_json::Value::Null),
            Op::Stop { service } => self
                .request_stop(&service)
                .map(|()| serde_json::Value::Null),
            Op::Restart { service } => self
                .request_restart(&service)
                .map(|()| serde_json::Value::Null),
            Op::Logs {
                service,
                lines,
                follow,
            } => match self.svcs.get_mut(&service) {
                None if service == HOOK_LOG => {
                    self.pump_hook_logs(false);
                    let tail = self.hook_logs.tail(lines.unwrap_or(200));
                    if follow {
                        if let Some(c) = self.server.conns.get_mut(conn) {
                            c.follow = Some(Follow::Logs(service.clone()));
                        }
                    }
                    Ok(serde_json::to_value(tail).unwrap_or_default())
                }
                None => self.known(&service).map(|()| serde_json::Value::Null),
                Some(s) => {
                    let _ = s.logs.drain();
                    let tail = s.logs.tail(lines.unwrap_or(s.spec.log.tail_lines));
                    if follow {
                        if let Some(c) = self.server.conns.get_mut(conn) {
                            c.follow = Some(Follow::Logs(service.clone()));
                        }
                    }
                    Ok(serde_json::to_value(tail).unwrap_or_default())
                }
            },
            Op::Reload => self
                .reload()
                .map(|d| serde_json::to_value(d).unwrap_or_default()),
            Op::Poweroff => {
                self.begin_shutdown(if self.opts.init {
                    Halt::Poweroff
                } else {
                    Halt::Exit
                });
                Ok(serde_json::Value::Null)
            }
            Op::Reboot => {
                self.begin_shutdown(if self.opts.init {
                    Halt::Reboot
                } else {
                    Halt::Exit
                });
                Ok(serde_json::Value::Null)
            }
            Op::Events { follow, since } => {
                let evs: Vec<_> = self.events.since(since).cloned().collect();
                if follow {
                    if let Some(c) = self.server.conns.get_mut(conn) {
                        c.follow = Some(Follow::Events);
                    }
                }
                Ok(serde_json::to_value(evs).unwrap_or_default())
            }
            Op::Active { master } => {
                self.set_master(master);
                Ok(serde_json::Value::Null)
            }
            Op::Subsystem { name, request } => {
                match self.subsystems.iter_mut().find(|s| s.name() == name) {
                    Some(s) => s.request(request),
                    None => Err(format!(
                        "no subsystem `{name}` in this flexvisor (hosted: {})",
                        self.subsystems
                            .iter()
                            .map(|s| s.name().to_owned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        };
        let r = match reply {
            Ok(data) => Reply::Ok { data },
            Err(message) => Reply::Error { message },
        };
        if let Some(c) = self.server.conns.get_mut(conn) {
            c.send(&r);
        }
    }

    // ----- the loop -----------------------------------------------------

    /// Run until shutdown completes; returns how the system should end.
    pub fn run(mut self) -> Halt {
        loop {
            self.schedule();
            if let Mode::Stopping {
                deadline,
                halt,
                killed,
            } = self.mode
            {
                // A running hook (the backup hook of an orderly stop:
                // demote) is waited for too, within the same bound.
                let all_down =
                    self.svcs.values().all(|s| !s.life.running) && self.hooks.running.is_none();
                if all_down {
                    return self.finish(halt);
                }
                let now = Instant::now();
                if now >= deadline && !killed {
                    self.emit(
                        "supervisor",
                        None,
                        "shutdown bound reached; killing what is left".into(),
                    );
                    let names: Vec<String> = self.svcs.keys().cloned().collect();
                    for n in &names {
                        self.kill_all(n);
                    }
                    if let Some(pid) = self.hook_pid {
                        let _ = killpg(pid, Signal::SIGKILL);
                    }
                    self.mode = Mode::Stopping {
                        deadline: now + Duration::from_secs(2),
                        halt,
                        killed: true,
                    };
                } else if now >= deadline {
                    self.emit(
                        "supervisor",
                        None,
                        "processes survive SIGKILL; giving up".into(),
                    );
                    return self.finish(halt);
                }
            }
            self.poll_once();
        }
    }

    fn finish(mut self, halt: Halt) -> Halt {
        for s in self.svcs.values_mut() {
            let _ = s.logs.drain_final();
        }
        if let Some(cg) = &self.cgroups {
            cg.remove_all();
        }
        if let Some(w) = &mut self.watchdog {
            w.disarm();
        }
        self.emit("supervisor", None, "all services stopped".into());
        halt
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut take = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        for s in self.svcs.values() {
            if let Some(t) = s.timer {
                take(t);
            }
            if let Some(t) = s.wd_deadline {
                take(t);
            }
            if s.life.phase == Phase::Starting && s.ready_run.is_none() {
                if let Some(t) = s.ready_next {
                    take(t);
                }
            }
            if let Some(CheckRun::Net(_, t) | CheckRun::Cmd(_, t)) = &s.ready_run {
                take(*t);
            }
            if s.life.phase == Phase::Ready && s.life.running {
                for p in &s.probes {
                    match &p.run {
                        Some(CheckRun::Net(_, t) | CheckRun::Cmd(_, t)) => take(*t),
                        None => take(p.next),
                    }
                }
            }
        }
        if let Mode::Stopping { deadline, .. } = self.mode {
            take(deadline);
        }
        if let Some(w) = &self.watchdog {
            take(w.deadline());
        }
        if let Some(t) = self.hooks.deadline() {
            take(t);
        }
        for s in &self.subsystems {
            if let Some(t) = s.deadline() {
                take(t);
            }
        }
        d
    }

    fn poll_once(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut tokens: Vec<Token> = Vec::new();
        let mut add = |fd: RawFd, events: i16, t: Token| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tokens.push(t);
        };
        use std::os::fd::AsRawFd;
        add(self.sigfd.as_raw_fd(), libc::POLLIN, Token::Signal);
        add(self.server.fd(), libc::POLLIN, Token::Listener);
        add(self.hook_logs.read_fd(), libc::POLLIN, Token::HookLog);
        for (i, c) in self.server.conns.iter().enumerate() {
            let ev = libc::POLLIN | if c.wants_write() { libc::POLLOUT } else { 0 };
            add(c.fd(), ev, Token::Conn(i));
        }
        for (i, s) in self.svcs.values().enumerate() {
            add(s.logs.read_fd(), libc::POLLIN, Token::Log(i));
            if let Some(p) = &s.notify_pipe {
                add(p.read.as_raw_fd(), libc::POLLIN, Token::NotifyPipe(i));
            }
            if let Some(n) = &s.notify_sock {
                add(n.fd(), libc::POLLIN, Token::NotifySock(i));
            }
            if let Some(fd) = &s.main_pidfd {
                add(fd.as_raw_fd(), libc::POLLIN, Token::MainPid(i));
            }
            if let Some(CheckRun::Net(c, _)) = &s.ready_run {
                let ev = if c.wants_write() {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                add(c.fd(), ev, Token::Ready(i));
            }
            for (j, p) in s.probes.iter().enumerate() {
                if let Some(CheckRun::Net(c, _)) = &p.run {
                    let ev = if c.wants_write() {
                        libc::POLLOUT
                    } else {
                        libc::POLLIN
                    };
                    add(c.fd(), ev, Token::Probe(i, j));
                }
            }
        }
        for (k, s) in self.subsystems.iter().enumerate() {
            for fd in s.fds() {
                add(fd, libc::POLLIN, Token::Subsystem(k, fd));
            }
        }
        let timeout_ms = self.next_deadline().map_or(-1, |d| {
            let ms = d.saturating_duration_since(Instant::now()).as_millis();
            // Round up so a timer is never polled for just before it is due.
            i32::try_from(ms + 1).unwrap_or(i32::MAX)
        });
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
        // SAFETY: `fds` is a valid, initialised array of `nfds` pollfd for
        // the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };
        if n > 0 {
            // Service names by poll index, taken before dispatching changes
            // the set; not made when only the signalfd is ready (the
            // crash-to-respawn path).
            let others = fds
                .iter()
                .zip(&tokens)
                .any(|(p, t)| p.revents != 0 && *t != Token::Signal);
            let names: Vec<String> = if others {
                self.svcs.keys().cloned().collect()
            } else {
                Vec::new()
            };
            for (pfd, tok) in fds.iter().zip(&tokens) {
                if pfd.revents == 0 {
                    continue;
                }
                self.dispatch(*tok, &names);
            }
        }
        self.server.prune();
        self.on_timers();
    }

    fn dispatch(&mut self, tok: Token, names: &[String]) {
        let name = |i: usize| names.get(i).cloned().unwrap_or_default();
        match tok {
            Token::Signal => self.on_signals(),
            Token::Listener => {
                for msg in self.server.accept() {
                    self.events.push("control", None, msg);
                }
            }
            Token::Conn(i) => {
                let reqs = match self.server.conns.get_mut(i) {
                    Some(c) => {
                        c.flush();
                        c.read_requests()
                    }
                    None => return,
                };
                for r in reqs {
                    match r {
                        Ok(req) => self.handle_request(i, req.op),
                        Err(message) => {
                            if let Some(c) = self.server.conns.get_mut(i) {
                                c.send(&Reply::Error { message });
                            }
                        }
                    }
                }
            }
            Token::Log(i) => self.pump_logs(&name(i), false),
            Token::HookLog => {
                self.pump_hook_logs(false);
            }
            Token::NotifyPipe(i) => {
                let n = name(i);
                let Some(s) = self.svcs.get_mut(&n) else {
                    return;
                };
                match s.notify_pipe.as_ref().map(NotifyPipe::poll_ready) {
                    Some(Some(true)) => {
                        s.notify_pipe = None;
                        self.feed(&n, Event::Ready);
                    }
                    Some(None) => s.notify_pipe = None,
                    _ => {}
                }
            }
            Token::NotifySock(i) => self.on_notify(&name(i)),
            Token::MainPid(i) => self.on_main_pid_ended(&name(i)),
            Token::Ready(i) => {
                let n = name(i);
                let out = match self.svcs.get_mut(&n).and_then(|s| s.ready_run.as_mut()) {
                    Some(CheckRun::Net(c, _)) => c.advance(),
                    _ => None,
                };
                if let Some(o) = out {
                    self.ready_result(&n, o.is_ok());
                }
            }
            Token::Probe(i, j) => {
                let n = name(i);
                let out = match self
                    .svcs
                    .get_mut(&n)
                    .and_then(|s| s.probes.get_mut(j))
                    .and_then(|p| p.run.as_mut())
                {
                    Some(CheckRun::Net(c, _)) => c.advance(),
                    _ => None,
                };
                if let Some(o) = out {
                    self.probe_result(&n, j, o);
                }
            }
            Token::Subsystem(k, fd) => {
                let mut cx = SubsystemCtx::default();
                if let Some(s) = self.subsystems.get_mut(k) {
                    s.on_readable(fd, &mut cx);
                    let nm = s.name().to_owned();
                    self.apply_ctx(&nm, cx);
                }
            }
        }
    }

    fn apply_ctx(&mut self, source: &str, cx: SubsystemCtx) {
        for m in cx.events {
            self.emit(source, None, m);
        }
        if let Some(m) = cx.set_master {
            // Never bring active services back while shutting down.
            if matches!(self.mode, Mode::Running) {
                self.set_master(m);
            }
        }
    }

    fn pump_logs(&mut self, name: &str, last: bool) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        let lines = if last {
            s.logs.drain_final()
        } else {
            s.logs.drain()
        };
        if lines.is_empty() {
            return;
        }
        for c in &mut self.server.conns {
            if c.follow.as_ref() == Some(&Follow::Logs(name.to_owned())) {
                for l in &lines {
                    c.send(&Reply::Log {
                        service: name.to_owned(),
                        line: l.clone(),
                    });
                }
            }
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let Ok(sig) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => self.reap(),
                Signal::SIGTERM | Signal::SIGPWR | Signal::SIGUSR2 => {
                    self.begin_shutdown(if self.opts.init {
                        Halt::Poweroff
                    } else {
                        Halt::Exit
                    })
                }
                Signal::SIGINT => self.begin_shutdown(if self.opts.init {
                    Halt::Reboot
                } else {
                    Halt::Exit
                }),
                Signal::SIGHUP => {
                    let _ = self.reload();
                }
                _ => {}
            }
        }
        // A SIGCHLD may coalesce with others; reaping is cheap and safe.
        self.reap();
    }

    /// Reap and act on every ended child; a crashed service's respawn
    /// comes before the console and event output about it.
    fn reap(&mut self) {
        let holding = self.hold_output();
        self.reap_children();
        if holding {
            self.release_output();
        }
    }

    fn reap_children(&mut self) {
        for r in reaper::reap_all() {
            match self.pids.remove(&r.pid) {
                Some(Owner::Main(name)) => {
                    // A MAINPID= sent before this exit is in the socket:
                    // act on it first, so a forking service's parent
                    // exiting is not taken for the service ending.
                    if self
                        .svcs
                        .get(&name)
                        .is_some_and(|s| s.notify_sock.is_some())
                    {
                        self.pids.insert(r.pid, Owner::Main(name.clone()));
                        self.on_notify(&name);
                        self.pids.remove(&r.pid);
                    }
                    if self.svcs.get(&name).is_some_and(|s| s.pid != Some(r.pid)) {
                        self.push_event(
                            "service",
                            Some(&name),
                            format!("former main pid {} ended: {}", r.pid, r.exit.description),
                        );
                        continue;
                    }
                    self.main_exited(&name, r.exit);
                }
                Some(Owner::Check(name, slot)) => {
                    let ok = r.exit.success;
                    match slot {
                        Slot::Readiness => self.ready_result(&name, ok),
                        Slot::Probe(j) => {
                            let o = if ok {
                                Ok("exit 0".into())
                            } else {
                                Err(r.exit.description.clone())
                            };
                            self.probe_result(&name, j, o);
                        }
                    }
                }
                Some(Owner::Former(name)) => {
                    self.push_event(
                        "service",
                        Some(&name),
                        format!("former main pid {} ended: {}", r.pid, r.exit.description),
                    );
                }
                Some(Owner::Hook) => {
                    self.pump_hook_logs(true);
                    let since = self.hook_started_ms;
                    let last_output = self
                        .hook_logs
                        .tail(50)
                        .into_iter()
                        .rev()
                        .find(|l| l.unix_ms >= since && !l.text.trim().is_empty())
                        .map(|l| l.text);
                    if self.hook_pid == Some(r.pid) {
                        self.hook_pid = None;
                    }
                    let ran = self.hooks.running.as_ref().map(|h| h.role);
                    self.feed_hook(HookEvent::Ended {
                        success: r.exit.success,
                        description: r.exit.description,
                        last_output,
                    });
                    let succeeded = self
                        .hooks
                        .last
                        .as_ref()
                        .filter(|f| f.ok && ran == Some(f.role))
                        .map(|f| f.role);
                    if let Some(role) = succeeded {
                        for k in 0..self.subsystems.len() {
                            let mut cx = SubsystemCtx::default();
                            self.subsystems[k].on_hook_succeeded(role, &mut cx);
                            let nm = self.subsystems[k].name().to_owned();
                            self.apply_ctx(&nm, cx);
                        }
                    }
                }
                None => {
                    self.events.push(
                        "reaper",
                        None,
                        format!("reaped orphan pid {} ({})", r.pid, r.exit.description),
                    );
                }
            }
        }
    }

    /// The main process of `name` ended: its output is read (everything
    /// it wrote is in the pipe), then the lifecycle hears of it.
    fn main_exited(&mut self, name: &str, exit: Exit) {
        self.pump_logs(name, true);
        if let Some(s) = self.svcs.get_mut(name) {
            s.pid = None;
            s.notify_pipe = None;
            s.ready_run = None;
            s.main_pidfd = None;
        }
        self.feed(name, Event::Exited(exit));
    }

    /// The pidfd of an adopted main process turned readable: it ended. If
    /// it was our child (reparented to us), the reaper has its status;
    /// otherwise its parent reaped it and the status is not ours to know,
    /// but the service has ended all the same.
    fn on_main_pid_ended(&mut self, name: &str) {
        let holding = self.hold_output();
        self.main_pid_ended(name);
        if holding {
            self.release_output();
        }
    }

    fn main_pid_ended(&mut self, name: &str) {
        self.reap_children();
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        if s.main_pidfd.take().is_none() {
            return;
        }
        let Some(pid) = s.pid else { return };
        if !matches!(self.pids.get(&pid), Some(Owner::Main(n)) if n == name) {
            return;
        }
        self.pids.remove(&pid);
        let exit = Exit {
            success: false,
            description: format!(
                "main pid {pid} ended (reaped by its parent; exit status unknown)"
            ),
        };
        self.main_exited(name, exit);
    }

    /// Act on every waiting sd_notify message of a service.
    fn on_notify(&mut self, n: &str) {
        let Some(s) = self.svcs.get_mut(n) else {
            return;
        };
        let msgs = s
            .notify_sock
            .as_ref()
            .map(NotifySocket::recv_all)
            .unwrap_or_default();
        for m in msgs {
            match m {
                SdMessage::Ready => {
                    self.feed(n, Event::Ready);
                    self.arm_watchdog(n);
                }
                SdMessage::Watchdog => self.arm_watchdog(n),
                SdMessage::Status(t) => {
                    if let Some(s) = self.svcs.get_mut(n) {
                        s.status_text = Some(t);
                    }
                }
                SdMessage::MainPid(p) => self.adopt_main_pid(n, Pid::from_raw(p)),
                SdMessage::Stopping => {}
            }
        }
    }

    /// `MAINPID=`: a service that forked names its new main process. It is
    /// accepted only if it is a process of this service (in its cgroup, or
    /// in its session or process group, or a descendant of the current
    /// main process); from then on its exit is the service's exit, and the
    /// exit of the former main process is only recorded.
    fn adopt_main_pid(&mut self, name: &str, new: Pid) {
        let Some(s) = self.svcs.get(name) else { return };
        let Some(old) = s.pid else {
            self.emit(
                "service",
                Some(name),
                format!("MAINPID={new} ignored: no main process running"),
            );
            return;
        };
        if old == new {
            return;
        }
        let st = process::stat(new);
        let ours = match (&s.cgroup, st) {
            (_, None) => false,
            (Some(dir), _) if cgroup::pids(dir).contains(&new) => true,
            (_, Some((_, pgrp, session))) => {
                s.sid.is_some_and(|sid| sid.as_raw() == session)
                    || s.pgid.is_some_and(|pg| pg.as_raw() == pgrp)
                    || process::descends_from(new, old)
            }
        };
        if !ours {
            self.emit(
                "service",
                Some(name),
                format!("MAINPID={new} refused: not a running process of this service"),
            );
            return;
        }
        if matches!(self.pids.get(&old), Some(Owner::Main(n)) if n == name) {
            self.pids.insert(old, Owner::Former(name.to_owned()));
        }
        self.pids.insert(new, Owner::Main(name.to_owned()));
        let pidfd = process::pidfd_open(new);
        if let Err(e) = &pidfd {
            self.emit(
                "service",
                Some(name),
                format!("MAINPID={new}: no pidfd ({e}); its end is seen only if it is reaped here"),
            );
        }
        if let Some(s) = self.svcs.get_mut(name) {
            s.pid = Some(new);
            s.main_pidfd = pidfd.ok();
            if let Some((_, pgrp, _)) = st {
                s.pgid = Some(Pid::from_raw(pgrp));
            }
        }
        self.emit(
            "service",
            Some(name),
            format!("main pid is now {new} (MAINPID=, was {old})"),
        );
    }

    /// (Re)start the sd_notify watchdog period of a ready service.
    fn arm_watchdog(&mut self, name: &str) {
        if let Some(s) = self.svcs.get_mut(name) {
            if let (Some(ms), Phase::Ready) = (s.spec.watchdog_ms, s.life.phase) {
                s.wd_deadline = Some(Instant::now() + Duration::from_millis(ms));
            }
        }
    }

    fn ready_result(&mut self, name: &str, ok: bool) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        if let Some(CheckRun::Cmd(pid, _)) = s.ready_run.take() {
            self.pids.remove(&pid);
        }
        if ok && s.life.phase == Phase::Starting {
            s.ready_next = None;
            self.feed(name, Event::Ready);
        } else if let Readiness::Tcp { interval_ms, .. } | Readiness::Command { interval_ms, .. } =
            s.spec.readiness
        {
            s.ready_next = Some(Instant::now() + Duration::from_millis(interval_ms));
        }
    }

    fn probe_result(&mut self, name: &str, j: usize, o: crate::probe::Outcome) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        let Some(p) = s.probes.get_mut(j) else { return };
        p.run = None;
        p.next = Instant::now() + Duration::from_millis(p.spec.interval_ms);
        let ok = o.is_ok();
        let detail = o.unwrap_or_else(|e| e);
        let change = p
            .health
            .record(ok, p.spec.rise, p.spec.fall, detail.clone());
        let restart = p.spec.restart;
        if let Some(h) = change {
            self.emit(
                "health",
                Some(name),
                format!("{} ({detail})", if h { "healthy" } else { "unhealthy" }),
            );
            if !h && restart {
                self.feed(name, Event::Unhealthy);
            }
        }
    }

    fn start_check(&mut self, name: &str, slot: Slot) {
        let Some(s) = self.svcs.get(name) else { return };
        let (check, timeout) = match slot {
            Slot::Readiness => match &s.spec.readiness {
                Readiness::Tcp {
                    address,
                    interval_ms,
                } => (
                    ProbeCheck::Tcp { address: *address },
                    Duration::from_millis((*interval_ms).max(1000)),
                ),
                Readiness::Command {
                    command,
                    interval_ms,
                } => (
                    ProbeCheck::Command {
                        command: command.clone(),
                    },
                    Duration::from_millis((*interval_ms).max(5000)),
                ),
                _ => return,
            },
            Slot::Probe(j) => match s.probes.get(j) {
                Some(p) => (
                    p.spec.check.clone(),
                    Duration::from_millis(p.spec.timeout_ms),
                ),
                None => return,
            },
        };
        let deadline = Instant::now() + timeout;
        let run = match check {
            ProbeCheck::Tcp { address } => {
                NetCheck::start(address, None).map(|c| CheckRun::Net(c, deadline))
            }
            ProbeCheck::Http { address, path } => {
                NetCheck::start(address, Some(&path)).map(|c| CheckRun::Net(c, deadline))
            }
            ProbeCheck::Command { command } => {
                let mut l = Launch::command(&command, Some(&s.spec));
                let spawned = match self.identities.get(l.user.as_deref(), l.group.as_deref()) {
                    Ok(id) => {
                        l.identity = id;
                        process::spawn(&l, s.logs.writer(), None)
                    }
                    Err(e) => Err(e),
                };
                match spawned {
                    Ok(pid) => {
                        self.pids.insert(pid, Owner::Check(name.to_owned(), slot));
                        Ok(CheckRun::Cmd(pid, deadline))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match (run, slot) {
            (Ok(r), Slot::Readiness) => {
                if let Some(s) = self.svcs.get_mut(name) {
                    s.ready_run = Some(r);
                }
            }
            (Ok(r), Slot::Probe(j)) => {
                if let Some(p) = self.svcs.get_mut(name).and_then(|s| s.probes.get_mut(j)) {
                    p.run = Some(r);
                }
            }
            (Err(_), Slot::Readiness) => self.ready_result(name, false),
            (Err(e), Slot::Probe(j)) => self.probe_result(name, j, Err(e)),
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let names: Vec<String> = self.svcs.keys().cloned().collect();
        for n in &names {
            let Some(s) = self.svcs.get_mut(n) else {
                continue;
            };
            if s.timer.is_some_and(|t| t <= now) {
                s.timer = None;
                self.feed(n, Event::Timeout);
            }
            let Some(s) = self.svcs.get_mut(n) else {
                continue;
            };
            if s.wd_deadline.is_some_and(|t| t <= now) {
                s.wd_deadline = None;
                let ms = s.spec.watchdog_ms.unwrap_or(0);
                if s.life.phase == Phase::Ready {
                    self.emit("service", Some(n), format!("no WATCHDOG=1 within {ms} ms"));
                    self.feed(n, Event::Unhealthy);
                }
            }
            let Some(s) = self.svcs.get_mut(n) else {
                continue;
            };
            // Readiness checks.
            match &mut s.ready_run {
                Some(CheckRun::Net(_, t)) if *t <= now => {
                    s.ready_run = None;
                    self.ready_result(n, false);
                }
                Some(CheckRun::Cmd(pid, t)) if *t <= now => {
                    let _ = killpg(*pid, Signal::SIGKILL);
                    *t = now + Duration::from_secs(3600);
                }
                None if s.life.phase == Phase::Starting
                    && s.ready_next.is_some_and(|t| t <= now) =>
                {
                    s.ready_next = None;
                    self.start_check(n, Slot::Readiness);
                }
                _ => {}
            }
            // Health probes run while ready.
            let Some(s) = self.svcs.get_mut(n) else {
                continue;
            };
            if !(s.life.phase == Phase::Ready && s.life.running) {
                continue;
            }
            for j in 0..s.probes.len() {
                let Some(s) = self.svcs.get_mut(n) else { break };
                let Some(p) = s.probes.get_mut(j) else { break };
                match &mut p.run {
                    Some(CheckRun::Net(_, t)) if *t <= now => {
                        let timeout = p.spec.timeout_ms;
                        self.probe_result(n, j, Err(format!("no answer within {timeout} ms")));
                    }
                    Some(CheckRun::Cmd(pid, t)) if *t <= now => {
                        let _ = killpg(*pid, Signal::SIGKILL);
                        *t = now + Duration::from_secs(3600);
                    }
                    None if p.next <= now => self.start_check(n, Slot::Probe(j)),
                    _ => {}
                }
            }
        }
        if self.hooks.deadline().is_some_and(|t| t <= now) {
            self.feed_hook(HookEvent::Tick);
        }
        if let Some(w) = &mut self.watchdog {
            w.tick(now);
        }
        let mut services = None;
        for k in 0..self.subsystems.len() {
            let mut cx = SubsystemCtx::default();
            let due = self.subsystems[k].deadline().is_some_and(|t| t <= now);
            if due {
                let list = services.get_or_insert_with(|| self.services_for_health());
                self.subsystems[k].on_services(list);
                self.subsystems[k].on_tick(now, &mut cx);
                let nm = self.subsystems[k].name().to_owned();
                self.apply_ctx(&nm, cx);
            }
        }
    }
}
