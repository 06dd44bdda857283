//! Property tests: no input makes the parser panic, whether random bytes or
//! valid messages with random mutations, and whatever parses survives a
//! serialize/parse round trip with its typed headers intact.

use proptest::prelude::*;
use sip::Message;

const SEEDS: &[&[u8]] = &[
    include_bytes!("rfc4475/wsinv.sip"),
    include_bytes!("rfc4475/intmeth.sip"),
    include_bytes!("rfc4475/longreq.sip"),
    include_bytes!("rfc4475/esc01.sip"),
    include_bytes!("rfc4475/unreason.sip"),
    include_bytes!("rfc4475/badinv01.sip"),
    include_bytes!("rfc4475/mpart01.sip"),
];

/// Runs every accessor a relay would touch; results are ignored, panics are not.
fn exercise(m: &Message) {
    let h = m.headers();
    let _ = h.vias();
    let _ = h.top_via().map(|v| v.response_target());
    let _ = h.from();
    let _ = h.to();
    let _ = h.call_id();
    let _ = h.cseq();
    let _ = h.contacts();
    let _ = h.max_forwards();
    let _ = h.routes();
    let _ = h.record_routes();
    let _ = h.paths();
    let _ = h.content_length();
    let _ = h.expires();
    let _ = h.authorization();
    let _ = h.www_authenticate();
    let _ = m.validate();
    let wire = m.to_bytes();
    // What we write must be readable again.
    let again = Message::parse(&wire).expect("serialized message must re-parse");
    assert_eq!(again.to_bytes(), wire);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b",".to_vec(),
        b";".to_vec(),
        b"\r\n".to_vec(),
        b"\r\n ".to_vec(),
        b"<".to_vec(),
        b">".to_vec(),
        b"\"".to_vec(),
        b"[".to_vec(),
        b":".to_vec(),
        b"%".to_vec(),
        b"\\".to_vec(),
        b"\xff".to_vec(),
        b"99999999999999999999".to_vec(),
        b"\r\n\r\n".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), interesting).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut buf: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if buf.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, b) => {
                let i = i % buf.len();
                buf[i] = *b;
            }
            Mutation::Delete(i, n) => {
                let i = i % buf.len();
                let end = (i + n).min(buf.len());
                buf.drain(i..end);
            }
            Mutation::Insert(i, v) => {
                let i = i % (buf.len() + 1);
                buf.splice(i..i, v.iter().copied());
            }
            Mutation::Truncate(i) => {
                let i = i % buf.len();
                buf.truncate(i);
            }
        }
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(m) = Message::parse(&data) {
            exercise(&m);
        }
        let _ = Message::parse_stream(&data);
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        seed in prop::sample::select(SEEDS.to_vec()),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let data = apply(seed.to_vec(), &muts);
        if let Ok(m) = Message::parse(&data) {
            exercise(&m);
        }
        if let Ok(Some((m, used))) = Message::parse_stream(&data) {
            prop_assert!(used <= data.len());
            exercise(&m);
        }
    }
}
