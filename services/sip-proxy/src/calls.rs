//! Concurrent call counters in the central Redis, shared by all proxy pairs.
//!
//! Each limited party (caller subscriber, caller customer, callee
//! subscriber, callee customer) is a sorted set `cc:sub:<aor>` /
//! `cc:cust:<id>` whose members are Call-IDs scored by their expiry (unix
//! seconds). A call counts while its member is unexpired; the owning proxy
//! pushes the expiry forward every `ttl/3` while the call lives. A call
//! record `call:<Call-ID>` (JSON [`CallRecord`]) lists the sets the call was
//! added to, so a proxy restarted mid-call still releases the right members
//! on BYE; the node's set `node:<name>:calls` lets a restarted proxy adopt
//! and keep refreshing its calls. If nothing refreshes a call (node gone for
//! longer than the TTL), its members expire and the counters heal.

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    #[error("redis {op} for call {call_id}: {source}")]
    Redis {
        op: &'static str,
        call_id: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("corrupt call record for {call_id}: {source}")]
    Corrupt {
        call_id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller (subscriber or customer) is at its limit: 403.
    Caller,
    /// The callee (subscriber or customer) is at its limit: 486.
    Callee,
}

/// One counter a call is added to, with its limit (`None` = unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub limit: Option<u32>,
    pub side: Side,
}

impl Counter {
    pub fn subscriber(aor: &str, limit: Option<u32>, side: Side) -> Self {
        Self {
            key: format!("cc:sub:{aor}"),
            limit,
            side,
        }
    }
    pub fn customer(id: u64, limit: Option<u32>, side: Side) -> Self {
        Self {
            key: format!("cc:cust:{id}"),
            limit,
            side,
        }
    }
}

/// What a proxy remembers about a call in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub keys: Vec<String>,
    pub node: String,
    pub caller: String,
    pub callee: String,
    pub caller_customer: Option<u64>,
    pub callee_customer: Option<u64>,
    pub from_tag: String,
    pub to_tag: String,
    pub start_ms: u64,
    pub answered_ms: Option<u64>,
}

// KEYS = counters..., call record, node set. ARGV = now, expiry, call-id,
// record JSON, limits... (-1 = unlimited). Returns 0 or the 1-based index
// of the first counter at its limit.
const ACQUIRE: &str = r#"
local n = #KEYS - 2
local now = tonumber(ARGV[1])
local exp = tonumber(ARGV[2])
local cid = ARGV[3]
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local lim = tonumber(ARGV[4 + i])
  if lim >= 0 and not redis.call('ZSCORE', KEYS[i], cid) then
    if redis.call('ZCARD', KEYS[i]) >= lim then return i end
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], exp, cid)
  local ttl = redis.call('TTL', KEYS[i])
  if ttl < 0 or now + ttl < exp then redis.call('EXPIREAT', KEYS[i], exp) end
end
redis.call('SET', KEYS[n + 1], ARGV[4], 'EXAT', exp)
redis.call('SADD', KEYS[n + 2], cid)
return 0
"#;

// KEYS = call record, node set. ARGV = call-id. Atomically takes the record
// and removes the call from every counter; returns the record or nil.
const RELEASE: &str = r#"
local rec = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if not rec then return false end
redis.call('DEL', KEYS[1])
for _, k in ipairs(cjson.decode(rec)['keys']) do redis.call('ZREM', k, ARGV[1]) end
return rec
"#;

// KEYS = call record. ARGV = call-id, new expiry, now. Pushes the expiry of
// the record and of its counter members forward; returns the record or nil.
const REFRESH: &str = r#"
local rec = redis.call('GET', KEYS[1])
if not rec then return false end
local exp = tonumber(ARGV[2])
redis.call('EXPIREAT', KEYS[1], exp)
for _, k in ipairs(cjson.decode(rec)['keys']) do
  redis.call('ZADD', k, 'XX', exp, ARGV[1])
  local ttl = redis.call('TTL', k)
  if ttl < 0 or tonumber(ARGV[3]) + ttl < exp then redis.call('EXPIREAT', k, exp) end
end
return rec
"#;

// KEYS = call record. ARGV = record JSON. Replaces the record, keeping TTL.
const UPDATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return 1
"#;

/// Counter store handle; cheap to clone.
#[derive(Clone)]
pub struct Calls {
    conn: ConnectionManager,
    node: String,
    ttl_secs: u64,
    acquire: std::sync::Arc<redis::Script>,
    release: std::sync::Arc<redis::Script>,
    refresh: std::sync::Arc<redis::Script>,
    update: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("node", &self.node)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

fn record_key(call_id: &str) -> String {
    format!("call:{call_id}")
}

impl Calls {
    pub fn new(conn: ConnectionManager, node: &str, ttl_secs: u64) -> Self {
        Self {
            conn,
            node: node.to_string(),
            ttl_secs: ttl_secs.max(3),
            acquire: std::sync::Arc::new(redis::Script::new(ACQUIRE)),
            release: std::sync::Arc::new(redis::Script::new(RELEASE)),
            refresh: std::sync::Arc::new(redis::Script::new(REFRESH)),
            update: std::sync::Arc::new(redis::Script::new(UPDATE)),
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    fn node_key(&self) -> String {
        format!("node:{}:calls", self.node)
    }

    /// Adds the call to every counter unless one is at its limit; returns the
    /// side of the first counter at its limit.
    pub async fn acquire(
        &self,
        rec: &CallRecord,
        counters: &[Counter],
        now: u64,
    ) -> Result<Result<(), Side>, CallsError> {
        let err = |op, source| CallsError::Redis {
            op,
            call_id: rec.call_id.clone(),
            source,
        };
        let mut rec = rec.clone();
        rec.keys = counters.iter().map(|c| c.key.clone()).collect();
        let json = serde_json::to_string(&rec).map_err(|source| CallsError::Corrupt {
            call_id: rec.call_id.clone(),
            source,
        })?;
        let mut inv = self.acquire.prepare_invoke();
        for c in counters {
            inv.key(&c.key);
        }
        inv.key(record_key(&rec.call_id)).key(self.node_key());
        inv.arg(now)
            .arg(now + self.ttl_secs)
            .arg(&rec.call_id)
            .arg(json);
        for c in counters {
            inv.arg(c.limit.map(i64::from).unwrap_or(-1));
        }
        let mut conn = self.conn.clone();
        let idx: i64 = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| err("EVALSHA acquire", e))?;
        if idx == 0 {
            return Ok(Ok(()));
        }
        let side = usize::try_from(idx - 1)
            .ok()
            .and_then(|i| counters.get(i))
            .map(|c| c.side)
            .unwrap_or(Side::Caller);
        Ok(Err(side))
    }

    /// Releases the call from all its counters; returns its record if this
    /// caller was the one to release it (so exactly one stop is written).
    pub async fn release(&self, call_id: &str) -> Result<Option<CallRecord>, CallsError> {
        let mut conn = self.conn.clone();
        let rec: Option<String> = self
            .release
            .key(record_key(call_id))
            .key(self.node_key())
            .arg(call_id)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "EVALSHA release",
                call_id: call_id.into(),
                source,
            })?;
        decode(call_id, rec)
    }

    /// Reads the call record, if the call is still counted.
    pub async fn get(&self, call_id: &str) -> Result<Option<CallRecord>, CallsError> {
        let mut conn = self.conn.clone();
        let rec: Option<String> = redis::cmd("GET")
            .arg(record_key(call_id))
            .query_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "GET",
                call_id: call_id.into(),
                source,
            })?;
        decode(call_id, rec)
    }

    /// Stores an updated record (e.g. answered time and To-tag).
    pub async fn update(&self, rec: &CallRecord) -> Result<bool, CallsError> {
        let json = serde_json::to_string(rec).map_err(|source| CallsError::Corrupt {
            call_id: rec.call_id.clone(),
            source,
        })?;
        let mut conn = self.conn.clone();
        let n: i64 = self
            .update
            .key(record_key(&rec.call_id))
            .arg(json)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "EVALSHA update",
                call_id: rec.call_id.clone(),
                source,
            })?;
        Ok(n == 1)
    }

    /// Pushes a live call's expiry forward; `None` if it is gone.
    pub async fn refresh(&self, call_id: &str, now: u64) -> Result<Option<CallRecord>, CallsError> {
        let mut conn = self.conn.clone();
        let rec: Option<String> = self
            .refresh
            .key(record_key(call_id))
            .arg(call_id)
            .arg(now + self.ttl_secs)
            .arg(now)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "EVALSHA refresh",
                call_id: call_id.into(),
                source,
            })?;
        decode(call_id, rec)
    }

    /// Call-IDs this node owns (including ones from before a restart).
    pub async fn owned(&self) -> Result<Vec<String>, CallsError> {
        let mut conn = self.conn.clone();
        redis::cmd("SMEMBERS")
            .arg(self.node_key())
            .query_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "SMEMBERS",
                call_id: String::new(),
                source,
            })
    }

    /// Forgets a Call-ID in the node set (record already gone).
    pub async fn disown(&self, call_id: &str) -> Result<(), CallsError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SREM")
            .arg(self.node_key())
            .arg(call_id)
            .query_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "SREM",
                call_id: call_id.into(),
                source,
            })?;
        Ok(())
    }

    /// Number of live calls counted in `counter_key` at `now`.
    pub async fn count(&self, counter_key: &str, now: u64) -> Result<u64, CallsError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZCOUNT")
            .arg(counter_key)
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(|source| CallsError::Redis {
                op: "ZCOUNT",
                call_id: counter_key.into(),
                source,
            })
    }
}

fn decode(call_id: &str, rec: Option<String>) -> Result<Option<CallRecord>, CallsError> {
    rec.map(|s| {
        serde_json::from_str(&s).map_err(|source| CallsError::Corrupt {
            call_id: call_id.into(),
            source,
        })
    })
    .transpose()
}
