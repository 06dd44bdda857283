//! Fuzzes the ng datagram layer: cookie split and command parsing, and the
//! error reply built for what does not parse.
//! Run: `cargo fuzz run ng` from services/media-relay/fuzz.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_relay::ng;

fuzz_target!(|data: &[u8]| {
    match ng::split(data) {
        Ok((cookie, msg)) => {
            if let Err(e) = ng::parse_command(msg) {
                let reply = ng::reply(cookie, &ng::error(&e.to_string()));
                assert!(reply.starts_with(cookie));
            }
        }
        Err(e) => {
            let _ = ng::reply(b"-", &ng::error(&e.to_string()));
        }
    }
});
