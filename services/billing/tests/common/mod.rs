//! Shared set-up for the integration tests: a real MariaDB (restartable,
//! from `billing::testbed`) with the billing schema and seeded profiles,
//! spool files written with sip-proxy's own `Spool` writer, and helpers to
//! run the `billing` binary. Everything is killed and removed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use billing::testbed::{MariaDb, TempDir};
use sip_proxy::spool::{Event, EventKind, Spool};

pub const SCHEMA: &str = include_str!("../../migrations/schema.sql");

/// Profiles every test can rely on (smallest currency unit = cent):
/// customer 1 → profile `retail` (EUR):
///   prefix ""     2/min, 60/60, no connect fee (catch-all)
///   prefix "49"  10/min, 60/60
///   prefix "4930" 6/min, 1/1, connect fee 5
///   prefix "44"  12/min, 30/6
/// prefix "1" is absent from `wholesale` (customer 3) → unrated;
/// customer 2 has no profile → unrated.
pub const SEED: &str = "
INSERT INTO billing_profiles (id, name, currency) VALUES (1, 'retail', 'EUR'), (2, 'wholesale', 'USD');
INSERT INTO billing_fees (profile_id, destination_prefix, rate_per_minute, connect_fee, first_interval, next_interval) VALUES
  (1, '', 2, 0, 60, 60), (1, '49', 10, 0, 60, 60), (1, '4930', 6, 5, 1, 1), (1, '44', 12, 0, 30, 6),
  (2, '49', 1, 0, 1, 1);
INSERT INTO billing_customers (customer_id, profile_id) VALUES (1, 1), (3, 2);
";

pub struct Env {
    pub db: MariaDb,
    pub dir: TempDir,
    pub spool: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Env {
    /// Starts MariaDB, applies the schema, seeds the profiles and writes a
    /// config (`extra` appended) for a billing daemon.
    pub fn start(extra: &str) -> Env {
        let db = MariaDb::start().unwrap_or_else(|e| panic!("starting MariaDB: {e}"));
        db.client(&format!("USE flexvisor;\n{SCHEMA}\n{SEED}"))
            .unwrap_or_else(|e| panic!("seeding: {e}"));
        let dir = TempDir::new("billing-test").unwrap();
        let spool = dir.path().join("spool");
        let state = dir.path().join("state");
        let config = dir.path().join("billing.toml");
        std::fs::create_dir_all(&spool).unwrap();
        std::fs::write(
            &config,
            format!(
                "node = \"proxy-test\"\nspool_dir = \"{}\"\nstate_dir = \"{}\"\n\
                 central_url = \"{}\"\npoll_ms = 50\nretry_max_secs = 1\n{extra}\n",
                spool.display(),
                state.display(),
                db.url("flexvisor"),
            ),
        )
        .unwrap();
        Env {
            db,
            dir,
            spool,
            state,
            config,
        }
    }

    /// A new spool file (closing the previous writer's file for billing).
    pub fn spool_writer(&self, max_bytes: u64) -> Spool {
        // Spool file names carry the millisecond: keep them ordered.
        std::thread::sleep(Duration::from_millis(2));
        Spool::open(&self.spool, max_bytes).unwrap()
    }

    /// SQL through the mariadb client on database flexvisor.
    pub fn sql(&self, sql: &str) -> String {
        self.db
            .client(&format!("USE flexvisor;\n{sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn count(&self, where_: &str) -> u64 {
        self.sql(&format!("SELECT COUNT(*) FROM cdrs WHERE {where_}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Tab-separated columns of the CDR of `call_id`.
    pub fn cdr(&self, call_id: &str, cols: &str) -> Vec<String> {
        let out = self.sql(&format!(
            "SELECT {cols} FROM cdrs WHERE call_id = '{call_id}'"
        ));
        let line = out
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no CDR for {call_id}"));
        line.split('\t').map(str::to_owned).collect()
    }

    /// `billing --once` with this config.
    pub fn run_once(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_billing"))
            .arg("--config")
            .arg(&self.config)
            .arg("--once")
            .output()
            .unwrap()
    }

    pub fn done_files(&self) -> Vec<String> {
        list(&self.spool.join("done"))
    }

    pub fn spool_files(&self) -> Vec<String> {
        list(&self.spool)
            .into_iter()
            .filter(|n| n.ends_with(".jsonl"))
            .collect()
    }

    /// The daemon's status file (Null before its first write).
    pub fn status(&self) -> serde_json::Value {
        match std::fs::read(self.state.join("status.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn now_ms() -> u64 {
    billing::daemon::now_ms()
}

/// An accounting event as the proxy writes it.
pub fn event(
    kind: EventKind,
    call_id: &str,
    time_ms: u64,
    customer: Option<u64>,
    callee: &str,
) -> Event {
    Event {
        kind,
        call_id: call_id.into(),
        time_ms,
        from_tag: format!("ft-{call_id}"),
        to_tag: format!("tt-{call_id}"),
        caller: "alice@example.com".into(),
        callee: format!("{callee}@example.com"),
        caller_customer: customer,
        callee_customer: Some(9),
        node: "proxy-test".into(),
        reason: (kind == EventKind::Stop).then(|| "bye".into()),
        answer_ms: None,
    }
}

/// Writes a start and a stop `duration_ms` apart.
pub fn call(
    spool: &Spool,
    call_id: &str,
    start_ms: u64,
    duration_ms: u64,
    customer: Option<u64>,
    callee: &str,
) {
    spool
        .append_blocking(&event(
            EventKind::Start,
            call_id,
            start_ms,
            customer,
            callee,
        ))
        .unwrap();
    spool
        .append_blocking(&event(
            EventKind::Stop,
            call_id,
            start_ms + duration_ms,
            customer,
            callee,
        ))
        .unwrap();
}

/// Polls `f` until it returns Some, for at most `secs` (only against hangs).
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The billing daemon as a child process; killed on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub ready: PathBuf,
}

impl Daemon {
    /// Starts `billing --config … --notify-fd 3` with fd 3 on a file and
    /// waits for the readiness newline.
    pub fn start(env: &Env, tag: &str) -> Daemon {
        let log = env.dir.path().join(format!("billing-{tag}.log"));
        let ready = env.dir.path().join(format!("ready-{tag}"));
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" --config \"$1\" --notify-fd 3 3>\"$2\"")
            .arg(env!("CARGO_BIN_EXE_billing"))
            .arg(&env.config)
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child: Some(child),
            log,
            ready,
        };
        wait_for(60, "billing readiness on --notify-fd", || {
            if let Some(Ok(Some(st))) = d.child.as_mut().map(|c| c.try_wait()) {
                panic!("billing exited before ready ({st}):\n{}", d.log());
            }
            std::fs::read(&d.ready).ok().filter(|b| b.contains(&b'\n'))
        });
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL (simulated crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "billing ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
