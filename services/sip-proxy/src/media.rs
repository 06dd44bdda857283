//! Engaging the media relay (`media-relay`, or rtpengine: both speak the
//! ng protocol) for calls through this proxy, when the config has
//! `[media_relay] control = "host:port"`.
//!
//! - INVITE with SDP: `offer`; the relay's SDP replaces the body.
//! - 18x/2xx to INVITE with SDP: `answer`; the relay's SDP replaces the body.
//! - BYE, CANCEL, a final failure of the INVITE, a call timeout: `delete`.
//!
//! Answers are rewritten by one worker task, in arrival order, so that the
//! proxy's receive loop never waits for the relay and a 183 cannot
//! overtake the 200 of the same call.

use crate::config::MediaRelayConfig;
use media_relay::client::{Client, ClientError};
use sip::{HeaderName, Message, Method, Request, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why the relay could not be engaged.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The relay did not answer or refused.
    #[error(transparent)]
    Relay(#[from] ClientError),
    /// A message with SDP lacks what the relay needs.
    #[error("{0}: cannot engage the media relay")]
    Message(&'static str),
}

/// Counters for the log line.
#[derive(Debug, Default)]
pub struct MediaStats {
    pub offers: AtomicU64,
    pub answers: AtomicU64,
    pub deletes: AtomicU64,
    pub failures: AtomicU64,
}

/// The relay client and the answer worker's queue.
#[derive(Debug)]
pub struct Media {
    client: Arc<Client>,
    answers: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    pub stats: Arc<MediaStats>,
}

fn has_sdp(headers: &sip::Headers, body: &[u8]) -> bool {
    !body.is_empty()
        && headers
            .get(&HeaderName::ContentType)
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"))
}

/// A response this module must rewrite: 18x/2xx to INVITE carrying SDP.
fn answer_wanted(r: &Response) -> bool {
    (180..300).contains(&r.status)
        && r.headers.cseq().is_ok_and(|c| c.method == Method::Invite)
        && has_sdp(&r.headers, &r.body)
}

impl Media {
    /// Opens the control client and starts the answer worker, which hands
    /// each (rewritten) response datagram to `deliver`.
    pub async fn start(
        cfg: &MediaRelayConfig,
        deliver: impl Fn(Vec<u8>, SocketAddr) + Send + 'static,
    ) -> Result<Media, MediaError> {
        let mut client = Client::new(cfg.control).await?;
        client.attempt_timeout = Duration::from_millis(cfg.timeout_ms);
        let client = Arc::new(client);
        let stats = Arc::new(MediaStats::default());
        let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, SocketAddr)>();
        let (c, s) = (client.clone(), stats.clone());
        tokio::spawn(async move {
            while let Some((bytes, src)) = rx.recv().await {
                if let Some(out) = answer_datagram(&c, &s, &bytes).await {
                    deliver(out, src);
                }
            }
        });
        Ok(Media {
            client,
            answers: tx,
            stats,
        })
    }

    /// Offers the INVITE's SDP to the relay and puts the relay's SDP in
    /// its place. Requests without SDP are left alone.
    pub async fn offer(&self, req: &mut Request) -> Result<(), MediaError> {
        if !has_sdp(&req.headers, &req.body) {
            return Ok(());
        }
        let call_id = req
            .headers
            .call_id()
            .map_err(|_| MediaError::Message("no Call-ID"))?
            .to_string();
        let from = req
            .headers
            .from()
            .map_err(|_| MediaError::Message("no From"))?;
        let from_tag = from
            .tag()
            .ok_or(MediaError::Message("no From tag"))?
            .to_string();
        let to_tag = req
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string));
        let r = self
            .client
            .offer_answer("offer", &call_id, &from_tag, to_tag.as_deref(), &req.body)
            .await;
        match r {
            Ok(body) => {
                self.stats.offers.fetch_add(1, Ordering::Relaxed);
                req.body = body;
                Ok(())
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// If `datagram` is a response to be answered by the relay, queues it
    /// for the worker and returns true (the caller must then not handle it).
    pub fn take_answer(&self, datagram: &[u8], src: SocketAddr) -> bool {
        // Cheap checks first: only responses carrying SDP are parsed here.
        if !datagram.starts_with(b"SIP/2.0 ") || !contains(datagram, b"application/sdp") {
            return false;
        }
        match Message::parse(datagram) {
            Ok(Message::Response(r)) if answer_wanted(&r) => {
                self.answers.send((datagram.to_vec(), src)).is_ok()
            }
            _ => false,
        }
    }

    /// Frees the call's ports on the relay (in the background).
    pub fn delete(&self, call_id: &str) {
        let c = self.client.clone();
        let s = self.stats.clone();
        let id = call_id.to_string();
        tokio::spawn(async move {
            match c.delete(&id).await {
                Ok(_) => {
                    s.deletes.fetch_add(1, Ordering::Relaxed);
                }
                // Already gone (a CANCEL and a 487 both ask): not a failure.
                Err(ClientError::Refused { .. }) => {}
                Err(e) => {
                    s.failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("sip-proxy: media relay delete {id}: {e}");
                }
            }
        });
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The worker's step: `answer` the response's SDP, rewrite the body.
/// A 2xx the relay did not reply to is dropped (the UAS retransmits it,
/// RFC 3261 §13.3.1.4, so the answer is retried); a 18x goes on unchanged,
/// and so does anything for a call the relay refuses (never offered).
async fn answer_datagram(c: &Client, s: &MediaStats, bytes: &[u8]) -> Option<Vec<u8>> {
    let Ok(Message::Response(mut r)) = Message::parse(bytes) else {
        return Some(bytes.to_vec());
    };
    let call_id = r.headers.call_id().ok()?.to_string();
    let from_tag = r.headers.from().ok()?.tag().map(str::to_string);
    let to_tag = r.headers.to().ok()?.tag().map(str::to_string);
    let (Some(from_tag), Some(to_tag)) = (from_tag, to_tag) else {
        return Some(bytes.to_vec());
    };
    match c
        .offer_answer("answer", &call_id, &from_tag, Some(&to_tag), &r.body)
        .await
    {
        Ok(body) => {
            s.answers.fetch_add(1, Ordering::Relaxed);
            r.body = body;
            Some(r.to_bytes())
        }
        // The relay does not know the call: no offer went through it (a
        // late offer: INVITE without SDP). Pass the response on unchanged
        // rather than fail the call; its media is not anchored.
        Err(e @ ClientError::Refused { .. }) => {
            s.failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("sip-proxy: media relay answer for {call_id}: {e}; relayed unchanged");
            Some(bytes.to_vec())
        }
        Err(e) => {
            s.failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("sip-proxy: media relay answer for {call_id}: {e}");
            (r.status < 200).then(|| bytes.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, ctype: &str, body: &str) -> Response {
        let wire = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>;tag=t\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match Message::parse(wire.as_bytes()).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("not a response"),
        }
    }

    const SDP: &str = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";

    /// A real media-relay (the library, on loopback sockets) for the worker.
    async fn relay() -> SocketAddr {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let min = 46000 + (std::process::id() % 100) as u16 * 10;
        let text = format!(
            "control = \"127.0.0.1:{port}\"\naddress = \"127.0.0.1\"\nport_min = {min}\nport_max = {}\n",
            min + 9
        );
        let cfg =
            media_relay::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let ctl = media_relay::relay::bind_udp(cfg.control, false).unwrap();
        let r = media_relay::relay::Relay::new(cfg, None);
        tokio::spawn(r.serve_control(ctl));
        ([127, 0, 0, 1], port).into()
    }

    #[tokio::test]
    async fn worker_rewrites_answers_passes_unknown_calls_and_drops_unanswered_2xx() {
        let addr = relay().await;
        let c = Client::new(addr).await.unwrap();
        let s = MediaStats::default();
        // Never offered (late offer): relayed unchanged.
        let unknown = response(200, "application/sdp", SDP).to_bytes();
        assert_eq!(
            answer_datagram(&c, &s, &unknown).await,
            Some(unknown.clone())
        );
        // Offered: the 200's SDP now points at the relay.
        c.offer_answer("offer", "c", "f", None, SDP.as_bytes())
            .await
            .unwrap();
        let out = answer_datagram(&c, &s, &unknown).await.unwrap();
        let Message::Response(r) = Message::parse(&out).unwrap() else {
            panic!("not a response")
        };
        let body = String::from_utf8(r.body).unwrap();
        assert!(!body.contains("m=audio 4000 "), "{body}");
        assert!(body.contains("a=rtcp:"), "{body}");
        assert_eq!(s.answers.load(Ordering::Relaxed), 1);
        // Relay silent: a 2xx is dropped (retransmitted later), a 18x passes.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = Client::new(dead.local_addr().unwrap()).await.unwrap();
        c.attempt_timeout = Duration::from_millis(20);
        assert_eq!(answer_datagram(&c, &s, &unknown).await, None);
        let ringing = response(183, "application/sdp", SDP).to_bytes();
        assert_eq!(
            answer_datagram(&c, &s, &ringing).await,
            Some(ringing.clone())
        );
    }

    #[test]
    fn only_provisional_and_success_responses_with_sdp_are_answered() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(answer_wanted(&response(200, "application/sdp", sdp)));
        assert!(answer_wanted(&response(183, "Application/SDP", sdp)));
        assert!(!answer_wanted(&response(100, "application/sdp", sdp)));
        assert!(!answer_wanted(&response(486, "application/sdp", sdp)));
        assert!(!answer_wanted(&response(200, "text/plain", sdp)));
        assert!(!answer_wanted(&response(200, "application/sdp", "")));
    }
}
