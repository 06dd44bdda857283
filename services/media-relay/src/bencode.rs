//! Bencode (the BitTorrent encoding) as used by rtpengine's ng control
//! protocol: integers `i42e`, byte strings `4:spam`, lists `l...e` and
//! dictionaries `d...e` with byte-string keys.
//!
//! The decoder takes untrusted bytes from the network: it never panics,
//! bounds nesting depth and reports the byte offset of the first problem.
//! Encoding is canonical (dictionary keys sorted), so equal values encode
//! to equal bytes.

use std::collections::BTreeMap;
use thiserror::Error;

/// Deepest nesting accepted; ng messages use three or four levels.
pub const MAX_DEPTH: usize = 32;

/// A decoded bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<digits>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l<values>e`
    List(Vec<Value>),
    /// `d<key><value>...e`
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why bytes are not one bencode value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Input ended inside a value.
    #[error("bencode truncated at byte {0}")]
    Truncated(usize),
    /// A byte that cannot start or continue a value.
    #[error("bencode: unexpected byte {byte:#04x} at byte {at}")]
    Unexpected {
        /// Offending byte.
        byte: u8,
        /// Offset in the input.
        at: usize,
    },
    /// Malformed integer or string length.
    #[error("bencode: bad number at byte {0}")]
    BadNumber(usize),
    /// Dictionary key that is not a byte string.
    #[error("bencode: dictionary key at byte {0} is not a string")]
    KeyNotString(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("bencode: nested deeper than {MAX_DEPTH} levels at byte {0}")]
    TooDeep(usize),
    /// Bytes left after the value.
    #[error("bencode: {0} trailing bytes after the value")]
    Trailing(usize),
}

impl Value {
    /// A byte string value from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The value as UTF-8 text when it is a byte string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The value as a dictionary.
    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Dictionary member `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?.get(key.as_bytes())
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(k.len().to_string().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Builds a dictionary from `(key, value)` pairs.
pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// Decodes exactly one value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut p = Parser { input, pos: 0 };
    let v = p.value(0)?;
    if p.pos != input.len() {
        return Err(DecodeError::Trailing(input.len() - p.pos));
    }
    Ok(v)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated(self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep(self.pos));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let start = self.pos;
                let n = self.number(b'e')?;
                // "i-0e" and leading zeros are not canonical bencode.
                let digits = &self.input[start..self.pos - 1];
                if digits.starts_with(b"-0") || (digits.len() > 1 && digits[0] == b'0') {
                    return Err(DecodeError::BadNumber(start));
                }
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(DecodeError::KeyNotString(self.pos));
                    }
                    let k = self.bytes()?;
                    let v = self.value(depth + 1)?;
                    map.insert(k, v);
                }
                self.pos += 1;
                Ok(Value::Dict(map))
            }
            byte => Err(DecodeError::Unexpected { byte, at: self.pos }),
        }
    }

    /// Reads an optionally negative decimal up to `end` (consumed).
    fn number(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let rest = &self.input[self.pos..];
        let Some(len) = rest.iter().position(|b| *b == end) else {
            return Err(DecodeError::Truncated(self.input.len()));
        };
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| DecodeError::BadNumber(start))?;
        if text.is_empty() || text.starts_with('+') {
            return Err(DecodeError::BadNumber(start));
        }
        let n: i64 = text.parse().map_err(|_| DecodeError::BadNumber(start))?;
        self.pos += len + 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let start = self.pos;
        let n = self.number(b':')?;
        let len = usize::try_from(n).map_err(|_| DecodeError::BadNumber(start))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.input.len())
            .ok_or(DecodeError::Truncated(self.input.len()))?;
        let b = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_an_ng_ping() {
        let v = decode(b"d7:command4:pinge").unwrap();
        assert_eq!(v.get("command").and_then(Value::as_str), Some("ping"));
    }

    #[test]
    fn nested_values_round_trip() {
        let v = dict([
            ("a", Value::Int(-5)),
            ("l", Value::List(vec![Value::str("x"), Value::Int(0)])),
            ("d", dict([("k", Value::str(""))])),
        ]);
        let bytes = v.encode();
        assert_eq!(bytes, b"d1:ai-5e1:dd1:k0:e1:ll1:xi0eee");
        assert_eq!(decode(&bytes).unwrap(), v);
    }

    #[test]
    fn malformed_input_is_an_error_with_a_position() {
        assert_eq!(decode(b""), Err(DecodeError::Truncated(0)));
        assert_eq!(decode(b"d3:abc"), Err(DecodeError::Truncated(6)));
        assert_eq!(decode(b"5:ab"), Err(DecodeError::Truncated(4)));
        assert_eq!(decode(b"i03e"), Err(DecodeError::BadNumber(1)));
        assert_eq!(decode(b"die3:abce"), Err(DecodeError::KeyNotString(1)));
        assert_eq!(decode(b"i1ex"), Err(DecodeError::Trailing(1)));
        assert!(matches!(
            decode(b"x"),
            Err(DecodeError::Unexpected { byte: b'x', at: 0 })
        ));
        assert_eq!(
            decode(b"99999999999999999999999:a"),
            Err(DecodeError::BadNumber(0))
        );
        let deep = "l".repeat(100) + &"e".repeat(100);
        assert!(matches!(
            decode(deep.as_bytes()),
            Err(DecodeError::TooDeep(_))
        ));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..6
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(v in arb_value()) {
            prop_assert_eq!(decode(&v.encode()).unwrap(), v);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncating_a_valid_encoding_is_an_error(v in arb_value(), cut in 1usize..50) {
            let bytes = v.encode();
            if cut < bytes.len() {
                prop_assert!(decode(&bytes[..bytes.len() - cut]).is_err());
            }
        }
    }
}
