//! Typed views of header values: Via, name-addr (From/To/Contact/Route/
//! Record-Route/Path), CSeq and the digest authentication headers.
//!
//! Each type parses from one header value (as stored in [`crate::Headers`])
//! and prints back to a valid value with `Display`.

use std::fmt;

use crate::error::ParseError;
use crate::message::Method;
use crate::uri::{
    check_quoted, parse_port, split_host_port, split_outside_quotes, Host, Params, Uri,
};

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport, upper-case (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, ...).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port, when written.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`, ...).
    pub params: Params,
}

impl Via {
    /// Parses a single Via value (`SIP/2.0/UDP host:port;branch=z9hG4bK...`).
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let err = |r| ParseError::value("Via", s, r);
        // sent-protocol allows LWS around the slashes (RFC 3261 §25.1 SLASH).
        let mut parts = s.splitn(3, '/');
        let proto = parts.next().unwrap_or("").trim();
        let version = parts
            .next()
            .ok_or_else(|| err("missing '/' in sent-protocol"))?
            .trim();
        let rest = parts
            .next()
            .ok_or_else(|| err("missing transport"))?
            .trim_start();
        if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(err("sent-protocol is not SIP/2.0"));
        }
        let t_end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| err("missing sent-by"))?;
        let transport = &rest[..t_end];
        if transport.is_empty() || !transport.bytes().all(is_token_char) {
            return Err(err("invalid transport"));
        }
        let rest = rest[t_end..].trim_start();
        let sb_end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
        let mut sent_by = &rest[..sb_end];
        let mut tail = rest[sb_end..].trim_start();
        // "host : port" with LWS around the colon is legal (COLON = SWS ":" SWS).
        if tail.starts_with(':') && !sent_by.ends_with(']') || sent_by.ends_with(':') {
            let joined_end = rest.find(';').unwrap_or(rest.len());
            sent_by = &rest[..joined_end];
            tail = &rest[joined_end..];
        }
        let compact: String;
        if sent_by.contains(char::is_whitespace) {
            compact = sent_by.split_whitespace().collect();
            sent_by = &compact;
        }
        let (h, p) = split_host_port(sent_by).map_err(err)?;
        let host = Host::parse(h).map_err(|_| err("invalid sent-by host"))?;
        let port = match p {
            None => None,
            Some(p) => Some(parse_port(p).ok_or_else(|| err("invalid sent-by port"))?),
        };
        let params = Params::parse(tail, "Via")?;
        if let Some(b) = params.get("branch") {
            if b.is_empty() {
                return Err(err("empty branch"));
            }
        }
        if let Some(r) = params.get("rport") {
            if !r.is_empty() && parse_port(r).is_none() {
                return Err(err("invalid rport"));
            }
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").filter(|b| !b.is_empty())
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&str> {
        self.params.get("received").filter(|b| !b.is_empty())
    }

    /// `None`: no rport; `Some(None)`: rport requested (flag); `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(parse_port)
    }

    /// Where a response to this Via goes per RFC 3261 §18.2.2 and RFC 3581 §4:
    /// received (else sent-by host) and rport (else sent-by port, else 5060).
    /// Returns `None` when the host is a name that would need DNS resolution.
    pub fn response_target(&self) -> Option<std::net::SocketAddr> {
        let ip = match self.received() {
            Some(r) => r
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()?,
            None => self.host.ip()?,
        };
        let port = match self.rport() {
            Some(Some(p)) => p,
            _ => self
                .port
                .unwrap_or(if self.transport == "TLS" { 5061 } else { 5060 }),
        };
        Some(std::net::SocketAddr::new(ip, port))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// A name-addr or addr-spec with header parameters: the value of From, To,
/// Contact, Route, Record-Route and Path (RFC 3261 §20.10, §20.20, §20.30, §20.34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name as written (quotes included when it was quoted).
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (`tag`, `expires`, `q`, ...).
    pub params: Params,
}

impl NameAddr {
    /// A `<uri>` value without display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    /// Parses one value; `header` names the header for error messages.
    pub fn parse(s: &str, header: &str) -> Result<NameAddr, ParseError> {
        let err = |r| ParseError::value(header, s, r);
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(err("empty value"));
        }
        let (display, uri_txt, rest) = if let Some(lt) = find_unquoted(s_trim, b'<') {
            let display = s_trim[..lt].trim();
            let display = if display.is_empty() {
                None
            } else {
                if display.starts_with('"') {
                    check_quoted(display).map_err(err)?;
                } else if !display
                    .split_whitespace()
                    .all(|w| w.bytes().all(is_token_char))
                {
                    return Err(err("invalid display name"));
                }
                Some(display.to_owned())
            };
            let gt = s_trim[lt..]
                .find('>')
                .ok_or_else(|| err("'<' without closing '>'"))?
                + lt;
            (display, &s_trim[lt + 1..gt], &s_trim[gt + 1..])
        } else {
            if s_trim.starts_with('"') {
                return Err(err("quoted display name without <uri>"));
            }
            // addr-spec form: parameters after the URI are header parameters,
            // and a URI with '?' or ',' must be in <> (RFC 3261 §20.10).
            let end = s_trim.find(';').unwrap_or(s_trim.len());
            let uri_txt = s_trim[..end].trim_end();
            if uri_txt.contains(['?', ',']) {
                return Err(err("URI with '?' or ',' must be enclosed in <>"));
            }
            (None, uri_txt, &s_trim[end..])
        };
        let uri = Uri::parse(uri_txt).map_err(|e| match e {
            ParseError::Uri { reason, .. } => err(reason),
            other => other,
        })?;
        let params = Params::parse(rest, header)?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").filter(|t| !t.is_empty())
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Contact value: either `*` (REGISTER remove-all) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Star is rare; boxing would tax every real contact
pub enum Contact {
    /// `Contact: *`
    Star,
    /// A contact address with its parameters (`expires`, `q`, ...).
    Addr(NameAddr),
}

impl Contact {
    /// Parses one Contact value.
    pub fn parse(s: &str) -> Result<Contact, ParseError> {
        if s.trim() == "*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse(s, "Contact").map(Contact::Addr)
        }
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Star => f.write_str("*"),
            Contact::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// CSeq value (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (must fit 32 bits, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1234 INVITE`.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let err = |r| ParseError::value("CSeq", s, r);
        let mut it = s.split_whitespace();
        let num = it.next().ok_or_else(|| err("empty"))?;
        let method = it.next().ok_or_else(|| err("missing method"))?;
        if it.next().is_some() {
            return Err(err("text after method"));
        }
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("sequence number is not a number"));
        }
        let seq = num
            .parse::<u32>()
            .map_err(|_| err("sequence number exceeds 2**31"))?;
        if seq > 0x7fff_ffff {
            return Err(err("sequence number exceeds 2**31"));
        }
        let method = Method::parse(method).map_err(|_| err("invalid method"))?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Authorization, Proxy-Authorization, WWW-Authenticate or Proxy-Authenticate
/// value (RFC 3261 §20.7, RFC 7616/8760): a scheme and `name=value` params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Scheme, e.g. `Digest`.
    pub scheme: String,
    /// Parameters in order; values unquoted; the flag says if it was/should be quoted.
    pub params: Vec<AuthParam>,
}

/// One `name=value` of an [`Auth`] header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    /// Parameter name (`realm`, `nonce`, `response`, ...).
    pub name: String,
    /// Value with quotes and backslash escapes removed.
    pub value: String,
    /// Whether the value is written as a quoted-string.
    pub quoted: bool,
}

impl Auth {
    /// A `Digest` header with no parameters yet.
    pub fn digest() -> Auth {
        Auth {
            scheme: "Digest".into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter; `quoted` chooses quoted-string or token syntax.
    pub fn with(mut self, name: &str, value: &str, quoted: bool) -> Auth {
        self.params.push(AuthParam {
            name: name.into(),
            value: value.into(),
            quoted,
        });
        self
    }

    /// The value of parameter `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }

    /// Parses one value; `header` names the header for error messages.
    pub fn parse(s: &str, header: &str) -> Result<Auth, ParseError> {
        let err = |r| ParseError::value(header, s, r);
        let s = s.trim();
        let sp = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
        let scheme = &s[..sp];
        if scheme.is_empty() || !scheme.bytes().all(is_token_char) {
            return Err(err("invalid auth scheme"));
        }
        let mut params = Vec::new();
        let rest = s[sp..].trim();
        if !rest.is_empty() {
            for part in split_outside_quotes(rest, b',') {
                let part = part.trim();
                let eq = part
                    .find('=')
                    .ok_or_else(|| err("auth parameter without '='"))?;
                let name = part[..eq].trim();
                let raw = part[eq + 1..].trim();
                if name.is_empty() || !name.bytes().all(is_token_char) {
                    return Err(err("invalid auth parameter name"));
                }
                let (value, quoted) = if raw.starts_with('"') {
                    check_quoted(raw).map_err(err)?;
                    (unquote(raw), true)
                } else {
                    if raw.is_empty() || !raw.bytes().all(|b| is_token_char(b) || b == b'/') {
                        return Err(err("invalid auth parameter value"));
                    }
                    (raw.to_owned(), false)
                };
                params.push(AuthParam {
                    name: name.to_owned(),
                    value,
                    quoted,
                });
            }
        }
        Ok(Auth {
            scheme: scheme.to_owned(),
            params,
        })
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, p) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            if p.quoted {
                write!(f, "{}=\"", p.name)?;
                for c in p.value.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")?;
            } else {
                write!(f, "{}={}", p.name, p.value)?;
            }
        }
        Ok(())
    }
}

/// Removes surrounding quotes and backslash escapes from a checked quoted-string.
pub fn unquote(q: &str) -> String {
    let inner = q
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(q);
    let mut out = String::with_capacity(inner.len());
    let mut esc = false;
    for c in inner.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 3261 §25.1 token characters.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn find_unquoted(s: &str, c: u8) -> Option<usize> {
    let b = s.as_bytes();
    let (mut in_q, mut i) = (false, 0);
    while i < b.len() {
        if in_q {
            if b[i] == b'\\' {
                i += 1;
            } else if b[i] == b'"' {
                in_q = false;
            }
        } else if b[i] == b'"' {
            in_q = true;
        } else if b[i] == c {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_params_and_ipv6() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bK1;rport;received=2001:db8::9:255",
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V6("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(
            v.response_target(),
            Some("[2001:db8::9:255]:5070".parse().unwrap())
        );
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v =
            Via::parse("SIP  /   2.0 / TCP   host.example.com : 5061 ; branch = z9hG4bKx").unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, Host::Name("host.example.com".into()));
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
    }

    #[test]
    fn via_rport_filled_in_wins() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;rport=1234;received=192.0.2.1").unwrap();
        assert_eq!(v.response_target(), Some("192.0.2.1:1234".parse().unwrap()));
    }

    #[test]
    fn bad_vias() {
        for bad in [
            "SIP/2.0/UDP",
            "SIP/3.0/UDP a",
            "SIP/2.0/UDP a:99999",
            "SIP/2.0/UDP a;branch",
            "SIP/2.0/UDP a;;x",
            "",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            "\"Bob, \\\"B\\\"\" <sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf",
            "From",
        )
        .unwrap();
        assert_eq!(a.display.as_deref(), Some("\"Bob, \\\"B\\\"\""));
        assert_eq!(a.tag(), Some("a6c85cf"));
        assert_eq!(a.uri.transport().as_deref(), Some("tcp"));
        let b = NameAddr::parse("sip:alice@atlanta.com;tag=88sja8x", "To").unwrap();
        assert_eq!(b.tag(), Some("88sja8x"));
        assert!(b.uri.params.is_empty());
        let c = NameAddr::parse("Anonymous <sip:c8oqz84zk7z@privacy.org>", "From").unwrap();
        assert_eq!(c.display.as_deref(), Some("Anonymous"));
        assert!(NameAddr::parse("<sip:x@y", "To").is_err());
        assert!(NameAddr::parse("\"unterminated <sip:x@y>", "To").is_err());
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(CSeq::parse("314159 INVITE").unwrap().seq, 314159);
        assert!(CSeq::parse("4294967296 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn auth_round_trip() {
        let s = "Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b\", uri=\"sip:bob@biloxi.com\", response=\"6629fae4\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"0a4f113b\"";
        let a = Auth::parse(s, "Authorization").unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.get("realm"), Some("biloxi.com"));
        assert_eq!(a.get("ALGORITHM"), Some("SHA-256"));
        assert_eq!(a.to_string(), s);
        let ch = Auth::digest()
            .with("realm", "r", true)
            .with("nonce", "n\"x", true)
            .with("algorithm", "MD5", false);
        assert_eq!(
            ch.to_string(),
            "Digest realm=\"r\", nonce=\"n\\\"x\", algorithm=MD5"
        );
        assert_eq!(
            Auth::parse(&ch.to_string(), "WWW-Authenticate").unwrap(),
            ch
        );
    }
}
