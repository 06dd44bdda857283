//! SIP message model shared by the flexvisor SIP services (`sip-lb`, `sip-proxy`).
//!
//! A focused RFC 3261 parser for stateless and stateful relays: it parses
//! start lines and headers eagerly enough to reject broken framing, keeps
//! header values as text, and parses typed values on access so a relay only
//! pays for what it touches. It holds no transport, transaction or dialog
//! logic.
//!
//! # Model
//! - [`Message`] is a [`Request`] (method, Request-URI, headers, body) or a
//!   [`Response`] (status, reason, headers, body).
//! - [`Headers`] is the ordered list of header *values*. List headers (Via,
//!   Route, Record-Route, Path, Contact) are split so each value is one
//!   entry: the first `Via` entry is the topmost Via, whatever the wire
//!   layout was (`Via: a, b` lines, several lines, compact `v:`).
//!   [`HeaderName`] maps compact forms (v f t i m l k s c e o r u x b a j d y)
//!   to full names.
//! - Typed views: [`Via`] (branch/received/rport, response target),
//!   [`NameAddr`] (From/To/Route/Record-Route/Path, `tag`), [`Contact`],
//!   [`CSeq`], [`Auth`] (Authorization, WWW-Authenticate, Proxy-*), [`Uri`]
//!   (sip/sips/tel/other, user, password, [`Host`] incl. IPv6 references,
//!   port, [`Params`], headers).
//!
//! # Parsing
//! - [`Message::parse`] for one datagram; [`Message::parse_stream`] for
//!   TCP/TLS buffers (returns `Ok(None)` until a whole message is there).
//! - Folded lines are unfolded, bare-LF line ends are accepted, header
//!   sections over [`message::MAX_HEADER_BYTES`] or [`message::MAX_HEADERS`]
//!   values are rejected. Every failure is a [`ParseError`] naming the part
//!   that was wrong; nothing panics on any input (proptest and cargo-fuzz).
//! - [`Request::validate`] checks what a proxy needs before forwarding.
//!
//! # Typed access (on [`Headers`])
//! `vias()`, `top_via()`, `from()`, `to()`, `call_id()`, `cseq()`,
//! `contacts()`, `max_forwards()`, `routes()`, `record_routes()`, `paths()`,
//! `content_length()`, `expires()`, `authorization()`,
//! `proxy_authorization()`, `www_authenticate()`, `proxy_authenticate()`.
//!
//! # Editing and serializing
//! [`Headers::push`], [`Headers::prepend`] (becomes the topmost value of
//! that name), [`Headers::remove_first`], [`Headers::remove_all`],
//! [`Headers::set`], [`Headers::first_mut`]. [`Message::to_bytes`] writes
//! one value per line with full names and a Content-Length equal to the body.
//! [`Response::reply_to`] builds an RFC 3261 §8.2.6 response.
//!
//! ```
//! use sip::{HeaderName, Message};
//! let wire = b"OPTIONS sip:lb.example.net SIP/2.0\r\n\
//! v: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1;rport\r\n\
//! f: <sip:ping@example.net>;tag=1\r\nt: <sip:lb.example.net>\r\n\
//! i: abc\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n";
//! let Message::Request(mut req) = Message::parse(wire)? else { unreachable!() };
//! assert_eq!(req.headers.top_via()?.branch(), Some("z9hG4bK1"));
//! req.headers.prepend(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK2");
//! assert_eq!(req.headers.vias()?.len(), 2);
//! let out = req.to_bytes();
//! assert!(out.starts_with(b"OPTIONS sip:lb.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1"));
//! # Ok::<(), sip::ParseError>(())
//! ```

pub mod error;
pub mod header;
pub mod message;
pub mod typed;
pub mod uri;

pub use error::ParseError;
pub use header::{Header, HeaderName, Headers};
pub use message::{Message, Method, Request, Response};
pub use typed::{Auth, AuthParam, CSeq, Contact, NameAddr, Via};
pub use uri::{Host, Params, Scheme, Uri};
