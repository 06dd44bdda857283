//! Counters for everything the relay does, and the loopback HTTP endpoint
//! that serves them as Prometheus text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

macro_rules! counters {
    ($( $v:ident => $name:literal, $help:literal; )*) => {
        /// A named counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter { $( #[doc = $help] $v, )* }
        const ALL: &[(Counter, &str, &str)] = &[ $( (Counter::$v, $name, $help), )* ];
    };
}

counters! {
    RxUdp => "rx_udp_total", "Messages received on the front UDP socket";
    RxTcp => "rx_tcp_total", "Messages received on front TCP connections";
    RxTls => "rx_tls_total", "Messages received on front TLS connections";
    RxInternal => "rx_internal_total", "Messages received on the internal socket";
    FwdRequests => "forwarded_requests_total", "Requests relayed";
    FwdResponses => "forwarded_responses_total", "Responses relayed";
    DropMalformed => "dropped_malformed_total", "Messages that do not parse as SIP";
    DropBadRequest => "dropped_bad_request_total", "Requests dropped without reply (bad ACK, no Via)";
    DropBadResponse => "dropped_bad_response_total", "Responses failing sanity checks";
    DropNotOurVia => "dropped_not_our_via_total", "Responses whose top Via is not ours";
    DropNoNextVia => "dropped_no_next_via_total", "Responses with no Via after ours";
    DropBadTransport => "dropped_bad_transport_total", "Messages for an unsupported transport";
    DropFlood => "dropped_flood_total", "Packets dropped by flood protection";
    Bans => "bans_total", "Sources banned by flood protection";
    SendErrors => "send_errors_total", "Messages that could not be sent";
    KeepaliveSent => "keepalive_sent_total", "OPTIONS pings sent to proxy pairs";
    KeepaliveReplies => "keepalive_replies_total", "Replies to OPTIONS pings";
    PairDown => "pair_down_events_total", "Times a proxy pair was marked down";
    PairUp => "pair_up_events_total", "Times a proxy pair was marked up again";
    StreamConnections => "stream_connections_total", "TCP/TLS connections accepted or opened";
    StreamRejected => "stream_rejected_total", "TCP/TLS connections closed at accept (limit reached)";
    StreamIdleClosed => "stream_idle_closed_total", "TCP/TLS connections closed for silence";
}

/// Status codes the relay answers itself; counted separately.
const REPLY_CODES: [u16; 7] = [200, 400, 416, 420, 482, 483, 503];

/// All counters; cheap to bump from any task.
#[derive(Debug)]
pub struct Counters {
    values: Vec<AtomicU64>,
    replies: Vec<AtomicU64>,
    per_pair: Vec<AtomicU64>,
}

impl Counters {
    /// Counters for `pairs` proxy pairs.
    pub fn new(pairs: usize) -> Counters {
        Counters {
            values: ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            replies: REPLY_CODES.iter().map(|_| AtomicU64::new(0)).collect(),
            per_pair: (0..pairs).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds one.
    pub fn inc(&self, c: Counter) {
        if let Some(v) = self.values.get(c as usize) {
            v.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Current value.
    pub fn get(&self, c: Counter) -> u64 {
        self.values
            .get(c as usize)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    /// Counts a locally generated reply.
    pub fn reply(&self, status: u16) {
        if let Some(i) = REPLY_CODES.iter().position(|&c| c == status) {
            self.replies[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request dispatched to pair `i` by Call-ID hash.
    pub fn dispatched(&self, i: usize) {
        if let Some(v) = self.per_pair.get(i) {
            v.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text; `pairs` gives each pair's name and up status.
    pub fn render(&self, pairs: &[(String, bool)], banned: usize) -> String {
        let mut out = String::new();
        for (c, name, help) in ALL {
            let _ = writeln!(
                out,
                "# HELP sip_lb_{name} {help}\n# TYPE sip_lb_{name} counter"
            );
            let _ = writeln!(out, "sip_lb_{name} {}", self.get(*c));
        }
        let _ = writeln!(out, "# TYPE sip_lb_replies_total counter");
        for (i, code) in REPLY_CODES.iter().enumerate() {
            let _ = writeln!(
                out,
                "sip_lb_replies_total{{code=\"{code}\"}} {}",
                self.replies[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE sip_lb_pair_up gauge");
        for (name, up) in pairs {
            let _ = writeln!(out, "sip_lb_pair_up{{pair=\"{name}\"}} {}", u8::from(*up));
        }
        let _ = writeln!(out, "# TYPE sip_lb_pair_dispatched_total counter");
        for (i, (name, _)) in pairs.iter().enumerate() {
            let v = self
                .per_pair
                .get(i)
                .map_or(0, |v| v.load(Ordering::Relaxed));
            let _ = writeln!(out, "sip_lb_pair_dispatched_total{{pair=\"{name}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# TYPE sip_lb_banned_sources gauge\nsip_lb_banned_sources {banned}"
        );
        out
    }
}

/// Serves `render()` at `GET /metrics` until the process ends.
pub async fn serve<F>(listener: TcpListener, render: Arc<F>)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
                .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if req.starts_with("GET /metrics ") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "not found; try /metrics\n".to_owned())
            };
            let resp = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        });
    }
}
