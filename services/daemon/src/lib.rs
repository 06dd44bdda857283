//! Shared plumbing of the bundled service daemons (sip-lb, media-relay,
//! web-api, billing): telling the supervisor a daemon is ready
//! ([`notify`]) and loading its TOML configuration file with errors that
//! name the file, the line and the field ([`config`]).
//!
//! Service-specific checks (which values are acceptable) stay in each
//! service's own `config` module; this crate holds only what is identical.

pub mod config;
pub mod notify;
