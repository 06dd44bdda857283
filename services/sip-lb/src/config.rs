//! The sip-lb configuration file (TOML): listen addresses, proxy pairs, TLS
//! files, keepalive, NAT, flood limits and the metrics endpoint.
//!
//! Loading checks everything once; errors name the file, the line/column (from
//! the TOML parser) or the field, and say what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use flexvisor_daemon::config as daemon_config;
use serde::Deserialize;

/// Why the configuration could not be loaded (shared by the bundled daemons).
pub use flexvisor_daemon::config::ConfigError;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Sockets to listen on.
    pub listen: Listen,
    /// TLS certificate and key (required when `listen.tls` is set).
    pub tls: Option<TlsFiles>,
    /// Proxy pairs, in dispatch order (one shared address per pair).
    #[serde(rename = "proxy")]
    pub proxies: Vec<Proxy>,
    /// OPTIONS keepalive towards the proxy pairs.
    #[serde(default)]
    pub keepalive: Keepalive,
    /// Far-end NAT handling.
    #[serde(default)]
    pub nat: Nat,
    /// Per-source flood protection.
    #[serde(default)]
    pub flood: Flood,
    /// Metrics endpoint.
    #[serde(default)]
    pub metrics: Metrics,
    /// TCP/TLS connection limits.
    #[serde(default)]
    pub streams: Streams,
}

/// Limits on front TCP/TLS connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Streams {
    /// Connections open at once; more are closed at accept.
    #[serde(default = "default_max_conns")]
    pub max_connections: usize,
    /// A connection silent this long is closed (CRLF keep-alives count).
    #[serde(default = "default_idle")]
    pub idle_secs: u64,
}

fn default_max_conns() -> usize {
    20_000
}
fn default_idle() -> u64 {
    900
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            max_connections: default_max_conns(),
            idle_secs: default_idle(),
        }
    }
}

/// Listen addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Front UDP socket (subscribers).
    pub udp: Option<SocketAddr>,
    /// Front TCP listener.
    pub tcp: Option<SocketAddr>,
    /// Front TLS listener.
    pub tls: Option<SocketAddr>,
    /// UDP socket towards the proxies (its address goes into Via,
    /// Record-Route and Path seen by the proxies).
    pub internal: SocketAddr,
    /// Receive tasks per UDP socket. More than 1 spreads one socket over
    /// several cores but may reorder messages of one flow (e.g. a 180 after
    /// its 200), as several Kamailio children do; 1 keeps per-socket order.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Bind even when the address is not (yet) on this node: the standby of
    /// a VRRP pair listens on the shared address before it owns it
    /// (IP_FREEBIND).
    #[serde(default = "yes")]
    pub freebind: bool,
}

fn default_workers() -> usize {
    1
}

/// TLS certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8/PKCS#1/SEC1).
    pub key: PathBuf,
}

/// One proxy pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// Name used in logs and metrics.
    pub name: String,
    /// The pair's shared address (UDP).
    pub address: SocketAddr,
}

/// Keepalive settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalive {
    /// Interval between OPTIONS pings per pair.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Consecutive unanswered pings before a pair is marked down.
    #[serde(default = "default_failures")]
    pub failures: u32,
}

fn default_interval() -> u64 {
    2000
}
fn default_failures() -> u32 {
    3
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            interval_ms: default_interval(),
            failures: default_failures(),
        }
    }
}

/// What to do with a Contact that does not match the packet's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContactMode {
    /// Leave Contact alone.
    Off,
    /// Add `;received="sip:ip:port"` as a Contact header parameter.
    #[default]
    Mark,
    /// Replace the Contact URI host and port with the source address.
    Rewrite,
}

/// NAT settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat {
    /// Contact handling.
    #[serde(default)]
    pub contact: ContactMode,
    /// Fill in `rport` even when the client did not ask for it.
    #[serde(default = "yes")]
    pub force_rport: bool,
}

fn yes() -> bool {
    true
}

impl Default for Nat {
    fn default() -> Self {
        Nat {
            contact: ContactMode::Mark,
            force_rport: true,
        }
    }
}

/// Flood protection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flood {
    /// Sustained packets per second allowed per source address.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Burst size (token bucket depth).
    #[serde(default = "default_burst")]
    pub burst: f64,
    /// How long an offending source stays banned.
    #[serde(default = "default_ban")]
    pub ban_secs: u64,
}

fn default_rate() -> f64 {
    200.0
}
fn default_burst() -> f64 {
    400.0
}
fn default_ban() -> u64 {
    60
}

impl Default for Flood {
    fn default() -> Self {
        Flood {
            rate: default_rate(),
            burst: default_burst(),
            ban_secs: default_ban(),
        }
    }
}

/// Metrics endpoint settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Loopback HTTP address serving `/metrics` (Prometheus text); off when absent.
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&daemon_config::read(path)?, path)
    }

    /// Parses and checks configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = daemon_config::parse(text, path)?;
        // sip-lb's messages name the field without a line.
        let invalid = |field: &str, reason: &str| daemon_config::invalid(path, None, field, reason);
        if cfg.listen.udp.is_none() && cfg.listen.tcp.is_none() && cfg.listen.tls.is_none() {
            return Err(invalid(
                "listen",
                "no front listener: set at least one of udp, tcp, tls",
            ));
        }
        if cfg.listen.tls.is_some() && cfg.tls.is_none() {
            return Err(invalid(
                "tls",
                "listen.tls is set but the [tls] section with cert and key is missing",
            ));
        }
        if cfg.listen.workers == 0 || cfg.listen.workers > 64 {
            return Err(invalid("listen.workers", "must be between 1 and 64"));
        }
        if cfg.proxies.is_empty() {
            return Err(invalid("proxy", "at least one [[proxy]] pair is required"));
        }
        for (i, p) in cfg.proxies.iter().enumerate() {
            if p.name.is_empty() {
                return Err(invalid(&format!("proxy[{i}].name"), "must not be empty"));
            }
            if cfg.proxies[..i].iter().any(|q| q.address == p.address) {
                return Err(invalid(
                    &format!("proxy[{i}].address"),
                    &format!("{} is listed twice", p.address),
                ));
            }
        }
        if cfg.streams.max_connections == 0 || cfg.streams.idle_secs == 0 {
            return Err(invalid(
                "streams",
                "max_connections and idle_secs must be at least 1",
            ));
        }
        if cfg.keepalive.interval_ms < 50 {
            return Err(invalid("keepalive.interval_ms", "must be at least 50"));
        }
        if cfg.keepalive.failures == 0 {
            return Err(invalid("keepalive.failures", "must be at least 1"));
        }
        let finite = cfg.flood.rate.is_finite() && cfg.flood.burst.is_finite();
        if !finite || cfg.flood.rate <= 0.0 || cfg.flood.burst < 1.0 {
            return Err(invalid(
                "flood",
                "rate must be > 0 and burst >= 1 (packets per second per source)",
            ));
        }
        for (field, addr) in [
            ("listen.udp", cfg.listen.udp),
            ("listen.tcp", cfg.listen.tcp),
            ("listen.tls", cfg.listen.tls),
            ("listen.internal", Some(cfg.listen.internal)),
        ] {
            if let Some(a) = addr {
                if a.ip().is_unspecified() {
                    return Err(invalid(
                        field,
                        "must be a concrete address (it is written into Via, Record-Route and Path)",
                    ));
                }
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[listen]
udp = "127.0.0.1:5060"
internal = "127.0.0.1:5070"

[[proxy]]
name = "proxy1"
address = "127.0.0.2:5060"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, Path::new("lb.toml")).unwrap();
        assert_eq!(c.keepalive.failures, 3);
        assert_eq!(c.nat.contact, ContactMode::Mark);
        assert_eq!(c.proxies[0].address, "127.0.0.2:5060".parse().unwrap());
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = Config::parse("[listen]\nudp = 5060\n", Path::new("/etc/lb.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/lb.toml: "), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let text = GOOD.replace("udp = \"127.0.0.1:5060\"", "tls = \"127.0.0.1:5061\"");
        let e = Config::parse(&text, Path::new("lb.toml")).unwrap_err();
        assert!(e.to_string().contains("field `tls`"), "{e}");
        let text = format!("{GOOD}\n[[proxy]]\nname = \"p2\"\naddress = \"127.0.0.2:5060\"\n");
        let e = Config::parse(&text, Path::new("lb.toml")).unwrap_err();
        assert!(e.to_string().contains("proxy[1].address"), "{e}");
        let text = GOOD.replace("127.0.0.1:5070", "0.0.0.0:5070");
        let e = Config::parse(&text, Path::new("lb.toml")).unwrap_err();
        assert!(e.to_string().contains("listen.internal"), "{e}");
    }
}
