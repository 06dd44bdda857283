//! MariaDB side: the schema (CDRs and billing profiles), loading the
//! profiles, and inserting a batch of CDRs in one transaction.
//!
//! Inserts are idempotent: `cdrs.cdr_key` is unique and a duplicate row is
//! left alone, so replaying a batch after a crash between commit and local
//! bookkeeping inserts nothing twice. One exception: an `orphaned` row is
//! replaced by the `ok` record of the same dialog (a call whose start was
//! spooled on one proxy and whose stop on its pair partner after a
//! failover: the partner's record is complete, the orphan only a guess).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{QueryBuilder, Row};

use crate::mediation::Cdr;
use crate::rating::{Fee, Profile, Profiles};

/// The schema, applied with `CREATE TABLE IF NOT EXISTS`.
pub const SCHEMA: &str = include_str!("../migrations/schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("database {what}: {source}")]
    Db {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("billing profile {profile}, prefix {prefix:?}: {reason}")]
    BadFee {
        profile: u64,
        prefix: String,
        reason: String,
    },
}

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> CentralError {
    move |source| CentralError::Db { what, source }
}

/// Connects lazily: the pool is created even when the server is down, and
/// each use fails fast (connect timeout) so the daemon can keep working.
pub fn pool(url: &str) -> Result<MySqlPool, CentralError> {
    MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)
        .map_err(db("parsing URL"))
}

/// Creates the tables that do not exist yet.
pub async fn apply_schema(pool: &MySqlPool) -> Result<(), CentralError> {
    // Comment lines may contain ';': drop them before splitting.
    let sql: String = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(stmt)
            .execute(pool)
            .await
            .map_err(db("applying schema"))?;
    }
    Ok(())
}

const COLUMNS: &str = "cdr_key, status, call_id, from_tag, to_tag, caller, callee, \
    caller_customer, callee_customer, start_ms, answer_ms, end_ms, duration_ms, reason, node, \
    error, source, rated, profile_id, prefix, billed_secs, cost, currency, unrated_reason";

/// Rows per INSERT statement (24 placeholders each: 48000, below the
/// protocol limit of 65535 per prepared statement).
const ROWS_PER_STATEMENT: usize = 2000;

/// `s` cut to at most `n` characters (the column size): a value too long
/// for its column must not make a batch fail forever in strict mode.
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// `ON DUPLICATE KEY UPDATE` assignments: every column takes the new
/// value only when an `ok` record meets an `orphaned` row; `status` comes
/// last so the conditions before it still see the old status.
static UPGRADE_ORPHAN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    const WHEN: &str = "status = 'orphaned' AND VALUES(status) = 'ok'";
    COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "cdr_key" && *c != "status")
        .chain(["status"])
        .map(|c| format!("{c} = IF({WHEN}, VALUES({c}), {c})"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// How many rows of `chunk` will replace an orphan (ok records whose key
/// is stored as `orphaned`), so the affected-rows count can be split into
/// new rows and replacements.
async fn orphans_upgraded_by(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    chunk: &[Cdr],
) -> Result<u64, CentralError> {
    let ok: Vec<&str> = chunk
        .iter()
        .filter(|c| c.status == crate::mediation::Status::Ok)
        .map(|c| c.key.as_str())
        .collect();
    if ok.is_empty() {
        return Ok(0);
    }
    let mut q =
        QueryBuilder::new("SELECT COUNT(*) FROM cdrs WHERE status = 'orphaned' AND cdr_key IN (");
    let mut list = q.separated(", ");
    for k in ok {
        list.push_bind(k);
    }
    q.push(") FOR UPDATE");
    let n: i64 = q
        .build_query_scalar()
        .fetch_one(&mut **tx)
        .await
        .map_err(db("counting orphans"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Inserts `cdrs` in one transaction; rows already present are left alone
/// (but an orphan gives way to the ok record of its dialog).
/// Returns how many rows were new.
pub async fn insert_batch(pool: &MySqlPool, cdrs: &[Cdr]) -> Result<u64, CentralError> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let mut new_rows = 0;
    for chunk in cdrs.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::new(format!("INSERT INTO cdrs ({COLUMNS}) "));
        q.push_values(chunk, |mut b, c| {
            b.push_bind(&c.key)
                .push_bind(c.status.as_str())
                .push_bind(cut(&c.call_id, 255))
                .push_bind(cut(&c.from_tag, 128))
                .push_bind(cut(&c.to_tag, 128))
                .push_bind(cut(&c.caller, 255))
                .push_bind(cut(&c.callee, 255))
                .push_bind(c.caller_customer)
                .push_bind(c.callee_customer)
                .push_bind(c.start_ms)
                .push_bind(c.answer_ms)
                .push_bind(c.end_ms)
                .push_bind(c.duration_ms)
                .push_bind(c.reason.as_deref().map(|r| cut(r, 32)))
                .push_bind(cut(&c.node, 64))
                .push_bind(c.error.as_deref().map(|e| cut(e, 255)))
                .push_bind(cut(&c.source, 255))
                .push_bind(c.rated)
                .push_bind(c.profile_id)
                .push_bind(&c.prefix)
                .push_bind(c.billed_secs)
                .push_bind(c.cost)
                .push_bind(&c.currency)
                .push_bind(c.unrated_reason.as_deref().map(|r| cut(r, 255)));
        });
        // A replayed row changes nothing (affected rows 0 for it); an
        // orphan is replaced by the dialog's ok record (affected rows 2).
        q.push(" ON DUPLICATE KEY UPDATE ");
        q.push(UPGRADE_ORPHAN.as_str());
        let upgrades = orphans_upgraded_by(&mut tx, chunk).await?;
        let res = q
            .build()
            .execute(&mut *tx)
            .await
            .map_err(db("insert cdrs"))?;
        new_rows += res.rows_affected().saturating_sub(2 * upgrades);
    }
    tx.commit().await.map_err(db("commit"))?;
    Ok(new_rows)
}

/// Loads every profile, fee and customer assignment.
pub async fn load_profiles(pool: &MySqlPool) -> Result<Profiles, CentralError> {
    let mut out = Profiles::default();
    let rows = sqlx::query("SELECT id, name, currency FROM billing_profiles")
        .fetch_all(pool)
        .await
        .map_err(db("loading billing_profiles"))?;
    for r in rows {
        let id: u64 = r.try_get("id").map_err(db("billing_profiles.id"))?;
        out.profiles.insert(
            id,
            Profile {
                id,
                name: r.try_get("name").map_err(db("billing_profiles.name"))?,
                currency: r
                    .try_get("currency")
                    .map_err(db("billing_profiles.currency"))?,
                fees: BTreeMap::new(),
            },
        );
    }
    let rows = sqlx::query(
        "SELECT profile_id, destination_prefix, rate_per_minute, connect_fee, \
         first_interval, next_interval FROM billing_fees",
    )
    .fetch_all(pool)
    .await
    .map_err(db("loading billing_fees"))?;
    for r in rows {
        let profile: u64 = r
            .try_get("profile_id")
            .map_err(db("billing_fees.profile_id"))?;
        let fee = Fee {
            prefix: r
                .try_get("destination_prefix")
                .map_err(db("billing_fees.destination_prefix"))?,
            rate_per_minute: r
                .try_get("rate_per_minute")
                .map_err(db("billing_fees.rate_per_minute"))?,
            connect_fee: r
                .try_get("connect_fee")
                .map_err(db("billing_fees.connect_fee"))?,
            first_interval: r
                .try_get("first_interval")
                .map_err(db("billing_fees.first_interval"))?,
            next_interval: r
                .try_get("next_interval")
                .map_err(db("billing_fees.next_interval"))?,
        };
        if fee.first_interval == 0 || fee.next_interval == 0 {
            return Err(CentralError::BadFee {
                profile,
                prefix: fee.prefix,
                reason: "first_interval and next_interval must be at least 1".into(),
            });
        }
        if let Some(p) = out.profiles.get_mut(&profile) {
            p.fees.insert(fee.prefix.clone(), fee);
        }
    }
    let rows = sqlx::query("SELECT customer_id, profile_id FROM billing_customers")
        .fetch_all(pool)
        .await
        .map_err(db("loading billing_customers"))?;
    for r in rows {
        out.customers.insert(
            r.try_get("customer_id")
                .map_err(db("billing_customers.customer_id"))?,
            r.try_get("profile_id")
                .map_err(db("billing_customers.profile_id"))?,
        );
    }
    Ok(out)
}
