//! The media-relay configuration file (TOML).
//!
//! ```toml
//! control = "127.0.0.1:2223"     # ng control socket (UDP), for the proxy
//! address = "10.20.1.13"         # media address: the proxy pair's shared IP
//! # advertise = "198.51.100.13"  # address written into SDP (default: address)
//! port_min = 30000               # RTP/RTCP port range (even..odd pairs)
//! port_max = 39999
//! timeout_secs = 60              # a call without packets/signalling this long is freed
//! freebind = true                # bind before the address is ours (VRRP standby)
//!
//! [redis]                        # failover state (the pair's local Redis)
//! url = "redis://127.0.0.1:6379/"
//! key_prefix = "media-relay:proxy1:"
//!
//! [metrics]
//! listen = "127.0.0.1:9107"      # Prometheus text at /metrics
//! ```
//!
//! Loading checks everything once. Syntax errors carry the TOML parser's
//! line and column; semantic errors name file, line and field.

use flexvisor_daemon::config as daemon_config;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Why the configuration could not be loaded (shared by the bundled daemons).
pub use flexvisor_daemon::config::ConfigError;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// ng control socket (UDP).
    pub control: SocketAddr,
    /// Address media sockets bind to.
    pub address: IpAddr,
    /// Address written into SDP; defaults to `address`.
    pub advertise: Option<IpAddr>,
    /// First port of the media range (even).
    #[serde(default = "default_min")]
    pub port_min: u16,
    /// Last port of the media range.
    #[serde(default = "default_max")]
    pub port_max: u16,
    /// Idle time after which a call is freed.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Bind media and control sockets even when the address is not (yet)
    /// on this node (IP_FREEBIND), as the standby of a VRRP pair must.
    #[serde(default = "yes")]
    pub freebind: bool,
    /// Failover state in Redis; none when absent.
    pub redis: Option<RedisCfg>,
    /// Metrics endpoint.
    #[serde(default)]
    pub metrics: Metrics,
}

/// Where sessions are kept for the standby.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCfg {
    /// `redis://host:port/db`
    pub url: String,
    /// Prefix of every key; both nodes of a pair use the same one.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

/// Metrics endpoint settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// HTTP address serving `/metrics` (Prometheus text); off when absent.
    pub listen: Option<SocketAddr>,
}

fn default_min() -> u16 {
    30000
}
fn default_max() -> u16 {
    39999
}
fn default_timeout() -> u64 {
    60
}
fn default_prefix() -> String {
    "media-relay:".into()
}
fn yes() -> bool {
    true
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&daemon_config::read(path)?, path)
    }

    /// Parses and checks configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = daemon_config::parse(text, path)?;
        let invalid = |field: &str, reason: &str| {
            let line = daemon_config::line_of_key(text, field);
            daemon_config::invalid(path, Some(line), field, reason)
        };
        if cfg.port_min < 1024 || !cfg.port_min.is_multiple_of(2) {
            return Err(invalid(
                "port_min",
                "must be an even port >= 1024 (RTP on even, RTCP on the next odd port)",
            ));
        }
        if cfg.port_max < cfg.port_min.saturating_add(3) {
            return Err(invalid(
                "port_max",
                "range too small: a call stream needs 4 ports (2 RTP/RTCP pairs)",
            ));
        }
        if cfg.timeout_secs == 0 {
            return Err(invalid("timeout_secs", "must be at least 1"));
        }
        if cfg.address.is_unspecified() && cfg.advertise.is_none() {
            return Err(invalid(
                "address",
                "is unspecified: set `advertise` to the address written into SDP",
            ));
        }
        if let Some(a) = cfg.advertise {
            if a.is_unspecified() {
                return Err(invalid("advertise", "must be a concrete address"));
            }
            if a.is_ipv4() != cfg.address.is_ipv4() {
                return Err(invalid("advertise", "must be of the family of `address`"));
            }
        }
        if let Some(r) = &cfg.redis {
            if !r.url.starts_with("redis://") && !r.url.starts_with("redis+unix://") {
                return Err(invalid("redis.url", "must start with redis://"));
            }
            if r.key_prefix.is_empty() {
                return Err(invalid("redis.key_prefix", "must not be empty"));
            }
        }
        Ok(cfg)
    }

    /// The address written into SDP.
    pub fn sdp_address(&self) -> IpAddr {
        self.advertise.unwrap_or(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "control = \"127.0.0.1:2223\"\naddress = \"127.0.0.1\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, Path::new("r.toml")).unwrap();
        assert_eq!((c.port_min, c.port_max, c.timeout_secs), (30000, 39999, 60));
        assert!(c.freebind && c.redis.is_none());
        assert_eq!(c.sdp_address(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = Config::parse(
            &format!("{GOOD}port_min = \"x\"\n"),
            Path::new("/etc/r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/etc/r.toml: "), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = Config::parse(&format!("{GOOD}bogus = 1\n"), Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn semantic_errors_name_file_line_and_field() {
        let e = Config::parse(&format!("{GOOD}port_min = 30001\n"), Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.toml:3: field `port_min`"), "{e}");
        let e = Config::parse(
            &format!("{GOOD}\n[redis]\nurl = \"http://x\"\n"),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("r.toml:5: field `redis.url`"), "{e}");
        let e = Config::parse(
            "control = \"127.0.0.1:1\"\naddress = \"0.0.0.0\"\n",
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":2: field `address`"), "{e}");
    }
}
