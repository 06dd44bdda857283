//! The registrar (RFC 3261 §10.3 with Path, RFC 3327) and the digest check
//! shared by REGISTER (401, `Authorization`) and INVITE (407,
//! `Proxy-Authorization`).
//!
//! Reads subscribers from [`crate::subscriber`], writes bindings to
//! [`crate::location`]; builds the response, the caller sends it.

use crate::digest::{self, Algorithm, NonceKey, Secrets, Verdict};
use crate::location::{Binding, Location, Update};
use crate::subscriber::{Subscriber, SubscriberDb};
use sip::{Contact, HeaderName, Request, Response};
use std::net::SocketAddr;

/// Which digest header pair is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// 401 + WWW-Authenticate / Authorization (registrar).
    Www,
    /// 407 + Proxy-Authenticate / Proxy-Authorization (proxy).
    Proxy,
}

/// Result of checking a request's credentials.
#[derive(Debug)]
pub enum AuthOutcome {
    Authenticated(Box<Subscriber>),
    /// Send a challenge; `stale` if the response was right but the nonce old.
    Challenge {
        stale: bool,
    },
    Forbidden(&'static str),
}

/// Everything the registrar and the auth check need.
#[derive(Clone)]
pub struct AuthContext {
    pub db: SubscriberDb,
    pub nonce: NonceKey,
    pub algorithms: Vec<Algorithm>,
    /// Where used responses are remembered (replay protection), shared by
    /// all proxies; `None` disables the check.
    pub replay: Option<redis::aio::ConnectionManager>,
    /// How long a used response is remembered (>= nonce lifetime).
    pub replay_secs: u64,
}

impl std::fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthContext")
            .field("algorithms", &self.algorithms)
            .field("replay", &self.replay.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrarError {
    #[error(transparent)]
    Db(#[from] crate::subscriber::SubscriberError),
    #[error(transparent)]
    Location(#[from] crate::location::LocationError),
    #[error("redis replay check: {0}")]
    Replay(#[source] redis::RedisError),
}

impl AuthContext {
    /// Checks the credentials for `realm` in `req`; `user` is the identity
    /// the request claims (To user for REGISTER, From user for INVITE).
    pub async fn check(
        &self,
        req: &Request,
        kind: AuthKind,
        realm: &str,
        user: &str,
        now: u64,
    ) -> Result<AuthOutcome, RegistrarError> {
        let name = match kind {
            AuthKind::Www => HeaderName::Authorization,
            AuthKind::Proxy => HeaderName::ProxyAuthorization,
        };
        let creds = req
            .headers
            .get_all(&name)
            .filter_map(|v| digest::parse_credentials(v).ok())
            .find(|c| c.realm == realm);
        let Some(creds) = creds else {
            return Ok(AuthOutcome::Challenge { stale: false });
        };
        if creds.username != user {
            return Ok(AuthOutcome::Forbidden(
                "authentication user differs from AOR",
            ));
        }
        let Some(sub) = self.db.find(user, realm).await? else {
            return Ok(AuthOutcome::Forbidden("unknown subscriber"));
        };
        let secrets = Secrets {
            password: sub.password.as_deref(),
            ha1_md5: sub.ha1_md5.as_deref(),
            ha1_sha256: sub.ha1_sha256.as_deref(),
        };
        let verdict = digest::verify(
            &creds,
            req.method.as_str(),
            realm,
            secrets,
            &self.nonce,
            now,
        );
        Ok(match verdict {
            // The same response twice (a captured request replayed with a
            // new branch): challenge afresh (RFC 7616 §5.8).
            Verdict::Ok if self.replayed(&creds.response).await? => {
                AuthOutcome::Challenge { stale: false }
            }
            Verdict::Ok => AuthOutcome::Authenticated(Box::new(sub)),
            Verdict::Stale => AuthOutcome::Challenge { stale: true },
            Verdict::Rejected("wrong response") => AuthOutcome::Challenge { stale: false },
            Verdict::Rejected(why) => AuthOutcome::Forbidden(why),
        })
    }

    /// Remembers `response` and says whether it had been used before. The
    /// response digest covers nonce, nc, cnonce, method and URI, so an
    /// honest client never sends the same one twice (retransmissions are
    /// absorbed by the transaction layer before they get here).
    async fn replayed(&self, response: &str) -> Result<bool, RegistrarError> {
        let Some(conn) = &self.replay else {
            return Ok(false);
        };
        let mut conn = conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("auth:used:{}", response.to_ascii_lowercase()))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.replay_secs.max(1))
            .query_async(&mut conn)
            .await
            .map_err(RegistrarError::Replay)?;
        Ok(set.is_none())
    }

    /// A 401/407 response carrying one challenge per offered algorithm
    /// (RFC 8760 §2.4: most preferred first).
    pub fn challenge(
        &self,
        req: &Request,
        kind: AuthKind,
        realm: &str,
        stale: bool,
        to_tag: &str,
        now: u64,
    ) -> Response {
        let (code, reason, header) = match kind {
            AuthKind::Www => (401, "Unauthorized", HeaderName::WwwAuthenticate),
            AuthKind::Proxy => (
                407,
                "Proxy Authentication Required",
                HeaderName::ProxyAuthenticate,
            ),
        };
        let mut r = Response::reply_to(req, code, reason, Some(to_tag));
        let nonce = self.nonce.issue(realm, now);
        for alg in &self.algorithms {
            r.headers.push(
                header.clone(),
                digest::challenge(realm, &nonce, *alg, stale),
            );
        }
        r
    }
}

/// Registrar limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryPolicy {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

/// Handles a REGISTER whose domain we serve; returns the response to send.
pub async fn register(
    auth: &AuthContext,
    loc: &Location,
    policy: ExpiryPolicy,
    req: &Request,
    src: SocketAddr,
    to_tag: &str,
    now: u64,
) -> Result<Response, RegistrarError> {
    let reply = |code, reason: &str| Response::reply_to(req, code, reason, Some(to_tag));
    let Ok(to) = req.headers.to() else {
        return Ok(reply(400, "Bad To"));
    };
    let (Some(user), realm) = (to.uri.user.clone(), to.uri.host.to_string()) else {
        return Ok(reply(400, "To Without User"));
    };
    let sub = match auth.check(req, AuthKind::Www, &realm, &user, now).await? {
        AuthOutcome::Authenticated(s) => s,
        AuthOutcome::Challenge { stale } => {
            return Ok(auth.challenge(req, AuthKind::Www, &realm, stale, to_tag, now))
        }
        AuthOutcome::Forbidden(why) => return Ok(reply(403, why)),
    };
    let aor = sub.aor();
    let contacts = match req.headers.contacts() {
        Ok(c) => c,
        Err(_) => return Ok(reply(400, "Bad Contact")),
    };
    let header_expires = req.headers.expires().ok().flatten();
    let call_id = req.headers.call_id().unwrap_or_default().to_string();
    let cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);

    if contacts.iter().any(|c| matches!(c, Contact::Star)) {
        // RFC 3261 §10.3 step 6: '*' only alone and with Expires: 0.
        if contacts.len() != 1 || header_expires != Some(0) {
            return Ok(reply(400, "Invalid Wildcard Contact"));
        }
        loc.remove_all(&aor).await?;
        return Ok(ok_response(req, to_tag, &[], now));
    }

    let paths: Vec<String> = req
        .headers
        .get_all(&HeaderName::Path)
        .map(str::to_string)
        .collect();
    let mut updates = Vec::new();
    for c in &contacts {
        let Contact::Addr(na) = c else { continue };
        let expires = na
            .params
            .get("expires")
            .and_then(|e| e.parse::<u32>().ok())
            .or(header_expires)
            .unwrap_or(policy.default);
        let uri = na.uri.to_string();
        if expires == 0 {
            updates.push(Update::Remove { uri });
            continue;
        }
        if expires < policy.min {
            let mut r = reply(423, "Interval Too Brief");
            r.headers
                .push(HeaderName::MinExpires, policy.min.to_string());
            return Ok(r);
        }
        let q = na
            .params
            .get("q")
            .and_then(|q| q.parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(1.0);
        updates.push(Update::Upsert(Binding {
            uri,
            q,
            expires_at: now + u64::from(expires.min(policy.max)),
            path: paths.clone(),
            received: Some(src.to_string()),
            call_id: call_id.clone(),
            cseq,
        }));
    }
    let live = if updates.is_empty() {
        loc.lookup(&aor, now).await?
    } else {
        match loc.apply(&aor, updates, now).await? {
            Ok(live) => live,
            Err(_) => return Ok(reply(500, "Out Of Order Registration")),
        }
    };
    let mut r = ok_response(req, to_tag, &live, now);
    for p in &paths {
        r.headers.push(HeaderName::Path, p.clone());
    }
    Ok(r)
}

fn ok_response(req: &Request, to_tag: &str, live: &[Binding], now: u64) -> Response {
    let mut r = Response::reply_to(req, 200, "OK", Some(to_tag));
    for b in live {
        r.headers.push(
            HeaderName::Contact,
            format!(
                "<{}>;expires={}{}",
                b.uri,
                b.expires_at.saturating_sub(now),
                if (b.q - 1.0).abs() > f32::EPSILON {
                    format!(";q={:.2}", b.q)
                } else {
                    String::new()
                }
            ),
        );
    }
    r
}
