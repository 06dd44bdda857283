//! flexvisor: the supervisor of a flexvisor node, run as PID 1.
//!
//! Pure logic (service definitions, the lifecycle machine and restart
//! policy, the dependency graph, parsers of sd_notify, HTTP status lines,
//! netlink acks and the control protocol) is kept apart from the code that
//! touches the kernel, so it is tested without root.
//!
//! - [`service`]: definitions (`services.d/*.toml`) and the lifecycle.
//! - [`graph`]: requires/wants, cycles, start and stop order.
//! - [`config`]: node configuration + definitions, checked together.
//! - [`supervisor`]: the loop that runs it all.
//! - [`reaper`], [`process`], [`cgroup`]: processes, their end and their tree.
//! - [`readiness`], [`probe`]: knowing a service is ready and healthy.
//! - [`logs`], [`events`]: what services and the supervisor said.
//! - [`control`]: the socket `flexctl` talks to.
//! - [`hooks`]: the node's master/backup hooks, one at a time, failures kept.
//! - [`reload`], [`watchdog`], [`init`], [`subsystem`].
//! - [`hosted`]: the health monitor and VRRP on a tokio thread.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cgroup;
pub mod config;
pub mod control;
pub mod events;
pub mod fuzzing;
pub mod graph;
pub mod hooks;
pub mod hosted;
pub mod init;
pub mod jitter;
pub mod logs;
pub mod probe;
pub mod process;
pub mod readiness;
pub mod reaper;
pub mod reload;
pub mod service;
pub mod subsystem;
pub mod supervisor;
pub mod watchdog;
