//! flexvisor SIP proxy/registrar for the proxy nodes: digest-authenticated
//! registrar backed by the local MariaDB replica and the central Redis,
//! stateful call routing with Record-Route, concurrent call limits and a
//! durable accounting spool.
//!
//! Modules: [`config`] (TOML file), [`subscriber`] (MariaDB reads),
//! [`digest`] (RFC 8760 auth), [`location`] (registrations in Redis),
//! [`calls`] (call counters in Redis), [`spool`] (accounting),
//! [`media`] (media relay engagement over the ng protocol),
//! [`transaction`] (RFC 3261 §17 state machines), [`registrar`]
//! (REGISTER and digest checks), [`proxy`] (the core), [`probe`] (health
//! probe), [`testbed`] (real peers
//! for tests and the bench; never used by the daemon).

pub mod calls;
pub mod config;
pub mod digest;
pub mod location;
pub mod media;
pub mod probe;
pub mod proxy;
pub mod registrar;
pub mod spool;
pub mod subscriber;
pub mod testbed;
pub mod transaction;
