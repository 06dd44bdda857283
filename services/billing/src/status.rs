//! The status file written by the daemon after every pass, and its health
//! verdict for `billing status` (exit codes 0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN).

use serde::{Deserialize, Serialize};

/// What `state_dir/status.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub node: String,
    /// False once the daemon stopped cleanly.
    pub running: bool,
    pub updated_ms: u64,
    pub poll_ms: u64,
    pub central_up: bool,
    pub central_error: Option<String>,
    pub last_commit_ms: Option<u64>,
    pub committed_total: u64,
    /// Outbox batches (and their CDRs) not yet in the central database.
    pub backlog_batches: u64,
    pub backlog_cdrs: u64,
    pub spool_files: u64,
    /// Spool bytes not yet mediated.
    pub spool_unread_bytes: u64,
    pub open_calls: u64,
    pub quarantined_total: u64,
    /// Errors since the daemon started (quarantined lines, DB failures).
    pub errors_total: u64,
    pub last_error: Option<String>,
    pub profiles_loaded_ms: Option<u64>,
}

/// Health verdict, with the exit code convention of every flexvisor check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Warning => 1,
            Verdict::Critical => 2,
            Verdict::Unknown => 3,
        }
    }
}

/// Judges a status read at `now_ms`; `alive` says whether `pid` runs.
/// CRITICAL: the daemon died without saying so, or stopped updating.
/// WARNING: central database down, profiles never loaded, or stopped.
pub fn judge(st: &Status, now_ms: u64, alive: bool) -> (Verdict, String) {
    let stale_after = (st.poll_ms * 10).max(60_000);
    if st.running && !alive {
        return (
            Verdict::Critical,
            format!("billing (pid {}) is not running", st.pid),
        );
    }
    if st.running && now_ms.saturating_sub(st.updated_ms) > stale_after {
        return (
            Verdict::Critical,
            format!(
                "status not updated for {} s",
                (now_ms - st.updated_ms) / 1000
            ),
        );
    }
    if !st.running {
        return (Verdict::Warning, "billing is stopped".into());
    }
    if st.profiles_loaded_ms.is_none() {
        return (
            Verdict::Warning,
            "billing profiles not loaded yet; nothing is mediated".into(),
        );
    }
    if !st.central_up {
        return (
            Verdict::Warning,
            format!(
                "central database down, {} CDRs kept locally",
                st.backlog_cdrs
            ),
        );
    }
    (
        Verdict::Ok,
        format!(
            "{} CDRs committed, backlog {} CDRs, {} open calls, {} lines quarantined",
            st.committed_total, st.backlog_cdrs, st.open_calls, st.quarantined_total
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> Status {
        Status {
            pid: 1,
            node: "proxy1a".into(),
            running: true,
            updated_ms: 1_000_000,
            poll_ms: 1000,
            central_up: true,
            central_error: None,
            last_commit_ms: None,
            committed_total: 0,
            backlog_batches: 0,
            backlog_cdrs: 0,
            spool_files: 0,
            spool_unread_bytes: 0,
            open_calls: 0,
            quarantined_total: 0,
            errors_total: 0,
            last_error: None,
            profiles_loaded_ms: Some(1),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&st(), 1_000_500, true).0, Verdict::Ok);
        assert_eq!(judge(&st(), 1_000_500, false).0, Verdict::Critical);
        assert_eq!(judge(&st(), 9_000_000, true).0, Verdict::Critical);
        let mut down = st();
        down.central_up = false;
        assert_eq!(judge(&down, 1_000_500, true).0, Verdict::Warning);
        let mut stopped = st();
        stopped.running = false;
        assert_eq!(judge(&stopped, 9_000_000, false).0, Verdict::Warning);
    }
}
