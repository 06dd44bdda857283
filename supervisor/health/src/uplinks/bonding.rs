//! Parser for `/proc/net/bonding/<bond>` (kernel `drivers/net/bonding/
//! bond_procfs.c`). Pure; unknown lines are ignored (the file grows fields
//! with every kernel), a file without a single slave or mode is an error.

use serde::{Deserialize, Serialize};

/// One enslaved interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondSlave {
    /// Interface name.
    pub name: String,
    /// `MII Status:` is `up`.
    pub mii_up: bool,
    /// `Link Failure Count:`.
    pub link_failures: u64,
    /// `Speed:` in Mbps, when known.
    pub speed_mbps: Option<u64>,
}

/// The bond as procfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondStatus {
    /// `Bonding Mode:` text (`fault-tolerance (active-backup)`).
    pub mode: String,
    /// `Currently Active Slave:` (active-backup), if any.
    pub active_slave: Option<String>,
    /// Bond-level `MII Status:` is `up`.
    pub mii_up: bool,
    /// `MII Polling Interval (ms):`, 0 when MII monitoring is off.
    pub miimon_ms: u64,
    /// `ARP Polling Interval (ms):`, 0 or absent when ARP monitoring is off.
    pub arp_interval_ms: u64,
    /// Slaves in file order.
    pub slaves: Vec<BondSlave>,
}

/// Error parsing the bonding file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {reason}")]
pub struct BondParseError {
    /// File name for the message.
    pub file: String,
    /// What was wrong.
    pub reason: String,
}

/// Parse the text of `/proc/net/bonding/<bond>`; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<BondStatus, BondParseError> {
    let err = |line: usize, reason: String| BondParseError {
        file: format!("{file}:{line}"),
        reason,
    };
    let mut mode = None;
    let mut active_slave = None;
    let mut mii_up = false;
    let mut miimon_ms = 0;
    let mut arp_interval_ms = 0;
    let mut slaves: Vec<BondSlave> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let num = |v: &str| -> Result<u64, BondParseError> {
            v.split_whitespace()
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|_| err(i + 1, format!("{key}: {v:?} is not a number")))
        };
        match key.trim() {
            "Bonding Mode" => mode = Some(value.to_string()),
            "Currently Active Slave" => {
                active_slave = (value != "None").then(|| value.to_string());
            }
            "MII Status" => match slaves.last_mut() {
                Some(s) => s.mii_up = value == "up",
                None => mii_up = value == "up",
            },
            "MII Polling Interval (ms)" => miimon_ms = num(value)?,
            "ARP Polling Interval (ms)" => arp_interval_ms = num(value)?,
            "Slave Interface" => slaves.push(BondSlave {
                name: value.to_string(),
                mii_up: false,
                link_failures: 0,
                speed_mbps: None,
            }),
            "Link Failure Count" => {
                if let Some(s) = slaves.last_mut() {
                    s.link_failures = num(value)?;
                }
            }
            "Speed" => {
                if let Some(s) = slaves.last_mut() {
                    s.speed_mbps = value.split_whitespace().next().and_then(|v| v.parse().ok());
                }
            }
            _ => {}
        }
    }
    let mode = mode.ok_or_else(|| err(1, "no `Bonding Mode:` line".to_string()))?;
    Ok(BondStatus {
        mode,
        active_slave,
        mii_up,
        miimon_ms,
        arp_interval_ms,
        slaves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE_BACKUP: &str = "Ethernet Channel Bonding Driver: v6.1.0-18-amd64

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: None
Currently Active Slave: eth1
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 0
Down Delay (ms): 0
Peer Notification Delay (ms): 0

Slave Interface: eth0
MII Status: down
Speed: Unknown
Duplex: Unknown
Link Failure Count: 3
Permanent HW addr: 40:f2:e9:00:00:01
Slave queue ID: 0

Slave Interface: eth1
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 40:f2:e9:00:00:02
Slave queue ID: 0
";

    #[test]
    fn active_backup_after_failover() {
        let b = parse("/proc/net/bonding/bond0", ACTIVE_BACKUP).expect("parse");
        assert_eq!(b.active_slave.as_deref(), Some("eth1"));
        assert!(b.mii_up);
        assert_eq!(b.miimon_ms, 100);
        assert_eq!(b.slaves.len(), 2);
        assert!(!b.slaves[0].mii_up);
        assert_eq!(b.slaves[0].link_failures, 3);
        assert_eq!(b.slaves[0].speed_mbps, None);
        assert_eq!(b.slaves[1].speed_mbps, Some(10000));
    }

    #[test]
    fn bad_number_names_file_and_line() {
        let text = ACTIVE_BACKUP.replace("Interval (ms): 100", "Interval (ms): lots");
        let e = parse("/proc/net/bonding/bond0", &text).expect_err("bad");
        assert_eq!(e.file, "/proc/net/bonding/bond0:7");
    }

    #[test]
    fn no_mode_is_an_error() {
        assert!(parse("x", "hello\n").is_err());
    }
}
