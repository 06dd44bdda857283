//! Failover state in Redis: every call's tags, ports and peers, written on
//! each change so that the standby of the proxy pair, once it becomes
//! master and flexvisor starts media-relay there, binds the same ports on
//! the pair's shared address and keeps relaying.
//!
//! Keys (with the configured prefix `P`): `P calls` is a set of Call-IDs,
//! `P call:<Call-ID>` the JSON [`Snapshot`] of one call.

use crate::relay::{Persist, Relay};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused or is unreachable.
    #[error("redis {url}: {source}")]
    Redis {
        /// Server URL.
        url: String,
        /// Error.
        source: redis::RedisError,
    },
    /// A stored value is not a snapshot.
    #[error("redis key {key}: not a media-relay call: {source}")]
    Corrupt {
        /// Key.
        key: String,
        /// Error.
        source: serde_json::Error,
    },
}

/// One leg of a stream as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegSnapshot {
    /// RTP port (RTCP is the next one).
    pub port: u16,
    /// Where RTP goes to this leg's party.
    pub rtp_peer: Option<SocketAddr>,
    /// Where RTCP goes to this leg's party.
    pub rtcp_peer: Option<SocketAddr>,
    /// RTP peer learnt from packets.
    pub rtp_latched: bool,
    /// RTCP peer learnt from packets.
    pub rtcp_latched: bool,
    /// RTP address from SDP.
    pub advertised: Option<SocketAddr>,
}

/// One media stream as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSnapshot {
    /// Media type.
    pub kind: String,
    /// Transport protocol.
    pub proto: String,
    /// Caller-facing leg.
    pub a: LegSnapshot,
    /// Callee-facing leg.
    pub b: LegSnapshot,
}

/// One call as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// SIP Call-ID.
    pub call_id: String,
    /// Caller's tag.
    pub from_tag: String,
    /// Callee's tag once answered.
    pub to_tag: Option<String>,
    /// Creation time (unix ms).
    pub created_ms: u64,
    /// Last offer/answer (unix ms).
    pub last_signal_ms: u64,
    /// Streams by SDP media index (None: rejected).
    pub streams: Vec<Option<StreamSnapshot>>,
}

/// A Redis connection with the key layout.
#[derive(Clone)]
pub struct Store {
    url: String,
    prefix: String,
    conn: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Store {
    /// Connects to `url`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Store, StoreError> {
        let err = |source| StoreError::Redis {
            url: url.to_string(),
            source,
        };
        let client = redis::Client::open(url).map_err(err)?;
        let conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(err)?;
        Ok(Store {
            url: url.to_string(),
            prefix: prefix.to_string(),
            conn,
        })
    }

    fn err(&self, source: redis::RedisError) -> StoreError {
        StoreError::Redis {
            url: self.url.clone(),
            source,
        }
    }

    fn set_key(&self) -> String {
        format!("{}calls", self.prefix)
    }

    fn call_key(&self, call_id: &str) -> String {
        format!("{}call:{call_id}", self.prefix)
    }

    /// Writes one call.
    pub async fn save(&mut self, s: &Snapshot) -> Result<(), StoreError> {
        let json = serde_json::to_string(s).map_err(|source| StoreError::Corrupt {
            key: self.call_key(&s.call_id),
            source,
        })?;
        let (set, key) = (self.set_key(), self.call_key(&s.call_id));
        redis::pipe()
            .atomic()
            .set(&key, json)
            .sadd(&set, &s.call_id)
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// Removes one call.
    pub async fn delete(&mut self, call_id: &str) -> Result<(), StoreError> {
        let (set, key) = (self.set_key(), self.call_key(call_id));
        redis::pipe()
            .atomic()
            .del(&key)
            .srem(&set, call_id)
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// Every stored call; corrupt entries are reported, not fatal.
    pub async fn load_all(&mut self) -> Result<Vec<Result<Snapshot, StoreError>>, StoreError> {
        let ids: Vec<String> = self
            .conn
            .smembers(self.set_key())
            .await
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for id in ids {
            let key = self.call_key(&id);
            let json: Option<String> = self.conn.get(&key).await.map_err(|e| self.err(e))?;
            let Some(json) = json else { continue };
            out.push(
                serde_json::from_str(&json).map_err(|source| StoreError::Corrupt { key, source }),
            );
        }
        Ok(out)
    }
}

/// Restores every stored call into `relay`; returns (restored, failed).
pub async fn restore_all(store: &mut Store, relay: &Relay) -> Result<(usize, usize), StoreError> {
    let mut ok = 0;
    let mut failed = 0;
    for snap in store.load_all().await? {
        match snap {
            Ok(s) => match relay.restore(&s) {
                Ok(()) => ok += 1,
                Err(e) => {
                    eprintln!("media-relay: cannot restore call {:?}: {e}", s.call_id);
                    failed += 1;
                }
            },
            Err(e) => {
                eprintln!("media-relay: {e}");
                failed += 1;
            }
        }
    }
    Ok((ok, failed))
}

/// Writes the relay's state changes to Redis as they come, forever.
/// A failed write is logged and retried with the next change of that call.
pub async fn persist_loop(mut store: Store, relay: Arc<Relay>, mut rx: UnboundedReceiver<Persist>) {
    let mut last_err_log = std::time::Instant::now() - Duration::from_secs(60);
    while let Some(p) = rx.recv().await {
        let r = match &p {
            Persist::Save(id) => match relay.snapshot(id) {
                Some(s) => store.save(&s).await,
                // Deleted meanwhile: its Delete is queued behind this.
                None => Ok(()),
            },
            Persist::Delete(id) => store.delete(id).await,
        };
        if let Err(e) = r {
            if last_err_log.elapsed() > Duration::from_secs(5) {
                eprintln!("media-relay: failover state not written: {e}");
                last_err_log = std::time::Instant::now();
            }
        }
    }
}
