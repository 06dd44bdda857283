//! The VRRPv3 state machine of RFC 5798 §6.4, as a pure function.
//!
//! [`Machine::step`] takes the machine and one [`Event`] and returns the next machine
//! and the [`Action`]s the runtime must carry out, in order: send an advertisement,
//! (re)arm or cancel a timer, add or remove the virtual addresses, announce them
//! (gratuitous ARP / unsolicited NA). Nothing here reads a clock or a socket, so every
//! transition is unit- and property-tested.
//!
//! Beyond the RFC's three states there is [`State::Fault`], entered while a weightless
//! health tracker is CRITICAL (the master steps down with priority 0, exactly as on an
//! orderly stop), and two documented extensions keepalived also has: preemption delay
//! (a backup does not preempt a lower-priority master until the delay after it
//! started has passed) and split-brain healing (a master that hears a lower-priority
//! master advertises at once and re-announces its addresses; a master that yields
//! sends one last advertisement so the winner always hears the loser).

use std::net::IpAddr;
use std::time::Duration;

/// The protocol parameters of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Virtual Router Identifier.
    pub vrid: u8,
    /// Advertisement_Interval in centiseconds, 1..=4095 (default 100).
    pub adver_int_cs: u16,
    /// Preempt_Mode (`nopreempt` sets it false).
    pub preempt: bool,
    /// Centiseconds after startup during which a backup does not preempt.
    pub preempt_delay_cs: u32,
    /// Start with preemption held until [`Event::HoldPreempt`]`(false)`
    /// (extension: a node of a stateful pair copies the master's stores
    /// before it may take over).
    pub hold_preempt: bool,
    /// Accept_Mode: whether a non-owner master accepts packets for the addresses.
    pub accept: bool,
}

/// The protocol state (RFC 5798 §6.4, plus Fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Waiting for a Startup event.
    Initialize,
    /// Monitoring the master.
    Backup,
    /// Holding the virtual addresses and advertising.
    Master,
    /// A weightless tracker is CRITICAL: neither advertising nor monitoring.
    Fault,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// The timers of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Adver_Timer (master).
    Adver,
    /// Master_Down_Timer (backup).
    MasterDown,
    /// End of the preemption delay (backup).
    PreemptDelay,
}

/// What happened to the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Startup (RFC 5798 §6.4.1).
    Startup,
    /// Orderly Shutdown.
    Shutdown,
    /// A timer armed by [`Action::SetTimer`] expired.
    TimerExpired(Timer),
    /// A valid advertisement for our VRID arrived (already checked by the packet module).
    Advert {
        /// Sender's primary address.
        src: IpAddr,
        /// Advertised priority.
        priority: u8,
        /// Advertised interval in centiseconds.
        max_adver_int: u16,
    },
    /// Hold (true) or release preemption: while held, a backup treats a
    /// lower-priority master like a higher one (it never preempts it);
    /// a master that is gone is still replaced after Master_Down_Interval.
    HoldPreempt(bool),
    /// The trackers changed the effective priority or the fault condition.
    Priority {
        /// New effective priority, 1..=255.
        priority: u8,
        /// Fault reason while a weightless tracker is CRITICAL.
        fault: Option<String>,
    },
}

/// Why a transition happened; shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Startup event.
    Startup,
    /// Orderly shutdown.
    Shutdown,
    /// Master_Down_Timer expired: no (or only lower-priority) advertisements.
    MasterDown,
    /// An advertisement with higher priority, or equal priority and a higher address.
    PreemptedBy {
        /// The new master.
        src: IpAddr,
        /// Its priority.
        priority: u8,
    },
    /// A weightless tracker turned CRITICAL.
    Fault(String),
    /// The fault cleared.
    FaultCleared,
    /// The effective priority became 255 (address owner).
    Owner,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Startup => f.write_str("startup"),
            Cause::Shutdown => f.write_str("shutdown"),
            Cause::MasterDown => f.write_str("master down timer expired"),
            Cause::PreemptedBy { src, priority } => {
                write!(f, "advertisement from {src} with priority {priority}")
            }
            Cause::Fault(r) => write!(f, "fault: {r}"),
            Cause::FaultCleared => f.write_str("fault cleared"),
            Cause::Owner => f.write_str("became address owner (priority 255)"),
        }
    }
}

/// Something the runtime must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0 when stepping down).
    SendAdvert {
        /// Priority field.
        priority: u8,
    },
    /// (Re)arm a timer to expire after the duration.
    SetTimer(Timer, Duration),
    /// Disarm a timer.
    CancelTimer(Timer),
    /// Add the virtual addresses to the interface.
    AddAddresses,
    /// Remove the virtual addresses from the interface.
    RemoveAddresses,
    /// Send gratuitous ARP / unsolicited neighbour advertisements for the addresses.
    Announce,
    /// The state changed.
    Transition {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        cause: Cause,
    },
}

/// Skew_Time of RFC 5798 §6.1: ((256 - Priority) * Master_Adver_Interval) / 256,
/// computed in microseconds so that no fraction of a centisecond is lost.
pub fn skew_time(priority: u8, master_adver_int_cs: u16) -> Duration {
    let us = (256 - u64::from(priority)) * u64::from(master_adver_int_cs) * 10_000 / 256;
    Duration::from_micros(us)
}

/// Master_Down_Interval of RFC 5798 §6.1: (3 * Master_Adver_Interval) + Skew_Time.
pub fn master_down_interval(priority: u8, master_adver_int_cs: u16) -> Duration {
    cs(u32::from(master_adver_int_cs) * 3) + skew_time(priority, master_adver_int_cs)
}

fn cs(n: u32) -> Duration {
    Duration::from_millis(u64::from(n) * 10)
}

/// One virtual router's protocol state. A value: [`Machine::step`] consumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    params: Params,
    local: IpAddr,
    state: State,
    priority: u8,
    fault: Option<String>,
    master_adver_int_cs: u16,
    master: Option<IpAddr>,
    preempt_armed: bool,
    preempt_held: bool,
}

impl Machine {
    /// A machine in Initialize. `local` is the primary address of the interface
    /// (the tie-breaker of §6.4.3); `priority` the effective priority (1..=255).
    pub fn new(params: Params, local: IpAddr, priority: u8, fault: Option<String>) -> Self {
        let master_adver_int_cs = params.adver_int_cs;
        let preempt_held = params.hold_preempt;
        Machine {
            params,
            local,
            state: State::Initialize,
            priority: priority.max(1),
            fault,
            master_adver_int_cs,
            master: None,
            preempt_armed: false,
            preempt_held,
        }
    }

    /// Whether preemption is held (see [`Event::HoldPreempt`]).
    pub fn preempt_held(&self) -> bool {
        self.preempt_held
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Current effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The master as last known: ourselves in Master, the last accepted sender in
    /// Backup, none otherwise.
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.local),
            State::Backup => self.master,
            _ => None,
        }
    }

    /// Master_Adver_Interval in centiseconds (learnt from the master in Backup).
    pub fn master_adver_int_cs(&self) -> u16 {
        self.master_adver_int_cs
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current Master_Down_Interval.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(self.priority, self.master_adver_int_cs)
    }

    /// Applies one event: returns the next machine and the actions to perform.
    pub fn step(mut self, event: Event) -> (Machine, Vec<Action>) {
        let mut actions = Vec::new();
        match (self.state, event) {
            (_, Event::HoldPreempt(held)) => self.preempt_held = held,
            (_, Event::Priority { priority, fault }) => {
                self.on_priority(priority.max(1), fault, &mut actions);
            }
            (State::Initialize, Event::Startup) => self.start(Cause::Startup, &mut actions),
            (State::Initialize, _) => {}

            (State::Backup, Event::Shutdown) => {
                actions.push(Action::CancelTimer(Timer::MasterDown));
                actions.push(Action::CancelTimer(Timer::PreemptDelay));
                self.go(State::Initialize, Cause::Shutdown, &mut actions);
            }
            (State::Backup, Event::TimerExpired(Timer::MasterDown)) => {
                self.become_master(Cause::MasterDown, &mut actions);
            }
            (State::Backup, Event::TimerExpired(Timer::PreemptDelay)) => {
                self.preempt_armed = true;
            }
            (
                State::Backup,
                Event::Advert {
                    src,
                    priority,
                    max_adver_int,
                },
            ) => self.backup_advert(src, priority, max_adver_int, &mut actions),
            (State::Backup, _) => {}

            (State::Master, Event::Shutdown) => {
                actions.push(Action::CancelTimer(Timer::Adver));
                actions.push(Action::SendAdvert { priority: 0 });
                actions.push(Action::RemoveAddresses);
                self.go(State::Initialize, Cause::Shutdown, &mut actions);
            }
            (State::Master, Event::TimerExpired(Timer::Adver)) => {
                self.advertise(&mut actions);
            }
            (
                State::Master,
                Event::Advert {
                    src,
                    priority,
                    max_adver_int,
                },
            ) => self.master_advert(src, priority, max_adver_int, &mut actions),
            (State::Master, _) => {}

            (State::Fault, Event::Shutdown) => {
                self.go(State::Initialize, Cause::Shutdown, &mut actions);
            }
            (State::Fault, _) => {}
        }
        (self, actions)
    }

    /// Startup, or leaving Fault (RFC 5798 §6.4.1).
    fn start(&mut self, cause: Cause, actions: &mut Vec<Action>) {
        if let Some(reason) = self.fault.clone() {
            self.go(State::Fault, Cause::Fault(reason), actions);
        } else if self.priority == 255 {
            self.become_master(cause, actions);
        } else {
            self.master_adver_int_cs = self.params.adver_int_cs;
            self.master = None;
            actions.push(Action::SetTimer(
                Timer::MasterDown,
                self.master_down_interval(),
            ));
            self.preempt_armed = self.params.preempt_delay_cs == 0;
            if !self.preempt_armed {
                actions.push(Action::SetTimer(
                    Timer::PreemptDelay,
                    Duration::from_millis(u64::from(self.params.preempt_delay_cs) * 10),
                ));
            }
            self.go(State::Backup, cause, actions);
        }
    }

    fn become_master(&mut self, cause: Cause, actions: &mut Vec<Action>) {
        actions.push(Action::CancelTimer(Timer::MasterDown));
        actions.push(Action::CancelTimer(Timer::PreemptDelay));
        actions.push(Action::AddAddresses);
        actions.push(Action::SendAdvert {
            priority: self.priority,
        });
        actions.push(Action::Announce);
        actions.push(Action::SetTimer(
            Timer::Adver,
            cs(self.params.adver_int_cs.into()),
        ));
        self.go(State::Master, cause, actions);
    }

    fn advertise(&self, actions: &mut Vec<Action>) {
        actions.push(Action::SendAdvert {
            priority: self.priority,
        });
        actions.push(Action::SetTimer(
            Timer::Adver,
            cs(self.params.adver_int_cs.into()),
        ));
    }

    fn go(&mut self, to: State, cause: Cause, actions: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        actions.push(Action::Transition { from, to, cause });
    }

    /// RFC 5798 §6.4.2, receiving an ADVERTISEMENT in Backup.
    fn backup_advert(&mut self, src: IpAddr, priority: u8, int_cs: u16, actions: &mut Vec<Action>) {
        if self.priority == 255 {
            // §7.1: the address owner discards advertisements; it is about to be
            // master anyway (it only sits in Backup after a priority change).
            return;
        }
        if priority == 0 {
            self.master = Some(src);
            actions.push(Action::SetTimer(
                Timer::MasterDown,
                skew_time(self.priority, self.master_adver_int_cs),
            ));
            return;
        }
        let preempt = self.params.preempt && self.preempt_armed && !self.preempt_held;
        if !preempt || priority >= self.priority {
            self.master_adver_int_cs = int_cs;
            self.master = Some(src);
            actions.push(Action::SetTimer(
                Timer::MasterDown,
                self.master_down_interval(),
            ));
        }
        // Otherwise discard: the Master_Down_Timer runs out and we preempt.
    }

    /// RFC 5798 §6.4.3, receiving an ADVERTISEMENT in Master.
    fn master_advert(&mut self, src: IpAddr, priority: u8, int_cs: u16, actions: &mut Vec<Action>) {
        if priority == 0 {
            self.advertise(actions);
        } else if priority > self.priority || (priority == self.priority && src > self.local) {
            // Extension: one last advertisement with our own priority before yielding.
            // Two masters means a split brain just healed; the winner hears a
            // lower-priority master and re-announces (below), whichever of the two
            // heard the other first. Backups discard or soon overwrite it.
            actions.push(Action::SendAdvert {
                priority: self.priority,
            });
            actions.push(Action::CancelTimer(Timer::Adver));
            actions.push(Action::RemoveAddresses);
            self.master_adver_int_cs = int_cs;
            self.master = Some(src);
            self.preempt_armed = true;
            actions.push(Action::SetTimer(
                Timer::MasterDown,
                self.master_down_interval(),
            ));
            self.go(State::Backup, Cause::PreemptedBy { src, priority }, actions);
        } else {
            // Split brain healing: another master with lower precedence exists. Make it
            // hear us now and refresh every neighbour cache it may have taken over.
            self.advertise(actions);
            actions.push(Action::Announce);
        }
    }

    fn on_priority(&mut self, priority: u8, fault: Option<String>, actions: &mut Vec<Action>) {
        let changed = priority != self.priority;
        self.priority = priority;
        let was_faulted = self.fault.is_some();
        self.fault = fault.clone();
        match (self.state, fault) {
            (State::Initialize, _) => {}
            (State::Master, Some(reason)) => {
                actions.push(Action::CancelTimer(Timer::Adver));
                actions.push(Action::SendAdvert { priority: 0 });
                actions.push(Action::RemoveAddresses);
                self.go(State::Fault, Cause::Fault(reason), actions);
            }
            (State::Backup, Some(reason)) => {
                actions.push(Action::CancelTimer(Timer::MasterDown));
                actions.push(Action::CancelTimer(Timer::PreemptDelay));
                self.go(State::Fault, Cause::Fault(reason), actions);
            }
            (State::Fault, Some(_)) => {}
            (State::Fault, None) => {
                if was_faulted {
                    self.start(Cause::FaultCleared, actions);
                }
            }
            (State::Master, None) => {
                if changed {
                    // Tell the backups at once so a better one can preempt.
                    self.advertise(actions);
                }
            }
            (State::Backup, None) => {
                if priority == 255 {
                    self.become_master(Cause::Owner, actions);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
