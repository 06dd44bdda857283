//! The web-api configuration file (TOML): HTTPS listener, certificate files,
//! the central MariaDB and limits.
//!
//! Loading checks everything that can be checked without the network once;
//! errors name the file, the line (TOML parser location or the span of the
//! offending value) and the field, and say what to do. Loading the
//! certificate files is [`crate::tls`]'s job, called by `--check-config` too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flexvisor_daemon::config as daemon_config;
use serde::Deserialize;
use toml::Spanned;

/// Why the configuration could not be loaded (shared by the bundled daemons).
pub use flexvisor_daemon::config::ConfigError;

/// The whole configuration, as checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTPS listen address (the web pair's shared address, or `[::]:443`).
    pub listen: SocketAddr,
    /// Bind even when `listen` is not (yet) on this node (IP_FREEBIND): the
    /// standby of the pair listens on the shared address before owning it.
    pub freebind: bool,
    /// Certificate chain and private key (PEM).
    pub tls: TlsFiles,
    /// Central MariaDB (`mysql://user:pass@host:port/db`), the db pair's
    /// shared address in production.
    pub database_url: String,
    /// Connections in the database pool.
    pub db_max_connections: u32,
    /// Create the tables if they are missing when the daemon starts.
    pub apply_schema: bool,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long SIGTERM waits for in-flight requests before closing.
    pub shutdown_grace_secs: u64,
    /// Runtime worker threads.
    pub workers: usize,
}

/// Certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8/PKCS#1/SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Spanned<String>,
    #[serde(default = "yes")]
    freebind: bool,
    tls: Spanned<TlsFiles>,
    database_url: Spanned<String>,
    #[serde(default = "default_pool")]
    db_max_connections: Spanned<u32>,
    #[serde(default = "yes")]
    apply_schema: bool,
    #[serde(default = "default_max_conns")]
    max_connections: Spanned<usize>,
    #[serde(default = "default_grace")]
    shutdown_grace_secs: Spanned<u64>,
    #[serde(default = "default_workers")]
    workers: Spanned<usize>,
}

fn yes() -> bool {
    true
}
fn default_pool() -> Spanned<u32> {
    Spanned::new(0..0, 16)
}
fn default_max_conns() -> Spanned<usize> {
    Spanned::new(0..0, 1024)
}
fn default_grace() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_workers() -> Spanned<usize> {
    Spanned::new(0..0, 2)
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&daemon_config::read(path)?, path)
    }

    /// Parses and checks configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: Raw = daemon_config::parse(text, path).map_err(ConfigError::one_line)?;
        let invalid = |field: &str, span: std::ops::Range<usize>, reason: &str| {
            let line = daemon_config::line_at(text, span.start);
            daemon_config::invalid(path, Some(line), field, reason)
        };
        let listen = SocketAddr::from_str(raw.listen.get_ref()).map_err(|_| {
            invalid(
                "listen",
                raw.listen.span(),
                &format!(
                    "{:?} is not an address:port (e.g. \"198.51.100.150:443\" or \"[::]:443\")",
                    raw.listen.get_ref()
                ),
            )
        })?;
        if listen.port() == 0 {
            return Err(invalid("listen", raw.listen.span(), "port must not be 0"));
        }
        let url = raw.database_url.get_ref();
        if let Err(e) = sqlx::mysql::MySqlConnectOptions::from_str(url) {
            return Err(invalid(
                "database_url",
                raw.database_url.span(),
                &format!("not a MariaDB URL (mysql://user:password@host:port/database): {e}"),
            ));
        }
        if !url.starts_with("mysql://") && !url.starts_with("mariadb://") {
            return Err(invalid(
                "database_url",
                raw.database_url.span(),
                "must start with mysql:// (mysql://user:password@host:port/database)",
            ));
        }
        let tls = raw.tls.get_ref().clone();
        for (field, p) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
            if p.as_os_str().is_empty() {
                return Err(invalid(field, raw.tls.span(), "must name a PEM file"));
            }
        }
        let pool = *raw.db_max_connections.get_ref();
        if !(1..=256).contains(&pool) {
            return Err(invalid(
                "db_max_connections",
                raw.db_max_connections.span(),
                "must be between 1 and 256",
            ));
        }
        let max_conns = *raw.max_connections.get_ref();
        if !(1..=100_000).contains(&max_conns) {
            return Err(invalid(
                "max_connections",
                raw.max_connections.span(),
                "must be between 1 and 100000",
            ));
        }
        let grace = *raw.shutdown_grace_secs.get_ref();
        if grace > 3600 {
            return Err(invalid(
                "shutdown_grace_secs",
                raw.shutdown_grace_secs.span(),
                "must be at most 3600",
            ));
        }
        let workers = *raw.workers.get_ref();
        if !(1..=64).contains(&workers) {
            return Err(invalid(
                "workers",
                raw.workers.span(),
                "must be between 1 and 64",
            ));
        }
        Ok(Config {
            listen,
            freebind: raw.freebind,
            tls,
            database_url: url.clone(),
            db_max_connections: pool,
            apply_schema: raw.apply_schema,
            max_connections: max_conns,
            shutdown_grace_secs: grace,
            workers,
        })
    }
}

/// Hides the password in a `scheme://user:pass@host` URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"listen = "127.0.0.1:8443"
database_url = "mysql://web:pw@127.0.0.1:3306/flexvisor"

[tls]
cert = "/etc/flexvisor/web-api/cert.pem"
key = "/etc/flexvisor/web-api/key.pem"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, Path::new("w.toml")).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(c.db_max_connections, 16);
        assert_eq!(c.shutdown_grace_secs, 30);
        assert!(c.freebind && c.apply_schema);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = Config::parse("listen = 8443\n", Path::new("/etc/w.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/w.toml: "), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        let e = Config::parse(&format!("{GOOD}\nbogus = 1\n"), Path::new("w.toml")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn semantic_errors_name_line_and_field() {
        let text = GOOD.replace("127.0.0.1:8443", "localhost");
        let e = Config::parse(&text, Path::new("w.toml")).unwrap_err();
        assert!(e.to_string().starts_with("w.toml:1: field `listen`"), "{e}");
        let text = GOOD.replace("mysql://web", "postgres://web");
        let e = Config::parse(&text, Path::new("w.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("w.toml:2: field `database_url`"),
            "{e}"
        );
        let text = format!("workers = 0\n{GOOD}");
        let e = Config::parse(&text, Path::new("w.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("w.toml:1: field `workers`"),
            "{e}"
        );
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("mysql://web:secret@10.20.1.11/flexvisor"),
            "mysql://web:***@10.20.1.11/flexvisor"
        );
    }
}
