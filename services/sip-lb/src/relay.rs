//! The stateless relay decision: one received message in, one outcome out
//! (forward somewhere, reply, feed keepalive, or drop with a reason).
//!
//! No sockets here: the I/O layer ([`crate::net`]) parses framing, calls
//! [`Relay::handle`], and executes the [`Outcome`]. Behaviour follows RFC 3261
//! §16 for a stateless proxy (§16.11 branch), RFC 3581 (rport), RFC 3327
//! (Path) and RFC 5658-style double Record-Route when crossing interfaces.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use sip::{Contact, HeaderName, Host, Message, Method, Request, Response, Scheme, Uri, Via};

use crate::config::{Config, ContactMode};
use crate::dispatch::{fnv1a, PairSet};

/// Transport of a message or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// TCP stream.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Name in a Via header.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    fn from_via(s: &str) -> Option<Transport> {
        match s {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
            "TLS" => Some(Transport::Tls),
            _ => None,
        }
    }

    fn from_uri(uri: &Uri) -> Option<Transport> {
        match uri.transport().as_deref() {
            None if uri.scheme == Scheme::Sips => Some(Transport::Tls),
            None | Some("udp") => Some(Transport::Udp),
            Some("tcp") => Some(Transport::Tcp),
            Some("tls") => Some(Transport::Tls),
            Some(_) => None,
        }
    }

    fn default_port(self) -> u16 {
        if self == Transport::Tls {
            5061
        } else {
            5060
        }
    }
}

/// Which interface a message arrived on or leaves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Subscriber-facing listeners (UDP/TCP/TLS).
    Front,
    /// The UDP socket towards the proxy pairs.
    Internal,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Front => Side::Internal,
            Side::Internal => Side::Front,
        }
    }
}

/// Where and how a message arrived.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// Source address (after NAT: what the socket saw).
    pub src: SocketAddr,
    /// Transport it came over.
    pub transport: Transport,
    /// Interface it came in on.
    pub side: Side,
}

/// Where to send a forwarded message. `host` may be a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// Host (IP literal, or a name the I/O layer resolves).
    pub host: Host,
    /// Port.
    pub port: u16,
    /// Transport.
    pub transport: Transport,
    /// Interface to send through.
    pub side: Side,
}

impl Dest {
    /// The socket address when the host is an IP literal.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.host.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Why a message was dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not parseable as SIP.
    Malformed,
    /// A request too broken to answer (no usable Via) or an ACK failing checks.
    BadRequest,
    /// A response failing the checks a relay needs.
    BadResponse,
    /// A response whose topmost Via is not ours.
    NotOurVia,
    /// A response with no Via left after removing ours.
    NoNextVia,
    /// Destination transport not supported (e.g. SCTP).
    BadTransport,
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send `bytes` to `dest`.
    Forward {
        /// Destination.
        dest: Dest,
        /// The rewritten message.
        bytes: Vec<u8>,
        /// Whether this is a request (for counters).
        request: bool,
        /// Proxy pair chosen by Call-ID hash, if any (for counters).
        pair: Option<usize>,
    },
    /// Send a locally generated response back to the packet source.
    Reply {
        /// Status code (for counters).
        status: u16,
        /// The response.
        bytes: Vec<u8>,
    },
    /// A response to our keepalive OPTIONS from pair `pair`.
    Keepalive {
        /// Pair index.
        pair: usize,
    },
    /// Drop the message.
    Drop(DropReason),
}

/// Branch prefix of keepalive OPTIONS; the pair index and a sequence follow.
pub const KEEPALIVE_BRANCH: &str = "z9hG4bK-fvka-";

/// The relay's addresses and policies, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Relay {
    front_udp: Option<SocketAddr>,
    front_tcp: Option<SocketAddr>,
    front_tls: Option<SocketAddr>,
    internal: SocketAddr,
    proxies: Vec<SocketAddr>,
    contact_mode: ContactMode,
    force_rport: bool,
}

impl Relay {
    /// Builds the relay from a checked configuration.
    pub fn new(cfg: &Config) -> Relay {
        Relay {
            front_udp: cfg.listen.udp,
            front_tcp: cfg.listen.tcp,
            front_tls: cfg.listen.tls,
            internal: cfg.listen.internal,
            proxies: cfg.proxies.iter().map(|p| p.address).collect(),
            contact_mode: cfg.nat.contact,
            force_rport: cfg.nat.force_rport,
        }
    }

    /// The proxy pair addresses, in configuration order.
    pub fn proxies(&self) -> &[SocketAddr] {
        &self.proxies
    }

    /// The internal address (source of keepalives).
    pub fn internal(&self) -> SocketAddr {
        self.internal
    }

    /// Parses a datagram and handles it.
    pub fn handle_datagram(&self, data: &[u8], pkt: &Packet, pairs: &PairSet) -> Outcome {
        match Message::parse(data) {
            Ok(m) => self.handle(m, pkt, pairs),
            Err(_) => Outcome::Drop(DropReason::Malformed),
        }
    }

    /// Handles one parsed message.
    pub fn handle(&self, msg: Message, pkt: &Packet, pairs: &PairSet) -> Outcome {
        match msg {
            Message::Request(r) => self.request(r, pkt, pairs),
            Message::Response(r) => self.response(r, pkt),
        }
    }

    fn front_addr(&self, t: Transport) -> SocketAddr {
        let pick = match t {
            Transport::Udp => self.front_udp,
            Transport::Tcp => self.front_tcp,
            Transport::Tls => self.front_tls,
        };
        // Config guarantees at least one front listener.
        pick.or(self.front_udp)
            .or(self.front_tcp)
            .or(self.front_tls)
            .unwrap_or(self.internal)
    }

    fn is_our_addr(&self, ip: IpAddr, port: u16) -> bool {
        let a = SocketAddr::new(ip, port);
        [
            self.front_udp,
            self.front_tcp,
            self.front_tls,
            Some(self.internal),
        ]
        .into_iter()
        .flatten()
        .any(|o| o == a)
    }

    fn uri_is_ours(&self, uri: &Uri) -> bool {
        let Some(ip) = uri.host.ip() else {
            return false;
        };
        let t = Transport::from_uri(uri).unwrap_or(Transport::Udp);
        self.is_our_addr(ip, uri.port.unwrap_or(t.default_port()))
    }

    fn via_is_ours(&self, via: &Via) -> bool {
        let Some(ip) = via.host.ip() else {
            return false;
        };
        let t = Transport::from_via(&via.transport).unwrap_or(Transport::Udp);
        self.is_our_addr(ip, via.port.unwrap_or(t.default_port()))
    }

    fn request(&self, mut req: Request, pkt: &Packet, pairs: &PairSet) -> Outcome {
        if let Err(e) = req.validate() {
            return self.reject(
                &req,
                400,
                &format!("Bad Request ({})", short(&e.to_string())),
            );
        }
        if matches!(req.uri.scheme, Scheme::Other(_)) {
            return self.reject(&req, 416, "Unsupported URI Scheme");
        }
        // Validation guarantees a parseable, non-empty Via list.
        let Ok(vias) = req.headers.vias() else {
            return Outcome::Drop(DropReason::BadRequest);
        };
        if vias.iter().filter(|v| self.via_is_ours(v)).count() >= 2 {
            return self.reject(&req, 482, "Loop Detected");
        }
        match req.headers.max_forwards() {
            Ok(Some(0)) => return self.reject(&req, 483, "Too Many Hops"),
            Ok(Some(n)) => req
                .headers
                .set(HeaderName::MaxForwards, (n - 1).to_string()),
            _ => req.headers.set(HeaderName::MaxForwards, "70"),
        }
        // RFC 3261 §16.3 step 4: we support no extension a proxy must understand.
        let proxy_require: Vec<String> = req
            .headers
            .get_all(&HeaderName::ProxyRequire)
            .map(str::to_owned)
            .collect();
        if !proxy_require.is_empty() && req.method != Method::Ack && req.method != Method::Cancel {
            let mut out = self.reply(&req, 420, "Bad Extension");
            for v in proxy_require {
                out.headers.push(HeaderName::Unsupported, v);
            }
            return Outcome::Reply {
                status: 420,
                bytes: out.to_bytes(),
            };
        }
        if pkt.side == Side::Front {
            self.fix_top_via(&mut req.headers, pkt);
            self.fix_contacts(&mut req.headers, pkt);
        }
        // Loose routing (RFC 3261 §16.4): remove our own Route entries.
        let mut path_return: Option<Dest> = None;
        loop {
            let Ok(routes) = req.headers.routes() else {
                return self.reject(&req, 400, "Bad Request (Route)");
            };
            match routes.first() {
                Some(r) if self.uri_is_ours(&r.uri) => {
                    if let Some(d) = decode_received(&r.uri) {
                        path_return = Some(d);
                    }
                    req.headers.remove_first(&HeaderName::Route);
                }
                _ => break,
            }
        }
        if req.method == Method::Options
            && pkt.side == Side::Front
            && req.uri.user.is_none()
            && self.uri_is_ours(&req.uri)
            && req.headers.count(&HeaderName::Route) == 0
        {
            let mut out = self.reply(&req, 200, "OK");
            out.headers.push(
                HeaderName::Other("X-Flexvisor-Pairs-Up".into()),
                format!("{}/{}", pairs.up_count(), pairs.len()),
            );
            return Outcome::Reply {
                status: 200,
                bytes: out.to_bytes(),
            };
        }
        let out_side = pkt.side.other();
        let mut pair = None;
        let dest = if let Ok(Some(next)) = req.headers.routes().map(|r| r.into_iter().next()) {
            match self.dest_for_uri(&next.uri, out_side) {
                Some(d) => d,
                None => return self.reject(&req, 400, "Bad Request (Route transport)"),
            }
        } else if let Some(d) = path_return.filter(|_| pkt.side == Side::Internal) {
            d
        } else if pkt.side == Side::Front {
            let in_dialog = req.headers.to().is_ok_and(|t| t.tag().is_some());
            let ruri_proxy = req
                .uri
                .host
                .ip()
                .map(|ip| SocketAddr::new(ip, req.uri.port.unwrap_or(5060)))
                .filter(|a| self.proxies.contains(a));
            match (in_dialog, ruri_proxy) {
                (true, Some(a)) => internal_dest(a),
                _ => {
                    let Ok(call_id) = req.headers.call_id() else {
                        return Outcome::Drop(DropReason::BadRequest);
                    };
                    let Some(i) = pairs.select(call_id) else {
                        let mut out = self.reply(&req, 503, "Service Unavailable");
                        out.headers.push(HeaderName::RetryAfter, "5");
                        return Outcome::Reply {
                            status: 503,
                            bytes: out.to_bytes(),
                        };
                    };
                    pair = Some(i);
                    internal_dest(self.proxies[i])
                }
            }
        } else {
            match self.dest_for_uri(&req.uri, Side::Front) {
                Some(d) => d,
                None => return self.reject(&req, 416, "Unsupported URI Scheme"),
            }
        };
        let (rr_in, rr_out) = match dest.side {
            Side::Internal => (self.front_rr(pkt.transport), self.internal_rr()),
            Side::Front => (self.internal_rr(), self.front_rr(dest.transport)),
        };
        let initial = req.headers.to().is_ok_and(|t| t.tag().is_none());
        if initial
            && matches!(
                req.method,
                Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
            )
        {
            req.headers.prepend(HeaderName::RecordRoute, rr_in);
            req.headers.prepend(HeaderName::RecordRoute, rr_out);
        }
        if req.method == Method::Register && pkt.side == Side::Front {
            let path = format!(
                "<sip:{};lr;received={}>",
                self.internal,
                encode_received(pkt.src, pkt.transport)
            );
            req.headers.prepend(HeaderName::Path, path);
        }
        let branch = self.branch(&req, &vias);
        let via = match dest.side {
            Side::Internal => format!("SIP/2.0/UDP {};branch={branch}", self.internal),
            Side::Front => format!(
                "SIP/2.0/{} {};branch={branch};rport",
                dest.transport.via_name(),
                self.front_addr(dest.transport)
            ),
        };
        req.headers.prepend(HeaderName::Via, via);
        Outcome::Forward {
            dest,
            bytes: req.to_bytes(),
            request: true,
            pair,
        }
    }

    fn response(&self, mut resp: Response, pkt: &Packet) -> Outcome {
        if resp.validate().is_err() {
            return Outcome::Drop(DropReason::BadResponse);
        }
        let Ok(top) = resp.headers.top_via() else {
            return Outcome::Drop(DropReason::BadResponse);
        };
        if !self.via_is_ours(&top) {
            return Outcome::Drop(DropReason::NotOurVia);
        }
        if pkt.side == Side::Internal {
            if let Some(rest) = top.branch().and_then(|b| b.strip_prefix(KEEPALIVE_BRANCH)) {
                let pair = rest.split('-').next().and_then(|p| p.parse::<usize>().ok());
                return match pair.filter(|&p| p < self.proxies.len()) {
                    Some(pair) => Outcome::Keepalive { pair },
                    None => Outcome::Drop(DropReason::BadResponse),
                };
            }
        }
        resp.headers.remove_first(&HeaderName::Via);
        let Ok(next) = resp.headers.top_via() else {
            return Outcome::Drop(DropReason::NoNextVia);
        };
        let Some(transport) = Transport::from_via(&next.transport) else {
            return Outcome::Drop(DropReason::BadTransport);
        };
        let dest_side = pkt.side.other();
        let dest = match next.response_target() {
            Some(a) => Dest {
                host: Host::from(a.ip()),
                port: a.port(),
                transport,
                side: dest_side,
            },
            None => Dest {
                host: next.host.clone(),
                port: next.port.unwrap_or(transport.default_port()),
                transport,
                side: dest_side,
            },
        };
        if pkt.side == Side::Front {
            self.fix_contacts(&mut resp.headers, pkt);
        }
        Outcome::Forward {
            dest,
            bytes: resp.to_bytes(),
            request: false,
            pair: None,
        }
    }

    fn dest_for_uri(&self, uri: &Uri, side: Side) -> Option<Dest> {
        if matches!(uri.scheme, Scheme::Other(_) | Scheme::Tel) {
            return None;
        }
        let transport = match side {
            // Towards the proxies we only speak UDP.
            Side::Internal => Transport::Udp,
            Side::Front => Transport::from_uri(uri)?,
        };
        let maddr = uri.params.get("maddr").and_then(|m| Host::parse(m).ok());
        Some(Dest {
            host: maddr.unwrap_or_else(|| uri.host.clone()),
            port: uri.port.unwrap_or(transport.default_port()),
            transport,
            side,
        })
    }

    fn front_rr(&self, t: Transport) -> String {
        let a = self.front_addr(t);
        match t {
            Transport::Udp => format!("<sip:{a};lr>"),
            Transport::Tcp => format!("<sip:{a};transport=tcp;lr>"),
            Transport::Tls => format!("<sip:{a};transport=tls;lr>"),
        }
    }

    fn internal_rr(&self) -> String {
        format!("<sip:{};lr>", self.internal)
    }

    /// RFC 3581 / RFC 3261 §18.2.1: record where the request really came from.
    fn fix_top_via(&self, headers: &mut sip::Headers, pkt: &Packet) {
        let Ok(mut via) = headers.top_via() else {
            return;
        };
        if via.host.ip() != Some(pkt.src.ip()) {
            via.params.set("received", Some(&pkt.src.ip().to_string()));
        }
        // Streams must come back over the same connection: always fill rport.
        if via.params.contains("rport") || self.force_rport || pkt.transport != Transport::Udp {
            via.params.set("rport", Some(&pkt.src.port().to_string()));
        }
        if let Some(v) = headers.first_mut(&HeaderName::Via) {
            *v = via.to_string();
        }
    }

    /// Far-end NAT: a Contact that does not match the packet source is marked
    /// or rewritten as configured.
    fn fix_contacts(&self, headers: &mut sip::Headers, pkt: &Packet) {
        if self.contact_mode == ContactMode::Off || headers.count(&HeaderName::Contact) == 0 {
            return;
        }
        for value in headers.get_all_mut(&HeaderName::Contact) {
            let Ok(Contact::Addr(mut na)) = Contact::parse(value) else {
                continue;
            };
            let port = na.uri.port.unwrap_or(5060);
            let behind_nat = na.uri.host.ip() != Some(pkt.src.ip())
                || (pkt.transport == Transport::Udp && port != pkt.src.port());
            if !behind_nat || matches!(na.uri.scheme, Scheme::Other(_) | Scheme::Tel) {
                continue;
            }
            let proto = pkt.transport.via_name().to_ascii_lowercase();
            match self.contact_mode {
                ContactMode::Mark => {
                    let mut r = format!("\"sip:{}", pkt.src);
                    if pkt.transport != Transport::Udp {
                        let _ = write!(r, ";transport={proto}");
                    }
                    r.push('"');
                    na.params.set("received", Some(&r));
                }
                ContactMode::Rewrite => {
                    na.uri.host = Host::from(pkt.src.ip());
                    na.uri.port = Some(pkt.src.port());
                    if pkt.transport != Transport::Udp {
                        na.uri.params.set("transport", Some(&proto));
                    }
                }
                ContactMode::Off => {}
            }
            *value = na.to_string();
        }
    }

    /// RFC 3261 §16.11: a stateless proxy's branch must be the same for
    /// retransmissions and for a CANCEL/non-2xx ACK as for its INVITE.
    fn branch(&self, req: &Request, vias: &[Via]) -> String {
        let mut key = String::new();
        match vias.first().and_then(|v| v.branch().map(|b| (v, b))) {
            Some((v, b)) if b.starts_with("z9hG4bK") => {
                let _ = write!(key, "{b}|{}|{:?}", v.host, v.port);
            }
            _ => {
                let h = &req.headers;
                let _ = write!(
                    key,
                    "{}|{}|{}|{}|{}|{}",
                    h.call_id().unwrap_or(""),
                    h.cseq().map(|c| c.seq).unwrap_or(0),
                    h.from()
                        .ok()
                        .and_then(|f| f.tag().map(str::to_owned))
                        .unwrap_or_default(),
                    h.to()
                        .ok()
                        .and_then(|t| t.tag().map(str::to_owned))
                        .unwrap_or_default(),
                    req.uri,
                    h.get(&HeaderName::Via).unwrap_or("")
                );
            }
        }
        format!("z9hG4bK-fvlb-{:016x}", fnv1a(key.as_bytes()))
    }

    fn reply(&self, req: &Request, status: u16, reason: &str) -> Response {
        let tag = format!(
            "fvlb{:08x}",
            fnv1a(req.headers.call_id().unwrap_or("").as_bytes()) as u32
        );
        let mut r = Response::reply_to(req, status, reason, Some(&tag));
        r.headers.push(HeaderName::Server, "flexvisor-sip-lb");
        r
    }

    fn reject(&self, req: &Request, status: u16, reason: &str) -> Outcome {
        // An ACK is never answered (RFC 3261 §17.2.3); a request without any
        // Via cannot be answered. A broken Via is copied as it is: the reply
        // goes to the packet source anyway.
        if req.method == Method::Ack || req.headers.count(&HeaderName::Via) == 0 {
            return Outcome::Drop(DropReason::BadRequest);
        }
        Outcome::Reply {
            status,
            bytes: self.reply(req, status, reason).to_bytes(),
        }
    }
}

fn internal_dest(a: SocketAddr) -> Dest {
    Dest {
        host: Host::from(a.ip()),
        port: a.port(),
        transport: Transport::Udp,
        side: Side::Internal,
    }
}

/// `sip:IP:PORT[;transport=tcp]` with `;` and `=` escaped, as a URI parameter value.
fn encode_received(src: SocketAddr, t: Transport) -> String {
    match t {
        Transport::Udp => format!("sip:{src}"),
        Transport::Tcp => format!("sip:{src}%3Btransport%3Dtcp"),
        Transport::Tls => format!("sip:{src}%3Btransport%3Dtls"),
    }
}

fn decode_received(uri: &Uri) -> Option<Dest> {
    let raw = uri.params.get("received")?;
    let text = raw
        .replace("%3B", ";")
        .replace("%3b", ";")
        .replace("%3D", "=")
        .replace("%3d", "=");
    let u = Uri::parse(&text).ok()?;
    let transport = Transport::from_uri(&u)?;
    u.host.ip()?;
    Some(Dest {
        host: u.host.clone(),
        port: u.port.unwrap_or(transport.default_port()),
        transport,
        side: Side::Front,
    })
}

/// Keeps reason phrases short and single-line.
fn short(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    s
}

/// Builds the keepalive OPTIONS for pair `pair`, sequence `seq`.
pub fn keepalive_request(
    internal: SocketAddr,
    target: SocketAddr,
    pair: usize,
    seq: u64,
) -> Vec<u8> {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {internal};branch={KEEPALIVE_BRANCH}{pair}-{seq}\r\n\
         Max-Forwards: 1\r\n\
         From: <sip:keepalive@{internal}>;tag=fvka{pair}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: fvka-{pair}-{seq}@{internal}\r\n\
         CSeq: {seq} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        seq = seq.min(0x7fff_ffff)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests;
