//! Real peers for the integration tests and the bench binary: OpenIPMI's
//! `ipmi_sim` as a chassis management module, and net-snmp's `snmpd`
//! serving an EN2092-like IF-MIB or the Flex CMM's power module table. Each harness runs its peer on loopback ports in a
//! temporary directory and stops it on drop. A missing peer binary is an
//! error naming the Debian package, never a silent skip.
//!
//! Not used by the monitor itself.

pub mod cmm_agent;
pub mod ipmi_sim;
pub mod snmp_agent;

use std::net::{TcpListener, UdpSocket};

/// Error starting or driving a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer's binary is not installed.
    #[error("{binary} not found ({detail}): install the Debian package {package} (listed in scripts/deps/apt.txt)")]
    Missing {
        /// Binary name.
        binary: &'static str,
        /// Debian package providing it.
        package: &'static str,
        /// OS error.
        detail: String,
    },
    /// Setting up or talking to the peer failed.
    #[error("peer setup: {0}")]
    Setup(String),
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> Result<u16, PeerError> {
    UdpSocket::bind(("127.0.0.1", 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| PeerError::Setup(format!("no free UDP port: {e}")))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<u16, PeerError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| PeerError::Setup(format!("no free TCP port: {e}")))
}
