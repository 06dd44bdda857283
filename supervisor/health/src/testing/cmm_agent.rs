//! A Flex CMM's power module table (`CME-MIB` powerModuleHealthTable, see
//! [`crate::power::cmm_snmp`]) served by net-snmp's `snmpd` through the
//! generic [`Snmpd`] harness, with setters a test uses to fail, pull or
//! hide power modules while the agent runs.

use super::snmp_agent::{Served, Snmpd};
use super::PeerError;
use crate::power::cmm_snmp::{COL_DETAILS, COL_EXISTS, COL_STATE, POWER_MODULE_ENTRY};

/// `powerModuleState` good(1).
pub const GOOD: i64 = 1;
/// `powerModuleState` warning(2).
pub const WARNING: i64 = 2;
/// `powerModuleState` notAvailable(3).
pub const NOT_AVAILABLE: i64 = 3;
/// `powerModuleState` critical(4).
pub const CRITICAL: i64 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    index: u32,
    /// The row is in the table at all.
    listed: bool,
    exists: bool,
    state: i64,
    details: String,
}

/// A running CMM agent; stopped on drop.
#[derive(Debug)]
pub struct CmmAgent {
    snmpd: Snmpd,
    /// UDP port on 127.0.0.1.
    pub port: u16,
    modules: Vec<Module>,
}

fn objects(modules: &[Module]) -> Vec<(Vec<u64>, Served)> {
    let at = |col: u64, idx: u32| {
        let mut o = POWER_MODULE_ENTRY.to_vec();
        o.extend([col, u64::from(idx)]);
        o
    };
    let mut out = Vec::new();
    for m in modules.iter().filter(|m| m.listed) {
        out.push((at(1, m.index), Served::Integer(i64::from(m.index))));
        out.push((
            at(COL_EXISTS, m.index),
            Served::Integer(i64::from(m.exists)),
        ));
        out.push((at(COL_STATE, m.index), Served::Integer(m.state)));
        out.push((at(COL_DETAILS, m.index), Served::String(m.details.clone())));
        out.push((
            at(9, m.index),
            Served::String(format!("Power module {} 2500W AC", m.index)),
        ));
    }
    out
}

impl CmmAgent {
    /// Start snmpd with `modules` power modules (bays 1..=modules), all
    /// present and good.
    pub fn start(modules: u32) -> Result<CmmAgent, PeerError> {
        let modules: Vec<Module> = (1..=modules)
            .map(|index| Module {
                index,
                listed: true,
                exists: true,
                state: GOOD,
                details: "Power module status OK".into(),
            })
            .collect();
        let subtree: Vec<String> = POWER_MODULE_ENTRY[..POWER_MODULE_ENTRY.len() - 1]
            .iter()
            .map(u64::to_string)
            .collect();
        let snmpd = Snmpd::start(&[&subtree.join(".")], &objects(&modules))?;
        Ok(CmmAgent {
            port: snmpd.port,
            snmpd,
            modules,
        })
    }

    /// `host:port` of the agent.
    pub fn address(&self) -> String {
        self.snmpd.address()
    }

    /// The underlying snmpd (for net-snmp tool arguments and its log).
    pub fn snmpd(&self) -> &Snmpd {
        &self.snmpd
    }

    fn edit(&mut self, bay: u32, f: impl Fn(&mut Module)) -> Result<(), PeerError> {
        let m = self
            .modules
            .iter_mut()
            .find(|m| m.index == bay)
            .ok_or_else(|| PeerError::Setup(format!("CMM agent has no power module {bay}")))?;
        f(m);
        self.snmpd.serve(&objects(&self.modules))
    }

    /// Set `powerModuleState` and `powerModuleDetails` of a bay.
    pub fn set_state(&mut self, bay: u32, state: i64, details: &str) -> Result<(), PeerError> {
        self.edit(bay, |m| {
            m.state = state;
            m.details = details.to_string();
        })
    }

    /// Set `powerModuleExists` of a bay (a pulled module).
    pub fn set_exists(&mut self, bay: u32, exists: bool) -> Result<(), PeerError> {
        self.edit(bay, |m| m.exists = exists)
    }

    /// List or hide a bay's row entirely (a CMM that does not report it).
    pub fn set_listed(&mut self, bay: u32, listed: bool) -> Result<(), PeerError> {
        self.edit(bay, |m| m.listed = listed)
    }

    /// Stop the agent now (an unreachable CMM).
    pub fn stop(&mut self) {
        self.snmpd.stop();
    }
}
