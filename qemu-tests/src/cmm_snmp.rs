//! The CMM's SNMP side: net-snmp's `snmpd` in the chassis namespace on the
//! CMM's address, serving the Flex CMM MIB power module table
//! (`CME-MIB::powerModuleHealthTable`, 1.3.6.1.4.1.2.3.51.2.2.4.1; the OIDs
//! and value meanings are documented in `flexvisor-health`'s
//! `power::cmm_snmp`) to SNMPv3 users, as a real CMM does beside IPMI.
//!
//! The harness keeps it in step with the `ipmi_sim` CMM: every PSU failure
//! it injects over IPMI is also what this table says, so the nodes' two
//! power sources agree unless a scenario makes them disagree on purpose.
//!
//! Values come from a `pass` script the harness rewrites (write, then
//! rename) when a PSU changes: snmpd runs it per request, so the next GET
//! sees the new state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::netns::Netns;
use crate::proc::{self, Daemon};
use crate::snmp::SnmpError;

/// `powerModuleHealthEntry`.
pub const ENTRY: &str = ".1.3.6.1.4.1.2.3.51.2.2.4.1.1";
/// SNMPv3 user the agent accepts (authNoPriv, SHA).
pub const USER: &str = "fvq-cmm";
/// Its authentication pass phrase (at least 8 characters, as USM wants).
pub const AUTH_PASSWORD: &str = "fvq-cmm-auth-secret";

/// `powerModuleState` good(1) / critical(4).
const GOOD: i64 = 1;
const CRITICAL: i64 = 4;

/// A running CMM SNMP agent; killed on drop.
#[derive(Debug)]
pub struct CmmSnmp {
    address: String,
    port: u16,
    netns: Arc<Netns>,
    script: PathBuf,
    ok: Vec<bool>,
    daemon: Daemon,
}

/// The `pass` script answering GETs for `ok.len()` power modules.
fn script(ok: &[bool]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Written by qemu-tests: the CMM power module table.\n\
         [ \"$1\" = \"-g\" ] || exit 0\ncase \"$2\" in\n",
    );
    for (i, good) in ok.iter().enumerate() {
        let bay = i + 1;
        let (state, details) = if *good {
            (GOOD, "Power module status OK")
        } else {
            (CRITICAL, "Power module failure")
        };
        let rows: [(u32, &str, String); 5] = [
            (1, "integer", bay.to_string()),
            (2, "integer", "1".into()),
            (3, "integer", state.to_string()),
            (4, "string", details.into()),
            (9, "string", format!("Power module {bay} 2500W AC")),
        ];
        for (col, ty, val) in rows {
            s += &format!("  {ENTRY}.{col}.{bay}) echo \"$2\"; echo {ty}; echo \"{val}\";;\n");
        }
    }
    s += "esac\n";
    s
}

impl CmmSnmp {
    /// Start snmpd for `modules` power modules (all good) on
    /// `address:port` inside `netns` (SNMPv3 user [`USER`], and v2c
    /// `community` for profiles that say v2c), files in `dir`; wait until
    /// it answers.
    pub fn start(
        address: &str,
        port: u16,
        community: &str,
        modules: usize,
        dir: &Path,
        netns: Arc<Netns>,
    ) -> Result<CmmSnmp, SnmpError> {
        proc::require("snmpd", "snmpd")?;
        proc::require("snmpget", "snmp")?;
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|source| SnmpError::Write {
                path: path.to_owned(),
                source,
            })
        };
        let ok = vec![true; modules];
        let script_path = dir.join("cmm-power.sh");
        write(&script_path, &script(&ok))?;
        let conf = dir.join("cmm.snmpd.conf");
        let entry = ENTRY.trim_start_matches('.');
        let table = entry.rsplit_once('.').map_or(entry, |(t, _)| t);
        write(
            &conf,
            &format!(
                "agentAddress udp:{address}:{port}\n\
                 createUser {USER} SHA \"{AUTH_PASSWORD}\"\nrouser {USER} auth\n\
                 rocommunity {community} default\n\
                 sysName cmm\nsysDescr Lenovo Flex System Chassis Management Module (flexvisor simulator)\n\
                 pass .{table} /bin/sh {}\n",
                script_path.display()
            ),
        )?;
        let persist = dir.join("cmm.snmp-persist");
        let _ = std::fs::create_dir_all(&persist);
        let mut cmd = netns.command("snmpd");
        cmd.env("SNMP_PERSISTENT_DIR", &persist)
            .env("MIBS", "")
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("cmm.snmpd.pid"));
        let daemon = Daemon::spawn("cmm-snmp", cmd, &dir.join("cmm.snmpd.log"))?;
        let agent = CmmSnmp {
            address: address.to_owned(),
            port,
            netns,
            script: script_path,
            ok,
            daemon,
        };
        let probe = format!("{ENTRY}.3.1");
        if proc::poll(Duration::from_secs(20), || agent.get(&probe).ok()).is_none() {
            return Err(SnmpError::NotAnswering {
                name: "cmm".into(),
                address: agent.address.clone(),
                log: agent.daemon.log(),
            });
        }
        Ok(agent)
    }

    /// `snmpget -Oqv` over SNMPv3 from inside the namespace.
    pub fn get(&self, oid: &str) -> Result<String, SnmpError> {
        let mut c = self.netns.command("snmpget");
        c.env("MIBS", "")
            .args(["-v3", "-l", "authNoPriv", "-u", USER, "-a", "SHA", "-A"])
            .arg(AUTH_PASSWORD)
            .args(["-Oqv", "-t", "1", "-r", "1"])
            .arg(format!("{}:{}", self.address, self.port))
            .arg(oid);
        Ok(proc::run(&mut c)?.trim().trim_matches('"').to_owned())
    }

    /// Mark power module `bay` (1-based) good or failed.
    pub fn set_psu(&mut self, bay: u8, ok: bool) -> Result<(), SnmpError> {
        if let Some(slot) = self.ok.get_mut(usize::from(bay.saturating_sub(1))) {
            *slot = ok;
        }
        let tmp = self.script.with_extension("sh.tmp");
        std::fs::write(&tmp, script(&self.ok))
            .and_then(|()| std::fs::rename(&tmp, &self.script))
            .map_err(|source| SnmpError::Write {
                path: self.script.clone(),
                source,
            })
    }

    /// The agent's log.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// Secrets-file lines for the profile's CMM SNMP credentials name (v3
/// user and, for v2c profiles, the community: the name itself).
pub fn secrets(credentials: &str) -> String {
    format!(
        "{credentials}.user = {USER}\n{credentials}.auth_protocol = sha1\n\
         {credentials}.auth_password = {AUTH_PASSWORD}\n\
         {credentials}.community = {credentials}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_answers_each_module_and_marks_failures_critical() {
        let s = script(&[true, false]);
        assert!(s.contains(&format!(
            "{ENTRY}.3.1) echo \"$2\"; echo integer; echo \"1\";;"
        )));
        assert!(s.contains(&format!(
            "{ENTRY}.3.2) echo \"$2\"; echo integer; echo \"4\";;"
        )));
        assert!(s.contains(&format!(
            "{ENTRY}.2.2) echo \"$2\"; echo integer; echo \"1\";;"
        )));
        assert!(!s.contains(&format!("{ENTRY}.3.3)")));
    }
}
