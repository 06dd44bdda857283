//! Loading a service's TOML configuration file: read it, parse it into the
//! service's own type, and report what is wrong as `file: message` (syntax,
//! with the parser's line and column) or `file:line: field `name`: reason`
//! (a value the service rejects).
//!
//! Which values are acceptable is each service's business: it parses with
//! [`parse`] (or reads with [`read`] first when it needs the text to locate a
//! field), checks, and builds [`ConfigError::Invalid`] with [`invalid`],
//! locating the value with [`line_at`] (from a `toml::Spanned` span) or
//! [`line_of_key`] (by key name).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why a configuration file could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// TOML syntax or type error (the parser's message carries line and column).
    #[error("{path}: {message}")]
    Syntax {
        /// File path.
        path: PathBuf,
        /// Parser message with location.
        message: String,
    },
    /// A value is present but not acceptable (or a required one is missing).
    #[error("{path}{}: field `{field}`: {reason}", at_line(*line))]
    Invalid {
        /// File path.
        path: PathBuf,
        /// 1-based line of the value; `Some(0)` when the field is absent
        /// from the file, `None` when the service does not locate fields.
        line: Option<usize>,
        /// Dotted field name.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// `:line` after the path, or nothing when the line is not known.
fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

impl ConfigError {
    /// The same error with a multi-line parser message folded onto one line
    /// (lines joined by ` | `), for daemons whose log lines must stay single.
    pub fn one_line(self) -> ConfigError {
        match self {
            ConfigError::Syntax { path, message } => ConfigError::Syntax {
                path,
                message: message.replace('\n', " | "),
            },
            other => other,
        }
    }
}

/// Builds [`ConfigError::Invalid`] for `field` of the file `path`.
pub fn invalid(path: &Path, line: Option<usize>, field: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Reads the configuration file at `path` as text.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses configuration `text` into `T`; `path` is used in messages.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Reads and parses the configuration file at `path` into `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    parse(&read(path)?, path)
}

/// 1-based line of byte offset `at` in `text` (a `toml::Spanned` span start);
/// 0 when `at` is not a character boundary inside `text`.
pub fn line_at(text: &str, at: usize) -> usize {
    text.get(..at)
        .map(|t| t.bytes().filter(|b| *b == b'\n').count() + 1)
        .unwrap_or(0)
}

/// 1-based line of the first `key = ...` in `text` (0 when absent). Only the
/// last part of a dotted key is looked for, so `metrics.listen` finds the
/// first `listen = ...` line whichever table it is in.
pub fn line_of_key(text: &str, key: &str) -> usize {
    let key = key.rsplit('.').next().unwrap_or(key);
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        name: String,
        port: toml::Spanned<u16>,
    }

    #[test]
    fn parses_into_any_deserialize_type() {
        let d: Demo = parse("name = \"x\"\nport = 5060\n", Path::new("d.toml")).expect("ok");
        assert_eq!(d.name, "x");
        assert_eq!(*d.port.get_ref(), 5060);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = parse::<Demo>("name = \"x\"\nport = \"no\"\n", Path::new("/etc/d.toml"))
            .expect_err("type error");
        let s = e.to_string();
        assert!(s.starts_with("/etc/d.toml: "), "{s}");
        assert!(s.contains("line 2"), "{s}");
        assert!(s.contains('\n'), "parser message spans lines: {s}");
        let one = e.one_line().to_string();
        assert!(!one.contains('\n') && one.contains(" | "), "{one}");
        let e = parse::<Demo>("name = \"x\"\nport = 1\nbogus = 2\n", Path::new("d.toml"))
            .expect_err("unknown field");
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn invalid_names_file_line_and_field() {
        let text = "name = \"x\"\n\nport = 80\n";
        let d: Demo = parse(text, Path::new("d.toml")).expect("ok");
        let line = line_at(text, d.port.span().start);
        assert_eq!(line, 3);
        let e = invalid(Path::new("d.toml"), Some(line), "port", "must be >= 1024");
        assert_eq!(e.to_string(), "d.toml:3: field `port`: must be >= 1024");
        let e = invalid(Path::new("d.toml"), None, "proxy", "required");
        assert_eq!(e.to_string(), "d.toml: field `proxy`: required");
    }

    #[test]
    fn line_helpers() {
        let text = "a = 1\n[metrics]\n  listen = \"x\"\nlistener = 2\n";
        assert_eq!(line_of_key(text, "metrics.listen"), 3);
        assert_eq!(line_of_key(text, "a"), 1);
        assert_eq!(line_of_key(text, "missing"), 0);
        assert_eq!(line_at(text, 0), 1);
        assert_eq!(line_at(text, text.len()), 5);
        assert_eq!(line_at(text, text.len() + 1), 0);
    }

    #[test]
    fn load_reports_unreadable_file() {
        let e = load::<Demo>(Path::new("/nonexistent/flexvisor-daemon.toml")).expect_err("missing");
        let s = e.to_string();
        assert!(
            s.starts_with("/nonexistent/flexvisor-daemon.toml: cannot read: "),
            "{s}"
        );
    }
}
