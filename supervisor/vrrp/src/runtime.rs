//! The runtime of one VRRP instance: a tokio task that feeds the pure state machine
//! with packets, timers and tracker verdicts, and carries out its actions on the
//! kernel (raw socket, rtnetlink, packet socket).
//!
//! This is the API the supervisor hosts:
//!
//! ```no_run
//! # async fn demo(cfg: flexvisor_vrrp::InstanceConfig) -> Result<(), flexvisor_vrrp::runtime::RuntimeError> {
//! use flexvisor_vrrp::{Health, Instance};
//! let (tx, mut transitions) = tokio::sync::mpsc::unbounded_channel();
//! let vip = Instance::start(cfg, Default::default(), tx).await?;
//! vip.set_tracker("raid", Health::Critical).await?;      // from the health crate
//! println!("{}", serde_json::to_string(&vip.status()).unwrap_or_default());
//! if let Some(t) = transitions.recv().await { /* run role hooks for t.to */ }
//! vip.stop().await?;                                       // priority 0, addresses removed
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::announce::{self, AnnounceConfig, PacketSender};
use crate::config::{ConfigError, InstanceConfig};
use crate::netlink::{Interface, LinkWatch, Netlink, NetlinkError};
use crate::nftables::{self, Batch, NftError};
use crate::packet::{self, Advertisement, MULTICAST_V4, MULTICAST_V6};
use crate::socket::{Received, VrrpSocket};
use crate::state::{Action, Event, Machine, State, Timer};
use crate::track::{self, Health, TrackerSpec};

/// Why an instance could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// rtnetlink failure.
    #[error("instance {instance:?}: {source}")]
    Netlink {
        /// Instance.
        instance: String,
        /// Cause.
        #[source]
        source: NetlinkError,
    },
    /// A socket could not be set up.
    #[error("instance {instance:?}: cannot open {what} on {iface}: {source}")]
    Socket {
        /// Instance.
        instance: String,
        /// Which socket.
        what: &'static str,
        /// Interface.
        iface: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Accept_Mode off needs nf_tables, and the kernel refused it.
    #[error("instance {instance:?}: accept = false needs nf_tables: {source}")]
    AcceptFilter {
        /// Instance.
        instance: String,
        /// Cause.
        #[source]
        source: NftError,
    },
    /// The instance task is gone.
    #[error("instance {0:?} is no longer running")]
    Gone(String),
}

/// A state change, as published on the transitions channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransitionEvent {
    /// Instance name.
    pub instance: String,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Why, in words.
    pub cause: String,
    /// Effective priority at the time.
    pub priority: u8,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// What `flexctl vip` shows for one instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Instance name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// Current state.
    pub state: State,
    /// Effective priority.
    pub priority: u8,
    /// How the effective priority came about.
    pub priority_why: String,
    /// Fault reason, if in Fault.
    pub fault: Option<String>,
    /// Our source address.
    pub local: IpAddr,
    /// The current master as far as this node knows.
    pub master: Option<IpAddr>,
    /// Virtual addresses.
    pub addresses: Vec<String>,
    /// Last transition.
    pub last_transition: Option<TransitionEvent>,
    /// Advertisements sent.
    pub adverts_sent: u64,
    /// Valid advertisements received.
    pub adverts_received: u64,
    /// Dropped packets by reason (see [`packet::PacketError::reason`]; also "own",
    /// "unknown_peer").
    pub dropped: BTreeMap<String, u64>,
    /// Failed kernel operations by kind ("send", "add_address", ...).
    pub errors: BTreeMap<String, u64>,
    /// The last such failure, in words.
    pub last_error: Option<String>,
    /// Preemption held until this node has copied the master's stores.
    #[serde(default)]
    pub preempt_held: bool,
}

impl std::fmt::Display for Status {
    /// One line, as `flexctl vip` prints it: name, VRID, interface, state, effective
    /// priority and why, master, last transition and its cause, drops if any.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} vrid {} on {}: {} priority {} ({}), master {}",
            self.name,
            self.vrid,
            self.interface,
            self.state,
            self.priority,
            self.priority_why,
            self.master
                .map(|m| m.to_string())
                .unwrap_or_else(|| "unknown".into())
        )?;
        if let Some(t) = &self.last_transition {
            write!(f, ", last {} -> {} ({})", t.from, t.to, t.cause)?;
        }
        if !self.dropped.is_empty() {
            write!(f, ", dropped {:?}", self.dropped)?;
        }
        if let Some(e) = &self.last_error {
            write!(f, ", last error: {e}")?;
        }
        if self.preempt_held {
            write!(f, ", preemption held until the backup hook has succeeded")?;
        }
        Ok(())
    }
}

enum Command {
    Tracker(String, Health),
    HoldPreempt(bool),
    Stop(oneshot::Sender<()>),
}

/// A running VRRP instance. Dropping it stops the instance in an orderly way
/// (priority 0, addresses removed) as soon as the runtime polls it.
#[derive(Debug)]
pub struct Instance {
    name: String,
    cmd: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Tracker(n, h) => write!(f, "Tracker({n}, {h})"),
            Command::HoldPreempt(h) => write!(f, "HoldPreempt({h})"),
            Command::Stop(_) => f.write_str("Stop"),
        }
    }
}

impl Instance {
    /// Validates `cfg`, looks up the interface, opens the sockets, removes stale
    /// virtual addresses and starts the instance (RFC 5798 Startup event). `verdicts`
    /// are the trackers' current verdicts (missing ones count as OK); every state
    /// change is sent on `transitions`.
    pub async fn start(
        cfg: InstanceConfig,
        verdicts: BTreeMap<String, Health>,
        transitions: mpsc::UnboundedSender<TransitionEvent>,
    ) -> Result<Instance, RuntimeError> {
        cfg.validate()?;
        let name = cfg.name.clone();
        let nl_err = |source| RuntimeError::Netlink {
            instance: cfg.name.clone(),
            source,
        };
        let nl = Netlink::open().map_err(nl_err)?;
        let ips = cfg.ips();
        let iface = nl.interface(&cfg.interface, &ips).await.map_err(nl_err)?;
        let v6 = ips.first().is_some_and(|a| a.is_ipv6());
        let local = match (cfg.source, v6) {
            (Some(s), _) => s,
            (None, false) => iface.ipv4.map(IpAddr::V4).ok_or_else(|| {
                nl_err(NetlinkError::NoSource {
                    iface: cfg.interface.clone(),
                    what: "IPv4",
                })
            })?,
            (None, true) => iface.link_local.map(IpAddr::V6).ok_or_else(|| {
                nl_err(NetlinkError::NoSource {
                    iface: cfg.interface.clone(),
                    what: "IPv6 link-local",
                })
            })?,
        };
        let sock_err = |what, source| RuntimeError::Socket {
            instance: cfg.name.clone(),
            what,
            iface: cfg.interface.clone(),
            source,
        };
        let sock = VrrpSocket::open(&iface.name, iface.index, local)
            .map_err(|e| sock_err("raw VRRP socket", e))?;
        let sender = PacketSender::open(iface.index).map_err(|e| sock_err("packet socket", e))?;

        let link = LinkWatch::open(iface.index).map_err(nl_err)?;
        let link_up = iface.up;
        let specs = cfg.tracker_specs();
        let verdict = evaluate(&cfg, &specs, &verdicts, link_up);
        let machine = Machine::new(cfg.params(), local, verdict.priority, verdict.fault.clone());
        let status = Status {
            name: cfg.name.clone(),
            interface: cfg.interface.clone(),
            vrid: cfg.vrid,
            state: State::Initialize,
            priority: verdict.priority,
            priority_why: verdict.why.clone(),
            fault: verdict.fault.clone(),
            local,
            master: None,
            addresses: cfg.addresses.iter().map(|a| String::from(*a)).collect(),
            last_transition: None,
            adverts_sent: 0,
            adverts_received: 0,
            dropped: BTreeMap::new(),
            errors: BTreeMap::new(),
            last_error: None,
            preempt_held: cfg.hold_preempt,
        };
        let (status_tx, status_rx) = watch::channel(status.clone());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let mut task = Task {
            announce: cfg.announce.into(),
            dsts: if cfg.unicast_peers.is_empty() {
                vec![if v6 {
                    IpAddr::V6(MULTICAST_V6)
                } else {
                    IpAddr::V4(MULTICAST_V4)
                }]
            } else {
                cfg.unicast_peers.clone()
            },
            ips,
            cfg,
            specs,
            verdicts,
            iface,
            local,
            nl,
            sock,
            sender,
            link: Some(link),
            link_up,
            machine: Some(machine),
            timers: BTreeMap::new(),
            announce_at: None,
            burst_at: None,
            burst_left: 0,
            status,
            status_tx,
            transitions,
            cmd_rx,
            drop_table: None,
            nft_seq: 1,
        };
        // A node killed while master leaves its addresses behind; a restarted
        // non-owner must not answer for them until it wins again.
        if task.machine().priority() != 255 {
            task.remove_addresses().await;
        }
        // A node killed while master with Accept_Mode off leaves its table behind:
        // remove it whatever the mode is now. With Accept_Mode off (RFC 5798 §6.1;
        // the owner always accepts) this also proves that nf_tables works here,
        // before the instance starts; otherwise a kernel without it is no error.
        let table = nftables::table_name(&task.iface.name, task.cfg.vrid);
        let stale = nftables::apply(&Batch::remove(&table, v6, 0));
        if !task.cfg.accept && task.cfg.priority != 255 {
            stale.map_err(|source| RuntimeError::AcceptFilter {
                instance: task.cfg.name.clone(),
                source,
            })?;
            task.drop_table = Some(table);
        }
        let handle = tokio::spawn(async move { task.run().await });
        Ok(Instance {
            name,
            cmd: cmd_tx,
            status: status_rx,
            task: handle,
        })
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A snapshot of the current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Reports a tracker's verdict; the effective priority (or fault) follows.
    pub async fn set_tracker(&self, name: &str, health: Health) -> Result<(), RuntimeError> {
        self.cmd
            .send(Command::Tracker(name.to_string(), health))
            .map_err(|_| RuntimeError::Gone(self.name.clone()))
    }

    /// Hold or release preemption (see [`crate::state::Event::HoldPreempt`]).
    pub async fn hold_preempt(&self, held: bool) -> Result<(), RuntimeError> {
        self.cmd
            .send(Command::HoldPreempt(held))
            .map_err(|_| RuntimeError::Gone(self.name.clone()))
    }

    /// Orderly stop: a master sends priority 0 and removes its addresses; returns
    /// once that is done.
    pub async fn stop(self) -> Result<(), RuntimeError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Stop(tx))
            .map_err(|_| RuntimeError::Gone(self.name.clone()))?;
        let _ = rx.await;
        let _ = self.task.await;
        Ok(())
    }
}

struct Task {
    cfg: InstanceConfig,
    specs: Vec<TrackerSpec>,
    verdicts: BTreeMap<String, Health>,
    iface: Interface,
    local: IpAddr,
    ips: Vec<IpAddr>,
    dsts: Vec<IpAddr>,
    announce: AnnounceConfig,
    nl: Netlink,
    sock: VrrpSocket,
    sender: PacketSender,
    link: Option<LinkWatch>,
    link_up: bool,
    machine: Option<Machine>,
    timers: BTreeMap<TimerKey, Instant>,
    announce_at: Option<Instant>,
    /// Next frame set of the current burst, and how many remain after it.
    burst_at: Option<Instant>,
    burst_left: u32,
    status: Status,
    status_tx: watch::Sender<Status>,
    transitions: mpsc::UnboundedSender<TransitionEvent>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    /// Accept_Mode off (non-owner): the nf_tables table that drops traffic for the
    /// addresses while this node is master.
    drop_table: Option<String>,
    nft_seq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Adver,
    MasterDown,
    PreemptDelay,
}

impl From<Timer> for TimerKey {
    fn from(t: Timer) -> Self {
        match t {
            Timer::Adver => TimerKey::Adver,
            Timer::MasterDown => TimerKey::MasterDown,
            Timer::PreemptDelay => TimerKey::PreemptDelay,
        }
    }
}

impl From<TimerKey> for Timer {
    fn from(t: TimerKey) -> Self {
        match t {
            TimerKey::Adver => Timer::Adver,
            TimerKey::MasterDown => Timer::MasterDown,
            TimerKey::PreemptDelay => Timer::PreemptDelay,
        }
    }
}

/// Tracker verdicts plus the interface's link state: a down link is a fault, as in
/// keepalived, so a master that lost its cable releases the addresses and, once the
/// link is back, rejoins through Backup and re-announces if it wins.
fn evaluate(
    cfg: &InstanceConfig,
    specs: &[TrackerSpec],
    verdicts: &BTreeMap<String, Health>,
    link_up: bool,
) -> track::Verdict {
    let mut v = track::evaluate(cfg.priority, specs, verdicts);
    if !link_up {
        let down = format!("interface {} down", cfg.interface);
        v.why.push_str(&format!("; fault: {down}"));
        v.fault = Some(match v.fault {
            Some(f) => format!("{f}, {down}"),
            None => down,
        });
    }
    v
}

async fn link_next(link: &mut Option<LinkWatch>) -> Option<bool> {
    match link {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Task {
    fn machine(&self) -> &Machine {
        // Only `step` takes the machine out, and it always puts one back.
        self.machine
            .as_ref()
            .unwrap_or_else(|| unreachable!("machine is always present"))
    }

    async fn run(&mut self) {
        self.step(Event::Startup).await;
        loop {
            let next = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, at)| (*k, *at));
            tokio::select! {
                r = self.sock.recv() => match r {
                    Ok(rx) => self.on_packet(rx).await,
                    Err(e) => {
                        self.error("receive", format!("receive: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = sleep_opt(next.map(|(_, at)| at)) => {
                    if let Some((k, _)) = next {
                        self.timers.remove(&k);
                        self.step(Event::TimerExpired(k.into())).await;
                    }
                }
                _ = sleep_opt(self.announce_at) => {
                    self.announce_at = (!self.announce.refresh.is_zero())
                        .then(|| Instant::now() + self.announce.refresh);
                    self.announce_burst();
                }
                _ = sleep_opt(self.burst_at) => self.burst_step(),
                up = link_next(&mut self.link) => match up {
                    Some(up) if up != self.link_up => {
                        self.link_up = up;
                        self.reevaluate().await;
                    }
                    Some(_) => {}
                    None => {
                        self.error("link_watch", "link notifications stopped".into());
                        self.link = None;
                    }
                },
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Tracker(name, health)) => {
                        self.verdicts.insert(name, health);
                        self.reevaluate().await;
                    }
                    Some(Command::HoldPreempt(held)) => {
                        self.step(Event::HoldPreempt(held)).await;
                    }
                    Some(Command::Stop(ack)) => {
                        self.step(Event::Shutdown).await;
                        let _ = ack.send(());
                        return;
                    }
                    None => {
                        self.step(Event::Shutdown).await;
                        return;
                    }
                },
            }
        }
    }

    async fn reevaluate(&mut self) {
        let v = evaluate(&self.cfg, &self.specs, &self.verdicts, self.link_up);
        self.status.priority_why = v.why.clone();
        if v.priority != self.machine().priority() || v.fault != self.status.fault {
            self.status.fault = v.fault.clone();
            self.step(Event::Priority {
                priority: v.priority,
                fault: v.fault,
            })
            .await;
        } else {
            self.publish();
        }
    }

    async fn on_packet(&mut self, rx: Received) {
        let env = match rx.envelope {
            Ok(env) => env,
            Err(e) => return self.drop_packet(e.reason()),
        };
        if env.src == self.local {
            return self.drop_packet("own");
        }
        if !self.cfg.unicast_peers.is_empty() && !self.cfg.unicast_peers.contains(&env.src) {
            return self.drop_packet("unknown_peer");
        }
        match packet::check_received(&rx.payload, env, self.cfg.vrid, &self.ips) {
            Ok(adv) => {
                self.status.adverts_received += 1;
                self.step(Event::Advert {
                    src: env.src,
                    priority: adv.priority,
                    max_adver_int: adv.max_adver_int,
                })
                .await;
            }
            Err(e) => self.drop_packet(e.reason()),
        }
    }

    fn drop_packet(&mut self, reason: &str) {
        *self.status.dropped.entry(reason.to_string()).or_default() += 1;
        self.publish();
    }

    fn error(&mut self, kind: &str, msg: String) {
        *self.status.errors.entry(kind.to_string()).or_default() += 1;
        self.status.last_error = Some(msg);
    }

    async fn step(&mut self, ev: Event) {
        let Some(m) = self.machine.take() else {
            return;
        };
        let (m, actions) = m.step(ev);
        self.machine = Some(m);
        for a in actions {
            self.execute(a).await;
        }
        self.publish();
    }

    async fn execute(&mut self, a: Action) {
        match a {
            Action::SendAdvert { priority } => self.send_advert(priority).await,
            Action::SetTimer(t, d) => {
                self.timers.insert(t.into(), Instant::now() + d);
            }
            Action::CancelTimer(t) => {
                self.timers.remove(&t.into());
            }
            Action::AddAddresses => {
                // The filter goes in first: no moment where the address accepts.
                self.accept_filter(true);
                for a in self.cfg.addresses.clone() {
                    if let Err(e) = self.nl.add(self.iface.index, a.addr, a.prefix).await {
                        self.error("add_address", e.to_string());
                    }
                }
            }
            Action::RemoveAddresses => {
                self.announce_at = None;
                self.burst_at = None;
                self.remove_addresses().await;
            }
            Action::Announce => {
                self.announce_burst();
                let next = if !self.announce.delay.is_zero() {
                    self.announce.delay
                } else {
                    self.announce.refresh
                };
                self.announce_at = (!next.is_zero()).then(|| Instant::now() + next);
            }
            Action::Transition { from, to, cause } => {
                let ev = TransitionEvent {
                    instance: self.cfg.name.clone(),
                    from,
                    to,
                    cause: cause.to_string(),
                    priority: self.machine().priority(),
                    at_unix_ms: now_ms(),
                };
                self.status.last_transition = Some(ev.clone());
                let _ = self.transitions.send(ev);
            }
        }
    }

    async fn remove_addresses(&mut self) {
        for a in self.cfg.addresses.clone() {
            if let Err(e) = self.nl.delete(self.iface.index, a.addr, a.prefix).await {
                self.error("remove_address", e.to_string());
            }
        }
        self.accept_filter(false);
    }

    /// Accept_Mode off: install (on becoming master) or remove (on leaving) the
    /// table that drops traffic for the addresses. A no-op with accept = true.
    fn accept_filter(&mut self, on: bool) {
        let Some(table) = self.drop_table.clone() else {
            return;
        };
        let seq = self.nft_seq;
        self.nft_seq = self.nft_seq.wrapping_add(1024);
        let v6 = self.ips.first().is_some_and(IpAddr::is_ipv6);
        let (batch, kind) = if on {
            let b = Batch::install(&table, self.iface.index, &self.ips, seq);
            (b, "accept_filter_install")
        } else {
            (Batch::remove(&table, v6, seq), "accept_filter_remove")
        };
        if let Err(e) = nftables::apply(&batch) {
            self.error(kind, e.to_string());
        }
    }

    async fn send_advert(&mut self, priority: u8) {
        let adv = Advertisement {
            vrid: self.cfg.vrid,
            priority,
            max_adver_int: self.cfg.advert_interval_cs,
            addresses: self.ips.clone(),
        };
        for dst in self.dsts.clone() {
            let r = match adv.encode(self.local, dst) {
                Ok(bytes) => self.sock.send(&bytes, dst).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match r {
                Ok(()) => self.status.adverts_sent += 1,
                Err(e) => self.error("send", format!("advertisement to {dst}: {e}")),
            }
        }
    }

    /// Starts a burst: the first frames now, the rest `spacing` apart from the
    /// event loop, so packets and timers keep being served meanwhile.
    fn announce_burst(&mut self) {
        self.burst_left = self.announce.repeat.max(1);
        self.burst_step();
    }

    fn burst_step(&mut self) {
        self.burst_at = None;
        if self.burst_left == 0 {
            return;
        }
        self.burst_left -= 1;
        let frames = announce::frames(self.iface.mac, self.iface.link_local, &self.ips);
        for f in &frames {
            if let Err(e) = self.sender.send(f) {
                self.error("announce", format!("announcement: {e}"));
            }
        }
        if self.burst_left > 0 {
            self.burst_at = Some(Instant::now() + self.announce.spacing);
        }
    }

    fn publish(&mut self) {
        let (state, priority, master, held) = {
            let m = self.machine();
            (m.state(), m.priority(), m.master(), m.preempt_held())
        };
        self.status.preempt_held = held;
        self.status.state = state;
        self.status.priority = priority;
        self.status.master = master;
        if state != State::Fault {
            self.status.fault = None;
        }
        self.status_tx.send_replace(self.status.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_names_state_priority_reason_master_and_cause() {
        let mut dropped = BTreeMap::new();
        dropped.insert("checksum".to_string(), 2);
        let s = Status {
            name: "vip-db1".into(),
            interface: "eth0".into(),
            vrid: 51,
            state: State::Backup,
            priority: 90,
            priority_why: "configured 150; raid CRITICAL -60 => 90".into(),
            fault: None,
            local: "10.0.0.2".parse().unwrap(),
            master: Some("10.0.0.1".parse().unwrap()),
            addresses: vec!["10.0.0.100/24".into()],
            last_transition: Some(TransitionEvent {
                instance: "vip-db1".into(),
                from: State::Master,
                to: State::Backup,
                cause: "advertisement from 10.0.0.1 with priority 100".into(),
                priority: 90,
                at_unix_ms: 0,
            }),
            adverts_sent: 0,
            adverts_received: 0,
            dropped,
            errors: BTreeMap::new(),
            last_error: None,
            preempt_held: false,
        };
        let line = s.to_string();
        for part in [
            "vip-db1 vrid 51 on eth0: BACKUP priority 90",
            "raid CRITICAL -60",
            "master 10.0.0.1",
            "MASTER -> BACKUP (advertisement from 10.0.0.1 with priority 100)",
            "\"checksum\": 2",
        ] {
            assert!(line.contains(part), "{part:?} missing in {line}");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["state"], "Backup");
        assert_eq!(json["last_transition"]["to"], "Backup");
    }
}
