//! The MariaDB half of a transition.
//!
//! Promote: for every replication connection, wait (bounded) until the
//! server has received what the peer wrote (the peer's `SHOW MASTER STATUS`,
//! when it answers) and the SQL thread has applied it, so no replicated
//! write is lost or overtaken by a new one; then `read_only = OFF`.
//! Demote: `read_only = ON` (verified), so clients without `READ_ONLY
//! ADMIN` can no longer write. Replication itself is left running both
//! ways (C5 master/master).

use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
use sqlx::{ConnectOptions, Connection, MySqlConnection, Row};

use crate::catchup::{self, BinlogPos, ReplicaStatus, Verdict};
use crate::report::{Log, StepError, StoreOutcome};
use crate::target::{MysqlEndpoint, MysqlTarget};
use crate::Bounds;

const STORE: &str = "mariadb";

/// Longest wait for the peer's `SHOW MASTER STATUS`.
const PEER_BOUND: Duration = Duration::from_secs(3);

async fn connect_to(
    endpoint: &MysqlEndpoint,
    t: &MysqlTarget,
    bound: Duration,
) -> Result<MySqlConnection, String> {
    let mut o = MySqlConnectOptions::new().username(&t.user);
    if let Some(p) = &t.password {
        o = o.password(p);
    }
    o = match endpoint {
        MysqlEndpoint::Socket(p) => o.socket(p),
        MysqlEndpoint::Tcp { host, port } => o.host(host).port(*port),
    };
    match tokio::time::timeout(bound, o.connect()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", bound.as_secs())),
    }
}

async fn rows(
    c: &mut MySqlConnection,
    sql: &str,
    bound: Duration,
) -> Result<Vec<MySqlRow>, String> {
    // Text protocol: SHOW statements and SET GLOBAL need no preparing.
    match tokio::time::timeout(bound, sqlx::raw_sql(sql).fetch_all(&mut *c)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", bound.as_secs())),
    }
}

/// A column as text (the text protocol sends every value as text).
fn col(r: &MySqlRow, name: &str) -> String {
    r.try_get_unchecked::<Option<String>, _>(name)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn num(r: &MySqlRow, name: &str) -> u64 {
    col(r, name).trim().parse().unwrap_or(0)
}

async fn read_only(c: &mut MySqlConnection, bound: Duration) -> Result<bool, String> {
    let r = rows(c, "SELECT @@global.read_only AS ro", bound).await?;
    match r.first().map(|r| col(r, "ro")) {
        Some(v) if v == "1" => Ok(true),
        Some(v) if v == "0" => Ok(false),
        other => Err(format!("unexpected @@global.read_only: {other:?}")),
    }
}

fn on_off(ro: bool) -> &'static str {
    if ro {
        "read_only=ON"
    } else {
        "read_only=OFF"
    }
}

/// This server's replication connections.
async fn replicas(c: &mut MySqlConnection, bound: Duration) -> Result<Vec<ReplicaStatus>, String> {
    let r = rows(c, "SHOW ALL SLAVES STATUS", bound).await?;
    Ok(r.iter()
        .map(|r| ReplicaStatus {
            connection: col(r, "Connection_name"),
            master_host: col(r, "Master_Host"),
            master_port: u16::try_from(num(r, "Master_Port")).unwrap_or(0),
            io_running: col(r, "Slave_IO_Running"),
            sql_running: col(r, "Slave_SQL_Running"),
            received: BinlogPos {
                file: col(r, "Master_Log_File"),
                pos: num(r, "Read_Master_Log_Pos"),
            },
            executed: BinlogPos {
                file: col(r, "Relay_Master_Log_File"),
                pos: num(r, "Exec_Master_Log_Pos"),
            },
            last_io_error: col(r, "Last_IO_Error"),
            last_sql_error: col(r, "Last_SQL_Error"),
        })
        .collect())
}

/// The peer's current binlog position, asked of the peer itself.
async fn peer_position(
    s: &ReplicaStatus,
    t: &MysqlTarget,
    bound: Duration,
) -> Result<BinlogPos, String> {
    let ep = MysqlEndpoint::Tcp {
        host: s.master_host.clone(),
        port: s.master_port,
    };
    let mut c = connect_to(&ep, t, bound).await?;
    let r = rows(&mut c, "SHOW MASTER STATUS", bound).await?;
    let _ = c.close().await;
    let r = r.first().ok_or("binary log is off on the peer")?;
    Ok(BinlogPos {
        file: col(r, "File"),
        pos: num(r, "Position"),
    })
}

/// Wait until connection `s` has received and applied what its peer wrote.
async fn catch_up(
    c: &mut MySqlConnection,
    t: &MysqlTarget,
    mut s: ReplicaStatus,
    bounds: Bounds,
    log: &mut Log,
    warnings: &mut Vec<String>,
) -> Result<(), StepError> {
    let server = t.endpoint.to_string();
    let peer = s.peer();
    let named = if s.connection.is_empty() {
        String::new()
    } else {
        format!(" '{}'", s.connection)
    };
    let step = format!("replication{named} from {peer} applied");
    // Short bound: a dead peer must not eat the hook's time (profile: 30 s).
    let peer_pos = match peer_position(&s, t, PEER_BOUND.min(bounds.command)).await {
        Ok(p) => {
            log.ok(STORE, &peer, "SHOW MASTER STATUS (peer)", &p.to_string());
            Some(p)
        }
        Err(e) => {
            let w = format!(
                "peer {peer}: SHOW MASTER STATUS: {e}; waiting only for what was already received"
            );
            log.ok(
                STORE,
                &peer,
                "SHOW MASTER STATUS (peer)",
                &format!("skipped: {e}"),
            );
            warnings.push(w);
            None
        }
    };
    let deadline = Instant::now() + bounds.catchup;
    loop {
        match catchup::verdict(&s, peer_pos.as_ref()) {
            Verdict::CaughtUp => {
                log.ok(STORE, &server, &step, &format!("at {}", s.executed));
                return Ok(());
            }
            Verdict::Stuck(why) => {
                return Err(log.fail(StepError::new(STORE, &server, &step, why)));
            }
            Verdict::Behind(how) if Instant::now() >= deadline => {
                return Err(log.fail(StepError::new(
                    STORE,
                    &server,
                    &step,
                    format!(
                        "not caught up after {} s: {how}; read_only left ON",
                        bounds.catchup.as_secs()
                    ),
                )));
            }
            Verdict::Behind(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = replicas(c, bounds.command)
            .await
            .map_err(|e| log.fail(StepError::new(STORE, &server, "SHOW ALL SLAVES STATUS", e)))?;
        match now.into_iter().find(|n| n.connection == s.connection) {
            Some(n) => s = n,
            None => {
                return Err(log.fail(StepError::new(
                    STORE,
                    &server,
                    &step,
                    "the replication connection disappeared while waiting",
                )))
            }
        }
    }
}

/// Make the local MariaDB writable once nothing the peer wrote is pending.
pub async fn promote(t: &MysqlTarget, bounds: Bounds, log: &mut Log) -> StoreOutcome {
    let server = t.endpoint.to_string();
    let mut warnings = Vec::new();
    let mut c = match crate::retry_for(bounds.start_wait, || {
        connect_to(&t.endpoint, t, bounds.command)
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let e = log.fail(StepError::new(STORE, &server, "connect", e));
            return StoreOutcome::failed(&server, "", e, warnings);
        }
    };
    let before = read_only(&mut c, bounds.command).await;
    let reps = match replicas(&mut c, bounds.command).await {
        Ok(r) => r,
        Err(e) => {
            let e = log.fail(StepError::new(STORE, &server, "SHOW ALL SLAVES STATUS", e));
            let state = before.map(on_off).unwrap_or_default();
            return StoreOutcome::failed(&server, state, e, warnings);
        }
    };
    if reps.is_empty() {
        log.ok(
            STORE,
            &server,
            "SHOW ALL SLAVES STATUS",
            "no replication: nothing to wait for",
        );
    }
    for s in reps {
        if let Err(e) = catch_up(&mut c, t, s, bounds, log, &mut warnings).await {
            let state = before.map(on_off).unwrap_or_default();
            return StoreOutcome::failed(&server, state, e, warnings);
        }
    }
    set_read_only(&mut c, &server, false, bounds, log, warnings).await
}

/// Make the local MariaDB read-only.
pub async fn demote(t: &MysqlTarget, bounds: Bounds, log: &mut Log) -> StoreOutcome {
    let server = t.endpoint.to_string();
    let mut c = match crate::retry_for(bounds.start_wait, || {
        connect_to(&t.endpoint, t, bounds.command)
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let e = log.fail(StepError::new(STORE, &server, "connect", e));
            return StoreOutcome::failed(&server, "", e, Vec::new());
        }
    };
    set_read_only(&mut c, &server, true, bounds, log, Vec::new()).await
}

async fn set_read_only(
    c: &mut MySqlConnection,
    server: &str,
    on: bool,
    bounds: Bounds,
    log: &mut Log,
    warnings: Vec<String>,
) -> StoreOutcome {
    let step = format!("SET GLOBAL read_only = {}", if on { "ON" } else { "OFF" });
    // Setting read_only waits for commits in progress: allow twice the bound.
    if let Err(e) = rows(c, &step, bounds.command * 2).await {
        let e = log.fail(StepError::new(STORE, server, &step, e));
        let state = read_only(c, bounds.command)
            .await
            .map(on_off)
            .unwrap_or_default();
        return StoreOutcome::failed(server, state, e, warnings);
    }
    log.ok(STORE, &server, &step, "");
    match read_only(c, bounds.command).await {
        Ok(ro) if ro == on => {
            log.ok(STORE, &server, "verify @@global.read_only", on_off(ro));
            StoreOutcome::done(server, on_off(ro), warnings)
        }
        Ok(ro) => {
            let e = log.fail(StepError::new(
                STORE,
                server,
                "verify @@global.read_only",
                format!("server still says {}", on_off(ro)),
            ));
            StoreOutcome::failed(server, on_off(ro), e, warnings)
        }
        Err(e) => {
            let e = log.fail(StepError::new(
                STORE,
                server,
                "verify @@global.read_only",
                e,
            ));
            StoreOutcome::failed(server, "", e, warnings)
        }
    }
}
