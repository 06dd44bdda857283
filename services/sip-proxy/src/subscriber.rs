//! Subscriber lookups against the local read-only MariaDB replica
//! (schema in `migrations/0001_subscribers.sql`).
//!
//! Holds only the read path the proxy needs (credentials and call limits);
//! provisioning writes happen on the db pair, not here.

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::Row;
use std::time::Duration;

/// The schema the proxy expects, applied by provisioning (and by the tests).
pub const SCHEMA_SQL: &str = include_str!("../migrations/0001_subscribers.sql");

#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    #[error("connecting to subscriber database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("looking up subscriber {user}@{domain}: {source}")]
    Query {
        user: String,
        domain: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying schema statement {index}: {source}")]
    Schema {
        index: usize,
        #[source]
        source: sqlx::Error,
    },
}

/// What the proxy knows about one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: u64,
    pub username: String,
    pub domain: String,
    pub password: Option<String>,
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    pub customer_id: u64,
    pub max_calls: Option<u32>,
    pub customer_max_calls: Option<u32>,
}

impl Subscriber {
    /// "user@domain", the address-of-record key used in Redis.
    pub fn aor(&self) -> String {
        format!("{}@{}", self.username, self.domain)
    }
}

/// Connection pool to the local replica.
#[derive(Debug, Clone)]
pub struct SubscriberDb {
    pool: MySqlPool,
}

impl SubscriberDb {
    /// Connects lazily-but-checked: the first connection is opened here so a
    /// wrong URL fails at start-up with the URL in the message.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, SubscriberError> {
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|source| SubscriberError::Connect {
                url: redact(url),
                source,
            })?;
        Ok(Self { pool })
    }

    /// Applies [`SCHEMA_SQL`] (for tests and first-boot provisioning).
    pub async fn apply_schema(&self) -> Result<(), SubscriberError> {
        for (index, stmt) in split_sql(SCHEMA_SQL).into_iter().enumerate() {
            sqlx::query(&stmt)
                .execute(&self.pool)
                .await
                .map_err(|source| SubscriberError::Schema { index, source })?;
        }
        Ok(())
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Finds a subscriber by username and domain; `None` if unknown.
    pub async fn find(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Option<Subscriber>, SubscriberError> {
        let row = sqlx::query(
            "SELECT s.id, s.username, s.domain, s.password, s.ha1_md5, s.ha1_sha256, \
                    s.customer_id, s.max_concurrent_calls, c.max_concurrent_calls AS cmax \
             FROM subscribers s JOIN customers c ON c.id = s.customer_id \
             WHERE s.username = ? AND s.domain = ?",
        )
        .bind(user)
        .bind(domain)
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| SubscriberError::Query {
            user: user.into(),
            domain: domain.into(),
            source,
        })?;
        let Some(row) = row else { return Ok(None) };
        let get = |source| SubscriberError::Query {
            user: user.into(),
            domain: domain.into(),
            source,
        };
        Ok(Some(Subscriber {
            id: row.try_get("id").map_err(get)?,
            username: row.try_get("username").map_err(get)?,
            domain: row.try_get("domain").map_err(get)?,
            password: row.try_get("password").map_err(get)?,
            ha1_md5: row.try_get("ha1_md5").map_err(get)?,
            ha1_sha256: row.try_get("ha1_sha256").map_err(get)?,
            customer_id: row.try_get("customer_id").map_err(get)?,
            max_calls: row.try_get("max_concurrent_calls").map_err(get)?,
            customer_max_calls: row.try_get("cmax").map_err(get)?,
        }))
    }
}

/// Splits a schema file into statements on `;` at line ends, dropping
/// comment-only lines. The schema has no `;` inside literals.
fn split_sql(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let t = line.trim();
        if t.starts_with("--") || t.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').to_string();
            out.push(stmt);
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Hides a password in a `scheme://user:pass@host` URL for error messages.
fn redact(url: &str) -> String {
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
    use super::*;

    #[test]
    fn schema_splits_into_two_tables() {
        let stmts = split_sql(SCHEMA_SQL);
        assert_eq!(stmts.len(), 2);
        assert!(stmts[0].starts_with("CREATE TABLE IF NOT EXISTS customers"));
        assert!(stmts[1].contains("ha1_sha256"));
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("mysql://proxy:secret@127.0.0.1/db"),
            "mysql://proxy:***@127.0.0.1/db"
        );
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
    }
}
