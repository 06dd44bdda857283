//! The parts of SDP (RFC 4566) a media relay reads and rewrites: the
//! connection lines (`c=`), the media lines (`m=` port) and the RTCP
//! attribute (`a=rtcp:`, RFC 3605). Everything else passes through
//! untouched, line by line.
//!
//! Input comes from SIP bodies relayed by the proxy, i.e. from the network:
//! parsing never panics and errors name the line.

use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// Why a body is not an SDP we can relay.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// Not UTF-8 text.
    #[error("SDP is not UTF-8 text")]
    NotText,
    /// First line is not `v=0`.
    #[error("SDP does not start with v=0")]
    NoVersion,
    /// A line we need could not be read.
    #[error("SDP line {line}: {what}: {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: &'static str,
        /// The line (truncated to 80 bytes).
        text: String,
    },
    /// No media section at all.
    #[error("SDP has no m= line")]
    NoMedia,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type (`audio`, `video`, ...).
    pub kind: String,
    /// Transport port of the m= line (0: stream rejected).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, ...).
    pub proto: String,
    /// Media-level connection address, if any.
    pub conn: Option<IpAddr>,
    /// `a=rtcp:` port (and address), if any.
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    m_line: usize,
    c_line: Option<usize>,
    rtcp_line: Option<usize>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    lines: Vec<String>,
    /// Session-level connection address.
    pub conn: Option<IpAddr>,
    c_line: Option<usize>,
    /// Media sections in order.
    pub media: Vec<Media>,
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `IN IP4 192.0.2.1[/ttl]` -> address.
fn parse_conn(v: &str) -> Option<IpAddr> {
    let mut it = v.split_ascii_whitespace();
    let (net, fam, addr) = (it.next()?, it.next()?, it.next()?);
    if net != "IN" || it.next().is_some() {
        return None;
    }
    let addr = addr.split('/').next()?;
    let ip: IpAddr = addr.parse().ok()?;
    match (fam, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

impl Sdp {
    /// Parses an SDP body.
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let lines: Vec<String> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if lines.first().map(String::as_str) != Some("v=0") {
            return Err(SdpError::NoVersion);
        }
        let bad = |line: usize, what, text: &str| SdpError::BadLine {
            line: line + 1,
            what,
            text: clip(text),
        };
        let mut sdp = Sdp {
            conn: None,
            c_line: None,
            media: Vec::new(),
            lines: Vec::new(),
        };
        for (i, l) in lines.iter().enumerate() {
            if let Some(v) = l.strip_prefix("m=") {
                let mut it = v.split_ascii_whitespace();
                let kind = it.next().ok_or_else(|| bad(i, "m= without media", l))?;
                let port = it.next().ok_or_else(|| bad(i, "m= without port", l))?;
                // "port/count" (RFC 4566 §5.14): the first port is what we relay.
                let port: u16 = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad(i, "m= port is not a number", l))?;
                let proto = it.next().ok_or_else(|| bad(i, "m= without protocol", l))?;
                sdp.media.push(Media {
                    kind: kind.to_string(),
                    port,
                    proto: proto.to_string(),
                    conn: None,
                    rtcp: None,
                    m_line: i,
                    c_line: None,
                    rtcp_line: None,
                });
            } else if let Some(v) = l.strip_prefix("c=") {
                let ip = parse_conn(v).ok_or_else(|| bad(i, "c= is not IN IP4/IP6 <addr>", l))?;
                match sdp.media.last_mut() {
                    Some(m) => {
                        m.conn = Some(ip);
                        m.c_line = Some(i);
                    }
                    None => {
                        sdp.conn = Some(ip);
                        sdp.c_line = Some(i);
                    }
                }
            } else if let Some(v) = l.strip_prefix("a=rtcp:") {
                let Some(m) = sdp.media.last_mut() else {
                    continue;
                };
                let (port, rest) = match v.split_once(' ') {
                    Some((p, r)) => (p, Some(r)),
                    None => (v, None),
                };
                let port: u16 = port
                    .trim()
                    .parse()
                    .map_err(|_| bad(i, "a=rtcp port is not a number", l))?;
                let ip = match rest {
                    Some(r) => Some(parse_conn(r).ok_or_else(|| bad(i, "a=rtcp address", l))?),
                    None => None,
                };
                m.rtcp = Some((port, ip));
                m.rtcp_line = Some(i);
            }
        }
        if sdp.media.is_empty() {
            return Err(SdpError::NoMedia);
        }
        sdp.lines = lines;
        Ok(sdp)
    }

    /// Where stream `i` wants its RTP: its (media or session) connection
    /// address and m= port; None for a rejected stream (port 0), a
    /// stream without address, or an on-hold address (0.0.0.0).
    pub fn rtp_endpoint(&self, i: usize) -> Option<SocketAddr> {
        let m = self.media.get(i)?;
        let ip = m.conn.or(self.conn)?;
        if m.port == 0 || ip.is_unspecified() {
            return None;
        }
        Some(SocketAddr::new(ip, m.port))
    }

    /// Where stream `i` wants its RTCP: `a=rtcp` when given, else the RTP
    /// port + 1 (RFC 3550 §11).
    pub fn rtcp_endpoint(&self, i: usize) -> Option<SocketAddr> {
        let rtp = self.rtp_endpoint(i)?;
        let m = self.media.get(i)?;
        match m.rtcp {
            Some((port, ip)) => Some(SocketAddr::new(ip.unwrap_or(rtp.ip()), port)),
            None => Some(SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?)),
        }
    }

    /// The body with every connection address set to `addr` and the
    /// RTP port of stream `i` set to `ports[i]` (RTCP on the next port,
    /// announced with `a=rtcp:`). Streams with `None` (rejected) keep
    /// their line as it was.
    pub fn rewrite(&self, addr: IpAddr, ports: &[Option<u16>]) -> String {
        let fam = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let conn = format!("c=IN {fam} {addr}");
        let mut out: Vec<String> = self.lines.clone();
        if let Some(c) = self.c_line {
            out[c] = conn.clone();
        }
        // Extra lines to insert after a given index (a=rtcp when missing).
        let mut inserts: Vec<(usize, String)> = Vec::new();
        for (i, m) in self.media.iter().enumerate() {
            let Some(Some(port)) = ports.get(i) else {
                continue;
            };
            let line = &self.lines[m.m_line];
            let rest: Vec<&str> = line
                .strip_prefix("m=")
                .unwrap_or(line)
                .split_ascii_whitespace()
                .skip(3)
                .collect();
            out[m.m_line] = format!("m={} {port} {} {}", m.kind, m.proto, rest.join(" "))
                .trim_end()
                .to_string();
            if let Some(c) = m.c_line {
                out[c] = conn.clone();
            }
            let rtcp = format!("a=rtcp:{}", port.saturating_add(1));
            match m.rtcp_line {
                Some(l) => out[l] = rtcp,
                None => {
                    // At the end of the media section, where rtpengine
                    // puts it too.
                    let end = self
                        .media
                        .get(i + 1)
                        .map_or(self.lines.len(), |next| next.m_line);
                    inserts.push((end.saturating_sub(1).max(m.m_line), rtcp));
                }
            }
        }
        let mut text = String::new();
        for (i, l) in out.iter().enumerate() {
            text.push_str(l);
            text.push_str("\r\n");
            for (_, extra) in inserts.iter().filter(|(a, _)| *a == i) {
                text.push_str(extra);
                text.push_str("\r\n");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OFFER: &str =
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 31\r\n\
m=video 51372 RTP/AVP 99\r\nc=IN IP4 192.0.2.11\r\na=rtcp:53020 IN IP4 192.0.2.12\r\n";

    #[test]
    fn reads_endpoints_per_stream() {
        let s = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.media.len(), 3);
        assert_eq!(s.rtp_endpoint(0), Some("192.0.2.10:49170".parse().unwrap()));
        assert_eq!(
            s.rtcp_endpoint(0),
            Some("192.0.2.10:49171".parse().unwrap())
        );
        assert_eq!(s.rtp_endpoint(1), None, "port 0 is a rejected stream");
        assert_eq!(s.rtp_endpoint(2), Some("192.0.2.11:51372".parse().unwrap()));
        assert_eq!(
            s.rtcp_endpoint(2),
            Some("192.0.2.12:53020".parse().unwrap())
        );
    }

    #[test]
    fn rewrite_replaces_addresses_ports_and_rtcp_only() {
        let s = Sdp::parse(OFFER.as_bytes()).unwrap();
        let out = s.rewrite(
            "127.0.0.1".parse().unwrap(),
            &[Some(30000), None, Some(30002)],
        );
        let want = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:30001\r\nm=video 0 RTP/AVP 31\r\n\
m=video 30002 RTP/AVP 99\r\nc=IN IP4 127.0.0.1\r\na=rtcp:30003\r\n";
        assert_eq!(out, want);
        let again = Sdp::parse(out.as_bytes()).unwrap();
        assert_eq!(
            again.rtcp_endpoint(0),
            Some("127.0.0.1:30001".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_and_bare_newlines() {
        let s = Sdp::parse(b"v=0\nc=IN IP6 ::1\nm=audio 4000 RTP/AVP 0\n").unwrap();
        assert_eq!(s.rtp_endpoint(0), Some("[::1]:4000".parse().unwrap()));
        let out = s.rewrite("::2".parse().unwrap(), &[Some(5000)]);
        assert!(out.contains("c=IN IP6 ::2\r\n"), "{out}");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(Sdp::parse(b"hello"), Err(SdpError::NoVersion));
        assert_eq!(Sdp::parse(b"v=0\r\ns=-\r\n"), Err(SdpError::NoMedia));
        let e = Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Sdp::parse(b"v=0\r\nc=IN IP4 nope\r\nm=audio 1 RTP/AVP 0\r\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(Sdp::parse(&[0xff, 0xfe]), Err(SdpError::NotText));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(body in "v=0\r\n([cmas]=[ -~]{0,30}\r\n){0,8}") {
            if let Ok(s) = Sdp::parse(body.as_bytes()) {
                let ports: Vec<Option<u16>> = s.media.iter().map(|_| Some(40000)).collect();
                let out = s.rewrite("127.0.0.1".parse().unwrap(), &ports);
                // A rewritten body parses again with our ports.
                let again = Sdp::parse(out.as_bytes()).unwrap();
                prop_assert_eq!(again.media.len(), s.media.len());
                for m in &again.media {
                    prop_assert_eq!(m.port, 40000);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Sdp::parse(&bytes);
        }
    }
}
