//! Registrations (the location service) in the central Redis, so any proxy
//! pair finds any subscriber.
//!
//! One hash per address-of-record, `reg:<user>@<domain>`: field = contact
//! URI, value = JSON [`Binding`]. Each binding carries its own absolute
//! expiry (filtered on read and pruned lazily); the key's TTL follows the
//! longest binding so an abandoned AOR disappears by itself.

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("redis {op} for {aor}: {source}")]
    Redis {
        op: &'static str,
        aor: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("corrupt binding in redis for {aor}: {source}")]
    Corrupt {
        aor: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One registered contact of an address-of-record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// Contact URI as registered (without header params).
    pub uri: String,
    /// Preference 0.0..=1.0 (RFC 3261 §10.2.1.2), default 1.0.
    pub q: f32,
    /// Absolute expiry, unix seconds.
    pub expires_at: u64,
    /// Path header values received with the REGISTER (RFC 3327), in order.
    pub path: Vec<String>,
    /// Source address the REGISTER came from, `ip:port`.
    pub received: Option<String>,
    pub call_id: String,
    pub cseq: u32,
}

/// A requested change to one binding (RFC 3261 §10.3 step 7).
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Upsert(Binding),
    Remove { uri: String },
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Same Call-ID with a CSeq not higher than the stored one.
    OutOfOrder { uri: String },
}

fn key(aor: &str) -> String {
    format!("reg:{aor}")
}

/// Location service handle; cheap to clone.
#[derive(Clone)]
pub struct Location {
    conn: ConnectionManager,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Location")
    }
}

impl Location {
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }

    /// Live bindings of `aor` at `now`, highest q first; prunes expired ones.
    pub async fn lookup(&self, aor: &str, now: u64) -> Result<Vec<Binding>, LocationError> {
        let mut conn = self.conn.clone();
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(key(aor))
            .query_async(&mut conn)
            .await
            .map_err(|source| LocationError::Redis {
                op: "HGETALL",
                aor: aor.into(),
                source,
            })?;
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (field, json) in raw {
            match serde_json::from_str::<Binding>(&json) {
                Ok(b) if b.expires_at > now => live.push(b),
                Ok(_) => dead.push(field),
                Err(source) => {
                    return Err(LocationError::Corrupt {
                        aor: aor.into(),
                        source,
                    })
                }
            }
        }
        if !dead.is_empty() {
            let _: Result<i64, _> = redis::cmd("HDEL")
                .arg(key(aor))
                .arg(&dead)
                .query_async(&mut conn)
                .await;
        }
        live.sort_by(|a, b| b.q.total_cmp(&a.q).then(a.uri.cmp(&b.uri)));
        Ok(live)
    }

    /// Applies updates for `aor` and returns the bindings now live.
    pub async fn apply(
        &self,
        aor: &str,
        updates: Vec<Update>,
        now: u64,
    ) -> Result<Result<Vec<Binding>, Refusal>, LocationError> {
        let current = self.lookup(aor, now).await?;
        let mut conn = self.conn.clone();
        let k = key(aor);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for u in &updates {
            let uri = match u {
                Update::Upsert(b) => &b.uri,
                Update::Remove { uri } => uri,
            };
            let (call_id, cseq) = match u {
                Update::Upsert(b) => (&b.call_id, b.cseq),
                Update::Remove { .. } => (&String::new(), u32::MAX),
            };
            if let Some(old) = current.iter().find(|b| &b.uri == uri) {
                if !call_id.is_empty() && &old.call_id == call_id && old.cseq >= cseq {
                    return Ok(Err(Refusal::OutOfOrder { uri: uri.clone() }));
                }
            }
            match u {
                Update::Upsert(b) => {
                    let json =
                        serde_json::to_string(b).map_err(|source| LocationError::Corrupt {
                            aor: aor.into(),
                            source,
                        })?;
                    pipe.cmd("HSET").arg(&k).arg(&b.uri).arg(json).ignore();
                }
                Update::Remove { uri } => {
                    pipe.cmd("HDEL").arg(&k).arg(uri).ignore();
                }
            }
        }
        // Key TTL = longest binding after the update.
        let mut max_exp = 0;
        for b in &current {
            let removed = updates.iter().any(|u| match u {
                Update::Remove { uri } => uri == &b.uri,
                Update::Upsert(n) => n.uri == b.uri,
            });
            if !removed {
                max_exp = max_exp.max(b.expires_at);
            }
        }
        for u in &updates {
            if let Update::Upsert(b) = u {
                max_exp = max_exp.max(b.expires_at);
            }
        }
        if max_exp > now {
            pipe.cmd("EXPIREAT").arg(&k).arg(max_exp + 5).ignore();
        } else {
            pipe.cmd("DEL").arg(&k).ignore();
        }
        let () = pipe
            .query_async(&mut conn)
            .await
            .map_err(|source| LocationError::Redis {
                op: "MULTI/HSET",
                aor: aor.into(),
                source,
            })?;
        // The bindings now live, computed here rather than read back (one
        // round trip less per REGISTER).
        let mut live: Vec<Binding> = current
            .into_iter()
            .filter(|b| {
                !updates.iter().any(|u| match u {
                    Update::Remove { uri } => uri == &b.uri,
                    Update::Upsert(n) => n.uri == b.uri,
                })
            })
            .collect();
        for u in updates {
            if let Update::Upsert(b) = u {
                live.push(b);
            }
        }
        live.sort_by(|a, b| b.q.total_cmp(&a.q).then(a.uri.cmp(&b.uri)));
        Ok(Ok(live))
    }

    /// Removes every binding of `aor` (`Contact: *` with `Expires: 0`).
    pub async fn remove_all(&self, aor: &str) -> Result<(), LocationError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(key(aor))
            .query_async(&mut conn)
            .await
            .map_err(|source| LocationError::Redis {
                op: "DEL",
                aor: aor.into(),
                source,
            })?;
        Ok(())
    }
}
