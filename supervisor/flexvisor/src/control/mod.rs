//! The control socket: a versioned JSON-lines protocol ([`proto`]), a small
//! blocking client for `flexctl` ([`client`]) and the server side run by
//! the supervisor loop ([`server`]).
//!
//! `/run/flexvisor/control.sock`, mode 0600; the peer's credentials
//! (`SO_PEERCRED`) are checked and non-root peers refused with a message.

pub mod client;
pub mod proto;
pub mod server;

/// Where flexctl and flexvisor meet by default.
pub const DEFAULT_SOCKET: &str = "/run/flexvisor/control.sock";
