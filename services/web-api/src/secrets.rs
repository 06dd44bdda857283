//! Password handling: salted PBKDF2-HMAC-SHA-256 hashes for API admins, and
//! the digest HA1 values sip-proxy checks SIP credentials against.
//!
//! Admin hashes are stored as
//! `$pbkdf2-sha256$i=<iterations>$<salt, base64>$<hash, base64>` (PHC-style
//! string, unpadded standard base64) so the iteration count can be raised
//! later without invalidating stored hashes. Clear passwords are never stored.

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Default PBKDF2 iterations for new admin hashes.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
const PREFIX: &str = "$pbkdf2-sha256$i=";

/// Hashes `password` with a fresh 16-byte salt.
pub fn hash_admin_password(password: &str, iterations: u32) -> String {
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    format!(
        "{PREFIX}{iterations}${}${}",
        B64.encode(salt),
        B64.encode(out)
    )
}

/// Checks `password` against a stored hash; a malformed hash never matches.
pub fn verify_admin_password(password: &str, stored: &str) -> bool {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split('$');
    let (Some(iter), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iter), Ok(salt), Ok(hash)) = (iter.parse::<u32>(), B64.decode(salt), B64.decode(hash))
    else {
        return false;
    };
    if iter == 0 || hash.len() != 32 {
        return false;
    }
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iter, &mut out);
    constant_eq(&out, &hash)
}

/// The iteration count of a stored hash, if it is well-formed.
pub fn iterations_of(stored: &str) -> Option<u32> {
    stored
        .strip_prefix(PREFIX)?
        .split('$')
        .next()?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

/// Spends the time of one verification at `iterations` for nothing: run for
/// unknown admin names so the reply time does not tell which names exist.
pub fn equalize_verify_time(password: &str, iterations: u32) {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        b"no-such-admin-salt",
        iterations,
        &mut out,
    );
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The two HA1 values of a SIP subscriber, lower-case hex, for realm =
/// domain as sip-proxy serves it (RFC 7616 §3.4.2: H(user ":" realm ":" pw)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha1 {
    /// MD5 HA1 (column `ha1_md5`).
    pub md5: String,
    /// SHA-256 HA1 (column `ha1_sha256`, RFC 8760).
    pub sha256: String,
}

impl Ha1 {
    /// Computes both HA1 values.
    pub fn new(username: &str, realm: &str, password: &str) -> Ha1 {
        let input = format!("{username}:{realm}:{password}");
        Ha1 {
            md5: hex(&Md5::digest(input.as_bytes())),
            sha256: hex(&Sha256::digest(input.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_hash_round_trip_and_salted() {
        let a = hash_admin_password("s3cret pw", 1000);
        let b = hash_admin_password("s3cret pw", 1000);
        assert_ne!(a, b, "salt must differ");
        assert!(a.starts_with("$pbkdf2-sha256$i=1000$"));
        assert!(verify_admin_password("s3cret pw", &a));
        assert!(!verify_admin_password("s3cret pW", &a));
        assert!(!verify_admin_password(
            "s3cret pw",
            "$pbkdf2-sha256$i=0$AA$AA"
        ));
        assert!(!verify_admin_password("x", "plain"));
        assert_eq!(iterations_of(&a), Some(1000));
        assert_eq!(iterations_of("plain"), None);
    }

    #[test]
    fn ha1_matches_rfc_7616_example() {
        // RFC 7616 §3.9.1 credentials (Mufasa / http-auth@example.org / "Circle of Life"),
        // checked against md5sum(1) and sha256sum(1).
        let h = Ha1::new("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(h.md5, "3d78807defe7de2157e2b0b6573a855f");
        assert_eq!(
            h.sha256,
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }
}
