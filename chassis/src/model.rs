//! The chassis profile as written in `chassis-profiles/*.toml`.
//!
//! These types mirror the file one to one and are only *shape*-checked by
//! serde: unknown keys are not rejected here but collected by
//! [`crate::load`] (all of them, each with its location and a suggestion
//! from [`FIELD_NAMES`]), and free-form values such as roles,
//! addresses and port names stay strings here so that [`crate::validate`] can
//! report every problem at once instead of stopping at the first one.
//! Resolved, checked data for one node lives in [`crate::node`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole deployment: one or more chassis, their networks, roles and pairs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Profile {
    /// Format version of the profile file; only `1` exists.
    pub schema: u32,
    /// Deployment name, e.g. `c5-200k`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Subscribers the deployment is sized for.
    pub subscribers: u64,
    /// Path of the secrets file on the node; credentials are referenced by
    /// name from it and never written into the profile.
    pub secrets: String,
    pub database: Database,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    pub bond: Bond,
    pub health: Health,
    /// Networks by name: `management`, `internal`, `external`.
    pub networks: BTreeMap<String, Network>,
    /// Roles by name (`web`, `db`, `lb`, `proxy`).
    pub roles: BTreeMap<String, Role>,
    pub chassis: Vec<Chassis>,
    #[serde(default)]
    pub pairs: Vec<Pair>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Database {
    /// `master-master` (one db pair) or `galera` (several db pairs).
    pub replication: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LoadBalancing {
    /// `system`: load balancers route to proxies of every chassis;
    /// `chassis`: only to proxies in their own chassis.
    pub proxy_scope: String,
}

impl Default for LoadBalancing {
    fn default() -> Self {
        LoadBalancing {
            proxy_scope: "system".to_owned(),
        }
    }
}

/// The bond every node builds from its two NICs (one to each switch module).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Bond {
    pub name: String,
    /// Linux bonding mode; the EN2092 pair is not stacked, so
    /// `active-backup` is the only mode that is safe without switch support.
    pub mode: String,
    pub miimon_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Health {
    /// TCP port of the node's Prometheus `/metrics` endpoint.
    pub metrics_port: u16,
    /// md arrays every node must have (`md0` system, `md1` data).
    pub raid_arrays: Vec<String>,
    /// A source without a fresh reading for this long is CRITICAL.
    pub stale_after_s: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Network {
    /// IPv4 or IPv6 prefix, e.g. `10.20.0.0/22`.
    pub subnet: String,
    #[serde(default)]
    pub gateway: Option<String>,
    /// 802.1Q tag on the bond, when the network is tagged.
    #[serde(default)]
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Role {
    /// Services every node of the role runs (names of service definitions).
    pub services: Vec<String>,
    /// Services that only the active (VRRP master) node of a pair runs.
    #[serde(default)]
    pub active_services: Vec<String>,
    /// Commands run on VRRP transitions (e.g. db promote/demote).
    #[serde(default)]
    pub hooks: Option<Hooks>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Hooks {
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub backup: Option<String>,
    pub timeout_s: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Chassis {
    pub name: String,
    pub cmm: Cmm,
    pub power: Power,
    pub switches: Vec<Switch>,
    pub bays: Vec<Bay>,
}

/// The chassis management module.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Cmm {
    pub address: String,
    #[serde(default)]
    pub ipmi: Option<Ipmi>,
    #[serde(default)]
    pub snmp: Option<Snmp>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Ipmi {
    /// `lanplus` (RMCP+, IPMI 2.0) or `lan` (IPMI 1.5).
    pub interface: String,
    #[serde(default = "default_ipmi_port")]
    pub port: u16,
    /// Name of the credential entry in the secrets file.
    pub credentials: String,
}

fn default_ipmi_port() -> u16 {
    623
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Snmp {
    /// `2c` or `3`.
    pub version: String,
    #[serde(default = "default_snmp_port")]
    pub port: u16,
    /// Name of the credential entry (community or USM user) in the secrets file.
    pub credentials: String,
}

fn default_snmp_port() -> u16 {
    161
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Power {
    /// N of N+N: PSUs per feed needed to carry the chassis.
    pub n: u32,
    pub psus: Vec<Psu>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Psu {
    pub bay: u32,
    /// `mains` or `ups`.
    pub feed: String,
}

/// An EN2092 switch module.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Switch {
    /// Name used by node NICs, e.g. `io1`.
    pub name: String,
    /// I/O module bay of the chassis (1 or 2).
    pub bay: u32,
    pub model: String,
    pub address: String,
    pub snmp: Snmp,
    /// External uplink ports in use: `EXT1`..`EXT10` (1GbE),
    /// `EXT11`..`EXT14` (10GbE, licensed).
    pub uplinks: Vec<String>,
}

/// One compute node bay.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Bay {
    pub bay: u32,
    pub hostname: String,
    pub role: String,
    pub pair: String,
    /// Address per network name.
    pub addresses: BTreeMap<String, String>,
    pub nics: Vec<Nic>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Nic {
    pub name: String,
    /// Switch module name the NIC is wired to.
    pub switch: String,
    /// Node-facing port on that module, `INTA<bay>`.
    pub port: String,
}

/// An active/standby pair and its shared addresses.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Pair {
    pub name: String,
    pub vips: Vec<Vip>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Vip {
    pub network: String,
    pub address: String,
    pub vrid: u32,
    #[serde(default = "default_advert_cs")]
    pub advert_interval_cs: u32,
    /// VRRP priority per member hostname.
    pub priority: BTreeMap<String, u32>,
    #[serde(default = "default_true")]
    pub preempt: bool,
    #[serde(default)]
    pub preempt_delay_s: u32,
    /// Accept mode (RFC 5798 §6.1): the master answers packets sent to the
    /// shared address. C5 services listen on it, so keep it on; `false` makes a
    /// non-owner master drop them (nf_tables), still answering ARP/ND.
    #[serde(default = "default_true")]
    pub accept: bool,
    /// Health checks that lower the priority (or force fault without a weight).
    #[serde(default)]
    pub track: Vec<Track>,
}

fn default_advert_cs() -> u32 {
    100
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Track {
    /// `raid`, `power`, `uplinks`, or `service:<name>`.
    pub check: String,
    /// Priority change while the check is not OK; none means fault.
    #[serde(default)]
    pub weight: Option<i32>,
}

/// Every key the profile format knows, for "did you mean" suggestions.
/// `load::tests::field_names_cover_the_model` keeps it in step with the types.
pub const FIELD_NAMES: &[&str] = &[
    "accept",
    "active_services",
    "address",
    "addresses",
    "advert_interval_cs",
    "backup",
    "bay",
    "bays",
    "bond",
    "chassis",
    "check",
    "cmm",
    "credentials",
    "database",
    "description",
    "feed",
    "gateway",
    "health",
    "hooks",
    "hostname",
    "interface",
    "ipmi",
    "load_balancing",
    "master",
    "metrics_port",
    "miimon_ms",
    "mode",
    "model",
    "n",
    "name",
    "network",
    "networks",
    "nics",
    "pair",
    "pairs",
    "port",
    "power",
    "preempt",
    "preempt_delay_s",
    "priority",
    "proxy_scope",
    "psus",
    "raid_arrays",
    "replication",
    "role",
    "roles",
    "schema",
    "secrets",
    "services",
    "snmp",
    "stale_after_s",
    "subnet",
    "subscribers",
    "switch",
    "switches",
    "timeout_s",
    "track",
    "uplinks",
    "version",
    "vips",
    "vlan",
    "vrid",
    "weight",
];
