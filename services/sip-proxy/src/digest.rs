//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760):
//! challenges, nonces and response verification for MD5 and SHA-256 with
//! `qop=auth`.
//!
//! Pure functions only: no I/O, no clock (the caller passes `now`). Nonces
//! are stateless: `<unix seconds>.<salt>.<HMAC-SHA-256(secret, seconds:salt:realm)>`,
//! so any proxy of a pair sharing the secret can verify them and an expired
//! one is answered with `stale=true` (RFC 7616 §3.3). Replays are caught
//! by the registrar, which remembers used responses in Redis.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Digest algorithm (RFC 8760 §2: SHA-256 preferred, MD5 for old phones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses the `algorithm` parameter; absent means MD5 (RFC 2617 §3.2.1).
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// HA1 = H(username ":" realm ":" password).
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash(&format!("{user}:{realm}:{password}"))
}

/// Parameters of an `Authorization` / `Proxy-Authorization` Digest header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("authorization scheme is not Digest: {0:?}")]
    NotDigest(String),
    #[error("Digest credentials lack parameter {0}")]
    Missing(&'static str),
    #[error("unterminated quoted string in Digest credentials")]
    Unterminated,
}

/// Parses the value of an Authorization header (`Digest k=v, k="v"`).
pub fn parse_credentials(value: &str) -> Result<Credentials, DigestParseError> {
    let v = value.trim();
    let (scheme, rest) = v.split_at(v.find(char::is_whitespace).unwrap_or(v.len()));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestParseError::NotDigest(scheme.to_string()));
    }
    let mut c = Credentials::default();
    let (mut username, mut realm, mut nonce, mut uri, mut response) =
        (None, None, None, None, None);
    for (k, val) in parse_params(rest)? {
        match k.to_ascii_lowercase().as_str() {
            "username" => username = Some(val),
            "realm" => realm = Some(val),
            "nonce" => nonce = Some(val),
            "uri" => uri = Some(val),
            "response" => response = Some(val),
            "algorithm" => c.algorithm = Some(val),
            "cnonce" => c.cnonce = Some(val),
            "qop" => c.qop = Some(val),
            "nc" => c.nc = Some(val),
            "opaque" => c.opaque = Some(val),
            _ => {}
        }
    }
    c.username = username.ok_or(DigestParseError::Missing("username"))?;
    c.realm = realm.ok_or(DigestParseError::Missing("realm"))?;
    c.nonce = nonce.ok_or(DigestParseError::Missing("nonce"))?;
    c.uri = uri.ok_or(DigestParseError::Missing("uri"))?;
    c.response = response.ok_or(DigestParseError::Missing("response"))?;
    Ok(c)
}

/// Splits `k=v, k="quoted \" v"` into pairs.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, DigestParseError> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_string();
        if i >= b.len() || b[i] == b',' {
            out.push((key, String::new()));
            continue;
        }
        i += 1; // '='
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        // quoted-pair: the escaped character may be multi-byte.
                        let ch = s[i + 1..].chars().next().unwrap_or('\u{fffd}');
                        val.push(ch);
                        i += 1 + ch.len_utf8();
                    }
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => {
                        // Copy one UTF-8 character.
                        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
                        val.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(DigestParseError::Unterminated);
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[vs..i].trim().to_string();
        }
        out.push((key, val));
    }
    Ok(out)
}

/// Issues and checks nonces; holds the shared secret and lifetime.
#[derive(Debug, Clone)]
pub struct NonceKey {
    secret: Vec<u8>,
    lifetime_secs: u64,
}

impl NonceKey {
    pub fn new(secret: &[u8], lifetime_secs: u64) -> Self {
        Self {
            secret: secret.to_vec(),
            lifetime_secs,
        }
    }

    fn mac(&self, ts: u64, salt: &str, realm: &str) -> String {
        // HMAC accepts keys of any length; new_from_slice cannot fail here.
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        m.update(format!("{ts}:{salt}:{realm}").as_bytes());
        hex(&m.finalize().into_bytes()[..16])
    }

    /// A fresh nonce for `realm` issued at `now` (unix seconds). A random
    /// salt makes every challenge unique, so equal answers mean a replay.
    pub fn issue(&self, realm: &str, now: u64) -> String {
        let salt = format!("{:016x}", rand::random::<u64>());
        format!("{now}.{salt}.{}", self.mac(now, &salt, realm))
    }

    /// Checks a nonce's integrity and age.
    pub fn check(&self, nonce: &str, realm: &str, now: u64) -> NonceState {
        let mut it = nonce.split('.');
        let (Some(ts), Some(salt), Some(mac), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return NonceState::Invalid;
        };
        let Ok(ts) = ts.parse::<u64>() else {
            return NonceState::Invalid;
        };
        if !constant_eq(mac.as_bytes(), self.mac(ts, salt, realm).as_bytes()) || ts > now + 5 {
            return NonceState::Invalid;
        }
        if now.saturating_sub(ts) > self.lifetime_secs {
            NonceState::Stale
        } else {
            NonceState::Fresh
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    Fresh,
    Stale,
    Invalid,
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Value of one `WWW-Authenticate` / `Proxy-Authenticate` header.
pub fn challenge(realm: &str, nonce: &str, alg: Algorithm, stale: bool) -> String {
    let mut s = format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm={}",
        alg.name()
    );
    if stale {
        s.push_str(", stale=true");
    }
    s
}

/// Outcome of checking credentials against a subscriber's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Correct response to an expired nonce: re-challenge with stale=true.
    Stale,
    /// Wrong password, forged nonce, wrong realm or unsupported parameters.
    Rejected(&'static str),
}

/// The stored secrets for one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Secrets<'a> {
    pub password: Option<&'a str>,
    pub ha1_md5: Option<&'a str>,
    pub ha1_sha256: Option<&'a str>,
}

/// Verifies `creds` for a request with `method` in `realm`.
pub fn verify(
    creds: &Credentials,
    method: &str,
    realm: &str,
    secrets: Secrets<'_>,
    key: &NonceKey,
    now: u64,
) -> Verdict {
    let Some(alg) = Algorithm::parse(creds.algorithm.as_deref()) else {
        return Verdict::Rejected("unsupported algorithm");
    };
    if creds.realm != realm {
        return Verdict::Rejected("realm mismatch");
    }
    let ha1 = match (alg, secrets.ha1_md5, secrets.ha1_sha256, secrets.password) {
        (Algorithm::Md5, Some(h), _, _) => h.to_ascii_lowercase(),
        (Algorithm::Sha256, _, Some(h), _) => h.to_ascii_lowercase(),
        (_, _, _, Some(p)) => ha1(alg, &creds.username, realm, p),
        _ => return Verdict::Rejected("no secret stored for this algorithm"),
    };
    let ha2 = alg.hash(&format!("{method}:{}", creds.uri));
    let expected = match creds.qop.as_deref() {
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let (Some(nc), Some(cnonce)) = (&creds.nc, &creds.cnonce) else {
                return Verdict::Rejected("qop=auth without nc/cnonce");
            };
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", creds.nonce))
        }
        Some(_) => return Verdict::Rejected("unsupported qop"),
        None => alg.hash(&format!("{ha1}:{}:{ha2}", creds.nonce)),
    };
    if !constant_eq(
        expected.as_bytes(),
        creds.response.to_ascii_lowercase().as_bytes(),
    ) {
        return Verdict::Rejected("wrong response");
    }
    match key.check(&creds.nonce, realm, now) {
        NonceState::Fresh => Verdict::Ok,
        NonceState::Stale => Verdict::Stale,
        NonceState::Invalid => Verdict::Rejected("nonce not issued by us"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1 example (HTTP, but the arithmetic is the same).
    const RFC7616: &str = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        let c = parse_credentials(RFC7616).unwrap();
        let ha1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let ha2 = Algorithm::Sha256.hash("GET:/dir/index.html");
        let resp = Algorithm::Sha256.hash(&format!(
            "{ha1}:{}:00000001:{}:auth:{ha2}",
            c.nonce,
            c.cnonce.as_deref().unwrap()
        ));
        assert_eq!(resp, c.response);
        // MD5 response from the same RFC example.
        let ha1 = super::ha1(
            Algorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let ha2 = Algorithm::Md5.hash("GET:/dir/index.html");
        let resp = Algorithm::Md5.hash(&format!(
            "{ha1}:{}:00000001:{}:auth:{ha2}",
            c.nonce,
            c.cnonce.as_deref().unwrap()
        ));
        assert_eq!(resp, "8ca523f5e9506fed4657c9700eebdbec");
    }

    fn answer(alg: Algorithm, nonce: &str, pass: &str) -> Credentials {
        let ha1 = ha1(alg, "alice", "example.com", pass);
        let ha2 = alg.hash("REGISTER:sip:example.com");
        Credentials {
            username: "alice".into(),
            realm: "example.com".into(),
            nonce: nonce.into(),
            uri: "sip:example.com".into(),
            response: alg.hash(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}")),
            algorithm: Some(alg.name().into()),
            cnonce: Some("abc".into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            opaque: None,
        }
    }

    #[test]
    fn verify_fresh_stale_wrong_and_forged() {
        let key = NonceKey::new(b"secret", 30);
        let secrets = Secrets {
            password: Some("pw"),
            ha1_md5: None,
            ha1_sha256: None,
        };
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let n = key.issue("example.com", 1000);
            let c = answer(alg, &n, "pw");
            assert_eq!(
                verify(&c, "REGISTER", "example.com", secrets, &key, 1010),
                Verdict::Ok
            );
            assert_eq!(
                verify(&c, "REGISTER", "example.com", secrets, &key, 1100),
                Verdict::Stale
            );
            let bad = answer(alg, &n, "nope");
            assert!(matches!(
                verify(&bad, "REGISTER", "example.com", secrets, &key, 1010),
                Verdict::Rejected(_)
            ));
            let forged = answer(
                alg,
                "1000.0000000000000000.00000000000000000000000000000000",
                "pw",
            );
            assert_eq!(
                verify(&forged, "REGISTER", "example.com", secrets, &key, 1010),
                Verdict::Rejected("nonce not issued by us")
            );
        }
    }

    #[test]
    fn stored_ha1_is_used() {
        let key = NonceKey::new(b"k", 30);
        let n = key.issue("example.com", 5);
        let h = ha1(Algorithm::Sha256, "alice", "example.com", "pw");
        let secrets = Secrets {
            password: None,
            ha1_md5: None,
            ha1_sha256: Some(&h),
        };
        let c = answer(Algorithm::Sha256, &n, "pw");
        assert_eq!(
            verify(&c, "REGISTER", "example.com", secrets, &key, 6),
            Verdict::Ok
        );
        let c = answer(Algorithm::Md5, &n, "pw");
        assert_eq!(
            verify(&c, "REGISTER", "example.com", secrets, &key, 6),
            Verdict::Rejected("no secret stored for this algorithm")
        );
    }

    #[test]
    fn parse_rejects_garbage_cleanly() {
        assert!(matches!(
            parse_credentials("Basic abc"),
            Err(DigestParseError::NotDigest(_))
        ));
        assert_eq!(
            parse_credentials("Digest username=\"a"),
            Err(DigestParseError::Unterminated)
        );
        assert_eq!(
            parse_credentials("Digest username=a"),
            Err(DigestParseError::Missing("realm"))
        );
        // Must not panic on odd bytes.
        for s in ["Digest ,,,", "Digest =", "Digest a=\"\\", "Digest é=\"ü\""] {
            let _ = parse_credentials(s);
        }
    }

    proptest::proptest! {
        // Network input: never panics, whatever the bytes.
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse_credentials(&s);
            let _ = parse_credentials(&format!("Digest {s}"));
        }

        // Well-formed credentials survive parsing with quoting and escapes.
        #[test]
        fn parse_roundtrips_values(user in "[a-z0-9._\"\\\\-]{1,20}", nonce in "[0-9a-f.]{1,40}") {
            let q = user.replace('\\', "\\\\").replace('"', "\\\"");
            let v = format!("Digest username=\"{q}\", realm=\"r\", nonce=\"{nonce}\", uri=\"sip:r\", response=\"00\", qop=auth, nc=00000001, cnonce=\"c\"");
            let c = parse_credentials(&v).unwrap();
            proptest::prop_assert_eq!(c.username, user);
            proptest::prop_assert_eq!(c.nonce, nonce);
            proptest::prop_assert_eq!(c.qop.as_deref(), Some("auth"));
        }

        // Nonces are only accepted for the realm they were issued for.
        #[test]
        fn nonce_bound_to_realm(ts in 0u64..4_000_000_000, realm in "[a-z.]{1,20}") {
            let key = NonceKey::new(b"k3y", 30);
            let n = key.issue(&realm, ts);
            proptest::prop_assert_ne!(&n, &key.issue(&realm, ts));
            proptest::prop_assert_eq!(key.check(&n, &realm, ts), NonceState::Fresh);
            let other = format!("{realm}x");
            proptest::prop_assert_eq!(key.check(&n, &other, ts), NonceState::Invalid);
        }
    }

    #[test]
    fn challenge_format() {
        assert_eq!(
            challenge("d", "n", Algorithm::Sha256, true),
            "Digest realm=\"d\", nonce=\"n\", qop=\"auth\", algorithm=SHA-256, stale=true"
        );
    }
}
