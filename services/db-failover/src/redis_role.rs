//! The Redis half of a transition, and `ROLE` replies.
//!
//! Promote: `REPLICAOF NO ONE`, then `ROLE` must say `master`.
//! Demote: `REPLICAOF <peer> <port>`, then `ROLE` must name the peer and
//! the link must come up. The peer is pinged first so that a peer that is
//! down is reported by name; the local server is pointed at it anyway (so
//! this node never stays a second master), and the hook fails.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, Value};

use crate::report::{Log, StepError, StoreOutcome};
use crate::target::RedisTarget;
use crate::Bounds;

const STORE: &str = "redis";

/// What `ROLE` says a server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Master,
    /// A replica of `host:port`; `state` is the link state (`connect`,
    /// `connecting`, `sync`, `connected`).
    Replica {
        host: String,
        port: u16,
        state: String,
    },
    /// Anything else (`sentinel`).
    Other(String),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Master => write!(f, "master"),
            Role::Replica { host, port, state } => {
                write!(f, "replica of {host}:{port} (link {state})")
            }
            Role::Other(r) => write!(f, "{r}"),
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Parse a `ROLE` reply (RESP2 or RESP3 arrays).
pub fn parse_role(v: &Value) -> Result<Role, String> {
    let items = match v {
        Value::Array(a) | Value::Set(a) => a,
        other => return Err(format!("ROLE reply is not an array: {other:?}")),
    };
    let kind = items
        .first()
        .and_then(text)
        .ok_or_else(|| "ROLE reply is empty".to_owned())?;
    match kind.as_str() {
        "master" => Ok(Role::Master),
        "slave" | "replica" => {
            let host = items.get(1).and_then(text);
            let port = items.get(2).and_then(text).and_then(|p| p.parse().ok());
            let state = items.get(3).and_then(text);
            match (host, port, state) {
                (Some(host), Some(port), Some(state)) => Ok(Role::Replica { host, port, state }),
                _ => Err(format!("ROLE replica reply malformed: {items:?}")),
            }
        }
        other => Ok(Role::Other(other.to_owned())),
    }
}

async fn connect(t: &RedisTarget, bounds: Bounds) -> Result<MultiplexedConnection, String> {
    let info = ConnectionInfo {
        addr: ConnectionAddr::Tcp(t.host.clone(), t.port),
        redis: RedisConnectionInfo {
            password: t.password.clone(),
            ..RedisConnectionInfo::default()
        },
    };
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(bounds.command)
        .set_response_timeout(bounds.command);
    // The outer bound covers the AUTH/HELLO exchange too.
    match tokio::time::timeout(
        bounds.command * 2,
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            (bounds.command * 2).as_secs()
        )),
    }
}

async fn query(
    con: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
    bounds: Bounds,
) -> Result<Value, String> {
    match tokio::time::timeout(bounds.command, cmd.query_async::<Value>(con)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", bounds.command.as_secs())),
    }
}

async fn role(con: &mut MultiplexedConnection, bounds: Bounds) -> Result<Role, String> {
    let v = query(con, &redis::cmd("ROLE"), bounds).await?;
    parse_role(&v)
}

/// Make the local Redis a master.
pub async fn promote(t: &RedisTarget, bounds: Bounds, log: &mut Log) -> StoreOutcome {
    let fail = |log: &mut Log, step: &str, detail: String, state: &str| {
        let e = log.fail(StepError::new(STORE, t, step, detail));
        StoreOutcome::failed(t, state, e, Vec::new())
    };
    let mut con = match crate::retry_for(bounds.start_wait, || connect(t, bounds)).await {
        Ok(c) => c,
        Err(e) => return fail(log, "REPLICAOF NO ONE", format!("connect: {e}"), ""),
    };
    let before = role(&mut con, bounds).await.ok();
    if let Err(e) = query(
        &mut con,
        redis::cmd("REPLICAOF").arg("NO").arg("ONE"),
        bounds,
    )
    .await
    {
        let state = before.map(|r| r.to_string()).unwrap_or_default();
        return fail(log, "REPLICAOF NO ONE", e, &state);
    }
    let was = before.map(|r| format!("was {r}")).unwrap_or_default();
    log.ok(STORE, t, "REPLICAOF NO ONE", &was);
    match role(&mut con, bounds).await {
        Ok(Role::Master) => {
            log.ok(STORE, t, "ROLE is master", "");
            StoreOutcome::done(t, "master", Vec::new())
        }
        Ok(r) => {
            let s = r.to_string();
            fail(log, "ROLE is master", format!("server says {s}"), &s)
        }
        Err(e) => fail(log, "ROLE is master", e, ""),
    }
}

/// Make the local Redis a replica of the peer and wait for the link.
pub async fn demote(
    t: &RedisTarget,
    peer: &RedisTarget,
    bounds: Bounds,
    log: &mut Log,
) -> StoreOutcome {
    // Is the peer there? Named in the error if not.
    let peer_down = match connect(peer, bounds).await {
        Ok(mut c) => match query(&mut c, &redis::cmd("PING"), bounds).await {
            Ok(_) => {
                log.ok(STORE, peer, "PING (peer)", "");
                None
            }
            Err(e) => Some(log.fail(StepError::new(STORE, peer, "PING (peer)", e))),
        },
        Err(e) => Some(log.fail(StepError::new(STORE, peer, "PING (peer)", e))),
    };
    let with_peer = |detail: String| match &peer_down {
        Some(p) => format!("{detail}; peer {}: {}", p.server, p.detail),
        None => detail,
    };
    let step = format!("REPLICAOF {} {}", peer.host, peer.port);
    let mut con = match crate::retry_for(bounds.start_wait, || connect(t, bounds)).await {
        Ok(c) => c,
        Err(e) => {
            let e = log.fail(StepError::new(
                STORE,
                t,
                &step,
                with_peer(format!("connect: {e}")),
            ));
            return StoreOutcome::failed(t, "", e, Vec::new());
        }
    };
    if let Some(pw) = &peer.password {
        if let Err(e) = query(
            &mut con,
            redis::cmd("CONFIG").arg("SET").arg("masterauth").arg(pw),
            bounds,
        )
        .await
        {
            let e = log.fail(StepError::new(STORE, t, "CONFIG SET masterauth", e));
            return StoreOutcome::failed(t, "", e, Vec::new());
        }
        log.ok(STORE, t, "CONFIG SET masterauth", "");
    }
    if let Err(e) = query(
        &mut con,
        redis::cmd("REPLICAOF").arg(&peer.host).arg(peer.port),
        bounds,
    )
    .await
    {
        let e = log.fail(StepError::new(STORE, t, &step, with_peer(e)));
        return StoreOutcome::failed(t, "", e, Vec::new());
    }
    log.ok(STORE, t, &step, "");

    // ROLE must name the peer; then the link must come up (unless the peer
    // is known to be down: then there is nothing to wait for).
    let verify = "replication link";
    // A link that stays down is the peer's problem: its error names the peer.
    let as_master = format!("master of {t}");
    let deadline = Instant::now()
        + if peer_down.is_some() {
            Duration::ZERO
        } else {
            bounds.link
        };
    loop {
        let r = match role(&mut con, bounds).await {
            Ok(r) => r,
            Err(e) => {
                let e = log.fail(StepError::new(STORE, t, "ROLE", e));
                return StoreOutcome::failed(t, "", e, Vec::new());
            }
        };
        let state = r.to_string();
        match &r {
            Role::Replica {
                host,
                port,
                state: link,
            } if *host == peer.host && *port == peer.port => {
                if link == "connected" {
                    log.ok(STORE, t, verify, &format!("connected to {peer}"));
                    return StoreOutcome::done(t, state, Vec::new());
                }
                if Instant::now() >= deadline {
                    // The error names the peer: that is where to look.
                    let detail = match &peer_down {
                        Some(p) => format!(
                            "down (link {link}); peer PING: {}; {t} will replicate once it answers",
                            p.detail
                        ),
                        None => format!(
                            "not up after {} s (link {link}); {t} will replicate once it answers",
                            bounds.link.as_secs()
                        ),
                    };
                    let e = log.fail(StepError::new(STORE, peer, &as_master, detail));
                    return StoreOutcome::failed(t, state, e, Vec::new());
                }
            }
            _ => {
                let e = log.fail(StepError::new(
                    STORE,
                    t,
                    "ROLE",
                    format!("expected replica of {peer}, server says {state}"),
                ));
                return StoreOutcome::failed(t, state, e, Vec::new());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn b(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn master_reply() {
        let v = Value::Array(vec![b("master"), Value::Int(3129659), Value::Array(vec![])]);
        assert_eq!(parse_role(&v).unwrap(), Role::Master);
    }

    #[test]
    fn replica_reply_with_link_state() {
        let v = Value::Array(vec![
            b("slave"),
            b("127.0.0.1"),
            Value::Int(9999),
            b("connected"),
            Value::Int(3167038),
        ]);
        assert_eq!(
            parse_role(&v).unwrap(),
            Role::Replica {
                host: "127.0.0.1".into(),
                port: 9999,
                state: "connected".into()
            }
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(parse_role(&Value::Nil).is_err());
        assert!(parse_role(&Value::Array(vec![])).is_err());
        assert!(parse_role(&Value::Array(vec![b("slave"), b("h")])).is_err());
        assert_eq!(
            parse_role(&Value::Array(vec![b("sentinel")])).unwrap(),
            Role::Other("sentinel".into())
        );
    }
}
