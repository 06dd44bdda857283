//! web-api: the HTTPS provisioning API of the flexvisor web nodes.
//!
//! REST/JSON over the central MariaDB on the db pair: domains, customers and
//! subscribers (the rows sip-proxy authenticates and limits calls against),
//! admins authenticated with HTTP Basic. Modules: [`config`] (file),
//! [`tls`] (certificates), [`model`] (resources and input checks),
//! [`store`] (SQL), [`secrets`] (admin hashes, digest HA1), [`auth`]
//! (Basic against `admins`), [`api`] (routes and statuses), [`server`]
//! (HTTPS listener, graceful shutdown), [`metrics`], [`notify`] (readiness), [`probe`] (health check).

pub mod api;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod model;
/// Readiness notification, shared with the other bundled daemons.
pub use flexvisor_daemon::notify;
pub mod probe;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
