//! The accounts the hooks log in with, from a secrets file of `name = value`
//! lines (`#` comments; the format the node's secrets file uses; a value may
//! be wrapped in double quotes). Recognised names:
//!
//! - `mariadb.user`, `mariadb.password`: used on the local server and, on
//!   promote, to read the binlog position of the server it replicates from
//!   (needs `SUPER` or `READ_ONLY ADMIN`, `BINLOG MONITOR`, `SLAVE MONITOR`).
//! - `redis.password`: `AUTH` on both Redis servers and the replica's
//!   `masterauth`.
//!
//! Other names are ignored (the node's secrets file holds other accounts).
//! Without a file the hooks log in as MariaDB `root` over the unix socket
//! (socket authentication, as the hook runs as root) and Redis without AUTH.

use std::path::{Path, PathBuf};

/// Why the credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path}:{line}: expected `name = value`")]
    Syntax { path: PathBuf, line: usize },
}

/// The accounts; `None` where the file names none.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub mysql_user: Option<String>,
    pub mysql_password: Option<String>,
    pub redis_password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords.
        f.debug_struct("Credentials")
            .field("mysql_user", &self.mysql_user)
            .field("mysql_password", &self.mysql_password.as_ref().map(|_| "…"))
            .field("redis_password", &self.redis_password.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Credentials {
    /// Parse the text of a secrets file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Credentials, CredentialsError> {
        let mut c = Credentials::default();
        let entries = chassis::secrets::entries(text).map_err(|line| CredentialsError::Syntax {
            path: path.to_path_buf(),
            line,
        })?;
        for (k, v) in entries {
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned();
            match k {
                "mariadb.user" => c.mysql_user = Some(v),
                "mariadb.password" => c.mysql_password = Some(v),
                "redis.password" => c.redis_password = Some(v),
                _ => {}
            }
        }
        Ok(c)
    }

    /// Read and parse a secrets file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Credentials::parse(path, &text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_names_are_read_quotes_stripped_others_ignored() {
        let c = Credentials::parse(
            Path::new("s"),
            "# accounts\ncmm.password = x\nmariadb.user = failover\nmariadb.password = \"p=w\"\nredis.password=r\n",
        )
        .unwrap();
        assert_eq!(c.mysql_user.as_deref(), Some("failover"));
        assert_eq!(c.mysql_password.as_deref(), Some("p=w"));
        assert_eq!(c.redis_password.as_deref(), Some("r"));
        assert!(!format!("{c:?}").contains("p=w"));
    }

    #[test]
    fn a_line_without_equals_names_file_and_line() {
        let e = Credentials::parse(Path::new("/etc/s"), "a = b\noops\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "credentials file /etc/s:2: expected `name = value`"
        );
    }
}
