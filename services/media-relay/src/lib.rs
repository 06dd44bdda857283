//! media-relay: the RTP/RTCP relay of the flexvisor proxy nodes, controlled
//! by the SIP proxy over rtpengine's ng protocol.
//!
//! Modules: [`bencode`] and [`ng`] (control protocol, pure), [`sdp`] (the
//! SDP lines a relay rewrites, pure), [`ports`] (port range bookkeeping),
//! [`relay`] (calls, sockets, forwarding and the commands), [`store`]
//! (failover state in Redis), [`client`] (ng client for the proxy and
//! tools), [`config`], [`metrics`] (HTTP /metrics and /status),
//! [`status`] (output of `--status`), [`notify`] (readiness).

pub mod bencode;
pub mod client;
pub mod config;
pub mod metrics;
pub mod ng;
/// Readiness notification, shared with the other bundled daemons.
pub use flexvisor_daemon::notify;
pub mod ports;
pub mod relay;
pub mod sdp;
pub mod status;
pub mod store;
