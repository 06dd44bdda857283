//! Admin authentication: HTTP Basic (RFC 7617) against the `admins` table.
//!
//! PBKDF2 is deliberately slow, so a verified (user, password) pair is
//! remembered for [`CACHE_TTL`] under a keyed hash (the clear password is
//! never kept), and at most [`MAX_PARALLEL_VERIFY`] verifications run at
//! once so a password-guessing client cannot occupy every core. An admin
//! removed from the table stops working within [`CACHE_TTL`]. Unknown admin
//! names cost the same PBKDF2 work as known ones (at the iteration count last
//! seen in the table), so reply times do not reveal which names exist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::store::{Store, StoreError};

/// How long a verified credential is trusted without asking the database.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// PBKDF2 verifications running at once.
pub const MAX_PARALLEL_VERIFY: usize = 2;
const MAX_CACHE: usize = 4096;

/// Credentials from an `Authorization: Basic` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basic {
    pub user: String,
    pub password: String,
}

/// Parses an `Authorization` header value; `None` unless well-formed Basic.
pub fn parse_basic(value: &str) -> Option<Basic> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = B64.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some(Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
}

/// Checks Basic credentials against the store, with the cache above.
#[derive(Debug)]
pub struct Authenticator {
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    verify_slots: Semaphore,
    /// Iteration count of the last stored hash verified (for unknown names).
    typical_iterations: AtomicU32,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            key: rand::random(),
            cache: Mutex::new(HashMap::new()),
            verify_slots: Semaphore::new(MAX_PARALLEL_VERIFY),
            typical_iterations: AtomicU32::new(crate::secrets::DEFAULT_ITERATIONS),
        }
    }
}

impl Authenticator {
    fn cache_key(&self, b: &Basic) -> [u8; 32] {
        // Keyed with a per-process random key: the map never holds anything
        // from which the password could be recovered offline.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            // HMAC accepts keys of any length; this arm cannot be taken.
            Err(_) => return [0; 32],
        };
        mac.update(b.user.as_bytes());
        mac.update(&[0]);
        mac.update(b.password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `b` names an admin with that password.
    pub async fn check(&self, store: &Store, b: &Basic) -> Result<Verdict, StoreError> {
        let key = self.cache_key(b);
        let now = Instant::now();
        if let Ok(c) = self.cache.lock() {
            if c.get(&key)
                .is_some_and(|t| now.duration_since(*t) < CACHE_TTL)
            {
                return Ok(Verdict::Allowed);
            }
        }
        let stored = store.admin_hash(&b.user).await?;
        let ok = {
            let _slot = self.verify_slots.acquire().await;
            let pw = b.password.clone();
            match stored {
                Some(hash) => {
                    if let Some(n) = crate::secrets::iterations_of(&hash) {
                        self.typical_iterations.store(n, Ordering::Relaxed);
                    }
                    tokio::task::spawn_blocking(move || {
                        crate::secrets::verify_admin_password(&pw, &hash)
                    })
                    .await
                    .unwrap_or(false)
                }
                None => {
                    let n = self.typical_iterations.load(Ordering::Relaxed);
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::secrets::equalize_verify_time(&pw, n)
                    })
                    .await;
                    false
                }
            }
        };
        if !ok {
            return Ok(Verdict::Denied);
        }
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CACHE {
                c.retain(|_, t| now.duration_since(*t) < CACHE_TTL);
                if c.len() >= MAX_CACHE {
                    c.clear();
                }
            }
            c.insert(key, now);
        }
        Ok(Verdict::Allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        // RFC 7617 §2 example.
        assert_eq!(
            parse_basic("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Some(Basic {
                user: "Aladdin".into(),
                password: "open sesame".into()
            })
        );
        assert_eq!(
            parse_basic("basic YTpiOmM="),
            Some(Basic {
                user: "a".into(),
                password: "b:c".into()
            })
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic OnB3"), None, "empty user");
        assert_eq!(parse_basic("Basic dXNlcg=="), None, "no colon");
    }
}
