//! The real peers of billing's integration tests and bench: a private
//! MariaDB server (restartable on the same port and data directory, to
//! test "central database down, then back") and the helpers around it,
//! shared with sip-proxy's testbed. Never used by the daemon.

pub use sip_proxy::testbed::{find_binary, free_tcp_port, MariaDb, TempDir, TestbedError};
