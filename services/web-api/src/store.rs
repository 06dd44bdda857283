//! The provisioning data in the central MariaDB: domains, customers,
//! subscribers (the rows sip-proxy reads for digest auth and call limits,
//! through master/slave replication to each proxy's local replica) and API
//! admins.
//!
//! The `customers` and `subscribers` tables are sip-proxy's
//! (`services/sip-proxy/migrations/0001_subscribers.sql`, included verbatim so
//! there is one definition); `domains` and `admins` are ours
//! (`migrations/0001_web_api.sql`). Subscribers are written with both HA1
//! hashes and `password` NULL: the clear password is never stored.

use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, Row, Transaction};
use std::time::Duration;

use crate::model::{
    Customer, CustomerInput, Domain, DomainInput, FieldError, ListQuery, Page, Subscriber,
    SubscriberInput,
};
use crate::secrets::Ha1;

/// sip-proxy's schema (customers, subscribers).
pub const PROXY_SCHEMA_SQL: &str = include_str!("../../sip-proxy/migrations/0001_subscribers.sql");
/// Our own tables (domains, admins).
pub const API_SCHEMA_SQL: &str = include_str!("../migrations/0001_web_api.sql");

// MariaDB error numbers (server error reference).
const ER_DUP_ENTRY: u16 = 1062;
const ER_ROW_IS_REFERENCED_2: u16 = 1451;
const ER_NO_REFERENCED_ROW_2: u16 = 1452;
const ER_LOCK_DEADLOCK: u16 = 1213;

/// What went wrong with a store operation, in terms the API maps to statuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 404.
    #[error("{0} not found")]
    NotFound(String),
    /// 409: a duplicate, or a row still in use.
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// 400: the input refers to something that does not exist.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// 503: the database failed or is unreachable.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Startup: the database could not be reached.
    #[error("connecting to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
}

fn conflict(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid(FieldError {
        field: field.to_owned(),
        reason: reason.into(),
    })
}

/// MariaDB's error number of `e`, when it is a server error.
fn db_code(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number)
}

/// Awaits a write transaction (an expression yielding a future of
/// `Result<_, StoreError>`), running it again when InnoDB chose it as a
/// deadlock victim: the whole transaction was rolled back, so repeating it is
/// safe. A macro rather than a function taking an async closure, whose
/// futures are not provably `Send` for the server's tasks.
macro_rules! retry_deadlock {
    ($once:expr) => {{
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            match $once.await {
                Err(StoreError::Db(e)) if attempt < 5 && db_code(&e) == Some(ER_LOCK_DEADLOCK) => {
                    let ms = rand::random::<u64>() % (5 * attempt);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                other => break other,
            }
        }
    }};
}

/// A page of rows and the number of rows in total.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// Connection pool to the central database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: MySqlPool,
}

impl Store {
    /// Opens the pool; the first connection is made here so a wrong URL or
    /// an unreachable database fails at start-up with the (redacted) URL.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: crate::config::redact(url),
                source,
            })?;
        Ok(Store { pool })
    }

    /// A pool that connects on first use: the daemon serves (503 on
    /// database errors) while the database is not reachable yet, e.g. a web
    /// node booting before the db pair holds its shared IP.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)
            .map_err(|source| StoreError::Connect {
                url: crate::config::redact(url),
                source,
            })?;
        Ok(Store { pool })
    }

    /// The pool, for tests and the bench.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Creates missing tables (sip-proxy's first: `domains` and `admins`
    /// stand beside them).
    pub async fn apply_schema(&self) -> Result<(), StoreError> {
        for stmt in split_sql(PROXY_SCHEMA_SQL)
            .into_iter()
            .chain(split_sql(API_SCHEMA_SQL))
        {
            sqlx::query(&stmt).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Whether the database answers (for `/health`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- admins ----

    /// Adds an admin with an already hashed password.
    pub async fn add_admin(&self, username: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admins (username, password_hash) VALUES (?, ?)")
            .bind(username)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(|e| match db_code(&e) {
                Some(ER_DUP_ENTRY) => conflict("username", format!("admin {username} exists")),
                _ => StoreError::Db(e),
            })?;
        Ok(())
    }

    /// Every admin's name and creation time (`YYYY-MM-DD hh:mm:ss` UTC),
    /// by name; never the hashes.
    pub async fn list_admins(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, DATE_FORMAT(CONVERT_TZ(created_at, @@session.time_zone, '+00:00'), \
             '%Y-%m-%d %H:%i:%s') AS created FROM admins ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("username")?, r.try_get("created")?)))
            .collect()
    }

    /// Removes admin `username`; false if there was none. Refuses to remove
    /// the last admin (nobody could log in to the API any more) unless
    /// `allow_last`.
    pub async fn delete_admin(&self, username: &str, allow_last: bool) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let names: Vec<String> = sqlx::query_scalar("SELECT username FROM admins FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
        if !names.iter().any(|n| n == username) {
            return Ok(false);
        }
        if names.len() == 1 && !allow_last {
            return Err(conflict(
                "username",
                format!("{username} is the last admin: nobody could log in to the API (--force removes it anyway)"),
            ));
        }
        sqlx::query("DELETE FROM admins WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The stored hash of admin `username`, if there is one.
    pub async fn admin_hash(&self, username: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM admins WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("password_hash")?),
            None => None,
        })
    }

    // ---- domains ----

    pub async fn list_domains(&self, page: Page) -> Result<Listing<Domain>, StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains")
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query("SELECT id, name FROM domains ORDER BY id LIMIT ? OFFSET ?")
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(domain_row).collect::<Result<_, _>>()?;
        Ok(listing(items, total, page))
    }

    pub async fn get_domain(&self, id: u64) -> Result<Domain, StoreError> {
        let row = sqlx::query("SELECT id, name FROM domains WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(domain_row(&r)?),
            None => Err(StoreError::NotFound(format!("domain {id}"))),
        }
    }

    pub async fn create_domain(&self, d: &DomainInput) -> Result<Domain, StoreError> {
        let res = sqlx::query("INSERT INTO domains (name) VALUES (?)")
            .bind(&d.name)
            .execute(&self.pool)
            .await
            .map_err(|e| dup_or(e, "name", || format!("domain {} exists", d.name)))?;
        Ok(Domain {
            id: res.last_insert_id(),
            name: d.name.clone(),
        })
    }

    /// Renames a domain; refused while subscribers use it (their HA1 hashes
    /// are bound to the domain as digest realm).
    pub async fn update_domain(&self, id: u64, d: &DomainInput) -> Result<Domain, StoreError> {
        retry_deadlock!(self.update_domain_once(id, d))
    }

    async fn update_domain_once(&self, id: u64, d: &DomainInput) -> Result<Domain, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old = lock_domain(&mut tx, id).await?;
        if old.name != d.name {
            let n = subscribers_in(&mut tx, &old.name).await?;
            if n > 0 {
                return Err(conflict(
                    "name",
                    format!(
                        "domain {} has {n} subscribers; their digest hashes depend on the domain (realm), so it cannot be renamed",
                        old.name
                    ),
                ));
            }
            sqlx::query("UPDATE domains SET name = ? WHERE id = ?")
                .bind(&d.name)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| dup_or(e, "name", || format!("domain {} exists", d.name)))?;
        }
        tx.commit().await?;
        Ok(Domain {
            id,
            name: d.name.clone(),
        })
    }

    /// Deletes a domain without subscribers.
    pub async fn delete_domain(&self, id: u64) -> Result<(), StoreError> {
        retry_deadlock!(self.delete_domain_once(id))
    }

    async fn delete_domain_once(&self, id: u64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let old = lock_domain(&mut tx, id).await?;
        let n = subscribers_in(&mut tx, &old.name).await?;
        if n > 0 {
            return Err(conflict(
                "id",
                format!("domain {} still has {n} subscribers", old.name),
            ));
        }
        sqlx::query("DELETE FROM domains WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- customers ----

    pub async fn list_customers(&self, page: Page) -> Result<Listing<Customer>, StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, name, max_concurrent_calls FROM customers ORDER BY id LIMIT ? OFFSET ?",
        )
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(customer_row).collect::<Result<_, _>>()?;
        Ok(listing(items, total, page))
    }

    pub async fn get_customer(&self, id: u64) -> Result<Customer, StoreError> {
        let row = sqlx::query("SELECT id, name, max_concurrent_calls FROM customers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(customer_row(&r)?),
            None => Err(StoreError::NotFound(format!("customer {id}"))),
        }
    }

    /// Creates a customer. sip-proxy's `customers.id` has no AUTO_INCREMENT,
    /// so without a client-chosen id the next one is MAX(id)+1, retried when
    /// a concurrent creator took it (duplicate key or deadlock).
    pub async fn create_customer(&self, c: &CustomerInput) -> Result<Customer, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self.try_create_customer(c).await;
            match res {
                Ok(id) => {
                    return Ok(Customer {
                        id,
                        name: c.name.clone(),
                        max_concurrent_calls: c.max_concurrent_calls,
                    })
                }
                Err(e) if c.id.is_some() && db_code(&e) == Some(ER_DUP_ENTRY) => {
                    return Err(conflict(
                        "id",
                        format!("customer {} exists", c.id.unwrap_or_default()),
                    ))
                }
                Err(e)
                    if c.id.is_none()
                        && attempt < 20
                        && matches!(db_code(&e), Some(ER_DUP_ENTRY | ER_LOCK_DEADLOCK)) =>
                {
                    // Another creator won this id: back off a little, at random,
                    // so the losers do not collide again in lock step.
                    let ms = rand::random::<u64>() % (5 * attempt);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One attempt of [`Store::create_customer`]: the id it inserted.
    async fn try_create_customer(&self, c: &CustomerInput) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id =
            match c.id {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "SELECT CAST(COALESCE(MAX(id), 0) + 1 AS UNSIGNED) FROM customers FOR UPDATE",
                )
                .fetch_one(&mut *tx)
                .await?,
            };
        sqlx::query("INSERT INTO customers (id, name, max_concurrent_calls) VALUES (?, ?, ?)")
            .bind(id)
            .bind(&c.name)
            .bind(c.max_concurrent_calls)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn update_customer(
        &self,
        id: u64,
        c: &CustomerInput,
    ) -> Result<Customer, StoreError> {
        let res =
            sqlx::query("UPDATE customers SET name = ?, max_concurrent_calls = ? WHERE id = ?")
                .bind(&c.name)
                .bind(c.max_concurrent_calls)
                .bind(id)
                .execute(&self.pool)
                .await?;
        if res.rows_affected() == 0 {
            // Zero rows also when nothing changed: tell the two apart.
            self.get_customer(id).await?;
        }
        Ok(Customer {
            id,
            name: c.name.clone(),
            max_concurrent_calls: c.max_concurrent_calls,
        })
    }

    /// Deletes a customer without subscribers.
    pub async fn delete_customer(&self, id: u64) -> Result<(), StoreError> {
        let res = sqlx::query("DELETE FROM customers WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| match db_code(&e) {
                Some(ER_ROW_IS_REFERENCED_2) => {
                    conflict("id", format!("customer {id} still has subscribers"))
                }
                _ => StoreError::Db(e),
            })?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("customer {id}")));
        }
        Ok(())
    }

    // ---- subscribers ----

    pub async fn list_subscribers(&self, q: &ListQuery) -> Result<Listing<Subscriber>, StoreError> {
        let page = q.page.unwrap_or(Page {
            limit: crate::model::DEFAULT_LIMIT,
            offset: 0,
        });
        // Filters are optional: `? IS NULL OR col = ?` keeps one statement.
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM subscribers WHERE (? IS NULL OR domain = ?) AND (? IS NULL OR customer_id = ?)",
        )
        .bind(&q.domain)
        .bind(&q.domain)
        .bind(q.customer_id)
        .bind(q.customer_id)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT id, username, domain, customer_id, max_concurrent_calls FROM subscribers \
             WHERE (? IS NULL OR domain = ?) AND (? IS NULL OR customer_id = ?) \
             ORDER BY id LIMIT ? OFFSET ?",
        )
        .bind(&q.domain)
        .bind(&q.domain)
        .bind(q.customer_id)
        .bind(q.customer_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(subscriber_row).collect::<Result<_, _>>()?;
        Ok(listing(items, total, page))
    }

    pub async fn get_subscriber(&self, id: u64) -> Result<Subscriber, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, domain, customer_id, max_concurrent_calls FROM subscribers WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(subscriber_row(&r)?),
            None => Err(StoreError::NotFound(format!("subscriber {id}"))),
        }
    }

    /// Creates a subscriber with both HA1 hashes for realm = domain.
    pub async fn create_subscriber(&self, s: &SubscriberInput) -> Result<Subscriber, StoreError> {
        retry_deadlock!(self.create_subscriber_once(s))
    }

    async fn create_subscriber_once(&self, s: &SubscriberInput) -> Result<Subscriber, StoreError> {
        let Some(password) = &s.password else {
            return Err(invalid("password", "required"));
        };
        let ha1 = Ha1::new(&s.username, &s.domain, password);
        let mut tx = self.pool.begin().await?;
        check_refs(&mut tx, s).await?;
        let res = sqlx::query(
            "INSERT INTO subscribers (username, domain, password, ha1_md5, ha1_sha256, customer_id, max_concurrent_calls) \
             VALUES (?, ?, NULL, ?, ?, ?, ?)",
        )
        .bind(&s.username)
        .bind(&s.domain)
        .bind(&ha1.md5)
        .bind(&ha1.sha256)
        .bind(s.customer_id)
        .bind(s.max_concurrent_calls)
        .execute(&mut *tx)
        .await
        .map_err(|e| sub_write_error(e, s))?;
        tx.commit().await?;
        Ok(Subscriber {
            id: res.last_insert_id(),
            username: s.username.clone(),
            domain: s.domain.clone(),
            customer_id: s.customer_id,
            max_concurrent_calls: s.max_concurrent_calls,
        })
    }

    /// Replaces a subscriber's data. Without a new password the stored
    /// hashes are kept, which is only possible while username and domain
    /// stay the same (both are part of HA1).
    pub async fn update_subscriber(
        &self,
        id: u64,
        s: &SubscriberInput,
    ) -> Result<Subscriber, StoreError> {
        retry_deadlock!(self.update_subscriber_once(id, s))
    }

    async fn update_subscriber_once(
        &self,
        id: u64,
        s: &SubscriberInput,
    ) -> Result<Subscriber, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT username, domain FROM subscribers WHERE id = ? FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("subscriber {id}")))?;
        let (old_user, old_domain): (String, String) =
            (row.try_get("username")?, row.try_get("domain")?);
        check_refs(&mut tx, s).await?;
        match &s.password {
            Some(pw) => {
                let ha1 = Ha1::new(&s.username, &s.domain, pw);
                sqlx::query(
                    "UPDATE subscribers SET username = ?, domain = ?, password = NULL, ha1_md5 = ?, ha1_sha256 = ?, \
                     customer_id = ?, max_concurrent_calls = ? WHERE id = ?",
                )
                .bind(&s.username)
                .bind(&s.domain)
                .bind(&ha1.md5)
                .bind(&ha1.sha256)
                .bind(s.customer_id)
                .bind(s.max_concurrent_calls)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| sub_write_error(e, s))?;
            }
            None if old_user != s.username || old_domain != s.domain => {
                return Err(invalid(
                    "password",
                    "required when username or domain changes (the stored digest hashes depend on both)",
                ));
            }
            None => {
                sqlx::query(
                    "UPDATE subscribers SET customer_id = ?, max_concurrent_calls = ? WHERE id = ?",
                )
                .bind(s.customer_id)
                .bind(s.max_concurrent_calls)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| sub_write_error(e, s))?;
            }
        }
        tx.commit().await?;
        Ok(Subscriber {
            id,
            username: s.username.clone(),
            domain: s.domain.clone(),
            customer_id: s.customer_id,
            max_concurrent_calls: s.max_concurrent_calls,
        })
    }

    pub async fn delete_subscriber(&self, id: u64) -> Result<(), StoreError> {
        let res = sqlx::query("DELETE FROM subscribers WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("subscriber {id}")));
        }
        Ok(())
    }
}

fn listing<T>(items: Vec<T>, total: i64, page: Page) -> Listing<T> {
    Listing {
        items,
        total: u64::try_from(total).unwrap_or(0),
        limit: page.limit,
        offset: page.offset,
    }
}

fn dup_or(e: sqlx::Error, field: &str, msg: impl FnOnce() -> String) -> StoreError {
    match db_code(&e) {
        Some(ER_DUP_ENTRY) => conflict(field, msg()),
        _ => StoreError::Db(e),
    }
}

fn sub_write_error(e: sqlx::Error, s: &SubscriberInput) -> StoreError {
    match db_code(&e) {
        Some(ER_DUP_ENTRY) => conflict(
            "username",
            format!("subscriber {}@{} exists", s.username, s.domain),
        ),
        Some(ER_NO_REFERENCED_ROW_2) => invalid(
            "customer_id",
            format!("customer {} does not exist", s.customer_id),
        ),
        _ => StoreError::Db(e),
    }
}

/// The domain and customer a subscriber refers to must exist (share-locked
/// until commit so neither is deleted under us).
async fn check_refs(
    tx: &mut Transaction<'_, MySql>,
    s: &SubscriberInput,
) -> Result<(), StoreError> {
    let d = sqlx::query("SELECT id FROM domains WHERE name = ? LOCK IN SHARE MODE")
        .bind(&s.domain)
        .fetch_optional(&mut **tx)
        .await?;
    if d.is_none() {
        return Err(invalid(
            "domain",
            format!(
                "domain {} does not exist (create it under /api/v1/domains first)",
                s.domain
            ),
        ));
    }
    let c = sqlx::query("SELECT id FROM customers WHERE id = ? LOCK IN SHARE MODE")
        .bind(s.customer_id)
        .fetch_optional(&mut **tx)
        .await?;
    if c.is_none() {
        return Err(invalid(
            "customer_id",
            format!("customer {} does not exist", s.customer_id),
        ));
    }
    Ok(())
}

async fn lock_domain(tx: &mut Transaction<'_, MySql>, id: u64) -> Result<Domain, StoreError> {
    let row = sqlx::query("SELECT id, name FROM domains WHERE id = ? FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) => Ok(domain_row(&r)?),
        None => Err(StoreError::NotFound(format!("domain {id}"))),
    }
}

async fn subscribers_in(tx: &mut Transaction<'_, MySql>, domain: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM subscribers WHERE domain = ? LOCK IN SHARE MODE")
            .bind(domain)
            .fetch_one(&mut **tx)
            .await?,
    )
}

fn domain_row(r: &sqlx::mysql::MySqlRow) -> Result<Domain, sqlx::Error> {
    Ok(Domain {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
    })
}

fn customer_row(r: &sqlx::mysql::MySqlRow) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        max_concurrent_calls: r.try_get("max_concurrent_calls")?,
    })
}

fn subscriber_row(r: &sqlx::mysql::MySqlRow) -> Result<Subscriber, sqlx::Error> {
    Ok(Subscriber {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        domain: r.try_get("domain")?,
        customer_id: r.try_get("customer_id")?,
        max_concurrent_calls: r.try_get("max_concurrent_calls")?,
    })
}

/// Splits a schema file into statements on `;` at line ends, dropping
/// comment-only lines (the schema files have no `;` inside literals).
pub fn split_sql(sql: &str) -> Vec<String> {
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
            out.push(cur.trim().trim_end_matches(';').to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_split_into_four_tables() {
        let all: Vec<String> = split_sql(PROXY_SCHEMA_SQL)
            .into_iter()
            .chain(split_sql(API_SCHEMA_SQL))
            .collect();
        let names: Vec<&str> = all
            .iter()
            .filter_map(|s| s.strip_prefix("CREATE TABLE IF NOT EXISTS "))
            .filter_map(|s| s.split_whitespace().next())
            .collect();
        assert_eq!(names, ["customers", "subscribers", "domains", "admins"]);
    }
}
