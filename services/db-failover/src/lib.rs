//! The db pair's promote and demote hooks (C5 db1a/db1b).
//!
//! flexvisor runs `db-promote` when this node becomes the pair's VRRP master
//! and `db-demote` when it becomes backup (`/bin/sh -c CMD`, timeout from the
//! profile). In C5 the two MariaDB servers replicate master/master but only
//! the active node takes writes, and Redis is master on the active node and
//! a replica of it on the standby.
//!
//! - [`target`]: what to act on, from the node configuration or from flags.
//! - [`credentials`]: the `name = value` secrets file with the accounts.
//! - [`catchup`]: the pure verdict "has the SQL thread applied everything
//!   the peer wrote?" from `SHOW ALL SLAVES STATUS` and the peer's binlog.
//! - [`redis_role`]: Redis `ROLE` replies and the Redis half of a transition.
//! - [`mariadb`]: the MariaDB half of a transition.
//! - [`report`]: per-step log lines, step errors and the `--json` summary.
//!
//! Both halves always run, so a failure in one store never leaves the other
//! untouched; the summary reports both.

pub mod catchup;
pub mod credentials;
pub mod mariadb;
pub mod redis_role;
pub mod report;
pub mod target;

use std::time::Duration;

use report::{Log, StoreOutcome, Summary};
use target::Targets;

/// Which transition to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// This node became master: Redis master, MariaDB writable.
    Promote,
    /// This node became backup: MariaDB read-only, Redis replica of the peer.
    Demote,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Demote => "demote",
        }
    }
}

/// Which stores a transition acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stores {
    /// Redis and MariaDB (the db pair).
    Both,
    /// Redis only (the proxy pairs: registrations and call state).
    Redis,
    /// MariaDB only.
    Mariadb,
}

impl Stores {
    fn redis(self) -> bool {
        self != Stores::Mariadb
    }
    fn mariadb(self) -> bool {
        self != Stores::Redis
    }
}

/// Bounds on the waits of a transition.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Connecting to a server and each single command.
    pub command: Duration,
    /// Promote: how long to wait for the SQL thread to apply what the peer
    /// wrote. With the other bounds, a whole run stays below the profile's
    /// hook timeout (30 s).
    pub catchup: Duration,
    /// Demote: how long to wait for the Redis replication link to come up.
    pub link: Duration,
    /// How long to keep retrying the local servers while they refuse
    /// connections (still starting at first boot).
    pub start_wait: Duration,
}

/// Retry `attempt` every 250 ms while it fails, for at most `wait` (one
/// attempt when `wait` is zero); the last error is returned.
pub(crate) async fn retry_for<T, F, Fut>(wait: Duration, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            command: Duration::from_secs(5),
            catchup: Duration::from_secs(15),
            // A full resync waits for the master's repl-diskless-sync-delay
            // (Redis default 5 s) before the transfer even starts.
            link: Duration::from_secs(20),
            start_wait: Duration::from_secs(8),
        }
    }
}

/// Carry out `action` on the chosen stores and return what happened.
///
/// Promote does Redis first (immediate) and then MariaDB (which may wait
/// for replication to catch up). Demote does MariaDB first, so writes stop
/// before anything else changes, then Redis. Each half runs whatever the
/// other's outcome; a store not chosen is reported as `skipped`.
pub async fn run(
    action: Action,
    t: &Targets,
    stores: Stores,
    bounds: Bounds,
    log: &mut Log,
) -> Summary {
    let skipped =
        |server: &dyn std::fmt::Display| StoreOutcome::done(server, "skipped", Vec::new());
    let (redis, mariadb) = match action {
        Action::Promote => {
            let r = if stores.redis() {
                redis_role::promote(&t.redis, bounds, log).await
            } else {
                skipped(&t.redis)
            };
            let m = if stores.mariadb() {
                mariadb::promote(&t.mysql, bounds, log).await
            } else {
                skipped(&t.mysql.endpoint)
            };
            (r, m)
        }
        Action::Demote => {
            let m = if stores.mariadb() {
                mariadb::demote(&t.mysql, bounds, log).await
            } else {
                skipped(&t.mysql.endpoint)
            };
            let r = if stores.redis() {
                redis_role::demote(&t.redis, &t.peer_redis, bounds, log).await
            } else {
                skipped(&t.redis)
            };
            (r, m)
        }
    };
    Summary::new(action, t, redis, mariadb, log)
}
