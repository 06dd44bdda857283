//! Sockets and tasks: front UDP/TCP/TLS listeners, the internal UDP socket,
//! the stream connection registry, keepalive pings and flood pruning. Each
//! received message goes through [`Relay::handle`] and the outcome is
//! executed here.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sip::Message;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::dispatch::{Change, Event, PairSet};
use crate::flood::{Limiter, Verdict};
use crate::metrics::{Counter, Counters};
use crate::relay::{self, Dest, DropReason, Outcome, Packet, Relay, Side, Transport};

/// Why the relay could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Address from the configuration.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// Certificate or key unusable.
    #[error("TLS {path}: {reason}")]
    Tls {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

type ConnKey = (SocketAddr, Transport);

/// State shared by all tasks.
#[derive(Debug)]
pub struct Shared {
    relay: Relay,
    pairs: RwLock<PairSet>,
    names: Vec<String>,
    flood: Mutex<Limiter>,
    exempt: HashSet<IpAddr>,
    /// Counters (also read by the metrics endpoint).
    pub counters: Counters,
    front_udp: Option<Arc<UdpSocket>>,
    internal: Arc<UdpSocket>,
    conns: Mutex<HashMap<ConnKey, mpsc::Sender<Vec<u8>>>>,
    open_streams: AtomicUsize,
    max_streams: usize,
    idle: Duration,
}

impl Shared {
    /// Prometheus text for the metrics endpoint.
    pub fn render_metrics(&self) -> String {
        let pairs: Vec<(String, bool)> = {
            let set = read(&self.pairs);
            self.names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), set.is_up(i)))
                .collect()
        };
        let banned = lock(&self.flood).banned_count(Instant::now());
        self.counters.render(&pairs, banned)
    }

    /// One-line status for logs (SIGUSR1).
    pub fn status_line(&self) -> String {
        let c = &self.counters;
        let set = read(&self.pairs);
        format!(
            "pairs up {}/{}; rx udp {} tcp {} tls {} internal {}; forwarded req {} resp {}; malformed {}; flood drops {} bans {}",
            set.up_count(),
            set.len(),
            c.get(Counter::RxUdp),
            c.get(Counter::RxTcp),
            c.get(Counter::RxTls),
            c.get(Counter::RxInternal),
            c.get(Counter::FwdRequests),
            c.get(Counter::FwdResponses),
            c.get(Counter::DropMalformed),
            c.get(Counter::DropFlood),
            c.get(Counter::Bans),
        )
    }
}

// A poisoned lock only means another task panicked mid-update of plain data;
// the data is still usable, so recover it instead of propagating the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// Where a locally generated reply goes.
enum ReplyPath<'a> {
    Udp(&'a UdpSocket, SocketAddr),
    Stream(&'a mpsc::Sender<Vec<u8>>),
}

/// Binds every socket, spawns every task, and returns the shared state once
/// all listeners are ready.
pub async fn start(cfg: &Config) -> Result<Arc<Shared>, StartError> {
    let fb = cfg.listen.freebind;
    let bind_err = |what: &'static str, addr: SocketAddr| {
        move |source: std::io::Error| StartError::Bind { what, addr, source }
    };
    let a = cfg.listen.internal;
    let internal = Arc::new(udp_socket(a, fb).map_err(bind_err("listen.internal", a))?);
    let front_udp = match cfg.listen.udp {
        Some(a) => Some(Arc::new(
            udp_socket(a, fb).map_err(bind_err("listen.udp", a))?,
        )),
        None => None,
    };
    let tcp = match cfg.listen.tcp {
        Some(a) => Some(tcp_listener(a, fb).map_err(bind_err("listen.tcp", a))?),
        None => None,
    };
    let tls = match (cfg.listen.tls, &cfg.tls) {
        (Some(a), Some(files)) => {
            let acceptor = tls_acceptor(&files.cert, &files.key)?;
            Some((
                tcp_listener(a, fb).map_err(bind_err("listen.tls", a))?,
                acceptor,
            ))
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        relay: Relay::new(cfg),
        pairs: RwLock::new(PairSet::new(cfg.proxies.len(), cfg.keepalive.failures)),
        names: cfg.proxies.iter().map(|p| p.name.clone()).collect(),
        flood: Mutex::new(Limiter::new(
            cfg.flood.rate,
            cfg.flood.burst,
            Duration::from_secs(cfg.flood.ban_secs),
        )),
        exempt: cfg.proxies.iter().map(|p| p.address.ip()).collect(),
        counters: Counters::new(cfg.proxies.len()),
        front_udp: front_udp.clone(),
        internal: Arc::clone(&internal),
        conns: Mutex::new(HashMap::new()),
        open_streams: AtomicUsize::new(0),
        max_streams: cfg.streams.max_connections,
        idle: Duration::from_secs(cfg.streams.idle_secs),
    });
    for _ in 0..cfg.listen.workers {
        tokio::spawn(udp_loop(
            Arc::clone(&shared),
            Arc::clone(&internal),
            Side::Internal,
        ));
        if let Some(s) = &front_udp {
            tokio::spawn(udp_loop(Arc::clone(&shared), Arc::clone(s), Side::Front));
        }
    }
    if let Some(l) = tcp {
        tokio::spawn(accept_tcp(Arc::clone(&shared), l));
    }
    if let Some((l, acceptor)) = tls {
        tokio::spawn(accept_tls(Arc::clone(&shared), l, acceptor));
    }
    tokio::spawn(keepalive(
        Arc::clone(&shared),
        Duration::from_millis(cfg.keepalive.interval_ms),
    ));
    tokio::spawn(prune(Arc::clone(&shared)));
    Ok(shared)
}

fn new_socket(
    addr: SocketAddr,
    ty: socket2::Type,
    freebind: bool,
) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    if freebind {
        if addr.is_ipv4() {
            s.set_freebind_v4(true)?;
        } else {
            s.set_freebind_v6(true)?;
        }
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A UDP socket with a large receive buffer (bursts of small datagrams
/// otherwise overflow the default one), optionally IP_FREEBIND.
fn udp_socket(addr: SocketAddr, freebind: bool) -> std::io::Result<UdpSocket> {
    let s = new_socket(addr, socket2::Type::DGRAM, freebind)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn tcp_listener(addr: SocketAddr, freebind: bool) -> std::io::Result<TcpListener> {
    let s = new_socket(addr, socket2::Type::STREAM, freebind)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |path: &std::path::Path, reason: String| StartError::Tls {
        path: path.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(cert, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(err(cert, "no CERTIFICATE block found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| err(key, format!("cannot read private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(cert, format!("certificate and key do not fit: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn udp_loop(shared: Arc<Shared>, sock: Arc<UdpSocket>, side: Side) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors surface here on Linux; keep serving.
            Err(_) => continue,
        };
        let pkt = Packet {
            src,
            transport: Transport::Udp,
            side,
        };
        if !admit(&shared, &pkt) {
            continue;
        }
        shared.counters.inc(match side {
            Side::Front => Counter::RxUdp,
            Side::Internal => Counter::RxInternal,
        });
        let outcome = {
            let pairs = read(&shared.pairs);
            shared.relay.handle_datagram(&buf[..n], &pkt, &pairs)
        };
        execute(&shared, outcome, &pkt, ReplyPath::Udp(&sock, src)).await;
    }
}

/// Flood protection for front-side sources (proxies are exempt).
fn admit(shared: &Shared, pkt: &Packet) -> bool {
    if pkt.side == Side::Internal || shared.exempt.contains(&pkt.src.ip()) {
        return true;
    }
    match lock(&shared.flood).check(pkt.src.ip(), Instant::now()) {
        Verdict::Allow => true,
        Verdict::BanStarted => {
            shared.counters.inc(Counter::Bans);
            shared.counters.inc(Counter::DropFlood);
            eprintln!("sip-lb: banning {} (flood)", pkt.src.ip());
            false
        }
        Verdict::Banned => {
            shared.counters.inc(Counter::DropFlood);
            false
        }
    }
}

async fn execute(shared: &Arc<Shared>, outcome: Outcome, pkt: &Packet, reply: ReplyPath<'_>) {
    let c = &shared.counters;
    match outcome {
        Outcome::Forward {
            dest,
            bytes,
            request,
            pair,
        } => {
            if let Some(i) = pair {
                c.dispatched(i);
            }
            if send(shared, &dest, bytes).await {
                c.inc(if request {
                    Counter::FwdRequests
                } else {
                    Counter::FwdResponses
                });
            } else {
                c.inc(Counter::SendErrors);
            }
        }
        Outcome::Reply { status, bytes } => {
            c.reply(status);
            let ok = match reply {
                ReplyPath::Udp(sock, to) => sock.send_to(&bytes, to).await.is_ok(),
                ReplyPath::Stream(tx) => tx.try_send(bytes).is_ok(),
            };
            if !ok {
                c.inc(Counter::SendErrors);
            }
        }
        Outcome::Keepalive { pair } => {
            c.inc(Counter::KeepaliveReplies);
            if write(&shared.pairs).on_event(pair, Event::Reply) == Change::MarkedUp {
                c.inc(Counter::PairUp);
                eprintln!(
                    "sip-lb: proxy pair {} ({}) is up again",
                    shared.names[pair], pkt.src
                );
            }
        }
        Outcome::Drop(reason) => c.inc(match reason {
            DropReason::Malformed => Counter::DropMalformed,
            DropReason::BadRequest => Counter::DropBadRequest,
            DropReason::BadResponse => Counter::DropBadResponse,
            DropReason::NotOurVia => Counter::DropNotOurVia,
            DropReason::NoNextVia => Counter::DropNoNextVia,
            DropReason::BadTransport => Counter::DropBadTransport,
        }),
    }
}

async fn resolve(dest: &Dest) -> Option<SocketAddr> {
    if let Some(a) = dest.addr() {
        return Some(a);
    }
    let target = format!("{}:{}", dest.host, dest.port);
    let lookup = tokio::net::lookup_host(target);
    let found = tokio::time::timeout(Duration::from_secs(2), lookup).await;
    match found {
        Ok(Ok(mut it)) => it.next(),
        _ => None,
    }
}

async fn send(shared: &Arc<Shared>, dest: &Dest, bytes: Vec<u8>) -> bool {
    let Some(addr) = resolve(dest).await else {
        return false;
    };
    match (dest.side, dest.transport) {
        (Side::Internal, _) => shared.internal.send_to(&bytes, addr).await.is_ok(),
        (Side::Front, Transport::Udp) => match &shared.front_udp {
            Some(s) => s.send_to(&bytes, addr).await.is_ok(),
            None => false,
        },
        (Side::Front, t) => {
            let existing = lock(&shared.conns).get(&(addr, t)).cloned();
            if let Some(tx) = existing {
                return tx.try_send(bytes).is_ok();
            }
            // TLS needs the client's own connection; TCP we may open.
            if t != Transport::Tcp {
                return false;
            }
            let connect = TcpStream::connect(addr);
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(3), connect).await else {
                return false;
            };
            let tx = register_stream(shared, stream, addr, Transport::Tcp);
            tx.try_send(bytes).is_ok()
        }
    }
}

async fn accept_tcp(shared: Arc<Shared>, l: TcpListener) {
    loop {
        let Ok((s, peer)) = l.accept().await else {
            continue;
        };
        if at_stream_limit(&shared) {
            drop(s);
            continue;
        }
        register_stream(&shared, s, peer, Transport::Tcp);
    }
}

async fn accept_tls(shared: Arc<Shared>, l: TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    loop {
        let Ok((s, peer)) = l.accept().await else {
            continue;
        };
        if at_stream_limit(&shared) {
            drop(s);
            continue;
        }
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await;
            if let Ok(Ok(tls)) = hs {
                register_stream(&shared, tls, peer, Transport::Tls);
            }
        });
    }
}

fn at_stream_limit(shared: &Shared) -> bool {
    let full = shared.open_streams.load(Ordering::Relaxed) >= shared.max_streams;
    if full {
        shared.counters.inc(Counter::StreamRejected);
    }
    full
}

/// Registers a connection for sending and spawns its reader and writer.
fn register_stream<S>(
    shared: &Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    t: Transport,
) -> mpsc::Sender<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    shared.counters.inc(Counter::StreamConnections);
    shared.open_streams.fetch_add(1, Ordering::Relaxed);
    let (rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    lock(&shared.conns).insert((peer, t), tx.clone());
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let me = tx.clone();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        read_stream(&shared, rd, peer, t, &me).await;
        shared.open_streams.fetch_sub(1, Ordering::Relaxed);
        let mut conns = lock(&shared.conns);
        if conns.get(&(peer, t)).is_some_and(|c| c.same_channel(&me)) {
            conns.remove(&(peer, t));
        }
    });
    tx
}

async fn read_stream<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    mut rd: R,
    peer: SocketAddr,
    t: Transport,
    tx: &mpsc::Sender<Vec<u8>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16_384];
    let pkt = Packet {
        src: peer,
        transport: t,
        side: Side::Front,
    };
    loop {
        let n = match tokio::time::timeout(shared.idle, rd.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => {
                shared.counters.inc(Counter::StreamIdleClosed);
                return;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match Message::parse_stream(&buf) {
                Ok(None) => break,
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    if !admit(shared, &pkt) {
                        continue;
                    }
                    shared.counters.inc(if t == Transport::Tls {
                        Counter::RxTls
                    } else {
                        Counter::RxTcp
                    });
                    let outcome = {
                        let pairs = read(&shared.pairs);
                        shared.relay.handle(msg, &pkt, &pairs)
                    };
                    execute(shared, outcome, &pkt, ReplyPath::Stream(tx)).await;
                }
                Err(_) => {
                    // Framing is lost on a stream: count and close the connection.
                    shared.counters.inc(Counter::DropMalformed);
                    return;
                }
            }
        }
    }
}

async fn keepalive(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut seq: u64 = 0;
    loop {
        tick.tick().await;
        seq += 1;
        for (i, &addr) in shared.relay.proxies().iter().enumerate() {
            if write(&shared.pairs).on_event(i, Event::ProbeDue) == Change::MarkedDown {
                shared.counters.inc(Counter::PairDown);
                eprintln!(
                    "sip-lb: proxy pair {} ({addr}) stopped answering OPTIONS; its share moves to the next pair",
                    shared.names[i]
                );
            }
            let ping = relay::keepalive_request(shared.relay.internal(), addr, i, seq);
            if shared.internal.send_to(&ping, addr).await.is_ok() {
                shared.counters.inc(Counter::KeepaliveSent);
            }
        }
    }
}

async fn prune(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        lock(&shared.flood).prune(Instant::now());
    }
}
