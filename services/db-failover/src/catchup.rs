//! Has this server applied everything the peer wrote? A pure verdict over
//! one `SHOW ALL SLAVES STATUS` row and, when the peer answered, the peer's
//! own binlog position (`SHOW MASTER STATUS`).
//!
//! Two conditions make a replica caught up:
//! - received: the I/O thread has read the peer's binlog up to the peer's
//!   current position (unknown when the peer is down: then whatever was
//!   received is all there is);
//! - applied: the SQL thread has executed the relay log up to what was
//!   received (`Relay_Master_Log_File`/`Exec_Master_Log_Pos` reached
//!   `Master_Log_File`/`Read_Master_Log_Pos`).

use std::cmp::Ordering;
use std::fmt;

/// A position in a binlog: file name and byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl BinlogPos {
    /// The file's sequence number (`mysql-bin.000012` → 12), if it has one.
    fn seq(&self) -> Option<u64> {
        self.file.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
    }
}

impl PartialOrd for BinlogPos {
    /// Positions in files of one binlog (same base name) are ordered by
    /// sequence number then offset; positions in unrelated files are not.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.file == other.file {
            return Some(self.pos.cmp(&other.pos));
        }
        let base = |f: &str| f.rsplit_once('.').map(|(b, _)| b.to_owned());
        if base(&self.file) != base(&other.file) {
            return None;
        }
        Some(self.seq()?.cmp(&other.seq()?))
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// The replication state of one connection (one row of
/// `SHOW ALL SLAVES STATUS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Connection_name` (empty for the default connection).
    pub connection: String,
    pub master_host: String,
    pub master_port: u16,
    /// `Slave_IO_Running`: `Yes`, `No` or `Connecting`.
    pub io_running: String,
    /// `Slave_SQL_Running`: `Yes` or `No`.
    pub sql_running: String,
    /// Peer binlog position the I/O thread has read up to.
    pub received: BinlogPos,
    /// Peer binlog position the SQL thread has executed up to.
    pub executed: BinlogPos,
    pub last_io_error: String,
    pub last_sql_error: String,
}

impl ReplicaStatus {
    /// The peer as `host:port`, for messages.
    pub fn peer(&self) -> String {
        if self.master_host.contains(':') {
            format!("[{}]:{}", self.master_host, self.master_port)
        } else {
            format!("{}:{}", self.master_host, self.master_port)
        }
    }
}

/// Where a replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything received (and, if known, everything the peer wrote) has
    /// been applied.
    CaughtUp,
    /// Still applying or receiving; the text says how far.
    Behind(String),
    /// It will not catch up without an operator: the text says why.
    Stuck(String),
}

/// The verdict for `s`; `peer` is the peer's binlog position if it answered.
pub fn verdict(s: &ReplicaStatus, peer: Option<&BinlogPos>) -> Verdict {
    let applied = s
        .executed
        .partial_cmp(&s.received)
        .is_some_and(|o| o != Ordering::Less);
    let received = peer.is_none_or(|p| {
        s.received
            .partial_cmp(p)
            .is_some_and(|o| o != Ordering::Less)
    });
    if applied && received {
        return Verdict::CaughtUp;
    }
    if !applied && s.sql_running != "Yes" {
        let why = if s.last_sql_error.is_empty() {
            "SQL thread is stopped".to_owned()
        } else {
            format!("SQL thread stopped: {}", s.last_sql_error)
        };
        return Verdict::Stuck(format!(
            "{why} (applied {} of received {})",
            s.executed, s.received
        ));
    }
    if !received && s.io_running == "No" {
        let why = if s.last_io_error.is_empty() {
            "I/O thread is stopped".to_owned()
        } else {
            format!("I/O thread stopped: {}", s.last_io_error)
        };
        let peer_at = peer.map(ToString::to_string).unwrap_or_default();
        return Verdict::Stuck(format!(
            "{why} (received {} of the peer's {peer_at})",
            s.received
        ));
    }
    let mut text = format!("applied {} of received {}", s.executed, s.received);
    if let Some(p) = peer {
        text.push_str(&format!(", peer at {p}"));
    }
    Verdict::Behind(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn pos(file: &str, pos: u64) -> BinlogPos {
        BinlogPos {
            file: file.into(),
            pos,
        }
    }

    fn status(received: BinlogPos, executed: BinlogPos) -> ReplicaStatus {
        ReplicaStatus {
            connection: String::new(),
            master_host: "10.20.1.103".into(),
            master_port: 3306,
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            received,
            executed,
            last_io_error: String::new(),
            last_sql_error: String::new(),
        }
    }

    #[test]
    fn applied_everything_received_and_the_peer_wrote_nothing_more() {
        let s = status(pos("mysql-bin.000002", 900), pos("mysql-bin.000002", 900));
        assert_eq!(verdict(&s, None), Verdict::CaughtUp);
        assert_eq!(
            verdict(&s, Some(&pos("mysql-bin.000002", 900))),
            Verdict::CaughtUp
        );
    }

    #[test]
    fn relay_log_not_yet_applied_is_behind() {
        let s = status(pos("mysql-bin.000002", 900), pos("mysql-bin.000002", 400));
        assert!(matches!(verdict(&s, None), Verdict::Behind(t) if t.contains("000002:400")));
    }

    #[test]
    fn peer_wrote_more_than_was_received_is_behind() {
        let s = status(pos("mysql-bin.000002", 900), pos("mysql-bin.000002", 900));
        assert!(matches!(
            verdict(&s, Some(&pos("mysql-bin.000003", 4))),
            Verdict::Behind(t) if t.contains("peer at mysql-bin.000003:4")
        ));
    }

    #[test]
    fn stopped_sql_thread_with_unapplied_events_is_stuck_with_its_error() {
        let mut s = status(pos("b.000001", 900), pos("b.000001", 400));
        s.sql_running = "No".into();
        s.last_sql_error = "Duplicate entry '1' for key 'PRIMARY'".into();
        assert!(matches!(verdict(&s, None), Verdict::Stuck(t) if t.contains("Duplicate entry")));
    }

    #[test]
    fn stopped_io_thread_short_of_the_peer_is_stuck() {
        let mut s = status(pos("b.000001", 900), pos("b.000001", 900));
        s.io_running = "No".into();
        assert!(matches!(
            verdict(&s, Some(&pos("b.000001", 1000))),
            Verdict::Stuck(_)
        ));
        // A connecting I/O thread may still get there.
        s.io_running = "Connecting".into();
        assert!(matches!(
            verdict(&s, Some(&pos("b.000001", 1000))),
            Verdict::Behind(_)
        ));
    }

    #[test]
    fn never_connected_replica_has_nothing_to_apply() {
        let s = status(pos("", 4), pos("", 4));
        assert_eq!(verdict(&s, None), Verdict::CaughtUp);
    }

    proptest! {
        /// Caught up never while the SQL thread is behind in the same file,
        /// nor while the peer is ahead of what was received.
        #[test]
        fn caught_up_only_when_applied_and_received(
            read in 4u64..1_000_000, exec in 4u64..1_000_000,
            peer in 4u64..1_000_000, seq in 1u32..5, peer_seq in 1u32..5,
        ) {
            let f = |n: u32| format!("mysql-bin.{n:06}");
            let s = status(pos(&f(seq), read), pos(&f(seq), exec));
            let p = pos(&f(peer_seq), peer);
            let caught = verdict(&s, Some(&p)) == Verdict::CaughtUp;
            let ahead = peer_seq > seq || (peer_seq == seq && peer > read);
            prop_assert_eq!(caught, exec >= read && !ahead);
        }
    }
}
