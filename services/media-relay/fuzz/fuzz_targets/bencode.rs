//! Fuzzes the bencode decoder (ng control packets from the network): any
//! input decodes or fails cleanly, and what decodes re-encodes to bytes
//! that decode to the same value.
//! Run: `cargo fuzz run bencode` from services/media-relay/fuzz.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_relay::bencode::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode(data) {
        assert_eq!(decode(&v.encode()).as_ref(), Ok(&v));
    }
});
