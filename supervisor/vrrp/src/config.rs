//! Configuration of VRRP instances: a TOML file of `[[instance]]` tables (for the
//! standalone binary) or values the supervisor builds from the chassis profile.
//!
//! ```toml
//! [[instance]]
//! name = "vip-db1"
//! interface = "eth0"
//! vrid = 51
//! priority = 150                # 1..=255, 255 = address owner
//! advert_interval_cs = 100      # 1..=4095 centiseconds
//! preempt = true                # false = nopreempt
//! preempt_delay_cs = 0
//! accept = true               # false: a non-owner master drops traffic to the addresses (nf_tables)
//! addresses = ["10.9.0.100/24"]
//! unicast_peers = []            # empty: multicast 224.0.0.18 / ff02::12
//! announce = { repeat = 5, spacing_ms = 10, delay_ms = 5000, refresh_ms = 0 }
//! trackers = [{ name = "raid", weight = -60, file = "/run/health/raid" }]
//! ```
//!
//! Errors name the file, the line and column (from the TOML parser) or the instance
//! and field, and what is allowed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::announce::AnnounceConfig;
use crate::state::Params;
use crate::track::TrackerSpec;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or type error; the message carries line and column.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("instance {instance:?}, field `{field}`: {message}")]
    Invalid {
        /// Instance name.
        instance: String,
        /// Field.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// A virtual address with the prefix length it is added with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct VirtualAddress {
    /// Address.
    pub addr: IpAddr,
    /// Prefix length (default /32 or /128).
    pub prefix: u8,
}

impl FromStr for VirtualAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(VirtualAddress { addr, prefix })
    }
}

impl TryFrom<String> for VirtualAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<VirtualAddress> for String {
    fn from(v: VirtualAddress) -> String {
        format!("{}/{}", v.addr, v.prefix)
    }
}

/// Announcement knobs as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceSettings {
    /// Frames per address per burst.
    pub repeat: u32,
    /// Milliseconds between the frames of a burst.
    pub spacing_ms: u64,
    /// Milliseconds after becoming master for a second burst (0: none).
    pub delay_ms: u64,
    /// Milliseconds between periodic refreshes while master (0: none).
    pub refresh_ms: u64,
}

impl Default for AnnounceSettings {
    fn default() -> Self {
        let d = AnnounceConfig::default();
        AnnounceSettings {
            repeat: d.repeat,
            spacing_ms: d.spacing.as_millis() as u64,
            delay_ms: d.delay.as_millis() as u64,
            refresh_ms: d.refresh.as_millis() as u64,
        }
    }
}

impl From<AnnounceSettings> for AnnounceConfig {
    fn from(s: AnnounceSettings) -> Self {
        AnnounceConfig {
            repeat: s.repeat.max(1),
            spacing: Duration::from_millis(s.spacing_ms),
            delay: Duration::from_millis(s.delay_ms),
            refresh: Duration::from_millis(s.refresh_ms),
        }
    }
}

/// A tracker as configured: the spec plus, for the standalone binary, a file whose
/// content (OK, WARNING, CRITICAL, UNKNOWN or 0..3) is the verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// Name.
    pub name: String,
    /// Weight; absent: fault when CRITICAL.
    #[serde(default)]
    pub weight: Option<i16>,
    /// Verdict file polled by the standalone binary.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

fn default_priority() -> u8 {
    100
}
fn default_interval() -> u16 {
    100
}
fn yes() -> bool {
    true
}

/// One virtual router on one interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// Name shown in status and events.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID, 1..=255.
    pub vrid: u8,
    /// Configured priority, 1..=255.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Advertisement interval, centiseconds.
    #[serde(default = "default_interval")]
    pub advert_interval_cs: u16,
    /// Preempt mode.
    #[serde(default = "yes")]
    pub preempt: bool,
    /// Preemption delay after startup, centiseconds.
    #[serde(default)]
    pub preempt_delay_cs: u32,
    /// Hold preemption from startup until released
    /// ([`crate::runtime::Instance::hold_preempt`]): a node of a stateful
    /// pair first copies the master's stores.
    #[serde(default)]
    pub hold_preempt: bool,
    /// Accept mode.
    #[serde(default = "yes")]
    pub accept: bool,
    /// Virtual addresses, all of one family.
    pub addresses: Vec<VirtualAddress>,
    /// Unicast peers; empty: multicast.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// Source address; default: the interface's first IPv4 / link-local IPv6 address.
    #[serde(default)]
    pub source: Option<IpAddr>,
    /// Announcement knobs.
    #[serde(default)]
    pub announce: AnnounceSettings,
    /// Health trackers.
    #[serde(default)]
    pub trackers: Vec<TrackerConfig>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    instance: Vec<InstanceConfig>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Vec<InstanceConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` only labels errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<InstanceConfig>, ConfigError> {
    let f: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if f.instance.is_empty() {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: "no [[instance]] table".into(),
        });
    }
    for i in &f.instance {
        i.validate()?;
    }
    Ok(f.instance)
}

impl InstanceConfig {
    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| ConfigError::Invalid {
            instance: self.name.clone(),
            field,
            message,
        };
        if self.vrid == 0 {
            return Err(bad("vrid", "must be 1..=255".into()));
        }
        if self.priority == 0 {
            return Err(bad(
                "priority",
                "must be 1..=255 (0 is reserved for stepping down)".into(),
            ));
        }
        if self.advert_interval_cs == 0 || self.advert_interval_cs > 4095 {
            return Err(bad(
                "advert_interval_cs",
                format!("{} outside 1..=4095", self.advert_interval_cs),
            ));
        }
        let Some(first) = self.addresses.first() else {
            return Err(bad(
                "addresses",
                "at least one virtual address is needed".into(),
            ));
        };
        let v6 = first.addr.is_ipv6();
        if self.addresses.iter().any(|a| a.addr.is_ipv6() != v6) {
            return Err(bad(
                "addresses",
                "all addresses of one instance must be of one family".into(),
            ));
        }
        if self.addresses.len() > 255 {
            return Err(bad("addresses", "at most 255 addresses".into()));
        }
        if let Some(p) = self.unicast_peers.iter().find(|p| p.is_ipv6() != v6) {
            return Err(bad(
                "unicast_peers",
                format!("{p} is not of the addresses' family"),
            ));
        }
        if let Some(s) = self.source {
            if s.is_ipv6() != v6 {
                return Err(bad(
                    "source",
                    format!("{s} is not of the addresses' family"),
                ));
            }
        }
        for t in &self.trackers {
            if let Some(w) = t.weight {
                if !(-253..=253).contains(&w) {
                    return Err(bad(
                        "trackers",
                        format!("{}: weight {w} outside -253..=253", t.name),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The state machine parameters.
    pub fn params(&self) -> Params {
        Params {
            vrid: self.vrid,
            adver_int_cs: self.advert_interval_cs,
            preempt: self.preempt,
            preempt_delay_cs: self.preempt_delay_cs,
            hold_preempt: self.hold_preempt,
            accept: self.accept,
        }
    }

    /// The tracker specs.
    pub fn tracker_specs(&self) -> Vec<TrackerSpec> {
        self.trackers
            .iter()
            .map(|t| TrackerSpec {
                name: t.name.clone(),
                weight: t.weight,
            })
            .collect()
    }

    /// The virtual addresses without prefixes.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.addresses.iter().map(|a| a.addr).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[instance]]
name = "vip"
interface = "eth0"
vrid = 51
priority = 150
addresses = ["10.9.0.100/24", "10.9.0.101"]
trackers = [{ name = "raid", weight = -60 }, { name = "db" }]
"#;

    #[test]
    fn parses_defaults() {
        let v = parse(GOOD, Path::new("x.toml")).unwrap();
        assert_eq!(v[0].advert_interval_cs, 100);
        assert!(v[0].preempt);
        assert_eq!(v[0].addresses[1].prefix, 32);
        assert_eq!(v[0].tracker_specs()[1].weight, None);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("[[instance]]\nname = 3\n", Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.toml") && e.contains("line 2"), "{e}");
        let e = parse(&GOOD.replace("vrid = 51", "vrid = 0"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`vrid`") && e.contains("\"vip\""), "{e}");
        let e = parse(
            &GOOD.replace("\"10.9.0.101\"", "\"fe80::1\""),
            Path::new("a.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one family"), "{e}");
        let e = parse(&GOOD.replace("/24", "/33"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefix length"), "{e}");
        let e = parse(&GOOD.replace("vrid", "vrdi"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("vrdi"), "{e}");
        // Accept_Mode off is a valid choice (filtered through nf_tables).
        let ok = parse(
            &GOOD.replace("priority = 150", "accept = false"),
            Path::new("a.toml"),
        )
        .unwrap();
        assert!(!ok[0].accept && !ok[0].params().accept);
    }
}
