//! SIP messages: request and status lines, the parse entry points for
//! datagrams and streams, serialization, typed header accessors and the
//! RFC 3261 §8.2.6 response builder.

use std::fmt;

use crate::error::{clip, ParseError};
use crate::header::{HeaderName, Headers};
use crate::typed::{is_token_char, Auth, CSeq, Contact, NameAddr, Via};
use crate::uri::Uri;

/// Largest header section accepted (bytes).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest number of header values accepted.
pub const MAX_HEADERS: usize = 512;
/// Largest body accepted on a stream (bytes).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Request method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// PRACK
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// PUBLISH
    Publish,
    /// INFO
    Info,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// UPDATE
    Update,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// Parses a method token.
    pub fn parse(s: &str) -> Result<Method, ParseError> {
        if s.is_empty() || !s.bytes().all(is_token_char) {
            return Err(ParseError::StartLine {
                line: clip(s),
                reason: "method is not a token",
            });
        }
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "UPDATE" => Method::Update,
            other => Method::Extension(other.to_owned()),
        })
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Headers in order.
    pub headers: Headers,
    /// Body bytes (exactly Content-Length of them).
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code 100..=699.
    pub status: u16,
    /// Reason phrase as written.
    pub reason: String,
    /// Headers in order.
    pub headers: Headers,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Parses one complete message from a datagram (UDP).
    ///
    /// Without Content-Length the body is the rest of the datagram; with it,
    /// extra bytes are discarded and a shorter datagram is an error
    /// (RFC 3261 §18.3).
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        let (head_end, body_start) = find_header_end(buf)?.ok_or(ParseError::Incomplete)?;
        let mut msg = parse_head(&buf[..head_end])?;
        let avail = buf.len() - body_start;
        let len = match msg.headers().content_length()? {
            Some(n) if n > avail => {
                return Err(ParseError::BodyLength {
                    declared: n,
                    available: avail,
                })
            }
            Some(n) => n,
            None => avail,
        };
        *msg.body_mut() = buf[body_start..body_start + len].to_vec();
        Ok(msg)
    }

    /// Parses the next message from a stream buffer (TCP/TLS).
    ///
    /// Returns `Ok(None)` when more bytes are needed, or the message and the
    /// number of bytes it used. Leading CRLFs (keep-alives, RFC 5626 §3.5.1)
    /// are consumed as part of the count. Content-Length is mandatory on
    /// streams (RFC 3261 §18.3).
    pub fn parse_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, ParseError> {
        let skip = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let rest = &buf[skip..];
        let Some((head_end, body_start)) = find_header_end(rest)? else {
            return Ok(None);
        };
        let mut msg = parse_head(&rest[..head_end])?;
        let len = msg
            .headers()
            .content_length()?
            .ok_or(ParseError::Missing("Content-Length"))?;
        if len > MAX_BODY_BYTES {
            return Err(ParseError::TooLarge {
                what: "body",
                limit: MAX_BODY_BYTES,
            });
        }
        if rest.len() - body_start < len {
            return Ok(None);
        }
        *msg.body_mut() = rest[body_start..body_start + len].to_vec();
        Ok(Some((msg, skip + body_start + len)))
    }

    /// Headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Mutable headers of either kind.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// Body of either kind.
    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    fn body_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Message::Request(r) => &mut r.body,
            Message::Response(r) => &mut r.body,
        }
    }

    /// [`Request::validate`] or [`Response::validate`].
    pub fn validate(&self) -> Result<(), ParseError> {
        match self {
            Message::Request(r) => r.validate(),
            Message::Response(r) => r.validate(),
        }
    }

    /// Serializes to wire bytes (see [`Request::to_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl Request {
    /// Serializes to wire bytes. Headers are written one value per line with
    /// their full names; Content-Length is always written and always equals
    /// the body length (at the position of the old one, or last).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        write_headers(&mut out, &self.headers, &self.body);
        out
    }

    /// Checks what every request needs before a proxy may forward it
    /// (RFC 3261 §8.1.1, §16.3): parseable Via (at least one), From, To,
    /// Call-ID, CSeq whose method equals the request method, and
    /// Max-Forwards/Content-Length when present.
    pub fn validate(&self) -> Result<(), ParseError> {
        let h = &self.headers;
        if h.vias()?.is_empty() {
            return Err(ParseError::Missing("Via"));
        }
        h.from()?;
        h.to()?;
        h.call_id()?;
        let cseq = h.cseq()?;
        if cseq.method != self.method {
            return Err(ParseError::value(
                "CSeq",
                &cseq.to_string(),
                "method differs from the request method",
            ));
        }
        h.max_forwards()?;
        h.content_length()?;
        h.expires()?;
        // Headers are not allowed in a Request-URI (RFC 3261 §19.1.5, RFC 4475 §3.1.2.11).
        if self.uri.headers.is_some() {
            return Err(ParseError::uri(
                &self.uri.to_string(),
                "Request-URI must not contain headers ('?')",
            ));
        }
        Ok(())
    }
}

impl Response {
    /// Builds a response to `req` per RFC 3261 §8.2.6: copies all Via values,
    /// From, To, Call-ID and CSeq; adds `to_tag` to To when To has no tag and
    /// the status is above 100.
    pub fn reply_to(req: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::new();
        for h in req.headers.iter() {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.name.clone(), h.value.clone())
                }
                HeaderName::To => {
                    let mut v = h.value.clone();
                    if status > 100 {
                        if let (Some(tag), Ok(to)) = (to_tag, NameAddr::parse(&h.value, "To")) {
                            if to.tag().is_none() {
                                v.push_str(";tag=");
                                v.push_str(tag);
                            }
                        }
                    }
                    headers.push(HeaderName::To, v);
                }
                _ => {}
            }
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// Checks what a proxy needs to route a response back (RFC 3261 §16.7,
    /// §18.1.2): at least one parseable Via, From, To, Call-ID and CSeq.
    pub fn validate(&self) -> Result<(), ParseError> {
        let h = &self.headers;
        if h.vias()?.is_empty() {
            return Err(ParseError::Missing("Via"));
        }
        h.from()?;
        h.to()?;
        h.call_id()?;
        h.cseq()?;
        h.content_length()?;
        Ok(())
    }

    /// Serializes to wire bytes (see [`Request::to_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status, self.reason).as_bytes());
        write_headers(&mut out, &self.headers, &self.body);
        out
    }
}

fn write_headers(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    let mut wrote_cl = false;
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            if wrote_cl {
                continue;
            }
            wrote_cl = true;
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_cl {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Finds the end of the header section: returns (end of last header line,
/// start of body). Accepts CRLF CRLF and, leniently, LF LF.
fn find_header_end(buf: &[u8]) -> Result<Option<(usize, usize)>, ParseError> {
    let limit = buf.len().min(MAX_HEADER_BYTES + 4);
    let mut i = 0;
    while i < limit {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Ok(Some((i, i + 2)));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Ok(Some((i, i + 3)));
            }
        }
        i += 1;
    }
    if buf.len() > MAX_HEADER_BYTES {
        return Err(ParseError::TooLarge {
            what: "header section",
            limit: MAX_HEADER_BYTES,
        });
    }
    Ok(None)
}

/// Parses start line and headers (no body).
fn parse_head(head: &[u8]) -> Result<Message, ParseError> {
    let text = std::str::from_utf8(head).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    let mut headers = Headers::new();
    // Unfold (RFC 3261 §7.3.1): a line starting with SP/HT continues the previous one.
    let mut current: Option<String> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some(c) => {
                    c.push(' ');
                    c.push_str(line.trim());
                }
                None => {
                    return Err(ParseError::HeaderLine {
                        line: clip(line),
                        reason: "continuation line before any header",
                    })
                }
            }
            continue;
        }
        if let Some(c) = current.take() {
            add_header_line(&mut headers, &c)?;
        }
        current = Some(line.to_owned());
    }
    if let Some(c) = current.take() {
        add_header_line(&mut headers, &c)?;
    }
    if start.starts_with("SIP/") {
        parse_status_line(start, headers)
    } else {
        parse_request_line(start, headers)
    }
}

fn add_header_line(headers: &mut Headers, line: &str) -> Result<(), ParseError> {
    let colon = line.find(':').ok_or_else(|| ParseError::HeaderLine {
        line: clip(line),
        reason: "no ':' after header name",
    })?;
    let name = line[..colon].trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(ParseError::HeaderLine {
            line: clip(line),
            reason: "header name is not a token",
        });
    }
    headers.push_wire(HeaderName::from_wire(name), line[colon + 1..].trim());
    if headers.len() > MAX_HEADERS {
        return Err(ParseError::TooLarge {
            what: "header count",
            limit: MAX_HEADERS,
        });
    }
    Ok(())
}

fn parse_request_line(line: &str, headers: Headers) -> Result<Message, ParseError> {
    let bad = |reason| ParseError::StartLine {
        line: clip(line),
        reason,
    };
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces, RFC 3261 §7.1).
    let mut parts = line.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line is not 'METHOD SP URI SP SIP/2.0'"));
    };
    let method = Method::parse(m).map_err(|_| bad("method is not a token"))?;
    if !v.eq_ignore_ascii_case("SIP/2.0") {
        return Err(bad("unsupported SIP version"));
    }
    let uri = Uri::parse(u)?;
    Ok(Message::Request(Request {
        method,
        uri,
        headers,
        body: Vec::new(),
    }))
}

fn parse_status_line(line: &str, headers: Headers) -> Result<Message, ParseError> {
    let bad = |reason| ParseError::StartLine {
        line: clip(line),
        reason,
    };
    let rest = line
        .strip_prefix("SIP/2.0 ")
        .ok_or_else(|| bad("unsupported SIP version"))?;
    let (code, reason) = match rest.split_once(' ') {
        Some((c, r)) => (c, r),
        None => (rest, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("status code is not three digits"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| bad("status code is not a number"))?;
    if !(100..=699).contains(&status) {
        return Err(bad("status code outside 100..=699"));
    }
    Ok(Message::Response(Response {
        status,
        reason: reason.to_owned(),
        headers,
        body: Vec::new(),
    }))
}

/// Typed access. Each accessor parses on call and reports the header by name.
impl Headers {
    /// All Via values, topmost first.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.get_all(&HeaderName::Via).map(Via::parse).collect()
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        Via::parse(
            self.get(&HeaderName::Via)
                .ok_or(ParseError::Missing("Via"))?,
        )
    }

    /// From (exactly one required).
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.single_name_addr(HeaderName::From, "From")
    }

    /// To (exactly one required).
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.single_name_addr(HeaderName::To, "To")
    }

    fn single_name_addr(
        &self,
        name: HeaderName,
        label: &'static str,
    ) -> Result<NameAddr, ParseError> {
        let mut it = self.get_all(&name);
        let v = it.next().ok_or(ParseError::Missing(label))?;
        if it.next().is_some() {
            return Err(ParseError::value(label, v, "header appears more than once"));
        }
        NameAddr::parse(v, label)
    }

    /// Call-ID (exactly one, non-empty, no whitespace).
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let mut it = self.get_all(&HeaderName::CallId);
        let v = it.next().ok_or(ParseError::Missing("Call-ID"))?;
        if it.next().is_some() {
            return Err(ParseError::value(
                "Call-ID",
                v,
                "header appears more than once",
            ));
        }
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(ParseError::value(
                "Call-ID",
                v,
                "empty or contains whitespace",
            ));
        }
        Ok(v)
    }

    /// CSeq (exactly one).
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let mut it = self.get_all(&HeaderName::CSeq);
        let v = it.next().ok_or(ParseError::Missing("CSeq"))?;
        if it.next().is_some() {
            return Err(ParseError::value(
                "CSeq",
                v,
                "header appears more than once",
            ));
        }
        CSeq::parse(v)
    }

    /// All Contact values in order.
    pub fn contacts(&self) -> Result<Vec<Contact>, ParseError> {
        self.get_all(&HeaderName::Contact)
            .map(Contact::parse)
            .collect()
    }

    /// Max-Forwards, if present (0..=255).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.single_number(HeaderName::MaxForwards, "Max-Forwards")?
            .map(|n| {
                u8::try_from(n).map_err(|_| {
                    ParseError::value("Max-Forwards", &n.to_string(), "greater than 255")
                })
            })
            .transpose()
    }

    /// Route values, topmost first.
    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.get_all(&HeaderName::Route)
            .map(|v| NameAddr::parse(v, "Route"))
            .collect()
    }

    /// Record-Route values, topmost first.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.get_all(&HeaderName::RecordRoute)
            .map(|v| NameAddr::parse(v, "Record-Route"))
            .collect()
    }

    /// Path values (RFC 3327), topmost first.
    pub fn paths(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.get_all(&HeaderName::Path)
            .map(|v| NameAddr::parse(v, "Path"))
            .collect()
    }

    /// Content-Length, if present. Several equal values are tolerated.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut out = None;
        for v in self.get_all(&HeaderName::ContentLength) {
            let n = parse_number(v, "Content-Length")?;
            let n = usize::try_from(n)
                .map_err(|_| ParseError::value("Content-Length", v, "too large"))?;
            if out.is_some_and(|o| o != n) {
                return Err(ParseError::value("Content-Length", v, "conflicting values"));
            }
            out = Some(n);
        }
        Ok(out)
    }

    /// Expires header (delta-seconds), if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.single_number(HeaderName::Expires, "Expires")
    }

    /// Authorization values.
    pub fn authorization(&self) -> Result<Vec<Auth>, ParseError> {
        self.auths(HeaderName::Authorization, "Authorization")
    }

    /// Proxy-Authorization values.
    pub fn proxy_authorization(&self) -> Result<Vec<Auth>, ParseError> {
        self.auths(HeaderName::ProxyAuthorization, "Proxy-Authorization")
    }

    /// WWW-Authenticate values.
    pub fn www_authenticate(&self) -> Result<Vec<Auth>, ParseError> {
        self.auths(HeaderName::WwwAuthenticate, "WWW-Authenticate")
    }

    /// Proxy-Authenticate values.
    pub fn proxy_authenticate(&self) -> Result<Vec<Auth>, ParseError> {
        self.auths(HeaderName::ProxyAuthenticate, "Proxy-Authenticate")
    }

    fn auths(&self, name: HeaderName, label: &str) -> Result<Vec<Auth>, ParseError> {
        self.get_all(&name).map(|v| Auth::parse(v, label)).collect()
    }

    fn single_number(
        &self,
        name: HeaderName,
        label: &'static str,
    ) -> Result<Option<u32>, ParseError> {
        let mut it = self.get_all(&name);
        let Some(v) = it.next() else { return Ok(None) };
        if it.next().is_some() {
            return Err(ParseError::value(label, v, "header appears more than once"));
        }
        let n = parse_number(v, label)?;
        u32::try_from(n)
            .map(Some)
            .map_err(|_| ParseError::value(label, v, "too large"))
    }
}

fn parse_number(v: &str, label: &str) -> Result<u64, ParseError> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::value(label, v, "not a decimal number"));
    }
    v.parse()
        .map_err(|_| ParseError::value(label, v, "not a decimal number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds , SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bKx;received=192.0.2.1\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@biloxi.com>\r\n\
f: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@pc33.atlanta.com>\r\n\
Subject: folded\r\n  across lines\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\n";

    #[test]
    fn parses_compact_multi_value_and_folded() {
        let Message::Request(r) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        let vias = r.headers.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].host, crate::Host::Name("pc33.atlanta.com".into()));
        assert_eq!(vias[1].received(), Some("192.0.2.1"));
        assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(
            r.headers.call_id().unwrap(),
            "a84b4c76e66710@pc33.atlanta.com"
        );
        assert_eq!(
            r.headers.get(&HeaderName::Subject),
            Some("folded across lines")
        );
        assert_eq!(r.body, b"v=0\r");
        r.validate().unwrap();
        // Round trip: serialize and parse again gives the same message.
        let again = Message::parse(&r.to_bytes()).unwrap();
        assert_eq!(again, Message::Request(r));
    }

    #[test]
    fn stream_parsing_needs_content_length_and_waits_for_body() {
        let full = INVITE.as_bytes();
        assert_eq!(
            Message::parse_stream(&full[..full.len() - 2]).unwrap(),
            None
        );
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(full);
        two.extend_from_slice(full);
        let (m, used) = Message::parse_stream(&two).unwrap().unwrap();
        assert_eq!(m.body(), b"v=0\r");
        assert_eq!(used, 4 + full.len() - 1);
        let no_cl = "OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
        assert_eq!(
            Message::parse_stream(no_cl.as_bytes()),
            Err(ParseError::Missing("Content-Length"))
        );
    }

    #[test]
    fn content_length_longer_than_datagram_is_rejected() {
        let m = INVITE.replace("l: 4", "l: 40");
        assert!(matches!(
            Message::parse(m.as_bytes()),
            Err(ParseError::BodyLength { declared: 40, .. })
        ));
    }

    #[test]
    fn reply_copies_dialog_headers_and_adds_tag() {
        let Message::Request(r) = Message::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        let resp = Response::reply_to(&r, 486, "Busy Here", Some("abc"));
        assert_eq!(resp.headers.vias().unwrap().len(), 2);
        assert_eq!(resp.headers.to().unwrap().tag(), Some("abc"));
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
        let Message::Response(back) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(back.status, 486);
        assert_eq!(back.headers.cseq().unwrap().seq, 314159);
    }

    #[test]
    fn bad_start_lines() {
        for bad in [
            "INVITE  sip:a@b SIP/2.0",
            "INVITE sip:a@b SIP/3.0",
            "INVITE sip:a@b",
            "SIP/2.0 99 Low",
            "SIP/2.0 2000 OK",
            "SIP/1.0 200 OK",
        ] {
            let m = format!("{bad}\r\nVia: SIP/2.0/UDP h\r\n\r\n");
            assert!(
                matches!(
                    Message::parse(m.as_bytes()),
                    Err(ParseError::StartLine { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
