//! The relay: calls, their media sockets and the forwarding tasks, and what
//! each ng command does to them.
//!
//! A call has one [`Stream`] per SDP media section. A stream has two legs:
//! leg A faces the caller (the party of the offer's from-tag), leg B the
//! callee. Each leg owns an RTP socket on an even port and an RTCP socket
//! on the next port. Packets received on a leg's socket are sent,
//! unmodified, out of the other leg's socket of the same kind to that
//! leg's peer. A leg's peer is first the address its party announced in
//! SDP and then, from the first packet received on the leg, the packet's
//! real source (symmetric latching, for phones behind NAT).
//!
//! SDP from a party is rewritten with the ports of the *other* leg: that
//! is where the other party must send to reach it.

use crate::bencode::{dict, Value};
use crate::config::Config;
use crate::ng::{self, Command, OfferAnswer};
use crate::ports::PortPool;
use crate::sdp::Sdp;
use crate::store::{LegSnapshot, Snapshot, StreamSnapshot};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Relay-wide counters (Prometheus and `--status`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Control datagrams received.
    pub control_requests: AtomicU64,
    /// Control datagrams that could not be understood.
    pub control_malformed: AtomicU64,
    /// Commands answered with an error (bad SDP, unknown call, no ports).
    pub control_errors: AtomicU64,
    /// Calls freed because they were idle too long.
    pub timeouts: AtomicU64,
    /// Calls brought back from Redis at start.
    pub restored: AtomicU64,
    /// Calls from Redis that could not be restored (ports taken).
    pub restore_failures: AtomicU64,
}

/// One media socket and what it knows about the party it faces.
#[derive(Debug)]
pub struct Endpoint {
    sock: UdpSocket,
    port: u16,
    peer: Mutex<Option<SocketAddr>>,
    advertised: Mutex<Option<SocketAddr>>,
    latched: AtomicBool,
    packets: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    last_ms: AtomicU64,
}

impl Endpoint {
    fn peer(&self) -> Option<SocketAddr> {
        *self.peer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_peer(&self, a: Option<SocketAddr>) {
        *self.peer.lock().unwrap_or_else(|p| p.into_inner()) = a;
    }

    fn advertised(&self) -> Option<SocketAddr> {
        *self.advertised.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// SDP announced `a`: it becomes the peer unless a packet told us better.
    fn announce(&self, a: Option<SocketAddr>) {
        *self.advertised.lock().unwrap_or_else(|p| p.into_inner()) = a;
        if !self.latched.load(Ordering::Acquire) {
            self.set_peer(a);
        }
    }

    fn counters(&self) -> Value {
        dict([
            ("packets", int(self.packets.load(Ordering::Relaxed))),
            ("bytes", int(self.bytes.load(Ordering::Relaxed))),
            ("errors", int(self.errors.load(Ordering::Relaxed))),
        ])
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RTP and RTCP sockets facing one party.
#[derive(Debug)]
struct Leg {
    rtp: Arc<Endpoint>,
    rtcp: Arc<Endpoint>,
}

/// One media section: two legs and the four forwarding tasks.
#[derive(Debug)]
struct Stream {
    kind: String,
    proto: String,
    legs: [Leg; 2],
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // The tasks hold the sockets; ending them closes the ports.
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug)]
struct Call {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    created_ms: u64,
    last_signal_ms: u64,
    /// Parallel to the SDP's media sections; None for rejected streams.
    streams: Vec<Option<Stream>>,
}

impl Call {
    fn ports(&self) -> Vec<u16> {
        self.streams
            .iter()
            .flatten()
            .flat_map(|s| [s.legs[0].rtp.port, s.legs[1].rtp.port])
            .collect()
    }

    fn last_activity_ms(&self) -> u64 {
        let mut last = self.last_signal_ms;
        for s in self.streams.iter().flatten() {
            for l in &s.legs {
                for e in [&l.rtp, &l.rtcp] {
                    last = last.max(e.last_ms.load(Ordering::Relaxed));
                }
            }
        }
        last
    }

    fn snapshot(&self) -> Snapshot {
        let leg = |l: &Leg| LegSnapshot {
            port: l.rtp.port,
            rtp_peer: l.rtp.peer(),
            rtcp_peer: l.rtcp.peer(),
            rtp_latched: l.rtp.latched.load(Ordering::Acquire),
            rtcp_latched: l.rtcp.latched.load(Ordering::Acquire),
            advertised: l.rtp.advertised(),
        };
        Snapshot {
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone(),
            to_tag: self.to_tag.clone(),
            created_ms: self.created_ms,
            last_signal_ms: self.last_signal_ms,
            streams: self
                .streams
                .iter()
                .map(|s| {
                    s.as_ref().map(|s| StreamSnapshot {
                        kind: s.kind.clone(),
                        proto: s.proto.clone(),
                        a: leg(&s.legs[0]),
                        b: leg(&s.legs[1]),
                    })
                })
                .collect(),
        }
    }
}

/// What the persistence task is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Write the call's current state.
    Save(String),
    /// Remove the call.
    Delete(String),
}

/// The running relay; share it with `Arc`.
#[derive(Debug)]
pub struct Relay {
    cfg: Config,
    calls: Mutex<HashMap<String, Call>>,
    ports: Mutex<PortPool>,
    persist: Option<UnboundedSender<Persist>>,
    /// Counters.
    pub stats: Stats,
}

/// Why a call could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No free port pair in the range.
    #[error("ran out of ports in {min}-{max}")]
    NoPorts {
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
    /// A specific port (from Redis) could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
}

/// Binds a UDP socket (IP_FREEBIND when asked) for tokio.
pub fn bind_udp(addr: SocketAddr, freebind: bool) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if freebind {
        if addr.is_ipv4() {
            s.set_freebind_v4(true)?;
        } else {
            s.set_freebind_v6(true)?;
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn endpoint(sock: UdpSocket, port: u16) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        sock,
        port,
        peer: Mutex::new(None),
        advertised: Mutex::new(None),
        latched: AtomicBool::new(false),
        packets: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        last_ms: AtomicU64::new(0),
    })
}

/// RTP and RTCP both start with version 2 (RFC 3550 §5.1, §6.4) and are
/// at least 8 bytes long; only such a packet may latch a peer, so stray
/// junk sent to a fresh port does not capture the stream.
fn looks_like_rtp(p: &[u8]) -> bool {
    p.len() >= 8 && p[0] >> 6 == 2
}

/// Receives on `from` and sends out of `to` to `to`'s peer, forever.
async fn forward(
    from: Arc<Endpoint>,
    to: Arc<Endpoint>,
    latch: Option<(UnboundedSender<Persist>, String)>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, src) = match from.sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                from.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        from.packets.fetch_add(1, Ordering::Relaxed);
        from.bytes.fetch_add(n as u64, Ordering::Relaxed);
        from.last_ms.store(now_ms(), Ordering::Relaxed);
        if !from.latched.load(Ordering::Acquire) && looks_like_rtp(&buf[..n]) {
            // Symmetric latching: the party is where its packets come from.
            from.set_peer(Some(src));
            from.latched.store(true, Ordering::Release);
            if let Some((tx, call_id)) = &latch {
                let _ = tx.send(Persist::Save(call_id.clone()));
            }
        }
        match to.peer() {
            Some(dst) => {
                if to.sock.send_to(&buf[..n], dst).await.is_err() {
                    to.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The other party has not announced itself yet (no answer).
            None => {
                from.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn endpoint_value(a: Option<SocketAddr>) -> Value {
    match a {
        Some(a) => dict([
            (
                "family",
                Value::str(if a.is_ipv4() { "IPv4" } else { "IPv6" }),
            ),
            ("address", Value::str(&a.ip().to_string())),
            ("port", Value::Int(i64::from(a.port()))),
        ]),
        None => dict([]),
    }
}

impl Relay {
    /// A relay with no calls. `persist` receives state changes to write.
    pub fn new(cfg: Config, persist: Option<UnboundedSender<Persist>>) -> Arc<Relay> {
        Arc::new(Relay {
            ports: Mutex::new(PortPool::new(cfg.port_min, cfg.port_max)),
            cfg,
            calls: Mutex::new(HashMap::new()),
            persist,
            stats: Stats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn calls(&self) -> MutexGuard<'_, HashMap<String, Call>> {
        // A panic while holding the lock would be a bug; keep relaying.
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pool(&self) -> MutexGuard<'_, PortPool> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, p: Persist) {
        if let Some(tx) = &self.persist {
            let _ = tx.send(p);
        }
    }

    /// Number of calls held.
    pub fn call_count(&self) -> usize {
        self.calls().len()
    }

    /// (RTP ports in use, RTP ports in the range).
    pub fn port_usage(&self) -> (usize, usize) {
        let p = self.pool();
        (p.in_use(), p.capacity())
    }

    /// Binds an RTP/RTCP pair on `port` (and `port + 1`).
    fn bind_pair(&self, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
        let ip = self.cfg.address;
        let rtp = bind_udp(SocketAddr::new(ip, port), self.cfg.freebind)?;
        let rtcp = bind_udp(SocketAddr::new(ip, port.wrapping_add(1)), self.cfg.freebind)?;
        Ok((rtp, rtcp))
    }

    /// Books and binds the next free pair.
    fn allocate_leg(&self) -> Result<Leg, RelayError> {
        let mut pool = self.pool();
        for port in pool.candidates() {
            // A port bound by another program is skipped, not fatal.
            if let Ok((rtp, rtcp)) = self.bind_pair(port) {
                pool.take(port);
                return Ok(Leg {
                    rtp: endpoint(rtp, port),
                    rtcp: endpoint(rtcp, port + 1),
                });
            }
        }
        Err(RelayError::NoPorts {
            min: self.cfg.port_min,
            max: self.cfg.port_max,
        })
    }

    /// Books and binds exactly `port` (restore after failover).
    fn bind_leg(&self, port: u16) -> Result<Leg, RelayError> {
        let addr = SocketAddr::new(self.cfg.address, port);
        let mut pool = self.pool();
        let (rtp, rtcp) = self
            .bind_pair(port)
            .map_err(|source| RelayError::Bind { addr, source })?;
        if !pool.take(port) {
            return Err(RelayError::Bind {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "port outside the configured range or booked twice",
                ),
            });
        }
        Ok(Leg {
            rtp: endpoint(rtp, port),
            rtcp: endpoint(rtcp, port + 1),
        })
    }

    fn release_ports(&self, ports: &[u16]) {
        let mut pool = self.pool();
        for p in ports {
            pool.release(*p);
        }
    }

    fn start_stream(&self, call_id: &str, kind: &str, proto: &str, a: Leg, b: Leg) -> Stream {
        let latch = self.persist.clone().map(|tx| (tx, call_id.to_string()));
        let tasks = vec![
            tokio::spawn(forward(a.rtp.clone(), b.rtp.clone(), latch.clone())),
            tokio::spawn(forward(b.rtp.clone(), a.rtp.clone(), latch.clone())),
            tokio::spawn(forward(a.rtcp.clone(), b.rtcp.clone(), latch.clone())),
            tokio::spawn(forward(b.rtcp.clone(), a.rtcp.clone(), latch)),
        ];
        Stream {
            kind: kind.to_string(),
            proto: proto.to_string(),
            legs: [a, b],
            tasks,
        }
    }

    /// Handles one control datagram and returns the reply datagram.
    /// Never fails: whatever cannot be understood gets an error reply.
    pub fn handle_datagram(&self, datagram: &[u8]) -> Vec<u8> {
        self.stats.control_requests.fetch_add(1, Ordering::Relaxed);
        let (cookie, message) = match ng::split(datagram) {
            Ok(x) => x,
            Err(e) => {
                self.stats.control_malformed.fetch_add(1, Ordering::Relaxed);
                // No cookie to echo: answer with a placeholder one.
                return ng::reply(b"-", &ng::error(&e.to_string()));
            }
        };
        let reply = match ng::parse_command(message) {
            Ok(cmd) => self.handle(cmd),
            Err(e) => {
                self.stats.control_malformed.fetch_add(1, Ordering::Relaxed);
                ng::error(&e.to_string())
            }
        };
        ng::reply(cookie, &reply)
    }

    /// Executes a command.
    pub fn handle(&self, cmd: Command) -> Value {
        let r = match cmd {
            Command::Ping => Ok(dict([("result", Value::str("pong"))])),
            Command::Offer(oa) => self.negotiate(oa, false),
            Command::Answer(oa) => self.negotiate(oa, true),
            Command::Delete { call_id } => self.delete(&call_id),
            Command::Query { call_id } => self.query(&call_id),
            Command::List { limit } => Ok(self.list(limit)),
        };
        r.unwrap_or_else(|e| {
            self.stats.control_errors.fetch_add(1, Ordering::Relaxed);
            ng::error(&e)
        })
    }

    /// offer / answer: the SDP of the offer belongs to the from-tag party,
    /// the SDP of the answer to the to-tag party.
    fn negotiate(&self, oa: OfferAnswer, answer: bool) -> Result<Value, String> {
        let sdp = Sdp::parse(&oa.sdp).map_err(|e| format!("Failed to parse SDP: {e}"))?;
        let mut calls = self.calls();
        let now = now_ms();
        if answer && !calls.contains_key(&oa.call_id) {
            return Err(format!("Unknown call-id {:?}", oa.call_id));
        }
        let new_call = !calls.contains_key(&oa.call_id);
        let call = calls.entry(oa.call_id.clone()).or_insert_with(|| Call {
            call_id: oa.call_id.clone(),
            from_tag: oa.from_tag.clone(),
            to_tag: None,
            created_ms: now,
            last_signal_ms: now,
            streams: Vec::new(),
        });
        // Which leg's party wrote this SDP.
        let side = if answer {
            let to = oa.to_tag.clone().unwrap_or_default();
            if to == call.from_tag {
                0
            } else {
                call.to_tag = Some(to);
                1
            }
        } else if oa.from_tag == call.from_tag {
            0
        } else if call.to_tag.as_deref() == Some(oa.from_tag.as_str()) {
            1
        } else {
            call.from_tag = oa.from_tag.clone();
            0
        };
        if answer && side == 1 && call.from_tag != oa.from_tag {
            // An answer for another dialog on this Call-ID: refuse rather
            // than cross two calls' media.
            return Err(format!(
                "from-tag {:?} does not match call {:?}",
                oa.from_tag, oa.call_id
            ));
        }
        let mut out_ports = Vec::with_capacity(sdp.media.len());
        let mut allocated = Vec::new();
        for (i, m) in sdp.media.iter().enumerate() {
            if call.streams.len() <= i {
                call.streams.push(None);
            }
            if m.port == 0 {
                out_ports.push(None);
                continue;
            }
            if call.streams[i].is_none() {
                let a = self.allocate_leg();
                let b = a.and_then(|a| self.allocate_leg().map(|b| (a, b)));
                match b {
                    Ok((a, b)) => {
                        allocated.extend([a.rtp.port, b.rtp.port]);
                        call.streams[i] =
                            Some(self.start_stream(&oa.call_id, &m.kind, &m.proto, a, b));
                    }
                    Err(e) => {
                        // Undo this command's allocations.
                        for s in call.streams.iter_mut() {
                            if s.as_ref()
                                .is_some_and(|s| allocated.contains(&s.legs[0].rtp.port))
                            {
                                *s = None;
                            }
                        }
                        self.release_ports(&allocated);
                        if new_call {
                            calls.remove(&oa.call_id);
                        }
                        return Err(e.to_string());
                    }
                }
            }
            let Some(stream) = call.streams[i].as_ref() else {
                out_ports.push(None);
                continue;
            };
            let leg = &stream.legs[side];
            leg.rtp.announce(sdp.rtp_endpoint(i));
            leg.rtcp.announce(sdp.rtcp_endpoint(i));
            out_ports.push(Some(stream.legs[1 - side].rtp.port));
        }
        call.last_signal_ms = now;
        let body = sdp.rewrite(self.cfg.sdp_address(), &out_ports);
        drop(calls);
        self.persist(Persist::Save(oa.call_id));
        Ok(dict([
            ("result", Value::str("ok")),
            ("sdp", Value::str(&body)),
        ]))
    }

    fn delete(&self, call_id: &str) -> Result<Value, String> {
        let Some(call) = self.calls().remove(call_id) else {
            return Err(format!("Call-ID not found: {call_id:?}"));
        };
        let mut reply = call_value(&call);
        self.release_ports(&call.ports());
        drop(call);
        self.persist(Persist::Delete(call_id.to_string()));
        if let Value::Dict(d) = &mut reply {
            d.insert(b"result".to_vec(), Value::str("ok"));
        }
        Ok(reply)
    }

    fn query(&self, call_id: &str) -> Result<Value, String> {
        let calls = self.calls();
        let call = calls
            .get(call_id)
            .ok_or_else(|| format!("Call-ID not found: {call_id:?}"))?;
        let mut v = call_value(call);
        if let Value::Dict(d) = &mut v {
            d.insert(b"result".to_vec(), Value::str("ok"));
        }
        Ok(v)
    }

    fn list(&self, limit: Option<usize>) -> Value {
        let mut ids: Vec<String> = self.calls().keys().cloned().collect();
        ids.sort();
        ids.truncate(limit.unwrap_or(usize::MAX));
        dict([
            ("result", Value::str("ok")),
            (
                "calls",
                Value::List(ids.iter().map(|c| Value::str(c)).collect()),
            ),
        ])
    }

    /// Details of every call (as `query` answers), for `--status` and metrics.
    pub fn all_calls(&self) -> Vec<Value> {
        let calls = self.calls();
        let mut ids: Vec<&String> = calls.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| calls.get(id))
            .map(|c| {
                let mut v = call_value(c);
                if let Value::Dict(d) = &mut v {
                    d.insert(b"call-id".to_vec(), Value::str(&c.call_id));
                }
                v
            })
            .collect()
    }

    /// Frees calls idle for longer than the configured timeout; returns
    /// how many.
    pub fn expire_idle(&self) -> usize {
        let limit = self.cfg.timeout_secs.saturating_mul(1000);
        let now = now_ms();
        let expired: Vec<Call> = {
            let mut calls = self.calls();
            let ids: Vec<String> = calls
                .values()
                .filter(|c| now.saturating_sub(c.last_activity_ms()) > limit)
                .map(|c| c.call_id.clone())
                .collect();
            ids.iter().filter_map(|id| calls.remove(id)).collect()
        };
        for c in &expired {
            eprintln!("media-relay: call {:?} idle, freed", c.call_id);
            self.release_ports(&c.ports());
            self.persist(Persist::Delete(c.call_id.clone()));
        }
        self.stats
            .timeouts
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        expired.len()
    }

    /// The persisted form of a call, if it is held.
    pub fn snapshot(&self, call_id: &str) -> Option<Snapshot> {
        self.calls().get(call_id).map(Call::snapshot)
    }

    /// Re-creates a call from its persisted form on the same ports.
    pub fn restore(&self, snap: &Snapshot) -> Result<(), RelayError> {
        let mut bound: Vec<u16> = Vec::new();
        let mut streams = Vec::new();
        let result = (|| {
            for s in &snap.streams {
                let Some(s) = s else {
                    streams.push(None);
                    continue;
                };
                let a = self.bind_leg(s.a.port)?;
                bound.push(s.a.port);
                let b = self.bind_leg(s.b.port)?;
                bound.push(s.b.port);
                for (leg, ls) in [(&a, &s.a), (&b, &s.b)] {
                    *leg.rtp.advertised.lock().unwrap_or_else(|p| p.into_inner()) = ls.advertised;
                    leg.rtp.set_peer(ls.rtp_peer);
                    leg.rtcp.set_peer(ls.rtcp_peer);
                    leg.rtp.latched.store(ls.rtp_latched, Ordering::Release);
                    leg.rtcp.latched.store(ls.rtcp_latched, Ordering::Release);
                }
                streams.push(Some(self.start_stream(
                    &snap.call_id,
                    &s.kind,
                    &s.proto,
                    a,
                    b,
                )));
            }
            Ok(())
        })();
        if let Err(e) = result {
            drop(streams);
            self.release_ports(&bound);
            self.stats.restore_failures.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        let call = Call {
            call_id: snap.call_id.clone(),
            from_tag: snap.from_tag.clone(),
            to_tag: snap.to_tag.clone(),
            created_ms: snap.created_ms,
            // The idle clock restarts with the takeover.
            last_signal_ms: now_ms().max(snap.last_signal_ms),
            streams,
        };
        self.calls().insert(snap.call_id.clone(), call);
        self.stats.restored.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Prometheus text exposition of the relay's state.
    pub fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let s = &self.stats;
        let (used, cap) = self.port_usage();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "media_relay_control_requests_total",
            "ng control datagrams received",
            s.control_requests.load(Ordering::Relaxed),
        );
        counter(
            "media_relay_control_malformed_total",
            "ng control datagrams that could not be parsed",
            s.control_malformed.load(Ordering::Relaxed),
        );
        counter(
            "media_relay_control_errors_total",
            "ng commands answered with an error",
            s.control_errors.load(Ordering::Relaxed),
        );
        counter(
            "media_relay_timeouts_total",
            "calls freed after the idle timeout",
            s.timeouts.load(Ordering::Relaxed),
        );
        counter(
            "media_relay_restored_total",
            "calls restored from Redis at start",
            s.restored.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP media_relay_calls calls held\n# TYPE media_relay_calls gauge\nmedia_relay_calls {}",
            self.call_count()
        );
        let _ = writeln!(
            out,
            "# HELP media_relay_ports_in_use RTP ports (pairs) in use\n# TYPE media_relay_ports_in_use gauge\nmedia_relay_ports_in_use {used}\n\
             # HELP media_relay_ports_total RTP ports (pairs) in the range\n# TYPE media_relay_ports_total gauge\nmedia_relay_ports_total {cap}"
        );
        let _ = writeln!(
            out,
            "# HELP media_relay_stream_packets_total packets received per call, leg and kind\n# TYPE media_relay_stream_packets_total counter"
        );
        let mut bytes_lines = String::new();
        let mut seen_lines = String::new();
        let calls = self.calls();
        for c in calls.values() {
            let id = c
                .call_id
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            for (i, st) in c.streams.iter().enumerate() {
                let Some(st) = st else { continue };
                for (leg, l) in ["a", "b"].iter().zip(&st.legs) {
                    for (kind, e) in [("rtp", &l.rtp), ("rtcp", &l.rtcp)] {
                        let labels = format!(
                            "call_id=\"{id}\",stream=\"{i}\",leg=\"{leg}\",kind=\"{kind}\",port=\"{}\"",
                            e.port
                        );
                        let _ = writeln!(
                            out,
                            "media_relay_stream_packets_total{{{labels}}} {}",
                            e.packets.load(Ordering::Relaxed)
                        );
                        let _ = writeln!(
                            bytes_lines,
                            "media_relay_stream_bytes_total{{{labels}}} {}",
                            e.bytes.load(Ordering::Relaxed)
                        );
                        let _ = writeln!(
                            seen_lines,
                            "media_relay_stream_last_packet_ms{{{labels}}} {}",
                            e.last_ms.load(Ordering::Relaxed)
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP media_relay_stream_bytes_total bytes received per call, leg and kind\n# TYPE media_relay_stream_bytes_total counter\n{bytes_lines}\
             # HELP media_relay_stream_last_packet_ms unix time (ms) of the last packet, 0 when none\n# TYPE media_relay_stream_last_packet_ms gauge\n{seen_lines}"
        );
        out
    }

    /// Serves ng control datagrams on `sock` forever.
    pub async fn serve_control(self: Arc<Self>, sock: UdpSocket) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, src) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            let reply = self.handle_datagram(&buf[..n]);
            let _ = sock.send_to(&reply, src).await;
        }
    }

    /// Frees idle calls every second, forever.
    pub async fn sweep_loop(self: Arc<Self>) {
        let period = Duration::from_millis((self.cfg.timeout_secs * 250).clamp(100, 1000));
        loop {
            tokio::time::sleep(period).await;
            self.expire_idle();
        }
    }
}

/// The query dictionary of a call (rtpengine's layout: per tag, medias
/// with their RTP and RTCP streams, and totals).
fn call_value(call: &Call) -> Value {
    let mut tags = std::collections::BTreeMap::new();
    let mut totals = [[0u64; 3]; 2]; // [rtp, rtcp] x [packets, bytes, errors]
    let tag_names = [
        call.from_tag.clone(),
        call.to_tag.clone().unwrap_or_default(),
    ];
    for (side, tag) in tag_names.iter().enumerate() {
        let mut medias = Vec::new();
        for (i, s) in call.streams.iter().enumerate() {
            let Some(s) = s else { continue };
            let leg = &s.legs[side];
            let mut streams = Vec::new();
            for (k, e) in [&leg.rtp, &leg.rtcp].into_iter().enumerate() {
                totals[k][0] += e.packets.load(Ordering::Relaxed);
                totals[k][1] += e.bytes.load(Ordering::Relaxed);
                totals[k][2] += e.errors.load(Ordering::Relaxed);
                streams.push(dict([
                    ("local port", Value::Int(i64::from(e.port))),
                    ("endpoint", endpoint_value(e.peer())),
                    ("advertised endpoint", endpoint_value(e.advertised())),
                    ("last packet", int(e.last_ms.load(Ordering::Relaxed) / 1000)),
                    (
                        "flags",
                        Value::List(
                            [
                                Some(if k == 0 { "RTP" } else { "RTCP" }),
                                e.latched.load(Ordering::Relaxed).then_some("confirmed"),
                            ]
                            .into_iter()
                            .flatten()
                            .map(Value::str)
                            .collect(),
                        ),
                    ),
                    ("stats", e.counters()),
                ]));
            }
            medias.push(dict([
                ("index", int(i as u64 + 1)),
                ("type", Value::str(&s.kind)),
                ("protocol", Value::str(&s.proto)),
                ("streams", Value::List(streams)),
            ]));
        }
        let other = &tag_names[1 - side];
        tags.insert(
            tag.as_bytes().to_vec(),
            dict([
                ("tag", Value::str(tag)),
                ("in dialogue with", Value::str(other)),
                ("medias", Value::List(medias)),
            ]),
        );
    }
    let tot = |t: [u64; 3]| {
        dict([
            ("packets", int(t[0])),
            ("bytes", int(t[1])),
            ("errors", int(t[2])),
        ])
    };
    dict([
        ("created", int(call.created_ms / 1000)),
        ("last signal", int(call.last_signal_ms / 1000)),
        ("tags", Value::Dict(tags)),
        (
            "totals",
            dict([("RTP", tot(totals[0])), ("RTCP", tot(totals[1]))]),
        ),
    ])
}
