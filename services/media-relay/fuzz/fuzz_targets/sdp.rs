//! Fuzzes the SDP parser and rewriter (bodies relayed by the proxy): any
//! body parses or fails cleanly; a parsed body rewritten with relay ports
//! parses again with the same number of streams.
//! Run: `cargo fuzz run sdp` from services/media-relay/fuzz.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media_relay::sdp::Sdp;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Sdp::parse(data) {
        for i in 0..s.media.len() {
            let _ = (s.rtp_endpoint(i), s.rtcp_endpoint(i));
        }
        let ports: Vec<Option<u16>> = s.media.iter().map(|_| Some(30000)).collect();
        let out = s.rewrite("127.0.0.1".parse().unwrap(), &ports);
        let again = Sdp::parse(out.as_bytes()).expect("rewritten SDP parses");
        assert_eq!(again.media.len(), s.media.len());
    }
});
