//! Durable accounting spool: call start/stop events as JSON lines, appended
//! and fsync'ed before [`Spool::append`] returns, so an event the proxy has
//! acted on (e.g. relayed the 200 OK after writing `start`) survives a crash.
//!
//! Files are `<dir>/acc-<unix-ms>-<seq>.jsonl`; the current one is rotated
//! when it passes `max_bytes`, and the directory is fsync'ed after each new
//! file so the rename/creation itself is durable. The billing service (a
//! later issue) consumes closed files; it must treat a last line without a
//! trailing newline as torn (only possible for an event never acknowledged).

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("accounting spool {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding accounting event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("accounting spool lock poisoned")]
    Poisoned,
    #[error("accounting writer task failed: {0}")]
    Join(String),
}

/// Kind of accounting event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Start,
    Stop,
}

/// One accounting record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub call_id: String,
    /// Unix time in milliseconds when the proxy saw the event.
    pub time_ms: u64,
    pub from_tag: String,
    pub to_tag: String,
    pub caller: String,
    pub callee: String,
    pub caller_customer: Option<u64>,
    pub callee_customer: Option<u64>,
    /// Node that anchored the call.
    pub node: String,
    /// For `stop`: who ended it ("bye", "timeout").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// For `stop`: when the call was answered (Unix ms), from the shared
    /// call record, so a stop written by the pair partner after a failover
    /// makes a complete CDR without the start spooled on the lost node.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub answer_ms: Option<u64>,
}

#[derive(Debug)]
struct Current {
    file: File,
    path: PathBuf,
    bytes: u64,
    seq: u64,
}

/// Append-only, fsync'ed spool; clone freely (shared file handle).
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    cur: Arc<Mutex<Current>>,
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { path, op, source }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Spool {
    /// Opens (creating) `dir` and starts a new spool file in it.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir, "create directory"))?;
        let cur = Self::new_file(dir, 0)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1),
            cur: Arc::new(Mutex::new(cur)),
        })
    }

    fn new_file(dir: &Path, seq: u64) -> Result<Current, SpoolError> {
        let path = dir.join(format!("acc-{:013}-{seq:06}.jsonl", now_ms()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path, "create"))?;
        let bytes = file.metadata().map_err(io(&path, "stat"))?.len();
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir, "fsync directory"))?;
        Ok(Current {
            file,
            path,
            bytes,
            seq,
        })
    }

    /// Appends one event and returns after it is on stable storage.
    pub fn append_blocking(&self, ev: &Event) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(ev)?;
        line.push(b'\n');
        let mut cur = self.cur.lock().map_err(|_| SpoolError::Poisoned)?;
        if cur.bytes > 0 && cur.bytes + line.len() as u64 > self.max_bytes {
            let seq = cur.seq + 1;
            *cur = Self::new_file(&self.dir, seq)?;
        }
        let path = cur.path.clone();
        cur.file.write_all(&line).map_err(io(&path, "write"))?;
        cur.file.sync_data().map_err(io(&path, "fsync"))?;
        cur.bytes += line.len() as u64;
        Ok(())
    }

    /// Async wrapper: the write and fsync run on the blocking pool.
    pub async fn append(&self, ev: Event) -> Result<(), SpoolError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.append_blocking(&ev))
            .await
            .map_err(|e| SpoolError::Join(e.to_string()))?
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads every event from every spool file in `dir`, oldest file first
/// (for tests and the billing importer). Torn last lines are skipped.
pub fn read_all(dir: &Path) -> Result<Vec<Event>, SpoolError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir, "read directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io(&f, "read"))?;
        for line in text.split_inclusive('\n') {
            if !line.ends_with('\n') {
                continue;
            }
            out.push(serde_json::from_str(line.trim_end())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> Event {
        Event {
            kind: if i.is_multiple_of(2) {
                EventKind::Start
            } else {
                EventKind::Stop
            },
            call_id: format!("call-{i}"),
            time_ms: i,
            from_tag: "f".into(),
            to_tag: "t".into(),
            caller: "a@d".into(),
            callee: "b@d".into(),
            caller_customer: Some(1),
            callee_customer: None,
            node: "proxy1a".into(),
            reason: None,
            answer_ms: None,
        }
    }

    #[test]
    fn appends_rotate_and_read_back_in_order() {
        let dir = crate::testbed::TempDir::new("spool-test").unwrap();
        let spool = Spool::open(dir.path(), 600).unwrap();
        for i in 0..20 {
            spool.append_blocking(&ev(i)).unwrap();
        }
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files > 3, "expected rotation, got {files} files");
        let back = read_all(dir.path()).unwrap();
        assert_eq!(back, (0..20).map(ev).collect::<Vec<_>>());
    }

    #[test]
    fn torn_last_line_is_skipped() {
        let dir = crate::testbed::TempDir::new("spool-torn").unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append_blocking(&ev(0)).unwrap();
        let path = spool.cur.lock().unwrap().path.clone();
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(b"{\"kind\":\"sta").unwrap();
        assert_eq!(read_all(dir.path()).unwrap(), vec![ev(0)]);
    }
}
