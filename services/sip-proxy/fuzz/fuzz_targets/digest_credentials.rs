//! Fuzzes the Authorization / Proxy-Authorization Digest parser and the
//! verifier behind it with arbitrary header values (network input).
//! Run: `cargo fuzz run digest_credentials` from services/sip-proxy/fuzz.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_proxy::digest::{parse_credentials, verify, NonceKey, Secrets};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = parse_credentials(s) {
        let key = NonceKey::new(b"fuzz-secret", 300);
        let secrets = Secrets {
            password: Some("pw"),
            ha1_md5: None,
            ha1_sha256: None,
        };
        let _ = verify(&c, "REGISTER", &c.realm.clone(), secrets, &key, 1_000_000);
    }
});
