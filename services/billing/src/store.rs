//! Local, crash-safe state of the billing daemon (in `state_dir`) and
//! reading the proxy's spool.
//!
//! * `state.json`: how far each spool file has been read, the open calls,
//!   and the outbox batches not yet committed centrally. Replaced
//!   atomically (write, fsync, rename, fsync directory): this rename is the
//!   single commit point of a local step.
//! * `outbox/batch-<id>.jsonl`: mediated and rated CDRs of one batch,
//!   written (atomically) *before* the state that references them, so a
//!   crash in between only means the batch is computed again, identically.
//! * `quarantine/<spool file>.b<id>.jsonl`: rejected spool lines with their
//!   file, line, field and reason.
//! * `status.json`: what `billing status` reports.
//!
//! A spool file goes to `done_dir` only when it is closed (a newer file
//! exists, so the proxy no longer writes it), read to the end, and every
//! batch made from it is committed in the central database.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::{parse_line, Event, LineError};
use crate::mediation::{Cdr, Mediator};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: another billing process (pid {pid}) uses this state_dir; stop it first")]
    Locked { path: PathBuf, pid: u32 },
    #[error("{path}: corrupt ({reason}); move it away to start over from the spool")]
    Corrupt { path: PathBuf, reason: String },
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

/// How far a spool file has been read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Byte offset after the last consumed line.
    pub offset: u64,
    /// Lines consumed (so line numbers stay absolute).
    pub lines: u64,
}

/// An outbox batch awaiting its central transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub id: u64,
    /// The spool file the batch was read from (none for orphan sweeps).
    pub file: Option<String>,
    pub cdrs: u64,
}

/// Everything `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub files: BTreeMap<String, Progress>,
    pub mediator: Mediator,
    pub pending: Vec<Pending>,
    pub next_batch: u64,
    pub committed_total: u64,
    pub quarantined_total: u64,
    pub last_commit_ms: Option<u64>,
}

/// One rejected spool line, as written to the quarantine file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub file: String,
    pub line: u64,
    pub field: Option<String>,
    pub reason: String,
    pub text: String,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp, "create"))?;
    f.write_all(bytes).map_err(io(&tmp, "write"))?;
    f.sync_all().map_err(io(&tmp, "fsync"))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path, "rename"))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory so a rename or creation in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "fsync directory"))
}

impl Store {
    /// Opens (creating) the state directory and its subdirectories.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        for d in [
            dir.to_path_buf(),
            dir.join("outbox"),
            dir.join("quarantine"),
        ] {
            std::fs::create_dir_all(&d).map_err(io(&d, "create directory"))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The persisted state (empty on first start).
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io(&path, "read")(e)),
        }
    }

    /// Commits a new state (the commit point of every local step).
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            path: self.state_path(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.state_path(), &bytes)
    }

    fn batch_path(&self, id: u64) -> PathBuf {
        self.dir
            .join("outbox")
            .join(format!("batch-{id:012}.jsonl"))
    }

    /// Writes the CDRs of batch `id` (replacing a half-done earlier try).
    pub fn write_batch(&self, id: u64, cdrs: &[Cdr]) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for c in cdrs {
            serde_json::to_writer(&mut buf, c).map_err(|e| StoreError::Corrupt {
                path: self.batch_path(id),
                reason: e.to_string(),
            })?;
            buf.push(b'\n');
        }
        write_atomic(&self.batch_path(id), &buf)
    }

    /// Reads the CDRs of batch `id`.
    pub fn read_batch(&self, id: u64) -> Result<Vec<Cdr>, StoreError> {
        let path = self.batch_path(id);
        let text = std::fs::read_to_string(&path).map_err(io(&path, "read"))?;
        text.lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    reason: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    /// Removes batch `id` once committed.
    pub fn remove_batch(&self, id: u64) -> Result<(), StoreError> {
        let path = self.batch_path(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, "remove")(e)),
            _ => Ok(()),
        }
    }

    /// Removes outbox files no pending batch refers to: left by a crash
    /// after a commit and before their removal, or half-written (`.tmp`)
    /// by a crash before the state referenced them.
    pub fn gc_outbox(&self, state: &State) -> Result<usize, StoreError> {
        let dir = self.dir.join("outbox");
        let keep: Vec<PathBuf> = state
            .pending
            .iter()
            .map(|p| self.batch_path(p.id))
            .collect();
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir, "read directory"))? {
            let path = entry.map_err(io(&dir, "read directory"))?.path();
            if !keep.contains(&path) {
                std::fs::remove_file(&path).map_err(io(&path, "remove"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes the rejected lines of batch `id` read from `file`.
    pub fn write_quarantine(
        &self,
        file: &str,
        id: u64,
        bad: &[Quarantined],
    ) -> Result<PathBuf, StoreError> {
        let path = self
            .dir
            .join("quarantine")
            .join(format!("{file}.b{id}.jsonl"));
        let mut buf = Vec::new();
        for q in bad {
            serde_json::to_writer(&mut buf, q).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            buf.push(b'\n');
        }
        write_atomic(&path, &buf)?;
        Ok(path)
    }
}

/// Exclusive use of a state directory by one billing process: a pid file,
/// taken over when the pid in it is no longer a running billing process
/// (left by a crash). Removed on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

fn billing_pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().starts_with("billing"))
        .unwrap_or(false)
}

impl Lock {
    pub fn take(dir: &Path) -> Result<Lock, StoreError> {
        let path = dir.join("lock");
        let me = std::process::id();
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                if pid != me && billing_pid_alive(pid) {
                    return Err(StoreError::Locked { path, pid });
                }
            }
        }
        write_atomic(&path, format!("{me}\n").as_bytes())?;
        Ok(Lock { path })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A spool file seen in the spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFile {
    pub name: String,
    pub path: PathBuf,
    pub len: u64,
    /// A newer spool file exists: the proxy will not append to this one.
    pub closed: bool,
}

/// Lists `acc-*.jsonl` files in `dir`, oldest first (names sort by time).
pub fn list_spool(dir: &Path) -> Result<Vec<SpoolFile>, StoreError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(dir, "read directory")(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io(dir, "read directory"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("acc-") && name.ends_with(".jsonl")) {
            continue;
        }
        let meta = entry.metadata().map_err(io(&entry.path(), "stat"))?;
        if !meta.is_file() {
            continue;
        }
        out.push(SpoolFile {
            name,
            path: entry.path(),
            len: meta.len(),
            closed: true,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(last) = out.last_mut() {
        last.closed = false;
    }
    Ok(out)
}

/// The Unix-ms time in a spool file name `acc-<ms>-<seq>.jsonl`.
pub fn spool_file_ms(name: &str) -> Option<u64> {
    name.strip_prefix("acc-")?.split('-').next()?.parse().ok()
}

/// Deletes spool files in `done_dir` named before `cutoff_ms`; returns how
/// many. Files whose name carries no time are left alone.
pub fn prune_done(done_dir: &Path, cutoff_ms: u64) -> Result<usize, StoreError> {
    let mut removed = 0;
    let rd = match std::fs::read_dir(done_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(done_dir, "read directory")(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io(done_dir, "read directory"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if spool_file_ms(&name).is_some_and(|ms| ms < cutoff_ms) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io(&path, "remove"))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// One line read from a spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: u64,
    pub parsed: Result<Event, LineError>,
    pub text: String,
}

/// Up to `max_lines` lines of `file` after `from`, and the progress after
/// them. In a closed file a last line without newline is returned as torn;
/// in the file the proxy is writing, it is left for later.
pub fn read_lines(
    file: &SpoolFile,
    from: Progress,
    max_lines: usize,
) -> Result<(Vec<Line>, Progress), StoreError> {
    let mut f = File::open(&file.path).map_err(io(&file.path, "open"))?;
    f.seek(SeekFrom::Start(from.offset))
        .map_err(io(&file.path, "seek"))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io(&file.path, "read"))?;
    let mut lines = Vec::new();
    let mut pos = 0usize;
    let mut progress = from;
    while lines.len() < max_lines && pos < bytes.len() {
        let rest = &bytes[pos..];
        let (raw, used, torn) = match rest.iter().position(|&b| b == b'\n') {
            Some(n) => (&rest[..n], n + 1, false),
            None if file.closed => (rest, rest.len(), true),
            None => break,
        };
        pos += used;
        progress.offset += used as u64;
        progress.lines += 1;
        let text = String::from_utf8_lossy(raw).into_owned();
        let parsed = if torn {
            Err(LineError::Torn)
        } else {
            match std::str::from_utf8(raw) {
                Ok(s) => parse_line(s),
                Err(e) => Err(LineError::Syntax(format!("not UTF-8: {e}"))),
            }
        };
        lines.push(Line {
            number: progress.lines,
            parsed,
            text,
        });
    }
    Ok((lines, progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_proxy::testbed::TempDir;

    #[test]
    fn state_round_trips_and_is_replaced_atomically() {
        let dir = TempDir::new("billing-store").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        let mut st = State::default();
        st.files.insert(
            "acc-1.jsonl".into(),
            Progress {
                offset: 10,
                lines: 2,
            },
        );
        st.next_batch = 3;
        store.save(&st).unwrap();
        assert_eq!(store.load().unwrap(), st);
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn open_file_keeps_partial_line_closed_file_reports_it_torn() {
        let dir = TempDir::new("billing-lines").unwrap();
        let p = dir.path().join("acc-0000000000001-000000.jsonl");
        std::fs::write(&p, b"{}\nnot json\n{\"kind\":\"st").unwrap();
        let mut f = SpoolFile {
            name: "x".into(),
            path: p,
            len: 0,
            closed: false,
        };
        let (lines, prog) = read_lines(&f, Progress::default(), 100).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            prog,
            Progress {
                offset: 12,
                lines: 2
            }
        );
        assert_eq!(lines[1].number, 2);
        assert!(lines.iter().all(|l| l.parsed.is_err()));
        f.closed = true;
        let (lines, prog) = read_lines(&f, prog, 100).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].number, 3);
        assert_eq!(lines[0].parsed, Err(LineError::Torn));
        assert_eq!(prog.offset, 23);
    }

    #[test]
    fn prune_done_removes_only_old_named_files() {
        let dir = TempDir::new("billing-prune").unwrap();
        for n in [
            "acc-0000000001000-000000.jsonl",
            "acc-0000000009000-000001.jsonl",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        assert_eq!(spool_file_ms("acc-0000000001000-000000.jsonl"), Some(1000));
        assert_eq!(prune_done(dir.path(), 5000).unwrap(), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["acc-0000000009000-000001.jsonl", "notes.txt"]);
    }

    #[test]
    fn max_lines_limits_a_read() {
        let dir = TempDir::new("billing-lines-max").unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"a\nb\nc\n").unwrap();
        let f = SpoolFile {
            name: "a".into(),
            path: p,
            len: 6,
            closed: true,
        };
        let (lines, prog) = read_lines(&f, Progress::default(), 2).unwrap();
        assert_eq!((lines.len(), prog.offset, prog.lines), (2, 4, 2));
    }
}
