//! The proxy core: one UDP socket, RFC 3261 §16 stateful proxying on top of
//! the §17 transactions in [`crate::transaction`], the registrar, call
//! limits and accounting.
//!
//! Message flow: a datagram is parsed (bad ones are counted and answered
//! with 400 when a reply is possible, never fatal); requests are matched to
//! server transactions synchronously (retransmissions answered from the
//! transaction), new ones are routed in a spawned task (database and Redis
//! look-ups), responses are matched to client transactions and folded into
//! the response context of their request (§16.7 best-response selection).
//! ACKs for 2xx and retransmitted 2xx are forwarded statelessly along
//! Route/Via. The mutex around [`State`] is never held across an await.

use crate::calls::{CallRecord, Calls, Counter, Side};
use crate::config::Config;
use crate::digest::NonceKey;
use crate::location::{Binding, Location};
use crate::registrar::{self, AuthContext, AuthKind, AuthOutcome, ExpiryPolicy};
use crate::spool::{Event, EventKind, Spool};
use crate::subscriber::SubscriberDb;
use crate::transaction::{
    self as tx, ClientAction, ClientEvent, ClientState, ServerAction, ServerEvent, ServerState,
    Timer,
};
use rand::Rng;
use sip::{HeaderName, Host, Message, Method, Request, Response, Uri, Via};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UdpSocket;

/// RFC 3261 §16.6 step 11: Timer C, longer than 3 minutes.
const TIMER_C: Duration = Duration::from_secs(181);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("binding UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] crate::subscriber::SubscriberError),
    #[error("connecting to redis {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error(transparent)]
    Registrar(#[from] registrar::RegistrarError),
    #[error("media relay: {0}")]
    Media(#[from] crate::media::MediaError),
}

/// Counters for the health probe and the logs.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub registrations: AtomicU64,
    pub calls_started: AtomicU64,
    pub calls_rejected_limit: AtomicU64,
    pub backend_errors: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    /// INVITE for INVITE, ACK and CANCEL matching (§17.2.3).
    method: String,
}

#[derive(Debug)]
struct ServerTx {
    id: u64,
    state: ServerState,
    req: Request,
    peer: SocketAddr,
    last: Option<Vec<u8>>,
    ctx: Option<u64>,
    to_tag: String,
}

#[derive(Debug)]
struct ClientTx {
    id: u64,
    state: ClientState,
    req: Request,
    bytes: Vec<u8>,
    dest: SocketAddr,
    ctx: Option<u64>,
    /// CANCEL requested before any provisional arrived (§9.1).
    cancel_pending: bool,
}

#[derive(Debug)]
struct BranchRef {
    key: String,
    done: bool,
}

/// Call bookkeeping attached to an initial INVITE.
#[derive(Debug, Clone)]
struct CallInfo {
    record: CallRecord,
}

/// Response context of one proxied request (§16.7).
#[derive(Debug)]
struct ForkCtx {
    server: ServerKey,
    branches: Vec<BranchRef>,
    /// Still in the routing task (no branches yet).
    routing: bool,
    best: Option<Response>,
    answered: bool,
    final_sent: bool,
    cancelled: bool,
    call: Option<CallInfo>,
}

impl ForkCtx {
    /// Keys of the branches that have no final response yet.
    fn open_branches(&self) -> Vec<String> {
        self.branches
            .iter()
            .filter(|b| !b.done)
            .map(|b| b.key.clone())
            .collect()
    }
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    servers: HashMap<ServerKey, ServerTx>,
    clients: HashMap<String, ClientTx>,
    ctxs: HashMap<u64, ForkCtx>,
    /// Call-IDs whose `start` is being written: their 2xx retransmissions
    /// are held back until it is durable (the UAS retransmits anyway).
    accounting: std::collections::HashSet<String>,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

#[derive(Debug, Clone)]
enum TimerTarget {
    Server(ServerKey, u64),
    Client(String, u64),
    Ctx(u64),
}

/// The running proxy; clone the `Arc` to share.
pub struct Proxy {
    cfg: Config,
    sock: UdpSocket,
    local: SocketAddr,
    loc: Location,
    calls: Calls,
    spool: Spool,
    auth: AuthContext,
    state: Mutex<State>,
    /// Lets timers and spawned tasks reach the proxy from `&self`.
    me: std::sync::Weak<Proxy>,
    pub stats: Stats,
    last_malformed_log: AtomicU64,
    /// Set at start when `[media_relay]` is configured (see [`crate::media`]).
    media: std::sync::OnceLock<crate::media::Media>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("local", &self.local).finish()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_token(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

fn sent_by(v: &Via) -> String {
    format!("{}:{}", v.host, v.port.unwrap_or(5060))
}

/// Where a URI points when its host is a literal address.
fn uri_addr(u: &Uri) -> Option<SocketAddr> {
    u.host
        .ip()
        .map(|ip| SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

/// Next-hop address of a URI. Only literal addresses are routed: inside
/// the cluster every hop (lb Path, proxy Record-Route, phone contacts as
/// seen by the lb) is an IP, and resolving names taken from packets would
/// let any sender make the proxy block on DNS.
async fn resolve(u: &Uri) -> Option<SocketAddr> {
    uri_addr(u)
}

fn log(msg: std::fmt::Arguments<'_>) {
    eprintln!("sip-proxy: {msg}");
}

impl Proxy {
    /// Connects to MariaDB and Redis, opens the spool and binds the socket.
    pub async fn start(cfg: Config) -> Result<Arc<Self>, ProxyError> {
        let db = SubscriberDb::connect(&cfg.database_url, cfg.database_max_connections).await?;
        let redis_err = |source| ProxyError::Redis {
            url: cfg.redis_url.clone(),
            source,
        };
        let client = redis::Client::open(cfg.redis_url.as_str()).map_err(redis_err)?;
        let conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(redis_err)?;
        let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes)?;
        let sock = UdpSocket::bind(cfg.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local = sock.local_addr().map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let auth = AuthContext {
            db,
            nonce: NonceKey::new(cfg.nonce_secret.as_bytes(), cfg.nonce_lifetime_secs),
            algorithms: cfg.digest_algorithms(),
            replay: Some(conn.clone()),
            // A stale nonce is refused anyway; remember a bit longer than that.
            replay_secs: cfg.nonce_lifetime_secs + 30,
        };
        let proxy = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            loc: Location::new(conn.clone()),
            calls: Calls::new(conn, &cfg.node, cfg.call_ttl_secs),
            spool,
            auth,
            sock,
            local,
            cfg,
            state: Mutex::new(State::default()),
            stats: Stats::default(),
            last_malformed_log: AtomicU64::new(0),
            media: std::sync::OnceLock::new(),
        });
        if let Some(mcfg) = &proxy.cfg.media_relay {
            // Rewritten answers re-enter the normal response path.
            let weak = Arc::downgrade(&proxy);
            let media = crate::media::Media::start(mcfg, move |bytes, src| {
                if let Some(p) = weak.upgrade() {
                    p.on_datagram(&bytes, src);
                }
            })
            .await?;
            let _ = proxy.media.set(media);
        }
        Ok(proxy)
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn rr_addr(&self) -> SocketAddr {
        match self.cfg.record_route {
            Some(a) => a,
            None => self.local,
        }
    }

    /// The sent-by of our Via, where the next hop sends responses (RFC
    /// 3261 §18.2.1). A proxy listening on every address (so that it
    /// serves its pair's shared address after a takeover) names its
    /// Record-Route address there: `0.0.0.0` would send them nowhere.
    fn via_addr(&self) -> SocketAddr {
        if self.local.ip().is_unspecified() {
            self.rr_addr()
        } else {
            self.local
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving with
        // the state as it was rather than wedging every call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receives and handles datagrams forever; spawns the call refresher.
    pub async fn run(self: Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.refresh_loop().await });
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, src) = match self.sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    log(format_args!("recv: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = self.media.get() {
                if m.take_answer(&buf[..n], src) {
                    continue;
                }
            }
            self.on_datagram(&buf[..n], src);
        }
    }

    fn send(&self, bytes: &[u8], dest: SocketAddr) {
        if let Err(e) = self.sock.try_send_to(bytes, dest) {
            log(format_args!("send to {dest}: {e}"));
        }
    }

    fn on_datagram(self: &Arc<Self>, buf: &[u8], src: SocketAddr) {
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        match Message::parse(buf) {
            Ok(Message::Request(r)) => self.on_request(r, src),
            Ok(Message::Response(r)) => self.on_response(r, src),
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                self.log_malformed(format_args!("malformed datagram from {src}: {e}"));
            }
        }
    }

    /// Logs a bad packet, at most one line per second so a flood cannot
    /// fill the log; the total is in [`Stats::malformed`].
    fn log_malformed(&self, msg: std::fmt::Arguments<'_>) {
        let now = now_secs();
        if self.last_malformed_log.swap(now, Ordering::Relaxed) != now {
            let total = self.stats.malformed.load(Ordering::Relaxed);
            log(format_args!("{msg} ({total} bad packets so far)"));
        }
    }

    fn is_own(&self, u: &Uri) -> bool {
        match uri_addr(u) {
            Some(a) => a == self.rr_addr() || a == self.local,
            None => false,
        }
    }

    fn serves_domain(&self, host: &Host) -> bool {
        let h = host.to_string();
        self.cfg.domains.iter().any(|d| d.eq_ignore_ascii_case(&h))
    }

    fn reply_stateless(&self, req: &Request, src: SocketAddr, code: u16, reason: &str) {
        let r = Response::reply_to(req, code, reason, Some(&random_token(10)));
        let dest = req
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.response_target())
            .unwrap_or(src);
        self.send(&r.to_bytes(), dest);
    }

    fn on_request(self: &Arc<Self>, mut req: Request, src: SocketAddr) {
        if let Err(e) = req.validate() {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            self.log_malformed(format_args!("bad {} request from {src}: {e}", req.method));
            if req.method != Method::Ack && req.headers.top_via().is_ok() {
                self.reply_stateless(&req, src, 400, "Bad Request");
            }
            return;
        }
        // §18.2.1: note where the request really came from.
        let Ok(mut via) = req.headers.top_via() else {
            return;
        };
        if via.host.ip() != Some(src.ip()) {
            via.params.set("received", Some(&src.ip().to_string()));
        }
        if via.params.contains("rport") {
            via.params.set("rport", Some(&src.port().to_string()));
        }
        if let Some(v) = req.headers.first_mut(&HeaderName::Via) {
            *v = via.to_string();
        }
        let peer = via.response_target().unwrap_or(src);
        let Some(branch) = via.branch().map(str::to_string) else {
            self.reply_stateless(&req, src, 400, "Missing Via Branch");
            return;
        };
        let mut key = ServerKey {
            branch,
            sent_by: sent_by(&via),
            method: req.method.as_str().to_string(),
        };
        if req.headers.max_forwards().ok().flatten() == Some(0)
            && !matches!(req.method, Method::Ack)
        {
            self.reply_stateless(&req, src, 483, "Too Many Hops");
            return;
        }
        match req.method {
            Method::Ack => {
                key.method = "INVITE".into();
                let mut st = self.lock();
                if let Some(t) = st.servers.get(&key) {
                    if matches!(
                        t.state,
                        ServerState::Completed { .. } | ServerState::Confirmed
                    ) {
                        self.server_event(&mut st, &key, ServerEvent::Ack);
                        return;
                    }
                }
                drop(st);
                // ACK for a 2xx: its own transaction, forwarded statelessly.
                let me = self.clone();
                tokio::spawn(async move { me.forward_stateless(req).await });
                return;
            }
            Method::Cancel => {
                key.method = "INVITE".into();
                self.on_cancel(&req, &key, peer);
                return;
            }
            _ => {}
        }
        let mut st = self.lock();
        if st.servers.contains_key(&key) {
            self.server_event(&mut st, &key, ServerEvent::Retransmission);
            return;
        }
        let id = st.id();
        let invite = req.method == Method::Invite;
        let ctx = if invite || req.method != Method::Register {
            let cid = st.id();
            st.ctxs.insert(
                cid,
                ForkCtx {
                    server: key.clone(),
                    branches: Vec::new(),
                    routing: true,
                    best: None,
                    answered: false,
                    final_sent: false,
                    cancelled: false,
                    call: None,
                },
            );
            Some(cid)
        } else {
            None
        };
        st.servers.insert(
            key.clone(),
            ServerTx {
                id,
                state: tx::server_start(invite),
                req: req.clone(),
                peer,
                last: None,
                ctx,
                to_tag: random_token(12),
            },
        );
        if invite {
            // §16.2: a stateful proxy answers INVITE with 100 at once.
            let trying = Response::reply_to(&req, 100, "Trying", None);
            self.respond_locked(&mut st, &key, trying);
        }
        drop(st);
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.route(key.clone(), req, src, ctx).await {
                me.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
                log(format_args!("routing failed: {e}"));
                me.respond_code(&key, 500, "Server Internal Error");
            }
        });
    }

    /// Sends a response through the server transaction `key`.
    fn respond_locked(&self, st: &mut State, key: &ServerKey, resp: Response) {
        let Some(t) = st.servers.get_mut(key) else {
            return;
        };
        let bytes = resp.to_bytes();
        let (next, actions) = tx::server_step(t.state, ServerEvent::Respond(resp.status));
        t.state = next;
        let peer = t.peer;
        let id = t.id;
        for a in actions {
            match a {
                ServerAction::Send => {
                    self.send(&bytes, peer);
                    if let Some(t) = st.servers.get_mut(key) {
                        t.last = Some(bytes.clone());
                    }
                }
                ServerAction::Resend | ServerAction::AckTimeout => {}
                ServerAction::Arm(timer, d) => {
                    self.arm(TimerTarget::Server(key.clone(), id), timer, d)
                }
            }
        }
        if next == ServerState::Terminated {
            st.servers.remove(key);
        }
    }

    fn respond_code(&self, key: &ServerKey, code: u16, reason: &str) {
        let mut st = self.lock();
        let Some(t) = st.servers.get(key) else { return };
        let r = Response::reply_to(&t.req, code, reason, Some(&t.to_tag));
        if let Some(cid) = t.ctx {
            if let Some(c) = st.ctxs.get_mut(&cid) {
                c.final_sent = true;
                c.routing = false;
            }
        }
        self.maybe_drop_ctx(&mut st, key);
        self.respond_locked(&mut st, key, r);
    }

    /// Sends a response generated here (not relayed); a final one ends a
    /// response context that never got branches.
    fn respond(&self, key: &ServerKey, resp: Response) {
        let mut st = self.lock();
        if resp.status >= 200 {
            self.maybe_drop_ctx(&mut st, key);
        }
        self.respond_locked(&mut st, key, resp);
    }

    fn server_event(&self, st: &mut State, key: &ServerKey, ev: ServerEvent) {
        let Some(t) = st.servers.get_mut(key) else {
            return;
        };
        let (next, actions) = tx::server_step(t.state, ev);
        t.state = next;
        let (id, peer, last) = (t.id, t.peer, t.last.clone());
        for a in actions {
            match a {
                ServerAction::Resend => {
                    if let Some(b) = &last {
                        self.send(b, peer);
                    }
                }
                ServerAction::Arm(timer, d) => {
                    self.arm(TimerTarget::Server(key.clone(), id), timer, d)
                }
                ServerAction::Send | ServerAction::AckTimeout => {}
            }
        }
        if next == ServerState::Terminated {
            st.servers.remove(key);
        }
    }

    fn arm(&self, target: TimerTarget, timer: Timer, d: Duration) {
        let Some(me) = self.self_arc() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            me.on_timer(target, timer);
        });
    }

    fn self_arc(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    fn on_timer(self: &Arc<Self>, target: TimerTarget, timer: Timer) {
        let mut st = self.lock();
        match target {
            TimerTarget::Server(key, id) => {
                if st.servers.get(&key).map(|t| t.id) == Some(id) {
                    self.server_event(&mut st, &key, ServerEvent::Timer(timer));
                }
            }
            TimerTarget::Client(key, id) => {
                if st.clients.get(&key).map(|t| t.id) == Some(id) {
                    self.client_event(&mut st, &key, ClientEvent::Timer(timer), None);
                }
            }
            TimerTarget::Ctx(cid) => {
                // Timer C: give up on branches that only sent provisionals.
                let keys: Vec<String> = match st.ctxs.get(&cid) {
                    Some(c) if !c.final_sent && !c.answered => c.open_branches(),
                    _ => vec![],
                };
                for k in keys {
                    self.cancel_branch(&mut st, &k);
                }
            }
        }
    }

    // ---------------------------------------------------------------- CANCEL

    fn on_cancel(self: &Arc<Self>, req: &Request, key: &ServerKey, peer: SocketAddr) {
        let mut st = self.lock();
        let Some(t) = st.servers.get(key) else {
            drop(st);
            self.reply_stateless(req, peer, 481, "Call/Transaction Does Not Exist");
            return;
        };
        // §9.2: answer the CANCEL itself with 200.
        let ok = Response::reply_to(req, 200, "OK", Some(&t.to_tag));
        self.send(&ok.to_bytes(), peer);
        if let (Some(m), Ok(id)) = (self.media.get(), req.headers.call_id()) {
            m.delete(id);
        }
        let Some(cid) = t.ctx else { return };
        let Some(ctx) = st.ctxs.get_mut(&cid) else {
            return;
        };
        if ctx.final_sent || ctx.answered {
            return;
        }
        ctx.cancelled = true;
        let pending = ctx.open_branches();
        let routing = ctx.routing;
        if routing || pending.is_empty() {
            // Nothing sent downstream yet: end the INVITE here (§16.10).
            let req_inv = st
                .servers
                .get(key)
                .map(|t| (t.req.clone(), t.to_tag.clone()));
            if let Some((inv, tag)) = req_inv {
                if let Some(c) = st.ctxs.get_mut(&cid) {
                    c.final_sent = true;
                }
                let r = Response::reply_to(&inv, 487, "Request Terminated", Some(&tag));
                self.respond_locked(&mut st, key, r);
            }
            return;
        }
        for k in pending {
            self.cancel_branch(&mut st, &k);
        }
    }

    /// Sends CANCEL for a pending INVITE branch, or marks it to be sent once
    /// a provisional arrives (§9.1).
    fn cancel_branch(&self, st: &mut State, key: &str) {
        let Some(c) = st.clients.get_mut(key) else {
            return;
        };
        match c.state {
            ClientState::Proceeding { invite: true, .. } => {
                let cancel = build_cancel(&c.req);
                let dest = c.dest;
                self.start_client(st, cancel, dest, None);
            }
            ClientState::Calling { invite: true, .. } => c.cancel_pending = true,
            _ => {}
        }
    }

    // --------------------------------------------------------------- routing

    async fn route(
        self: &Arc<Self>,
        key: ServerKey,
        mut req: Request,
        src: SocketAddr,
        ctx: Option<u64>,
    ) -> Result<(), ProxyError> {
        // §16.4: remove our own Route entry (loose routing).
        if let Ok(routes) = req.headers.routes() {
            if routes.first().is_some_and(|r| self.is_own(&r.uri)) {
                req.headers.remove_first(&HeaderName::Route);
            }
        }
        let has_route = req.headers.count(&HeaderName::Route) > 0;
        let uri_ours = self.serves_domain(&req.uri.host) || self.is_own(&req.uri);
        let in_dialog = req
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .is_some();

        if has_route || !uri_ours {
            if !has_route && !in_dialog {
                // We are not an open relay for foreign domains.
                self.finish_routing(ctx);
                self.respond_code(&key, 403, "Relaying Denied");
                return Ok(());
            }
            if req.method == Method::Bye {
                self.end_call(req.headers.call_id().unwrap_or_default(), "bye")
                    .await;
            }
            if req.method == Method::Invite && !self.engage_media(&key, ctx, &mut req).await {
                return Ok(());
            }
            let target = if has_route {
                req.headers
                    .routes()
                    .ok()
                    .and_then(|r| r.first().map(|n| n.uri.clone()))
            } else {
                Some(req.uri.clone())
            };
            let dest = match target {
                Some(u) => resolve(&u).await,
                None => None,
            };
            let Some(dest) = dest else {
                self.finish_routing(ctx);
                self.respond_code(&key, 404, "Next Hop Not Resolvable");
                return Ok(());
            };
            decrement_max_forwards(&mut req);
            if self.cancelled(ctx) {
                return Ok(());
            }
            self.fork(&key, ctx, vec![(req, dest)], None);
            return Ok(());
        }

        let now = now_secs();
        match req.method {
            Method::Register => {
                let tag = self.to_tag(&key);
                let policy = ExpiryPolicy {
                    min: self.cfg.min_expires,
                    max: self.cfg.max_expires,
                    default: self.cfg.default_expires,
                };
                let resp = registrar::register(&self.auth, &self.loc, policy, &req, src, &tag, now)
                    .await?;
                if resp.status == 200 {
                    self.stats.registrations.fetch_add(1, Ordering::Relaxed);
                }
                self.respond(&key, resp);
                Ok(())
            }
            Method::Options if req.uri.user.is_none() => {
                self.finish_routing(ctx);
                let tag = self.to_tag(&key);
                let mut r = Response::reply_to(&req, 200, "OK", Some(&tag));
                r.headers.push(
                    HeaderName::Allow,
                    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER",
                );
                self.respond(&key, r);
                Ok(())
            }
            _ if in_dialog => {
                self.finish_routing(ctx);
                self.respond_code(&key, 481, "Call/Transaction Does Not Exist");
                Ok(())
            }
            Method::Invite => self.route_invite(key, req, ctx, now).await,
            _ => self.route_to_subscriber(key, req, ctx, now).await,
        }
    }

    fn to_tag(&self, key: &ServerKey) -> String {
        self.lock()
            .servers
            .get(key)
            .map(|t| t.to_tag.clone())
            .unwrap_or_else(|| random_token(12))
    }

    fn finish_routing(&self, ctx: Option<u64>) {
        if let Some(cid) = ctx {
            if let Some(c) = self.lock().ctxs.get_mut(&cid) {
                c.routing = false;
            }
        }
    }

    fn cancelled(&self, ctx: Option<u64>) -> bool {
        ctx.and_then(|cid| self.lock().ctxs.get(&cid).map(|c| c.cancelled))
            .unwrap_or(false)
    }

    async fn callee_bindings(
        &self,
        key: &ServerKey,
        req: &Request,
        ctx: Option<u64>,
        now: u64,
    ) -> Result<Option<(crate::subscriber::Subscriber, Vec<Binding>)>, ProxyError> {
        let Some(user) = req.uri.user.clone() else {
            self.finish_routing(ctx);
            self.respond_code(key, 404, "Not Found");
            return Ok(None);
        };
        let domain = req.uri.host.to_string();
        let Some(callee) = self.auth.db.find(&user, &domain).await? else {
            self.finish_routing(ctx);
            self.respond_code(key, 404, "Not Found");
            return Ok(None);
        };
        let bindings = match self.loc.lookup(&callee.aor(), now).await {
            Ok(b) => b,
            Err(e) => {
                log(format_args!("{e}"));
                self.finish_routing(ctx);
                self.respond_code(key, 500, "Location Service Unavailable");
                return Ok(None);
            }
        };
        if bindings.is_empty() {
            self.finish_routing(ctx);
            self.respond_code(key, 480, "Temporarily Unavailable");
            return Ok(None);
        }
        Ok(Some((callee, bindings)))
    }

    async fn route_to_subscriber(
        self: &Arc<Self>,
        key: ServerKey,
        mut req: Request,
        ctx: Option<u64>,
        now: u64,
    ) -> Result<(), ProxyError> {
        let Some((_, bindings)) = self.callee_bindings(&key, &req, ctx, now).await? else {
            return Ok(());
        };
        decrement_max_forwards(&mut req);
        let mut targets = Vec::new();
        if let Some(b) = bindings.first() {
            if let Some(t) = branch_request(&req, b).await {
                targets.push(t);
            }
        }
        self.fork(&key, ctx, targets, None);
        Ok(())
    }

    async fn route_invite(
        self: &Arc<Self>,
        key: ServerKey,
        mut req: Request,
        ctx: Option<u64>,
        now: u64,
    ) -> Result<(), ProxyError> {
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(_) => {
                self.finish_routing(ctx);
                self.respond_code(&key, 400, "Bad From");
                return Ok(());
            }
        };
        // The caller: one of our subscribers must authenticate (407).
        let mut caller = None;
        if self.serves_domain(&from.uri.host) {
            let realm = from.uri.host.to_string();
            let user = from.uri.user.clone().unwrap_or_default();
            if self.cfg.authenticate_invite {
                match self
                    .auth
                    .check(&req, AuthKind::Proxy, &realm, &user, now)
                    .await
                {
                    Ok(AuthOutcome::Authenticated(s)) => caller = Some(*s),
                    Ok(AuthOutcome::Challenge { stale }) => {
                        self.finish_routing(ctx);
                        let tag = self.to_tag(&key);
                        let r =
                            self.auth
                                .challenge(&req, AuthKind::Proxy, &realm, stale, &tag, now);
                        self.mark_final(ctx);
                        self.respond(&key, r);
                        self.drop_ctx(ctx);
                        return Ok(());
                    }
                    Ok(AuthOutcome::Forbidden(why)) => {
                        self.finish_routing(ctx);
                        self.respond_code(&key, 403, why);
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
                req.headers.remove_all(&HeaderName::ProxyAuthorization);
            } else if let Some(u) = &from.uri.user {
                caller = self.auth.db.find(u, &realm).await?;
            }
        }
        let Some((callee, bindings)) = self.callee_bindings(&key, &req, ctx, now).await? else {
            return Ok(());
        };

        // Concurrent call limits (403 for the caller side, 486 for the callee).
        let call_id = req.headers.call_id().unwrap_or_default().to_string();
        let mut counters = Vec::new();
        if let Some(c) = &caller {
            counters.push(Counter::subscriber(&c.aor(), c.max_calls, Side::Caller));
            counters.push(Counter::customer(
                c.customer_id,
                c.customer_max_calls,
                Side::Caller,
            ));
        }
        counters.push(Counter::subscriber(
            &callee.aor(),
            callee.max_calls,
            Side::Callee,
        ));
        if caller.as_ref().map(|c| c.customer_id) != Some(callee.customer_id) {
            counters.push(Counter::customer(
                callee.customer_id,
                callee.customer_max_calls,
                Side::Callee,
            ));
        }
        let record = CallRecord {
            call_id: call_id.clone(),
            keys: counters.iter().map(|c| c.key.clone()).collect(),
            node: self.cfg.node.clone(),
            caller: caller
                .as_ref()
                .map(|c| c.aor())
                .unwrap_or_else(|| format!("{}", from.uri)),
            callee: callee.aor(),
            caller_customer: caller.as_ref().map(|c| c.customer_id),
            callee_customer: Some(callee.customer_id),
            from_tag: from.tag().unwrap_or_default().to_string(),
            to_tag: String::new(),
            start_ms: now_ms(),
            answered_ms: None,
        };
        let acquired = self.calls.acquire(&record, &counters, now).await;
        match acquired {
            Ok(Ok(())) => {}
            Ok(Err(side)) => {
                self.stats
                    .calls_rejected_limit
                    .fetch_add(1, Ordering::Relaxed);
                self.finish_routing(ctx);
                match side {
                    Side::Caller => {
                        self.respond_code(&key, 403, "Maximum Concurrent Calls Reached")
                    }
                    Side::Callee => self.respond_code(&key, 486, "Busy Here"),
                }
                return Ok(());
            }
            Err(e) => {
                log(format_args!("{e}"));
                self.finish_routing(ctx);
                self.respond_code(&key, 500, "Call Counter Unavailable");
                return Ok(());
            }
        }
        if self.cancelled(ctx) {
            let _ = self.calls.release(&call_id).await;
            return Ok(());
        }
        if !self.engage_media(&key, ctx, &mut req).await {
            let _ = self.calls.release(&call_id).await;
            return Ok(());
        }
        // §16.6 step 4: Record-Route so in-dialog requests come through us.
        req.headers.prepend(
            HeaderName::RecordRoute,
            format!("<sip:{};lr>", self.rr_addr()),
        );
        decrement_max_forwards(&mut req);
        let mut targets = Vec::new();
        for b in &bindings {
            if let Some(t) = branch_request(&req, b).await {
                targets.push(t);
            }
        }
        if targets.is_empty() {
            let _ = self.calls.release(&call_id).await;
            self.finish_routing(ctx);
            self.respond_code(&key, 480, "Temporarily Unavailable");
            return Ok(());
        }
        self.fork(&key, ctx, targets, Some(CallInfo { record }));
        Ok(())
    }

    /// Offers the INVITE's SDP to the media relay (when configured) and
    /// forwards the relay's SDP instead. False when the relay failed: the
    /// INVITE has been answered 503 (media must not bypass the relay).
    async fn engage_media(&self, key: &ServerKey, ctx: Option<u64>, req: &mut Request) -> bool {
        let Some(m) = self.media.get() else {
            return true;
        };
        match m.offer(req).await {
            Ok(()) => true,
            Err(e) => {
                log(format_args!("media relay offer: {e}"));
                self.finish_routing(ctx);
                self.respond_code(key, 503, "Media Relay Unavailable");
                false
            }
        }
    }

    fn mark_final(&self, ctx: Option<u64>) {
        if let Some(cid) = ctx {
            if let Some(c) = self.lock().ctxs.get_mut(&cid) {
                c.final_sent = true;
            }
        }
    }

    fn drop_ctx(&self, ctx: Option<u64>) {
        if let Some(cid) = ctx {
            self.lock().ctxs.remove(&cid);
        }
    }

    /// Starts one client transaction per target under the response context.
    fn fork(
        &self,
        key: &ServerKey,
        ctx: Option<u64>,
        targets: Vec<(Request, SocketAddr)>,
        call: Option<CallInfo>,
    ) {
        let mut st = self.lock();
        let Some(cid) = ctx else { return };
        if !st.ctxs.contains_key(&cid) {
            return;
        }
        let invite = st
            .servers
            .get(key)
            .map(|t| t.req.method == Method::Invite)
            .unwrap_or(false);
        let mut keys = Vec::new();
        for (mut req, dest) in targets {
            let branch = format!("z9hG4bK{}", random_token(16));
            req.headers.prepend(
                HeaderName::Via,
                format!("SIP/2.0/UDP {};branch={branch};rport", self.via_addr()),
            );
            keys.push(self.start_client(&mut st, req, dest, Some(cid)));
        }
        if let Some(c) = st.ctxs.get_mut(&cid) {
            c.routing = false;
            c.call = call;
            c.branches = keys
                .into_iter()
                .map(|k| BranchRef {
                    key: k,
                    done: false,
                })
                .collect();
        }
        if invite {
            self.arm(TimerTarget::Ctx(cid), Timer::A, TIMER_C);
        }
        self.check_ctx_complete(&mut st, cid);
    }

    /// Sends `req` (whose top Via is ours) in a new client transaction.
    fn start_client(
        &self,
        st: &mut State,
        req: Request,
        dest: SocketAddr,
        ctx: Option<u64>,
    ) -> String {
        let branch = req
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let key = format!("{branch}|{}", req.method);
        let invite = req.method == Method::Invite;
        let id = st.id();
        let bytes = req.to_bytes();
        self.send(&bytes, dest);
        let (state, actions) = tx::client_start(invite);
        st.clients.insert(
            key.clone(),
            ClientTx {
                id,
                state,
                req,
                bytes,
                dest,
                ctx,
                cancel_pending: false,
            },
        );
        for a in actions {
            if let ClientAction::Arm(t, d) = a {
                self.arm(TimerTarget::Client(key.clone(), id), t, d);
            }
        }
        key
    }

    fn client_event(&self, st: &mut State, key: &str, ev: ClientEvent, resp: Option<&Response>) {
        let Some(c) = st.clients.get_mut(key) else {
            return;
        };
        let (next, actions) = tx::client_step(c.state, ev);
        c.state = next;
        let (id, dest, ctx) = (c.id, c.dest, c.ctx);
        let bytes = c.bytes.clone();
        let req = c.req.clone();
        let cancel_now = c.cancel_pending && matches!(next, ClientState::Proceeding { .. });
        if cancel_now {
            c.cancel_pending = false;
        }
        for a in actions {
            match a {
                ClientAction::Retransmit => self.send(&bytes, dest),
                ClientAction::SendAck => {
                    if let Some(r) = resp {
                        self.send(&build_ack(&req, r).to_bytes(), dest);
                    }
                }
                ClientAction::Arm(t, d) => self.arm(TimerTarget::Client(key.to_string(), id), t, d),
                ClientAction::PassUp(_) => {
                    if let (Some(cid), Some(r)) = (ctx, resp) {
                        self.branch_response(st, cid, key, r.clone());
                    }
                }
                ClientAction::Timeout => {
                    if let Some(cid) = ctx {
                        let timeout = Response::reply_to(&req, 408, "Request Timeout", None);
                        self.branch_response(st, cid, key, timeout);
                    }
                }
            }
        }
        if cancel_now {
            self.start_client(st, build_cancel(&req), dest, None);
        }
        if next == ClientState::Terminated {
            st.clients.remove(key);
        }
    }

    /// §16.7: fold one branch response into the response context.
    fn branch_response(&self, st: &mut State, cid: u64, key: &str, mut resp: Response) {
        let Some(ctx) = st.ctxs.get_mut(&cid) else {
            return;
        };
        let code = resp.status;
        if code >= 200 {
            if let Some(b) = ctx.branches.iter_mut().find(|b| b.key == key) {
                b.done = true;
            }
        }
        // Our Via goes; the rest leads back upstream.
        resp.headers.remove_first(&HeaderName::Via);
        let server = ctx.server.clone();
        if code < 200 {
            if code > 100 && !ctx.final_sent && !ctx.answered {
                self.respond_locked(st, &server, resp);
            }
            return;
        }
        if code < 300 {
            let first = !ctx.answered;
            ctx.answered = true;
            ctx.final_sent = true;
            let call = ctx.call.clone();
            let others = ctx.open_branches();
            for k in others {
                self.cancel_branch(st, &k);
            }
            let peer = st.servers.get(&server).map(|t| t.peer);
            let is_invite = server.method == "INVITE";
            match (first, call, is_invite) {
                (true, Some(call), true) => {
                    // Account the start durably before the 2xx goes out.
                    let Some(me) = self.self_arc() else { return };
                    let dest = peer.or_else(|| upstream_target(&resp));
                    st.servers.remove(&server);
                    st.accounting.insert(call.record.call_id.clone());
                    tokio::spawn(async move { me.answered(call, resp, dest).await });
                }
                _ => {
                    if st.servers.contains_key(&server) {
                        self.respond_locked(st, &server, resp);
                    } else if let Some(d) = peer.or_else(|| upstream_target(&resp)) {
                        self.send(&resp.to_bytes(), d);
                    }
                }
            }
            self.check_ctx_complete(st, cid);
            return;
        }
        // 3xx-6xx: keep the best (lowest class; 6xx ends the search).
        let better = match &ctx.best {
            None => true,
            Some(b) => rank(code) < rank(b.status),
        };
        if better {
            ctx.best = Some(resp);
        }
        if code >= 600 {
            let others = ctx.open_branches();
            for k in others {
                self.cancel_branch(st, &k);
            }
        }
        self.check_ctx_complete(st, cid);
    }

    /// When every branch has a final response, send the best one upstream
    /// (unless a 2xx went already) and release the call's counters.
    fn check_ctx_complete(&self, st: &mut State, cid: u64) {
        let Some(ctx) = st.ctxs.get(&cid) else { return };
        if ctx.routing || ctx.branches.iter().any(|b| !b.done) {
            return;
        }
        let Some(ctx) = st.ctxs.remove(&cid) else {
            return;
        };
        if ctx.answered || ctx.final_sent {
            return;
        }
        let resp = match ctx.best {
            Some(r) => r,
            None => match st.servers.get(&ctx.server) {
                Some(t) => Response::reply_to(&t.req, 408, "Request Timeout", Some(&t.to_tag)),
                None => return,
            },
        };
        self.respond_locked(st, &ctx.server, resp);
        if let (Some(call), Some(m)) = (&ctx.call, self.media.get()) {
            m.delete(&call.record.call_id);
        }
        if let Some(call) = ctx.call {
            if let Some(me) = self.self_arc() {
                tokio::spawn(async move {
                    if let Err(e) = me.calls.release(&call.record.call_id).await {
                        log(format_args!("{e}"));
                    }
                });
            }
        }
    }

    /// Forgets the response context of `key` if it never forked.
    fn maybe_drop_ctx(&self, st: &mut State, key: &ServerKey) {
        let cid = st.servers.get(key).and_then(|t| t.ctx);
        if let Some(cid) = cid {
            if st.ctxs.get(&cid).is_some_and(|c| c.branches.is_empty()) {
                st.ctxs.remove(&cid);
            }
        }
    }

    /// Sizes of the in-memory tables (server, client transactions, contexts).
    pub fn table_sizes(&self) -> (usize, usize, usize) {
        let st = self.lock();
        (st.servers.len(), st.clients.len(), st.ctxs.len())
    }

    /// The call was answered: write `start`, then relay the 2xx.
    async fn answered(&self, call: CallInfo, resp: Response, dest: Option<SocketAddr>) {
        let mut rec = call.record;
        rec.to_tag = resp
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let now = now_ms();
        rec.answered_ms = Some(now);
        // `false`: the record is gone (ended while this 2xx was on its way,
        // e.g. by the duration limit): the call still gets its stop below.
        let live = match self.calls.update(&rec).await {
            Ok(l) => l,
            Err(e) => {
                log(format_args!("{e}"));
                true
            }
        };
        let ev = Event {
            kind: EventKind::Start,
            call_id: rec.call_id.clone(),
            time_ms: now,
            from_tag: rec.from_tag.clone(),
            to_tag: rec.to_tag.clone(),
            caller: rec.caller.clone(),
            callee: rec.callee.clone(),
            caller_customer: rec.caller_customer,
            callee_customer: rec.callee_customer,
            node: rec.node.clone(),
            reason: None,
            answer_ms: None,
        };
        let stop = (!live).then(|| Event {
            kind: EventKind::Stop,
            reason: Some("timeout".into()),
            answer_ms: Some(now),
            ..ev.clone()
        });
        for ev in std::iter::once(ev).chain(stop) {
            if let Err(e) = self.spool.append(ev).await {
                log(format_args!("ACCOUNTING LOST for {}: {e}", rec.call_id));
            }
        }
        self.lock().accounting.remove(&rec.call_id);
        self.stats.calls_started.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = dest {
            self.send(&resp.to_bytes(), d);
        }
    }

    /// Releases a call's counters and writes `stop` if it was answered.
    async fn end_call(&self, call_id: &str, reason: &str) {
        if let Some(m) = self.media.get() {
            m.delete(call_id);
        }
        let rec = match self.calls.release(call_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                log(format_args!("{e}"));
                return;
            }
        };
        if rec.answered_ms.is_none() {
            return;
        }
        let ev = Event {
            kind: EventKind::Stop,
            call_id: rec.call_id.clone(),
            time_ms: now_ms(),
            from_tag: rec.from_tag,
            to_tag: rec.to_tag,
            caller: rec.caller,
            callee: rec.callee,
            caller_customer: rec.caller_customer,
            callee_customer: rec.callee_customer,
            node: rec.node,
            reason: Some(reason.to_string()),
            answer_ms: rec.answered_ms,
        };
        if let Err(e) = self.spool.append(ev).await {
            log(format_args!("ACCOUNTING LOST for {call_id}: {e}"));
        }
    }

    /// Keeps this node's calls counted while they live; adopts calls left
    /// by a previous run of this node; ends calls past `max_call_secs`.
    async fn refresh_loop(&self) {
        let period = Duration::from_secs((self.calls.ttl_secs() / 3).max(1));
        loop {
            let now = now_secs();
            match self.calls.owned().await {
                Ok(ids) => {
                    for id in ids {
                        match self.calls.refresh(&id, now).await {
                            Ok(Some(rec)) => {
                                // Counted from the answer (billing), or from
                                // the INVITE while it is still ringing.
                                let since = rec.answered_ms.unwrap_or(rec.start_ms);
                                let age = now_ms().saturating_sub(since) / 1000;
                                if age > self.cfg.max_call_secs {
                                    self.end_call(&id, "timeout").await;
                                }
                            }
                            Ok(None) => {
                                let _ = self.calls.disown(&id).await;
                            }
                            Err(e) => log(format_args!("{e}")),
                        }
                    }
                }
                Err(e) => log(format_args!("{e}")),
            }
            self.log_stats();
            tokio::time::sleep(period).await;
        }
    }

    /// One line with the counters, for the operator's log.
    fn log_stats(&self) {
        let s = &self.stats;
        let (servers, clients, ctxs) = self.table_sizes();
        log(format_args!(
            "stats: received={} malformed={} registrations={} calls_started={} \
             calls_rejected_limit={} backend_errors={} transactions={}/{} contexts={}",
            s.received.load(Ordering::Relaxed),
            s.malformed.load(Ordering::Relaxed),
            s.registrations.load(Ordering::Relaxed),
            s.calls_started.load(Ordering::Relaxed),
            s.calls_rejected_limit.load(Ordering::Relaxed),
            s.backend_errors.load(Ordering::Relaxed),
            servers,
            clients,
            ctxs
        ));
        if let Some(m) = self.media.get() {
            let ms = &m.stats;
            log(format_args!(
                "media relay: offers={} answers={} deletes={} failures={}",
                ms.offers.load(Ordering::Relaxed),
                ms.answers.load(Ordering::Relaxed),
                ms.deletes.load(Ordering::Relaxed),
                ms.failures.load(Ordering::Relaxed)
            ));
        }
    }

    // -------------------------------------------------------------- responses

    fn on_response(self: &Arc<Self>, resp: Response, _src: SocketAddr) {
        let (Ok(via), Ok(cseq)) = (resp.headers.top_via(), resp.headers.cseq()) else {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(branch) = via.branch() else { return };
        let key = format!("{branch}|{}", cseq.method);
        let mut st = self.lock();
        if st.clients.contains_key(&key) {
            self.client_event(
                &mut st,
                &key,
                ClientEvent::Response(resp.status),
                Some(&resp),
            );
            return;
        }
        // Retransmitted 2xx to INVITE (its transaction is gone): stateless,
        // unless its call's start event is not durable yet.
        let held = resp
            .headers
            .call_id()
            .is_ok_and(|c| st.accounting.contains(c));
        drop(st);
        if resp.status >= 200
            && resp.status < 300
            && !held
            // Our Via names the Record-Route address when listening on
            // every address (a pair's shared address after a takeover).
            && self.is_own(&Uri::sip(via.host.clone(), via.port))
        {
            let mut r = resp;
            r.headers.remove_first(&HeaderName::Via);
            if let Some(d) = upstream_target(&r) {
                self.send(&r.to_bytes(), d);
            }
        }
    }

    /// Forwards a request outside any transaction (ACK for 2xx).
    async fn forward_stateless(&self, mut req: Request) {
        if let Ok(routes) = req.headers.routes() {
            if routes.first().is_some_and(|r| self.is_own(&r.uri)) {
                req.headers.remove_first(&HeaderName::Route);
            }
        }
        let target = match req.headers.routes().ok().and_then(|r| r.into_iter().next()) {
            Some(r) => r.uri,
            // An ACK for our own domain without a route set has nowhere to
            // go (e.g. a stray ACK for a 407 with a new branch): drop it.
            None if !self.is_own(&req.uri) && !self.serves_domain(&req.uri.host) => req.uri.clone(),
            None => return,
        };
        let Some(dest) = resolve(&target).await else {
            return;
        };
        decrement_max_forwards(&mut req);
        // §16.11: a stateless branch derived from the upstream branch so
        // retransmitted ACKs get the same one.
        let up = req
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let branch = format!("z9hG4bK{}", stable_hash(&up));
        req.headers.prepend(
            HeaderName::Via,
            format!("SIP/2.0/UDP {};branch={branch}", self.via_addr()),
        );
        self.send(&req.to_bytes(), dest);
    }
}

fn stable_hash(s: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn rank(code: u16) -> u16 {
    // 6xx first, then 4xx/5xx/3xx by class, 408 (timeouts) last.
    match code {
        600..=699 => 0,
        408 => 900,
        c => c,
    }
}

fn upstream_target(resp: &Response) -> Option<SocketAddr> {
    resp.headers.top_via().ok()?.response_target()
}

fn decrement_max_forwards(req: &mut Request) {
    let mf = req.headers.max_forwards().ok().flatten().unwrap_or(70);
    req.headers
        .set(HeaderName::MaxForwards, mf.saturating_sub(1).to_string());
}

/// One branch request for a binding: Request-URI = contact, Route = Path;
/// sent to the first Path hop, else to the contact.
async fn branch_request(req: &Request, b: &Binding) -> Option<(Request, SocketAddr)> {
    let uri = Uri::parse(&b.uri).ok()?;
    let mut r = req.clone();
    r.uri = uri.clone();
    for p in b.path.iter().rev() {
        r.headers.prepend(HeaderName::Route, p.clone());
    }
    let dest = if let Some(first) = b.path.first() {
        let na = sip::NameAddr::parse(first, "Path").ok()?;
        resolve(&na.uri).await?
    } else {
        // Without Path the Contact is where the phone said it can be
        // reached (RFC 3261 §16.5); NAT traversal is the lb's job, which
        // puts the real source into the Path it adds.
        resolve(&uri).await?
    };
    Some((r, dest))
}

/// §17.1.1.3: ACK for a non-2xx final response of a client INVITE.
fn build_ack(inv: &Request, resp: &Response) -> Request {
    let mut h = sip::Headers::new();
    if let Some(v) = inv.headers.get(&HeaderName::Via) {
        h.push(HeaderName::Via, v.to_string());
    }
    for r in inv.headers.get_all(&HeaderName::Route) {
        h.push(HeaderName::Route, r.to_string());
    }
    h.push(HeaderName::MaxForwards, "70");
    if let Some(f) = inv.headers.get(&HeaderName::From) {
        h.push(HeaderName::From, f.to_string());
    }
    if let Some(t) = resp.headers.get(&HeaderName::To) {
        h.push(HeaderName::To, t.to_string());
    }
    if let Some(c) = inv.headers.get(&HeaderName::CallId) {
        h.push(HeaderName::CallId, c.to_string());
    }
    let seq = inv.headers.cseq().map(|c| c.seq).unwrap_or(1);
    h.push(HeaderName::CSeq, format!("{seq} ACK"));
    Request {
        method: Method::Ack,
        uri: inv.uri.clone(),
        headers: h,
        body: Vec::new(),
    }
}

/// §9.1: CANCEL for a pending client INVITE (same branch, same Route).
fn build_cancel(inv: &Request) -> Request {
    let mut c = build_ack(
        inv,
        &Response {
            status: 0,
            reason: String::new(),
            headers: inv.headers.clone(),
            body: Vec::new(),
        },
    );
    c.method = Method::Cancel;
    let seq = inv.headers.cseq().map(|c| c.seq).unwrap_or(1);
    c.headers.set(HeaderName::CSeq, format!("{seq} CANCEL"));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Request {
        let wire = b"INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKp1;rport\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
Route: <sip:127.0.0.1:5080;lr>\r\n\
From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: c1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n";
        match Message::parse(wire).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn ack_and_cancel_follow_rfc3261_9_1_and_17_1_1_3() {
        let inv = invite();
        let mut resp = Response::reply_to(&inv, 486, "Busy Here", Some("t9"));
        resp.headers.remove_first(&HeaderName::Via);
        let ack = build_ack(&inv, &resp);
        let vias = ack.headers.vias().unwrap();
        assert_eq!(vias.len(), 1);
        assert_eq!(vias[0].branch(), Some("z9hG4bKp1"));
        assert_eq!(ack.headers.to().unwrap().tag(), Some("t9"));
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "7 ACK");
        assert_eq!(ack.headers.routes().unwrap().len(), 1);
        let cancel = build_cancel(&inv);
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(cancel.headers.cseq().unwrap().to_string(), "7 CANCEL");
        assert_eq!(cancel.headers.to().unwrap().tag(), None);
        assert_eq!(cancel.uri, inv.uri);
    }

    #[test]
    fn best_response_prefers_6xx_then_lowest_class_and_408_last() {
        let mut codes = vec![408, 486, 302, 603, 500];
        codes.sort_by_key(|c| rank(*c));
        assert_eq!(codes, vec![603, 302, 486, 500, 408]);
    }

    #[tokio::test]
    async fn branch_request_routes_through_path() {
        let inv = invite();
        let b = Binding {
            uri: "sip:bob@192.0.2.1:5070".into(),
            q: 1.0,
            expires_at: 0,
            path: vec!["<sip:127.0.0.9:5060;lr>".into()],
            received: Some("127.0.0.1:1".into()),
            call_id: String::new(),
            cseq: 1,
        };
        let (r, dest) = branch_request(&inv, &b).await.unwrap();
        assert_eq!(dest, "127.0.0.9:5060".parse().unwrap());
        assert_eq!(r.uri.to_string(), "sip:bob@192.0.2.1:5070");
        let routes = r.headers.routes().unwrap();
        assert_eq!(routes[0].uri.to_string(), "sip:127.0.0.9:5060;lr");
    }
}
