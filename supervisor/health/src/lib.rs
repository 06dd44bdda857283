//! Hardware health of a flexvisor node.
//!
//! Each node watches its own md RAID-1 arrays ([`raid`]), the chassis power
//! supplies over IPMI and, where the profile allows, the CMM's power module
//! table over SNMP, with disagreements between the two reported
//! ([`power`]), and both switch modules plus its own NICs
//! ([`uplinks`]), and turns them into one [`verdict::NodeHealth`] that
//! operators read through `flexctl health`, monitoring plugins and
//! Prometheus ([`report`]). The async [`monitor`] keeps the latest readings
//! in memory for the supervisor.
//!
//! Parsers and verdicts are pure functions; I/O sits in small reader
//! functions that take a system root or an endpoint, so tests point them at
//! fixture trees and real peers (ipmi_sim, snmpd as switch module or CMM,
//! md on loop devices).

pub mod config;
pub mod monitor;
pub mod power;
pub mod raid;
pub mod report;
pub mod status;
pub mod testing;
pub mod uplinks;
pub mod verdict;

pub use status::Status;
pub use verdict::{CheckKind, CheckVerdict, NodeHealth};
