//! [`HealthConfig`]: what the monitor watches, as a serde struct the lead
//! maps the chassis profile's NodeConfig onto. Credentials are never in the
//! config itself: fields ending in `_ref` name an entry of a secrets file
//! (`name = value` lines, `#` comments), resolved by [`Secrets`].

use crate::power::ipmi::IpmiTarget;
use crate::power::{PowerConfig, PsuBay};
use crate::uplinks::snmp::SnmpAuth;
use crate::uplinks::ModulePorts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Error loading or resolving the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The secrets file could not be read.
    #[error("cannot read secrets file {path}: {source}")]
    SecretsIo {
        /// File.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A secrets line is malformed.
    #[error("{path}:{line}: expected `name = value`")]
    SecretsSyntax {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// A `_ref` names no entry.
    #[error("{field}: secret {reference:?} not found in {path}")]
    MissingSecret {
        /// Config field holding the reference.
        field: String,
        /// The reference.
        reference: String,
        /// Secrets file.
        path: PathBuf,
    },
    /// The JSON config does not parse.
    #[error("{path}: {source}")]
    Json {
        /// File.
        path: PathBuf,
        /// serde_json error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A value is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// Field.
        field: String,
        /// Why.
        reason: String,
    },
}

fn default_root() -> PathBuf {
    PathBuf::from("/")
}
fn default_raid_poll() -> u64 {
    60
}
fn default_power_poll() -> u64 {
    10
}
fn default_uplink_poll() -> u64 {
    10
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_stale() -> u64 {
    60
}
fn default_ipmi_port() -> u16 {
    623
}

/// The whole health configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Node name (`db1a`).
    pub node: String,
    /// Root under which `/proc` and `/sys` are read (tests use fixtures).
    #[serde(default = "default_root")]
    pub system_root: PathBuf,
    /// Secrets file resolving `*_ref` fields.
    pub secrets_file: Option<PathBuf>,
    /// RAID settings.
    pub raid: RaidSettings,
    /// Power settings; `None` on machines without chassis power access.
    pub power: Option<PowerSettings>,
    /// Uplink settings.
    pub uplinks: Option<UplinkSettings>,
}

/// RAID settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaidSettings {
    /// Arrays the profile expects (`md0`, `md1`); missing ones are CRITICAL.
    pub expected_arrays: Vec<String>,
    /// Re-read interval when no sysfs event arrives (seconds).
    #[serde(default = "default_raid_poll")]
    pub fallback_poll_secs: u64,
}

/// The name this type had when IPMI was the only power source.
pub type IpmiSource = PowerSource;

/// One source of PSU states: IPMI (CMM over LAN, local BMC) or the CMM's
/// power module table over SNMP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PowerSource {
    /// RMCP+ to the CMM (or a BMC).
    Lan {
        /// Host.
        host: String,
        /// UDP port.
        #[serde(default = "default_ipmi_port")]
        port: u16,
        /// User name.
        username: String,
        /// Secret reference for the password.
        password_ref: String,
    },
    /// Local BMC device.
    Local {
        /// `/dev/ipmi0`.
        device: PathBuf,
    },
    /// The Flex CMM's power module table over SNMP (see
    /// [`crate::power::cmm_snmp`]); `"kind": "cmm-snmp"`.
    #[serde(rename = "cmm-snmp")]
    CmmSnmp {
        /// SNMP agent `host:port`.
        address: String,
        /// SNMP security.
        snmp: SnmpSettings,
    },
}

/// Power settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSettings {
    /// PSU bays with their feeds.
    pub bays: Vec<PsuBay>,
    /// N of N+N.
    pub n: u32,
    /// Sources (IPMI and/or CMM SNMP); all fresh ones count, the worse
    /// reading of a PSU wins (see [`crate::power`]).
    pub sources: Vec<PowerSource>,
    /// Scan interval (seconds).
    #[serde(default = "default_power_poll")]
    pub poll_secs: u64,
    /// Readings older than this are CRITICAL (seconds).
    #[serde(default = "default_stale")]
    pub stale_after_secs: u64,
    /// Per-request timeout (ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// SNMP security as configured (secrets by reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version", rename_all = "lowercase", deny_unknown_fields)]
pub enum SnmpSettings {
    /// v2c.
    V2c {
        /// Secret reference for the community.
        community_ref: String,
    },
    /// v3 USM.
    V3 {
        /// User.
        user: String,
        /// `sha1`, `sha256`, `md5`...
        auth_protocol: String,
        /// Secret reference for the auth pass phrase.
        auth_password_ref: String,
        /// `aes128`, `des`...; absent for authNoPriv.
        privacy_protocol: Option<String>,
        /// Secret reference for the privacy pass phrase.
        privacy_password_ref: Option<String>,
    },
}

/// One switch module. (No `deny_unknown_fields`: serde does not support
/// it together with `flatten`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchModule {
    /// Ports and the NIC wired to the module.
    #[serde(flatten)]
    pub ports: ModulePorts,
    /// SNMP agent `host:port`.
    pub address: String,
    /// SNMP security.
    pub snmp: SnmpSettings,
}

/// Uplink settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkSettings {
    /// Node NICs (`eth0`, `eth1`).
    pub nics: Vec<String>,
    /// Bond over them (`bond0`), if any.
    pub bond: Option<String>,
    /// Network namespace file to read the NICs in (tests); `None` = own.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The two switch modules.
    pub modules: Vec<SwitchModule>,
    /// Poll interval for the switch side (seconds).
    #[serde(default = "default_uplink_poll")]
    pub poll_secs: u64,
    /// SNMP request timeout (ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl HealthConfig {
    /// Load from a JSON file.
    pub fn load(path: &Path) -> Result<HealthConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: HealthConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check ranges the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = &self.power {
            if p.n == 0 || p.n as usize > p.bays.len() {
                return Err(ConfigError::Invalid {
                    field: "power.n".into(),
                    reason: format!(
                        "must be between 1 and the number of bays ({})",
                        p.bays.len()
                    ),
                });
            }
            if p.sources.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "power.sources".into(),
                    reason: "at least one source (IPMI or CMM SNMP) is needed".into(),
                });
            }
        }
        if let Some(u) = &self.uplinks {
            for (i, m) in u.modules.iter().enumerate() {
                if !u.nics.contains(&m.ports.nic) {
                    return Err(ConfigError::Invalid {
                        field: format!("uplinks.modules[{i}].nic"),
                        reason: format!("{:?} is not one of uplinks.nics", m.ports.nic),
                    });
                }
            }
        }
        Ok(())
    }

    /// The power verdict settings.
    pub fn power_config(&self) -> Option<PowerConfig> {
        self.power.as_ref().map(|p| PowerConfig {
            bays: p.bays.clone(),
            n: p.n,
            stale_after_secs: p.stale_after_secs,
        })
    }
}

/// Secrets loaded from the secrets file.
#[derive(Clone, Default)]
pub struct Secrets {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print values.
        f.debug_struct("Secrets")
            .field("path", &self.path)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secrets {
    /// Parse `name = value` lines; `path` names the source in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Secrets, ConfigError> {
        let values: BTreeMap<String, String> = chassis::secrets::entries(text)
            .map_err(|line| ConfigError::SecretsSyntax {
                path: path.to_path_buf(),
                line,
            })?
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Secrets {
            path: path.to_path_buf(),
            values,
        })
    }

    /// Read and parse a secrets file.
    pub fn load(path: &Path) -> Result<Secrets, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretsIo {
            path: path.to_path_buf(),
            source,
        })?;
        Secrets::parse(path, &text)
    }

    /// Look up a reference held in `field`.
    pub fn get(&self, field: &str, reference: &str) -> Result<&str, ConfigError> {
        self.values
            .get(reference)
            .map(String::as_str)
            .ok_or_else(|| ConfigError::MissingSecret {
                field: field.to_string(),
                reference: reference.to_string(),
                path: self.path.clone(),
            })
    }
}

/// A power source with its secrets resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedPowerSource {
    /// IPMI.
    Ipmi(IpmiTarget),
    /// CMM power module table over SNMP at `address`.
    CmmSnmp {
        /// `host:port`.
        address: String,
        /// Credentials.
        auth: SnmpAuth,
    },
}

/// The source's name as readings and findings show it (no secrets):
/// `ipmi-lan host:port`, `ipmi-local /dev/ipmi0`, `cmm-snmp host:port`.
pub fn describe_source(src: &PowerSource) -> String {
    match src {
        PowerSource::Lan { host, port, .. } => format!("ipmi-lan {host}:{port}"),
        PowerSource::Local { device } => format!("ipmi-local {}", device.display()),
        PowerSource::CmmSnmp { address, .. } => format!("cmm-snmp {address}"),
    }
}

/// Resolve a power source's secrets; `field` names it in errors
/// (`power.sources[1]`).
pub fn power_source(
    src: &PowerSource,
    secrets: &Secrets,
    field: &str,
) -> Result<ResolvedPowerSource, ConfigError> {
    Ok(match src {
        PowerSource::CmmSnmp { address, snmp } => ResolvedPowerSource::CmmSnmp {
            address: address.clone(),
            auth: snmp_auth(snmp, secrets, &format!("{field}.snmp"))?,
        },
        other => ResolvedPowerSource::Ipmi(ipmi_target(other, secrets, field)?),
    })
}

/// Resolve an IPMI source into a target with its password (a CMM SNMP
/// source is an error: use [`power_source`]).
pub fn ipmi_target(
    src: &IpmiSource,
    secrets: &Secrets,
    field: &str,
) -> Result<IpmiTarget, ConfigError> {
    Ok(match src {
        IpmiSource::Lan {
            host,
            port,
            username,
            password_ref,
        } => IpmiTarget::Lan {
            host: host.clone(),
            port: *port,
            username: username.clone(),
            password: secrets
                .get(&format!("{field}.password_ref"), password_ref)?
                .to_string(),
        },
        IpmiSource::Local { device } => IpmiTarget::Local {
            device: device.clone(),
        },
        PowerSource::CmmSnmp { .. } => {
            return Err(ConfigError::Invalid {
                field: field.to_string(),
                reason: "a cmm-snmp source is not an IPMI target".into(),
            })
        }
    })
}

/// Resolve SNMP settings into credentials.
pub fn snmp_auth(
    s: &SnmpSettings,
    secrets: &Secrets,
    field: &str,
) -> Result<SnmpAuth, ConfigError> {
    Ok(match s {
        SnmpSettings::V2c { community_ref } => SnmpAuth::V2c {
            community: secrets
                .get(&format!("{field}.community_ref"), community_ref)?
                .to_string(),
        },
        SnmpSettings::V3 {
            user,
            auth_protocol,
            auth_password_ref,
            privacy_protocol,
            privacy_password_ref,
        } => SnmpAuth::V3 {
            user: user.clone(),
            auth_protocol: auth_protocol.clone(),
            auth_password: secrets
                .get(&format!("{field}.auth_password_ref"), auth_password_ref)?
                .to_string(),
            privacy_protocol: privacy_protocol.clone(),
            privacy_password: match privacy_password_ref {
                Some(r) => Some(
                    secrets
                        .get(&format!("{field}.privacy_password_ref"), r)?
                        .to_string(),
                ),
                None => None,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "node": "db1a",
      "secrets_file": "/etc/flexvisor/secrets",
      "raid": { "expected_arrays": ["md0", "md1"] },
      "power": {
        "n": 3,
        "bays": [
          {"bay": 1, "sensor": "PSU1", "feed": "mains"},
          {"bay": 2, "sensor": "PSU2", "feed": "mains"},
          {"bay": 3, "sensor": "PSU3", "feed": "mains"},
          {"bay": 4, "sensor": "PSU4", "feed": "ups"},
          {"bay": 5, "sensor": "PSU5", "feed": "ups"},
          {"bay": 6, "sensor": "PSU6", "feed": "ups"}
        ],
        "sources": [
          {"kind": "lan", "host": "cmm.mgmt", "username": "monitor", "password_ref": "cmm/ipmi"},
          {"kind": "local", "device": "/dev/ipmi0"},
          {"kind": "cmm-snmp", "address": "cmm.mgmt:161",
           "snmp": {"version": "v2c", "community_ref": "cmm/community"}}
        ]
      },
      "uplinks": {
        "nics": ["eth0", "eth1"],
        "bond": "bond0",
        "modules": [
          {"name": "io1", "address": "io1.mgmt:161", "nic": "eth0", "node_port": "INTA3",
           "uplinks": ["EXT1", "EXT2"], "snmp": {"version": "v2c", "community_ref": "io/community"}},
          {"name": "io2", "address": "io2.mgmt:161", "nic": "eth1", "node_port": "INTA3",
           "uplinks": ["EXT1", "EXT2"], "optional_uplinks": ["EXT11"],
           "snmp": {"version": "v3", "user": "mon", "auth_protocol": "sha1",
                    "auth_password_ref": "io/auth", "privacy_protocol": "aes128",
                    "privacy_password_ref": "io/priv"}}
        ]
      }
    }"#;

    #[test]
    fn sample_config_parses_and_resolves_secrets() {
        let cfg: HealthConfig = serde_json::from_str(SAMPLE).expect("parse");
        cfg.validate().expect("valid");
        assert_eq!(cfg.system_root, PathBuf::from("/"));
        assert_eq!(cfg.raid.fallback_poll_secs, 60);
        let secrets = Secrets::parse(
            Path::new("secrets"),
            "# chassis\ncmm/ipmi = s3cret\ncmm/community = cmm-ro\nio/community=public-ro\nio/auth = a\nio/priv = p\n",
        )
        .expect("secrets");
        let p = cfg.power.as_ref().expect("power");
        let t = ipmi_target(&p.sources[0], &secrets, "power.sources[0]").expect("resolve");
        assert!(
            matches!(t, IpmiTarget::Lan { ref password, port: 623, .. } if password == "s3cret")
        );
        let c = power_source(&p.sources[2], &secrets, "power.sources[2]").expect("cmm snmp");
        assert_eq!(
            c,
            ResolvedPowerSource::CmmSnmp {
                address: "cmm.mgmt:161".into(),
                auth: SnmpAuth::V2c {
                    community: "cmm-ro".into()
                }
            }
        );
        let e = ipmi_target(&p.sources[2], &secrets, "power.sources[2]").expect_err("not ipmi");
        assert!(e.to_string().starts_with("power.sources[2]:"), "{e}");
        let u = cfg.uplinks.as_ref().expect("uplinks");
        let a = snmp_auth(&u.modules[1].snmp, &secrets, "uplinks.modules[1].snmp").expect("v3");
        assert!(
            matches!(a, SnmpAuth::V3 { ref privacy_password, .. } if privacy_password.as_deref() == Some("p"))
        );
        assert!(!format!("{secrets:?}").contains("s3cret"));
    }

    #[test]
    fn missing_secret_names_field_reference_and_file() {
        let secrets = Secrets::parse(Path::new("/etc/fv/secrets"), "x = y\n").expect("parse");
        let e = secrets
            .get("power.sources[0].password_ref", "cmm/ipmi")
            .expect_err("missing");
        assert_eq!(
            e.to_string(),
            "power.sources[0].password_ref: secret \"cmm/ipmi\" not found in /etc/fv/secrets"
        );
        let e = Secrets::parse(Path::new("s"), "ok = 1\nbroken line\n").expect_err("syntax");
        assert_eq!(e.to_string(), "s:2: expected `name = value`");
    }

    #[test]
    fn invalid_n_and_unknown_field_are_rejected() {
        let bad = SAMPLE.replace("\"n\": 3", "\"n\": 7");
        let cfg: HealthConfig = serde_json::from_str(&bad).expect("parse");
        assert!(cfg
            .validate()
            .expect_err("n")
            .to_string()
            .starts_with("power.n:"));
        let bad = SAMPLE.replace("\"bond\"", "\"bnod\"");
        let e = serde_json::from_str::<HealthConfig>(&bad).expect_err("unknown field");
        assert!(e.to_string().contains("bnod"), "{e}");
    }
}
