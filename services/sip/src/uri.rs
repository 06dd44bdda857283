//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), hosts and `;param` lists.
//!
//! Holds the URI model only; name-addr forms (`"Bob" <sip:bob@x>;tag=1`)
//! live in [`crate::header`]. URIs of other schemes are kept opaque so that a
//! relay can answer 416 instead of failing to parse the request.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;

/// URI scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other scheme, stored lower-case; the rest of the URI is in [`Uri::opaque`].
    Other(String),
}

impl Scheme {
    /// The scheme as written before the colon.
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// Host part of a URI or Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name (kept as written). Empty for `tel:` and opaque URIs.
    Name(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference; written with brackets, stored without.
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host: `[v6]`, dotted IPv4 or a host name.
    pub fn parse(s: &str) -> Result<Host, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| ParseError::uri(s, "IPv6 reference without closing ']'"))?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| ParseError::uri(s, "invalid IPv6 address in reference"));
        }
        if s.is_empty() {
            return Err(ParseError::uri(s, "empty host"));
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Host::V4(v4));
        }
        // A bare IPv6 address (no brackets) is not a valid host (RFC 3261 §25.1).
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(ParseError::uri(s, "invalid character in host name"));
        }
        if s.starts_with('.') || s.contains("..") {
            return Err(ParseError::uri(s, "empty label in host name"));
        }
        Ok(Host::Name(s.to_owned()))
    }

    /// The IP address, if the host is a literal address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// An ordered `;name[=value]` parameter list. Names compare case-insensitively.
/// Values are kept as written (quotes and escapes included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Value of the first parameter called `name`: `Some("")` for a flag
    /// parameter without `=value`, `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// Whether a parameter called `name` is present (with or without value).
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Sets `name` (replacing the first occurrence, or appending).
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let v = value.map(str::to_owned);
        if let Some(slot) = self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            slot.1 = v;
        } else {
            self.0.push((name.to_owned(), v));
        }
    }

    /// Removes every parameter called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `;a=b;c` (leading `;` included, whitespace around `;`/`=` allowed).
    /// `ctx` names the header for error messages.
    pub(crate) fn parse(s: &str, ctx: &str) -> Result<Params, ParseError> {
        let mut out = Vec::new();
        let s = s.trim();
        if s.is_empty() {
            return Ok(Params(out));
        }
        let rest = s
            .strip_prefix(';')
            .ok_or_else(|| ParseError::value(ctx, s, "expected ';' before parameter"))?;
        for part in split_outside_quotes(rest, b';') {
            let part = part.trim();
            if part.is_empty() {
                return Err(ParseError::value(ctx, s, "empty parameter"));
            }
            let (name, value) = match part.find('=') {
                Some(i) => (part[..i].trim(), Some(part[i + 1..].trim())),
                None => (part, None),
            };
            if name.is_empty() || !name.bytes().all(is_param_char) {
                return Err(ParseError::value(ctx, s, "invalid parameter name"));
            }
            if let Some(v) = value {
                if v.is_empty() {
                    return Err(ParseError::value(ctx, s, "parameter with '=' but no value"));
                }
                if v.starts_with('"') {
                    check_quoted(v).map_err(|r| ParseError::value(ctx, s, r))?;
                } else if !v
                    .bytes()
                    .all(|b| is_param_char(b) || b == b':' || b == b'[' || b == b']')
                {
                    return Err(ParseError::value(
                        ctx,
                        s,
                        "invalid character in parameter value",
                    ));
                }
            }
            out.push((name.to_owned(), value.map(str::to_owned)));
        }
        Ok(Params(out))
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// token characters plus the URI param-unreserved / escape characters.
fn is_param_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'!'
                | b'%'
                | b'*'
                | b'_'
                | b'+'
                | b'`'
                | b'\''
                | b'~'
                | b'/'
                | b'&'
                | b'$'
                | b'('
                | b')'
                | b'@'
                | b'?'
        )
}

/// Checks that `v` is exactly one quoted-string.
pub(crate) fn check_quoted(v: &str) -> Result<(), &'static str> {
    let b = v.as_bytes();
    if b.len() < 2 || b[0] != b'"' {
        return Err("unterminated quoted string");
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => {
                return if i == b.len() - 1 {
                    Ok(())
                } else {
                    Err("text after closing quote")
                }
            }
            _ => i += 1,
        }
    }
    Err("unterminated quoted string")
}

/// Splits on `sep` outside double quotes and angle brackets.
pub(crate) fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let b = s.as_bytes();
    let (mut in_q, mut depth, mut start, mut i) = (false, 0usize, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        if in_q {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_q = false;
            }
        } else if c == b'"' {
            in_q = true;
        } else if c == b'<' {
            depth += 1;
        } else if c == b'>' {
            depth = depth.saturating_sub(1);
        } else if c == sep && depth == 0 {
            parts.push(&s[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

/// A SIP/SIPS/tel URI, or an opaque URI of another scheme.
///
/// For `tel:` URIs the telephone-subscriber is in [`Uri::user`] and the host is
/// `Host::Name("")`. For other schemes everything after the colon is in
/// [`Uri::opaque`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    /// Scheme.
    pub scheme: Scheme,
    /// User part (escapes kept as written).
    pub user: Option<String>,
    /// Password part of userinfo (discouraged, but legal).
    pub password: Option<String>,
    /// Host.
    pub host: Host,
    /// Port, when written.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params,
    /// Header part after `?`, without the `?`, as written.
    pub headers: Option<String>,
    /// Scheme-specific text of a URI with [`Scheme::Other`].
    pub opaque: Option<String>,
}

impl Uri {
    /// A `sip:` URI for `host[:port]` without user or parameters.
    pub fn sip(host: Host, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: None,
            password: None,
            host,
            port,
            params: Params::default(),
            headers: None,
            opaque: None,
        }
    }

    /// Parses a URI (no surrounding `<>`, no whitespace).
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        if s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::uri(s, "whitespace or control character in URI"));
        }
        let colon = s.find(':').ok_or_else(|| ParseError::uri(s, "no scheme"))?;
        let scheme_txt = &s[..colon];
        if scheme_txt.is_empty()
            || !scheme_txt.as_bytes()[0].is_ascii_alphabetic()
            || !scheme_txt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(ParseError::uri(s, "invalid scheme"));
        }
        let rest = &s[colon + 1..];
        let scheme = match scheme_txt.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            other => {
                return Ok(Uri {
                    scheme: Scheme::Other(other.to_owned()),
                    user: None,
                    password: None,
                    host: Host::Name(String::new()),
                    port: None,
                    params: Params::default(),
                    headers: None,
                    opaque: Some(rest.to_owned()),
                })
            }
        };
        if scheme == Scheme::Tel {
            let (num, params) = match rest.find(';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if num.is_empty()
                || !num.bytes().all(|b| {
                    b.is_ascii_hexdigit()
                        || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
                })
            {
                return Err(ParseError::uri(s, "invalid telephone number"));
            }
            return Ok(Uri {
                scheme,
                user: Some(num.to_owned()),
                password: None,
                host: Host::Name(String::new()),
                port: None,
                params: Params::parse(params, "URI")
                    .map_err(|_| ParseError::uri(s, "bad tel parameter"))?,
                headers: None,
                opaque: None,
            });
        }
        let (userinfo, hostpart) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                // ':' cannot appear unescaped in user (RFC 3261 §25.1 user-unreserved).
                let (u, p) = match ui.find(':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ParseError::uri(s, "empty user part before '@'"));
                }
                check_escapes(u).map_err(|r| ParseError::uri(s, r))?;
                (Some(u.to_owned()), p.map(str::to_owned))
            }
        };
        let (hostport, after) = match hostpart.find([';', '?']) {
            Some(i) => (&hostpart[..i], &hostpart[i..]),
            None => (hostpart, ""),
        };
        let (host_txt, port_txt) = split_host_port(hostport).map_err(|r| ParseError::uri(s, r))?;
        let host = Host::parse(host_txt).map_err(|e| match e {
            ParseError::Uri { reason, .. } => ParseError::uri(s, reason),
            other => other,
        })?;
        let port = match port_txt {
            None => None,
            Some(p) => Some(parse_port(p).ok_or_else(|| ParseError::uri(s, "invalid port"))?),
        };
        let (params_txt, headers) = match after.find('?') {
            Some(i) => (&after[..i], Some(after[i + 1..].to_owned())),
            None => (after, None),
        };
        let params = Params::parse(params_txt, "URI")
            .map_err(|_| ParseError::uri(s, "bad URI parameter"))?;
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            opaque: None,
        })
    }

    /// Whether this URI carries the `lr` parameter (loose router, RFC 3261 §16.4).
    pub fn is_loose_router(&self) -> bool {
        self.params.contains("lr")
    }

    /// Value of the `transport` URI parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params.get("transport").map(|t| t.to_ascii_lowercase())
    }
}

/// Splits `host[:port]`, taking care of `[v6]:port`.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, Option<&str>), &'static str> {
    if s.starts_with('[') {
        let end = s.find(']').ok_or("IPv6 reference without closing ']'")?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        if rest.is_empty() {
            Ok((host, None))
        } else if let Some(p) = rest.strip_prefix(':') {
            Ok((host, Some(p)))
        } else {
            Err("text after IPv6 reference")
        }
    } else {
        match s.find(':') {
            Some(i) => Ok((&s[..i], Some(&s[i + 1..]))),
            None => Ok((s, None)),
        }
    }
}

/// Parses a decimal port 0..=65535 (digits only).
pub(crate) fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

fn check_escapes(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return Err("bad %-escape in user part");
            }
            i += 3;
        } else if b[i] == b'<' || b[i] == b'>' || b[i] == b'"' {
            return Err("invalid character in user part");
        } else {
            i += 1;
        }
    }
    Ok(())
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if let Some(o) = &self.opaque {
            return f.write_str(o);
        }
        if self.scheme == Scheme::Tel {
            write!(f, "{}{}", self.user.as_deref().unwrap_or(""), self.params)?;
            return Ok(());
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_with_everything() {
        let u = Uri::parse("sip:alice:pw@atlanta.com:5061;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, Host::Name("atlanta.com".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.is_loose_router());
        assert_eq!(u.headers.as_deref(), Some("subject=x"));
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@atlanta.com:5061;transport=tcp;lr?subject=x"
        );
    }

    #[test]
    fn ipv6_reference_with_port() {
        let u = Uri::parse("sips:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.to_string(), "sips:[2001:db8::10]:5070");
    }

    #[test]
    fn bare_ipv6_is_rejected() {
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10]x").is_err());
    }

    #[test]
    fn tel_and_other_schemes() {
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user.as_deref(), Some("+1-201-555-0123"));
        assert_eq!(t.to_string(), "tel:+1-201-555-0123;phone-context=x");
        let o = Uri::parse("mailto:bob@example.com").unwrap();
        assert_eq!(o.scheme, Scheme::Other("mailto".into()));
        assert_eq!(o.to_string(), "mailto:bob@example.com");
    }

    #[test]
    fn user_with_semicolon_and_escape() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Name("example.com".into()));
    }

    #[test]
    fn bad_port_and_whitespace() {
        assert!(Uri::parse("sip:a@b:99999").is_err());
        assert!(Uri::parse("sip:a@b:").is_err());
        assert!(Uri::parse("sip:a b@c").is_err());
        assert!(Uri::parse("sip:").is_err());
    }
}
