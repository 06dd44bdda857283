//! The billing loop: read new spool lines, mediate and rate them into an
//! outbox batch (local commit), commit outbox batches to the central
//! database in order (one transaction each), move finished spool files to
//! `done_dir`, sweep orphaned calls, and publish the status.
//!
//! Local work never waits for the central database: while it is down the
//! outbox grows and the status shows the backlog; commits resume, oldest
//! batch first, with a capped exponential back-off once it answers again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlPool;

use crate::central::{self, CentralError};
use crate::config::Config;
use crate::mediation::Cdr;
use crate::rating::Profiles;
use crate::status::Status;
use crate::store::{
    self, list_spool, read_lines, Lock, Pending, Quarantined, SpoolFile, State, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Central(#[from] CentralError),
    #[error("central database did not complete the transaction within {0} s")]
    Timeout(u64),
}

/// Longest a batch transaction may take before it counts as failed.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn log(msg: std::fmt::Arguments<'_>) {
    eprintln!("billing: {msg}");
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub batches_mediated: u64,
    pub batches_committed: u64,
    /// Every complete spool line has been read.
    pub spool_drained: bool,
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    cfg: Config,
    store: Store,
    state: State,
    central: MySqlPool,
    rating: MySqlPool,
    profiles: Option<Profiles>,
    profiles_loaded: Option<(Instant, u64)>,
    schema_applied: bool,
    central_error: Option<String>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    last_error: Option<String>,
    errors_total: u64,
    status_written: Instant,
    pruned: Option<Instant>,
    shutdown: Arc<AtomicBool>,
    _lock: Lock,
}

impl Daemon {
    /// Opens the state directory and the (lazy) database pools.
    pub fn new(cfg: Config, shutdown: Arc<AtomicBool>) -> Result<Daemon, DaemonError> {
        let store = Store::open(&cfg.state_dir)?;
        let lock = Lock::take(store.dir())?;
        let state = store.load()?;
        store.gc_outbox(&state)?;
        for d in [&cfg.spool_dir, &cfg.done_dir] {
            std::fs::create_dir_all(d).map_err(|source| StoreError::Io {
                path: d.clone(),
                op: "create directory",
                source,
            })?;
        }
        Ok(Daemon {
            central: central::pool(&cfg.central_url)?,
            rating: central::pool(&cfg.rating_url)?,
            cfg,
            store,
            state,
            profiles: None,
            profiles_loaded: None,
            schema_applied: false,
            central_error: None,
            retry_at: None,
            retry_delay: Duration::from_millis(250),
            last_error: None,
            errors_total: 0,
            status_written: Instant::now(),
            pruned: None,
            shutdown,
            _lock: lock,
        })
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn note_error(&mut self, msg: String) {
        log(format_args!("{msg}"));
        self.errors_total += 1;
        self.last_error = Some(msg);
    }

    async fn refresh_profiles(&mut self) {
        let due = match self.profiles_loaded {
            None => true,
            Some((at, _)) => at.elapsed() >= Duration::from_secs(self.cfg.profile_reload_secs),
        };
        if !due {
            return;
        }
        // On a fresh central database nothing would create the profile
        // tables before the first commit, which needs profiles: create the
        // schema first (rating from the central or, replicated, the local).
        if !self.schema_applied && central::apply_schema(&self.central).await.is_ok() {
            self.schema_applied = true;
        }
        match central::load_profiles(&self.rating).await {
            Ok(p) => {
                self.profiles = Some(p);
                self.profiles_loaded = Some((Instant::now(), now_ms()));
            }
            Err(e) => {
                // Keep rating with the last good set; retry next pass.
                self.profiles_loaded = self.profiles_loaded.map(|(_, ms)| (Instant::now(), ms));
                self.note_error(format!("loading billing profiles: {e}"));
            }
        }
    }

    /// One local step on `file`: up to `batch_lines` lines mediated, rated
    /// and committed locally. Returns whether any line was read.
    fn step_file(&mut self, file: &SpoolFile, profiles: &Profiles) -> Result<bool, DaemonError> {
        let from = self
            .state
            .files
            .get(&file.name)
            .copied()
            .unwrap_or_default();
        if from.offset >= file.len {
            return Ok(false);
        }
        let (lines, progress) = read_lines(file, from, self.cfg.batch_lines)?;
        if lines.is_empty() {
            return Ok(false);
        }
        let id = self.state.next_batch;
        let mut cdrs = Vec::new();
        let mut bad = Vec::new();
        for line in lines {
            let source = format!("{}:{}", file.name, line.number);
            match line.parsed {
                Ok(ev) => {
                    if let Some(mut cdr) = self.state.mediator.on_event(ev, source) {
                        cdr.rate(profiles);
                        cdrs.push(cdr);
                    }
                }
                Err(e) => {
                    let msg = format!(
                        "{}:{}: {e}; line moved to quarantine",
                        file.path.display(),
                        line.number
                    );
                    self.note_error(msg);
                    bad.push(Quarantined {
                        file: file.path.display().to_string(),
                        line: line.number,
                        field: e.field().map(str::to_owned),
                        reason: e.to_string(),
                        text: line.text,
                    });
                }
            }
        }
        if !bad.is_empty() {
            self.store.write_quarantine(&file.name, id, &bad)?;
            self.state.quarantined_total += bad.len() as u64;
        }
        self.add_batch(id, Some(file.name.clone()), &cdrs)?;
        self.state.files.insert(file.name.clone(), progress);
        self.store.save(&self.state)?;
        Ok(true)
    }

    fn add_batch(
        &mut self,
        id: u64,
        file: Option<String>,
        cdrs: &[Cdr],
    ) -> Result<(), DaemonError> {
        if !cdrs.is_empty() {
            self.store.write_batch(id, cdrs)?;
            self.state.pending.push(Pending {
                id,
                file,
                cdrs: cdrs.len() as u64,
            });
        }
        self.state.next_batch = id + 1;
        Ok(())
    }

    /// Commits pending batches, oldest first, until done, the central
    /// database fails, or shutdown. Returns how many were committed.
    async fn commit_pending(&mut self) -> Result<u64, DaemonError> {
        let mut done = 0;
        while let Some(p) = self.state.pending.first().cloned() {
            if self.stopping() || self.retry_at.is_some_and(|t| Instant::now() < t) {
                break;
            }
            let res = async {
                if !self.schema_applied {
                    central::apply_schema(&self.central).await?;
                }
                let cdrs = self.store.read_batch(p.id).map_err(DaemonError::from)?;
                // A peer that vanished without a RST must not hang us: a
                // timed-out batch is simply replayed (the key dedups it).
                let insert = central::insert_batch(&self.central, &cdrs);
                match tokio::time::timeout(COMMIT_TIMEOUT, insert).await {
                    Ok(res) => Ok::<u64, DaemonError>(res?),
                    Err(_) => Err(DaemonError::Timeout(COMMIT_TIMEOUT.as_secs())),
                }
            }
            .await;
            match res {
                Ok(new_rows) => {
                    self.schema_applied = true;
                    self.state.pending.remove(0);
                    // Rows new to the central table: a batch replayed after
                    // a crash between commit and bookkeeping adds nothing.
                    self.state.committed_total += new_rows;
                    self.state.last_commit_ms = Some(now_ms());
                    self.store.save(&self.state)?;
                    self.store.remove_batch(p.id)?;
                    if self.central_error.take().is_some() {
                        log(format_args!("central database reachable again"));
                    }
                    self.retry_at = None;
                    self.retry_delay = Duration::from_millis(250);
                    done += 1;
                }
                Err(DaemonError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    self.schema_applied = false;
                    let msg = format!(
                        "central database: {e}; {} batch(es) kept locally, retrying in {:?}",
                        self.state.pending.len(),
                        self.retry_delay
                    );
                    self.note_error(msg.clone());
                    self.central_error = Some(msg);
                    self.retry_at = Some(Instant::now() + self.retry_delay);
                    self.retry_delay =
                        (self.retry_delay * 2).min(Duration::from_secs(self.cfg.retry_max_secs));
                    break;
                }
            }
        }
        Ok(done)
    }

    /// Moves closed, fully read and fully committed spool files to
    /// `done_dir`, and forgets progress of files that are gone.
    fn retire_files(&mut self, files: &[SpoolFile]) -> Result<(), DaemonError> {
        let mut changed = false;
        for f in files.iter().filter(|f| f.closed) {
            let read = self.state.files.get(&f.name).map_or(0, |p| p.offset);
            let busy = self
                .state
                .pending
                .iter()
                .any(|p| p.file.as_deref() == Some(f.name.as_str()));
            if read < f.len || busy {
                continue;
            }
            let to = self.cfg.done_dir.join(&f.name);
            std::fs::rename(&f.path, &to).map_err(|source| StoreError::Io {
                path: f.path.clone(),
                op: "move to done_dir",
                source,
            })?;
            store::sync_dir(&self.cfg.done_dir)?;
            store::sync_dir(&self.cfg.spool_dir)?;
            self.state.files.remove(&f.name);
            changed = true;
        }
        let before = self.state.files.len();
        self.state
            .files
            .retain(|name, _| files.iter().any(|f| &f.name == name));
        if changed || before != self.state.files.len() {
            self.store.save(&self.state)?;
        }
        Ok(())
    }

    /// Deletes done spool files past `done_keep_days`, at most hourly.
    fn prune_done(&mut self) {
        let days = self.cfg.done_keep_days;
        if days == 0
            || self
                .pruned
                .is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.pruned = Some(Instant::now());
        let cutoff = now_ms().saturating_sub(days * 86_400_000);
        match store::prune_done(&self.cfg.done_dir, cutoff) {
            Ok(0) => {}
            Ok(n) => log(format_args!(
                "removed {n} done spool file(s) older than {days} days"
            )),
            Err(e) => self.note_error(format!("pruning done_dir: {e}")),
        }
    }

    /// One pass over the spool and the outbox.
    pub async fn pass(&mut self) -> Result<Pass, DaemonError> {
        let mut pass = Pass::default();
        self.refresh_profiles().await;
        let files = list_spool(&self.cfg.spool_dir)?;
        if let Some(profiles) = self.profiles.clone() {
            let mut drained = true;
            'files: for f in &files {
                loop {
                    if self.stopping() {
                        drained = false;
                        break 'files;
                    }
                    if !self.step_file(f, &profiles)? {
                        break;
                    }
                    pass.batches_mediated += 1;
                    pass.batches_committed += self.commit_pending().await?;
                    if self.status_written.elapsed() >= Duration::from_millis(500) {
                        self.write_status(true, &files)?;
                    }
                }
            }
            if drained {
                // Only when caught up: a stop may still be in unread lines.
                let max_ms = self.cfg.max_call_secs * 1000;
                let mut orphans = self.state.mediator.sweep(now_ms(), max_ms);
                for o in &mut orphans {
                    o.rate(&profiles);
                }
                if !orphans.is_empty() {
                    let id = self.state.next_batch;
                    self.add_batch(id, None, &orphans)?;
                    self.store.save(&self.state)?;
                    pass.batches_mediated += 1;
                }
            }
            pass.spool_drained = drained;
        }
        pass.batches_committed += self.commit_pending().await?;
        let files = list_spool(&self.cfg.spool_dir)?;
        self.retire_files(&files)?;
        self.prune_done();
        self.write_status(true, &files)?;
        Ok(pass)
    }

    /// Runs until SIGTERM (or, with `once`, until the spool is drained and
    /// the outbox committed or the central database is unreachable).
    /// Returns the number of batches still waiting for the central database.
    pub async fn run(&mut self, once: bool) -> Result<usize, DaemonError> {
        loop {
            let pass = self.pass().await?;
            if self.stopping() {
                break;
            }
            if once {
                let drained = pass.spool_drained || self.profiles.is_none();
                if drained && self.state.pending.is_empty() {
                    break;
                }
                let blocked = self.central_error.is_some() && pass.batches_committed == 0;
                if drained && blocked {
                    break;
                }
            }
            if pass.batches_mediated == 0 {
                self.sleep(Duration::from_millis(self.cfg.poll_ms)).await;
            }
        }
        let files = list_spool(&self.cfg.spool_dir).unwrap_or_default();
        self.write_status(false, &files)?;
        Ok(self.state.pending.len())
    }

    async fn sleep(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.stopping() && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(50))).await;
        }
    }

    /// Whether the billing profiles have been loaded at least once.
    pub fn profiles_loaded(&self) -> bool {
        self.profiles.is_some()
    }

    /// Path of the status file.
    pub fn status_path(&self) -> PathBuf {
        self.store.dir().join("status.json")
    }

    fn write_status(&mut self, running: bool, files: &[SpoolFile]) -> Result<(), DaemonError> {
        let unread: u64 = files
            .iter()
            .map(|f| {
                f.len
                    .saturating_sub(self.state.files.get(&f.name).map_or(0, |p| p.offset))
            })
            .sum();
        let st = Status {
            pid: std::process::id(),
            node: self.cfg.node.clone(),
            running,
            updated_ms: now_ms(),
            poll_ms: self.cfg.poll_ms,
            central_up: self.central_error.is_none(),
            central_error: self.central_error.clone(),
            last_commit_ms: self.state.last_commit_ms,
            committed_total: self.state.committed_total,
            backlog_batches: self.state.pending.len() as u64,
            backlog_cdrs: self.state.pending.iter().map(|p| p.cdrs).sum(),
            spool_files: files.len() as u64,
            spool_unread_bytes: unread,
            open_calls: self.state.mediator.open.len() as u64,
            quarantined_total: self.state.quarantined_total,
            errors_total: self.errors_total,
            last_error: self.last_error.clone(),
            profiles_loaded_ms: self.profiles_loaded.map(|(_, ms)| ms),
        };
        let bytes = serde_json::to_vec_pretty(&st).map_err(|e| StoreError::Corrupt {
            path: self.status_path(),
            reason: e.to_string(),
        })?;
        store::write_atomic(&self.status_path(), &bytes)?;
        self.status_written = Instant::now();
        Ok(())
    }
}
