//! The billing configuration file (TOML): where the spool and the local
//! state live, the central and rating databases, and the mediation limits.
//!
//! Loading checks everything once; errors name the file, the line (from the
//! TOML parser, or from the span of the offending value) and the field, and
//! say what is wrong, as sip-lb's configuration does.
//!
//! ```toml
//! spool_dir = "/var/spool/sip-proxy"        # the proxy's accounting spool
//! state_dir = "/var/lib/billing"            # outbox, quarantine, status
//! central_url = "mysql://billing@192.168.1.20/flexvisor"   # db pair's shared IP
//! rating_url = "mysql://billing@127.0.0.1/flexvisor"       # local replica
//! max_call_secs = 14400
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use flexvisor_daemon::config as daemon_config;
use serde::Deserialize;
use toml::Spanned;

/// Why the configuration could not be loaded (shared by the bundled daemons).
pub use flexvisor_daemon::config::ConfigError;

/// The file as written (values carry their spans for error messages).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    node: Option<Spanned<String>>,
    spool_dir: Spanned<PathBuf>,
    state_dir: Spanned<PathBuf>,
    done_dir: Option<Spanned<PathBuf>>,
    central_url: Spanned<String>,
    rating_url: Option<Spanned<String>>,
    max_call_secs: Option<Spanned<u64>>,
    batch_lines: Option<Spanned<u64>>,
    poll_ms: Option<Spanned<u64>>,
    profile_reload_secs: Option<Spanned<u64>>,
    retry_max_secs: Option<Spanned<u64>>,
    done_keep_days: Option<Spanned<u64>>,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Name of this node in logs and the status (default: hostname).
    pub node: String,
    /// The sip-proxy accounting spool directory.
    pub spool_dir: PathBuf,
    /// Local state: `state.json`, `outbox/`, `quarantine/`, `status.json`.
    /// Must be on persistent storage (not tmpfs): it holds mediated CDRs
    /// while the central database is unreachable.
    pub state_dir: PathBuf,
    /// Where fully committed spool files are moved (default
    /// `<spool_dir>/done`).
    pub done_dir: PathBuf,
    /// Central MariaDB (CDRs are written here).
    pub central_url: String,
    /// MariaDB holding the billing profiles (default: `central_url`).
    pub rating_url: String,
    /// A call started longer ago than this without a stop is orphaned.
    pub max_call_secs: u64,
    /// Spool lines per batch (one local step, one central transaction).
    pub batch_lines: usize,
    /// How often the spool is polled when idle.
    pub poll_ms: u64,
    /// How often the billing profiles are reloaded.
    pub profile_reload_secs: u64,
    /// Longest wait between retries when the central database is down.
    pub retry_max_secs: u64,
    /// Spool files in `done_dir` older than this (by the time in their
    /// name) are deleted; 0 keeps them forever.
    pub done_keep_days: u64,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&daemon_config::read(path)?, path)
    }

    /// Parses and checks configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: Raw = daemon_config::parse(text, path)?;
        let invalid = |span: Range<usize>, field: &str, reason: &str| {
            let line = daemon_config::line_at(text, span.start);
            daemon_config::invalid(path, Some(line), field, reason)
        };
        let url = |v: &Spanned<String>, field: &str| -> Result<String, ConfigError> {
            let s = v.get_ref();
            if !(s.starts_with("mysql://") || s.starts_with("mariadb://")) {
                return Err(invalid(
                    v.span(),
                    field,
                    "expected a URL like mysql://user@host:3306/flexvisor",
                ));
            }
            Ok(s.replacen("mariadb://", "mysql://", 1))
        };
        let dir = |v: &Spanned<PathBuf>, field: &str| -> Result<PathBuf, ConfigError> {
            if !v.get_ref().is_absolute() {
                return Err(invalid(v.span(), field, "must be an absolute path"));
            }
            Ok(v.get_ref().clone())
        };
        let num = |v: &Option<Spanned<u64>>,
                   field: &str,
                   default: u64,
                   min: u64,
                   max: u64|
         -> Result<u64, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
                Some(s) => Err(invalid(
                    s.span(),
                    field,
                    &format!("{} is out of range {min}..={max}", s.get_ref()),
                )),
            }
        };
        let spool_dir = dir(&raw.spool_dir, "spool_dir")?;
        let state_dir = dir(&raw.state_dir, "state_dir")?;
        if state_dir.starts_with(&spool_dir) {
            return Err(invalid(
                raw.state_dir.span(),
                "state_dir",
                "must not be inside spool_dir",
            ));
        }
        let done_dir = match &raw.done_dir {
            Some(d) => dir(d, "done_dir")?,
            None => spool_dir.join("done"),
        };
        if done_dir == spool_dir {
            let span = raw.done_dir.as_ref().map_or(0..0, |d| d.span());
            return Err(invalid(span, "done_dir", "must differ from spool_dir"));
        }
        let central_url = url(&raw.central_url, "central_url")?;
        let rating_url = match &raw.rating_url {
            Some(u) => url(u, "rating_url")?,
            None => central_url.clone(),
        };
        let node = match raw.node {
            Some(n) if n.get_ref().trim().is_empty() => {
                return Err(invalid(n.span(), "node", "must not be empty"))
            }
            Some(n) => n.into_inner(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
        };
        Ok(Config {
            node,
            spool_dir,
            state_dir,
            done_dir,
            central_url,
            rating_url,
            max_call_secs: num(&raw.max_call_secs, "max_call_secs", 4 * 3600, 60, 7 * 86400)?,
            batch_lines: num(&raw.batch_lines, "batch_lines", 2000, 1, 100_000)? as usize,
            poll_ms: num(&raw.poll_ms, "poll_ms", 1000, 10, 60_000)?,
            profile_reload_secs: num(
                &raw.profile_reload_secs,
                "profile_reload_secs",
                60,
                1,
                86400,
            )?,
            retry_max_secs: num(&raw.retry_max_secs, "retry_max_secs", 30, 1, 3600)?,
            done_keep_days: num(&raw.done_keep_days, "done_keep_days", 30, 0, 3650)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "spool_dir = \"/var/spool/sip-proxy\"\nstate_dir = \"/var/lib/billing\"\n\
                        central_url = \"mysql://billing@10.0.0.5/flexvisor\"\n";

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("/etc/billing.toml"))
    }

    #[test]
    fn defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.done_dir, PathBuf::from("/var/spool/sip-proxy/done"));
        assert_eq!(c.rating_url, c.central_url);
        assert_eq!(c.max_call_secs, 14400);
        assert_eq!(c.batch_lines, 2000);
    }

    #[test]
    fn invalid_values_name_file_line_and_field() {
        let e = parse(&format!("{GOOD}\n\nmax_call_secs = 5\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/billing.toml:6: field `max_call_secs`"),
            "{e}"
        );
        let e = parse(&GOOD.replace("mysql://", "http://"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/billing.toml:3: field `central_url`"),
            "{e}"
        );
        let e = parse(&GOOD.replace("\"/var/lib/billing\"", "\"rel\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/billing.toml:2: field `state_dir`"),
            "{e}"
        );
    }

    #[test]
    fn syntax_and_unknown_fields_name_the_line() {
        let e = parse(&format!("{GOOD}bogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("bogus"), "{e}");
        let e = parse(&format!("{GOOD}poll_ms = \"fast\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("poll_ms"), "{e}");
    }
}
