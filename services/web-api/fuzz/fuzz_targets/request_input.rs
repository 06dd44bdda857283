//! Everything web-api parses from a client before touching the database:
//! JSON bodies of the three resources, list query strings and the Basic
//! `Authorization` header. The first byte picks the parser. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use web_api::{auth, model};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(m) = model::parse_object(rest) {
                let _ = model::DomainInput::from_json(&m);
                let _ = model::CustomerInput::from_json(&m);
                if let Ok(s) = model::SubscriberInput::from_json(&m, false) {
                    assert!(!s.username.contains(':') && !s.username.contains('@'));
                }
                let _ = model::id_matches(&m, 1);
            }
        }
        1 => {
            if let Ok(q) = std::str::from_utf8(rest) {
                let _ = model::list_query(Some(q), &["domain", "customer_id"]);
            }
        }
        _ => {
            if let Ok(h) = std::str::from_utf8(rest) {
                let _ = auth::parse_basic(h);
            }
        }
    }
});
