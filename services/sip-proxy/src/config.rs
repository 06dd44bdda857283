//! The proxy's TOML configuration file (`--config`), normally written from
//! the node configuration by the supervisor.
//!
//! ```toml
//! listen = "127.0.0.1:5062"          # UDP, the address the lbs send to
//! record_route = "127.0.0.1:5062"    # host:port put in Record-Route
//! node = "proxy1a"                   # names this node's calls in Redis
//! domains = ["example.com"]          # served domains; realm = domain
//! database_url = "mysql://proxy@127.0.0.1/provisioning"
//! redis_url = "redis://127.0.0.1:6379/"
//! spool_dir = "/var/spool/sip-proxy"
//! nonce_secret = "shared by the pair"
//!
//! [media_relay]                      # optional: anchor media on media-relay
//! control = "127.0.0.1:2223"         # its ng control socket
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("config {path}: field `{field}`: {problem}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
}

fn default_node() -> String {
    "proxy".into()
}
fn default_nonce_lifetime() -> u64 {
    300
}
fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    3600
}
fn default_default_expires() -> u32 {
    3600
}
fn default_call_ttl() -> u64 {
    120
}
fn default_max_call() -> u64 {
    4 * 3600
}
fn default_spool_max() -> u64 {
    16 << 20
}
fn default_db_conns() -> u32 {
    8
}
fn default_true() -> bool {
    true
}
fn default_algorithms() -> Vec<String> {
    vec!["SHA-256".into(), "MD5".into()]
}

/// Validated configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Address put into Record-Route and recognised in Route headers;
    /// defaults to `listen`.
    pub record_route: Option<SocketAddr>,
    #[serde(default = "default_node")]
    pub node: String,
    /// Domains this proxy serves; each is also its digest realm.
    pub domains: Vec<String>,
    pub database_url: String,
    #[serde(default = "default_db_conns")]
    pub database_max_connections: u32,
    pub redis_url: String,
    pub spool_dir: PathBuf,
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    /// Secret for stateless nonces; must be equal on both nodes of a pair.
    pub nonce_secret: String,
    #[serde(default = "default_nonce_lifetime")]
    pub nonce_lifetime_secs: u64,
    /// Digest algorithms offered, in order of preference (RFC 8760 §2.4).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Challenge INVITEs from our subscribers with 407 (recommended).
    #[serde(default = "default_true")]
    pub authenticate_invite: bool,
    #[serde(default = "default_min_expires")]
    pub min_expires: u32,
    #[serde(default = "default_max_expires")]
    pub max_expires: u32,
    #[serde(default = "default_default_expires")]
    pub default_expires: u32,
    /// Lifetime of a call's counter entries without refresh.
    #[serde(default = "default_call_ttl")]
    pub call_ttl_secs: u64,
    /// Calls older than this are released as timed out.
    #[serde(default = "default_max_call")]
    pub max_call_secs: u64,
    /// Media relay engaged for calls with SDP; none when absent.
    pub media_relay: Option<MediaRelayConfig>,
}

fn default_media_timeout() -> u64 {
    200
}

/// `[media_relay]`: the ng control socket of media-relay (or rtpengine).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaRelayConfig {
    /// `host:port` of the relay's ng control socket (UDP).
    pub control: SocketAddr,
    /// Wait per attempt (three attempts) for a relay reply.
    #[serde(default = "default_media_timeout")]
    pub timeout_ms: u64,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |field, problem: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            problem: problem.to_string(),
        };
        if cfg.domains.is_empty() {
            return Err(bad("domains", "at least one domain is required"));
        }
        if cfg.nonce_secret.len() < 8 {
            return Err(bad("nonce_secret", "must be at least 8 characters"));
        }
        if cfg.algorithms.is_empty() {
            return Err(bad("algorithms", "at least one of SHA-256, MD5"));
        }
        for a in &cfg.algorithms {
            if crate::digest::Algorithm::parse(Some(a)).is_none() {
                return Err(bad(
                    "algorithms",
                    &format!("unknown algorithm {a:?} (SHA-256 or MD5)"),
                ));
            }
        }
        if cfg.min_expires > cfg.max_expires {
            return Err(bad("min_expires", "greater than max_expires"));
        }
        if !cfg.database_url.starts_with("mysql://") && !cfg.database_url.starts_with("mariadb://")
        {
            return Err(bad("database_url", "must start with mysql://"));
        }
        if !cfg.redis_url.starts_with("redis://") && !cfg.redis_url.starts_with("redis+unix://") {
            return Err(bad("redis_url", "must start with redis://"));
        }
        if let Some(m) = &cfg.media_relay {
            if m.timeout_ms == 0 || m.timeout_ms > 10_000 {
                return Err(bad("media_relay.timeout_ms", "must be between 1 and 10000"));
            }
        }
        Ok(cfg)
    }

    /// The Record-Route address (defaults to the listen address).
    pub fn rr_addr(&self) -> SocketAddr {
        self.record_route.unwrap_or(self.listen)
    }

    /// Digest algorithms in preference order.
    pub fn digest_algorithms(&self) -> Vec<crate::digest::Algorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| crate::digest::Algorithm::parse(Some(a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:5062"
domains = ["example.com"]
database_url = "mysql://root@127.0.0.1:3306/flexvisor"
redis_url = "redis://127.0.0.1:6379/"
spool_dir = "/tmp/spool"
nonce_secret = "0123456789"
"#;

    #[test]
    fn parses_with_defaults() {
        let c = Config::parse(GOOD, Path::new("p.toml")).unwrap();
        assert_eq!(c.rr_addr(), c.listen);
        assert_eq!(c.digest_algorithms().len(), 2);
        assert!(c.authenticate_invite);
        assert!(c.media_relay.is_none());
        let c = Config::parse(
            &format!("{GOOD}\n[media_relay]\ncontrol = \"127.0.0.1:2223\"\n"),
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(c.media_relay.unwrap().timeout_ms, 200);
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = Config::parse(
            &GOOD.replace("[\"example.com\"]", "[]"),
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p.toml") && e.contains("domains"), "{e}");
        let e = Config::parse(&format!("{GOOD}\nbogus = 1\n"), Path::new("q.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("q.toml") && e.contains("bogus"), "{e}");
        let e = Config::parse(
            &format!("{GOOD}\nalgorithms = [\"SHA-512\"]\n"),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("algorithms"), "{e}");
    }
}
