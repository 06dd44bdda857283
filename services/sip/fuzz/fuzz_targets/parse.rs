//! Fuzzes datagram and stream parsing plus every typed accessor a relay uses.
//! Run: `cd services/sip/fuzz && cargo +nightly fuzz run parse corpus/parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::Message;

fuzz_target!(|data: &[u8]| {
    for m in [Message::parse(data).ok(), Message::parse_stream(data).ok().flatten().map(|x| x.0)]
        .into_iter()
        .flatten()
    {
        let h = m.headers();
        let _ = h.vias().map(|v| v.iter().map(|v| v.response_target()).count());
        let _ = (h.from(), h.to(), h.call_id(), h.cseq(), h.contacts());
        let _ = (h.max_forwards(), h.routes(), h.record_routes(), h.paths());
        let _ = (h.content_length(), h.expires(), h.authorization(), h.proxy_authenticate());
        let _ = m.validate();
        let wire = m.to_bytes();
        let again = Message::parse(&wire).expect("serialized message must re-parse");
        assert_eq!(again.to_bytes(), wire);
    }
});
