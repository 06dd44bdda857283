//! What a transition did: one stderr line per step as it happens, the error
//! of a failed step (naming store, server and step), and the `--json`
//! summary.

use serde::Serialize;

use crate::target::Targets;
use crate::Action;

/// A step that failed: `redis 127.0.0.1:6380: REPLICAOF NO ONE: connection refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{store} {server}: {step}: {detail}")]
pub struct StepError {
    pub store: &'static str,
    pub server: String,
    pub step: String,
    pub detail: String,
}

impl StepError {
    pub fn new(
        store: &'static str,
        server: impl ToString,
        step: impl Into<String>,
        detail: impl ToString,
    ) -> Self {
        StepError {
            store,
            server: server.to_string(),
            step: step.into(),
            detail: detail.to_string(),
        }
    }
}

/// One step as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub store: &'static str,
    pub server: String,
    pub step: String,
    pub ok: bool,
    pub detail: String,
}

/// Writes each step to stderr as one line and keeps it for the summary.
#[derive(Debug)]
pub struct Log {
    action: Action,
    steps: Vec<Step>,
    quiet: bool,
}

impl Log {
    pub fn new(action: Action) -> Self {
        Log {
            action,
            steps: Vec::new(),
            quiet: false,
        }
    }

    /// A log that only records (unit tests).
    pub fn quiet(action: Action) -> Self {
        Log {
            quiet: true,
            ..Log::new(action)
        }
    }

    /// A step that succeeded; `detail` says what was seen.
    pub fn ok(&mut self, store: &'static str, server: &dyn ToString, step: &str, detail: &str) {
        self.push(Step {
            store,
            server: server.to_string(),
            step: step.to_owned(),
            ok: true,
            detail: detail.to_owned(),
        });
    }

    /// A step that failed; returns the error for the caller to pass on.
    pub fn fail(&mut self, e: StepError) -> StepError {
        self.push(Step {
            store: e.store,
            server: e.server.clone(),
            step: e.step.clone(),
            ok: false,
            detail: e.detail.clone(),
        });
        e
    }

    fn push(&mut self, s: Step) {
        if !self.quiet {
            let verdict = if s.ok { "ok" } else { "FAILED" };
            let detail = if s.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.detail)
            };
            // One line per step: the detail is flattened.
            let line = format!(
                "db-failover {}: {} {}: {}: {verdict}{detail}",
                self.action.as_str(),
                s.store,
                s.server,
                s.step
            )
            .replace('\n', " ");
            eprintln!("{line}");
        }
        self.steps.push(s);
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// The end state of one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreOutcome {
    pub server: String,
    pub ok: bool,
    /// What the server reported last: `master`, `replica of HOST:PORT
    /// (link up)`, `read_only=ON` …; empty if it could not be asked.
    pub state: String,
    pub error: Option<StepError>,
    /// Things that did not fail the step but an operator should know.
    pub warnings: Vec<String>,
}

impl StoreOutcome {
    pub fn done(server: impl ToString, state: impl Into<String>, warnings: Vec<String>) -> Self {
        StoreOutcome {
            server: server.to_string(),
            ok: true,
            state: state.into(),
            error: None,
            warnings,
        }
    }

    pub fn failed(
        server: impl ToString,
        state: impl Into<String>,
        e: StepError,
        warnings: Vec<String>,
    ) -> Self {
        StoreOutcome {
            server: server.to_string(),
            ok: false,
            state: state.into(),
            error: Some(e),
            warnings,
        }
    }
}

/// The `--json` summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub action: Action,
    pub ok: bool,
    pub peer: String,
    pub peer_source: String,
    pub redis: StoreOutcome,
    pub mariadb: StoreOutcome,
    pub steps: Vec<Step>,
}

impl Summary {
    pub fn new(
        action: Action,
        t: &Targets,
        redis: StoreOutcome,
        mariadb: StoreOutcome,
        log: &Log,
    ) -> Self {
        Summary {
            action,
            ok: redis.ok && mariadb.ok,
            peer: t.peer_host.clone(),
            peer_source: t.peer_source.clone(),
            redis,
            mariadb,
            steps: log.steps().to_vec(),
        }
    }

    /// The errors, one per failed store, for the exit message.
    pub fn errors(&self) -> Vec<&StepError> {
        [&self.mariadb, &self.redis]
            .into_iter()
            .filter_map(|s| s.error.as_ref())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_error_names_store_server_and_step() {
        let e = StepError::new(
            "redis",
            "127.0.0.1:6380",
            "REPLICAOF NO ONE",
            "connection refused",
        );
        assert_eq!(
            e.to_string(),
            "redis 127.0.0.1:6380: REPLICAOF NO ONE: connection refused"
        );
    }

    #[test]
    fn log_keeps_steps_in_order_with_verdicts() {
        let mut l = Log::quiet(Action::Demote);
        l.ok("mariadb", &"/s", "SET GLOBAL read_only = ON", "");
        let _ = l.fail(StepError::new("redis", "h:1", "PING peer", "refused"));
        let s = l.steps();
        assert_eq!(s.len(), 2);
        assert!(s[0].ok && !s[1].ok);
        assert_eq!(s[1].detail, "refused");
    }
}
