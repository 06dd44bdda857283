//! rtpengine's "ng" control protocol: each UDP datagram is
//! `<cookie> <bencoded dictionary>`; the reply repeats the cookie and
//! carries a dictionary with `result` (`ok`, `pong` or `error` plus
//! `error-reason`).
//!
//! This module turns datagrams into [`Command`]s and replies into bytes;
//! it does no I/O. What each command does is in [`crate::relay`].

use crate::bencode::{self, dict, DecodeError, Value};
use thiserror::Error;

/// Why a control datagram could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NgError {
    /// No space separating cookie and message.
    #[error("no cookie: a control packet is `<cookie> <bencoded dictionary>`")]
    NoCookie,
    /// The message is not bencode.
    #[error("{0}")]
    Bencode(#[from] DecodeError),
    /// The message is bencode but not a dictionary.
    #[error("message is not a bencoded dictionary")]
    NotDict,
    /// A required key is absent.
    #[error("missing key `{0}`")]
    Missing(&'static str),
    /// A key holds the wrong type.
    #[error("key `{0}` must be a {1}")]
    WrongType(&'static str, &'static str),
    /// `command` names nothing we do.
    #[error("unrecognized command {0:?}")]
    UnknownCommand(String),
}

/// The SDP-carrying parameters of `offer` and `answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferAnswer {
    /// SIP Call-ID.
    pub call_id: String,
    /// From-tag of the SIP message.
    pub from_tag: String,
    /// To-tag (required for `answer`).
    pub to_tag: Option<String>,
    /// The SDP body to rewrite.
    pub sdp: Vec<u8>,
}

/// One control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Liveness check; answered `pong`.
    Ping,
    /// SDP offer: allocate ports, rewrite the body.
    Offer(OfferAnswer),
    /// SDP answer: complete the call, rewrite the body.
    Answer(OfferAnswer),
    /// Free a call's ports.
    Delete {
        /// SIP Call-ID.
        call_id: String,
    },
    /// Details and counters of one call.
    Query {
        /// SIP Call-ID.
        call_id: String,
    },
    /// Call-IDs of the calls held.
    List {
        /// At most this many.
        limit: Option<usize>,
    },
}

impl Command {
    /// Command name as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Offer(_) => "offer",
            Command::Answer(_) => "answer",
            Command::Delete { .. } => "delete",
            Command::Query { .. } => "query",
            Command::List { .. } => "list",
        }
    }
}

/// Splits a datagram into cookie and message.
pub fn split(datagram: &[u8]) -> Result<(&[u8], &[u8]), NgError> {
    let sp = datagram
        .iter()
        .position(|b| *b == b' ')
        .ok_or(NgError::NoCookie)?;
    if sp == 0 {
        return Err(NgError::NoCookie);
    }
    Ok((&datagram[..sp], &datagram[sp + 1..]))
}

fn text(msg: &Value, key: &'static str) -> Result<String, NgError> {
    let v = msg.get(key).ok_or(NgError::Missing(key))?;
    v.as_str()
        .map(str::to_string)
        .ok_or(NgError::WrongType(key, "UTF-8 string"))
}

fn opt_text(msg: &Value, key: &'static str) -> Result<Option<String>, NgError> {
    match msg.get(key) {
        None => Ok(None),
        Some(_) => text(msg, key).map(Some),
    }
}

/// Decodes the message part of a datagram into a command.
pub fn parse_command(message: &[u8]) -> Result<Command, NgError> {
    let msg = bencode::decode(message)?;
    if msg.as_dict().is_none() {
        return Err(NgError::NotDict);
    }
    let command = text(&msg, "command")?;
    let oa = |need_to_tag: bool| -> Result<OfferAnswer, NgError> {
        let sdp = match msg.get("sdp") {
            Some(Value::Bytes(b)) => b.clone(),
            Some(_) => return Err(NgError::WrongType("sdp", "string")),
            None => return Err(NgError::Missing("sdp")),
        };
        let to_tag = opt_text(&msg, "to-tag")?;
        if need_to_tag && to_tag.is_none() {
            return Err(NgError::Missing("to-tag"));
        }
        Ok(OfferAnswer {
            call_id: text(&msg, "call-id")?,
            from_tag: text(&msg, "from-tag")?,
            to_tag,
            sdp,
        })
    };
    match command.as_str() {
        "ping" => Ok(Command::Ping),
        "offer" => Ok(Command::Offer(oa(false)?)),
        "answer" => Ok(Command::Answer(oa(true)?)),
        "delete" => Ok(Command::Delete {
            call_id: text(&msg, "call-id")?,
        }),
        "query" => Ok(Command::Query {
            call_id: text(&msg, "call-id")?,
        }),
        "list" => {
            let limit = match msg.get("limit") {
                None => None,
                Some(Value::Int(n)) => Some(usize::try_from(*n).unwrap_or(0)),
                // rtpengine clients sometimes send numbers as strings.
                Some(Value::Bytes(b)) => Some(
                    std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or(NgError::WrongType("limit", "number"))?,
                ),
                Some(_) => return Err(NgError::WrongType("limit", "number")),
            };
            Ok(Command::List { limit })
        }
        other => Err(NgError::UnknownCommand(other.chars().take(40).collect())),
    }
}

/// `{"result": "error", "error-reason": reason}`.
pub fn error(reason: &str) -> Value {
    dict([
        ("result", Value::str("error")),
        ("error-reason", Value::str(reason)),
    ])
}

/// The reply datagram: cookie, space, bencoded `reply`.
pub fn reply(cookie: &[u8], reply: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    reply.encode_into(&mut out);
    out
}

/// A request datagram (used by the client side).
pub fn request(cookie: &str, message: &Value) -> Vec<u8> {
    reply(cookie.as_bytes(), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_offer_and_answer() {
        let (cookie, msg) =
            split(b"c1 d7:call-id2:ab7:command5:offer8:from-tag1:x3:sdp12:v=0\r\nm=audioe")
                .unwrap();
        assert_eq!(cookie, b"c1");
        let Command::Offer(o) = parse_command(msg).unwrap() else {
            panic!("not an offer")
        };
        assert_eq!(o.call_id, "ab");
        assert_eq!(o.to_tag, None);
        let e = parse_command(b"d7:call-id2:ab7:command6:answer8:from-tag1:x3:sdp1:ve");
        assert_eq!(e, Err(NgError::Missing("to-tag")));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(split(b"nospace"), Err(NgError::NoCookie));
        assert_eq!(split(b" d4:xxxxe"), Err(NgError::NoCookie));
        assert_eq!(parse_command(b"le"), Err(NgError::NotDict));
        assert_eq!(parse_command(b"de"), Err(NgError::Missing("command")));
        assert_eq!(
            parse_command(b"d7:commandi1ee"),
            Err(NgError::WrongType("command", "UTF-8 string"))
        );
        assert_eq!(
            parse_command(b"d7:command3:fooe"),
            Err(NgError::UnknownCommand("foo".into()))
        );
        assert_eq!(
            parse_command(b"d7:command6:delete8:from-tag1:ae"),
            Err(NgError::Missing("call-id"))
        );
        assert!(matches!(
            parse_command(b"d7:comm"),
            Err(NgError::Bencode(_))
        ));
    }

    #[test]
    fn reply_repeats_the_cookie() {
        let r = reply(b"5323_1", &dict([("result", Value::str("pong"))]));
        assert_eq!(r, b"5323_1 d6:result4:ponge");
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok((_, msg)) = split(&bytes) {
                let _ = parse_command(msg);
            }
        }

        #[test]
        fn well_formed_commands_parse(call in "[a-zA-Z0-9@.]{1,30}", tag in "[a-z0-9]{1,10}") {
            let msg = dict([
                ("command", Value::str("offer")),
                ("call-id", Value::str(&call)),
                ("from-tag", Value::str(&tag)),
                ("sdp", Value::str("v=0")),
            ]);
            let dg = request("k", &msg);
            let (_, body) = split(&dg).unwrap();
            let Command::Offer(o) = parse_command(body).unwrap() else { panic!() };
            prop_assert_eq!(o.call_id, call);
            prop_assert_eq!(o.from_tag, tag);
        }
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::*;

    /// The fuzz seeds are what they claim to be: valid ng commands.
    #[test]
    fn fuzz_seed_corpus_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ng");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let (_, msg) = split(&bytes).unwrap();
            parse_command(msg).unwrap();
            n += 1;
        }
        assert!(n >= 3);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sdp");
        for e in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            crate::sdp::Sdp::parse(&bytes).unwrap();
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bencode");
        for e in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            crate::bencode::decode(&bytes).unwrap();
        }
    }
}
