//! VRRP version 3 (RFC 5798) for flexvisor: the shared addresses of each active/standby
//! pair.
//!
//! Layout, from pure to kernel-facing:
//! - [`packet`]: advertisements on the wire, checksum, receive-side checks (pure).
//! - [`state`]: the RFC 5798 §6.4 state machine as `(machine, event) -> (machine, actions)` (pure).
//! - [`track`]: effective priority from health trackers (pure).
//! - [`announce`]: gratuitous ARP / unsolicited NA frames and the packet socket that sends them.
//! - [`socket`]: raw protocol-112 sockets.
//! - [`netlink`]: interface lookup and address add/remove through rtnetlink.
//! - [`nftables`]: Accept_Mode off, a nf_tables table that drops traffic for the
//!   addresses while a non-owner is master.
//! - [`config`]: the TOML / flag configuration of instances.
//! - [`runtime`]: [`runtime::Instance`], the tokio task that executes the actions and
//!   publishes [`runtime::Status`] and [`runtime::TransitionEvent`]s. This is the API
//!   the supervisor hosts.
//!
//! Hosting (for the supervisor): build one [`InstanceConfig`] per shared address from
//! the node's profile (interface, VRID, priority, `advert_interval_cs`, `preempt`,
//! addresses, trackers with their weights), then
//! [`Instance::start`]`(cfg, current_verdicts, transitions_tx)`; feed health verdicts
//! with [`Instance::set_tracker`]; run role hooks on each [`TransitionEvent`] from the
//! channel; show [`Instance::status`] (JSON via serde, one line via `Display`) in
//! `flexctl vip`; call [`Instance::stop`] on shutdown so the standby takes over after
//! Skew_Time. The `flexvisor-vrrp` binary does exactly this standalone.

// Tests may unwrap: a panic there is a failed test with its location.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod announce;
pub mod config;
pub mod netlink;
pub mod nftables;
pub mod packet;
pub mod runtime;
pub mod socket;
pub mod state;
pub mod track;

pub use config::InstanceConfig;
pub use runtime::{Instance, Status, TransitionEvent};
pub use track::Health;
