//! Errors raised while parsing SIP messages, URIs and header values.
//!
//! Every error names the part of the message that was wrong (start line,
//! header name, URI) so a relay can log the offending packet meaningfully.

use thiserror::Error;

/// Why a message, URI or header value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The input ended before the message header section was complete.
    #[error("incomplete message: no empty line ending the header section")]
    Incomplete,
    /// The message exceeds a built-in size limit.
    #[error("message too large: {what} exceeds {limit}")]
    TooLarge {
        /// What was too large (headers, header count, ...).
        what: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The header section is not valid UTF-8.
    #[error("header section is not valid UTF-8 (byte offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The first line is neither a valid request line nor a status line.
    #[error("bad start line {line:?}: {reason}")]
    StartLine {
        /// The offending line (truncated to 200 characters).
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header line is malformed (no colon, bad name, ...).
    #[error("bad header line {line:?}: {reason}")]
    HeaderLine {
        /// The offending line (truncated to 200 characters).
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A typed header value could not be parsed.
    #[error("bad {header} header value {value:?}: {reason}")]
    HeaderValue {
        /// Canonical header name.
        header: String,
        /// The offending value (truncated to 200 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A URI could not be parsed.
    #[error("bad URI {uri:?}: {reason}")]
    Uri {
        /// The offending URI text (truncated to 200 characters).
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header required for the operation is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// Content-Length disagrees with the bytes present.
    #[error("Content-Length {declared} but {available} body bytes present")]
    BodyLength {
        /// Declared Content-Length.
        declared: usize,
        /// Bytes actually available after the header section.
        available: usize,
    },
}

/// Truncates a string for inclusion in an error message.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_owned();
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

impl ParseError {
    pub(crate) fn uri(uri: &str, reason: &'static str) -> Self {
        ParseError::Uri {
            uri: clip(uri),
            reason,
        }
    }

    pub(crate) fn value(header: &str, value: &str, reason: &'static str) -> Self {
        ParseError::HeaderValue {
            header: header.to_owned(),
            value: clip(value),
            reason,
        }
    }
}
