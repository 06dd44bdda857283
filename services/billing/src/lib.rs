//! flexvisor billing for the proxy nodes: mediates the sip-proxy
//! accounting spool (start/stop events) into CDRs, rates them against the
//! billing profiles, and commits them to the central MariaDB, exactly once
//! and without loss when that database is down for a while.
//!
//! Modules: [`config`] (TOML file), [`event`] (spool line parser),
//! [`mediation`] (start/stop pairing, pure), [`rating`] (profiles,
//! intervals and money, pure), [`store`] (local crash-safe state, outbox,
//! quarantine, spool reading), [`central`] (MariaDB schema and writes),
//! [`daemon`] (the loop), [`status`] (status file and health verdict),
//! [`testbed`] (a restartable MariaDB for tests and the bench only).

pub mod central;
pub mod config;
pub mod daemon;
pub mod event;
pub mod mediation;
pub mod rating;
pub mod status;
pub mod store;
pub mod testbed;
