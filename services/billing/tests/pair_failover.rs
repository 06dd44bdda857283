//! A call answered on one proxy of a pair and ended on its partner after a
//! failover: the partner's stop carries the answer time, so its billing
//! writes the call's complete `ok` CDR, and the orphan that the failed
//! node's billing makes of the lonely start later (or earlier) never
//! replaces it or adds a second row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sip_proxy::spool::{EventKind, Spool};
use std::process::Command;

/// The partner node's billing: its own spool and state, same central DB.
struct Partner {
    spool: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Partner {
    fn new(env: &Env) -> Partner {
        let root = env.dir.path().join("partner");
        let spool = root.join("spool");
        let state = root.join("state");
        std::fs::create_dir_all(&spool).unwrap();
        let config = root.join("billing.toml");
        std::fs::write(
            &config,
            format!(
                "node = \"proxy-partner\"\nspool_dir = \"{}\"\nstate_dir = \"{}\"\n\
                 central_url = \"{}\"\npoll_ms = 50\nretry_max_secs = 1\nmax_call_secs = 3600\n",
                spool.display(),
                state.display(),
                env.db.url("flexvisor"),
            ),
        )
        .unwrap();
        Partner { spool, config }
    }

    /// Spools the stop of `call_id` as the partner proxy writes it.
    fn stop(&self, call_id: &str, answer_ms: u64, end_ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let spool = Spool::open(&self.spool, 1 << 20).unwrap();
        let mut ev = event(EventKind::Stop, call_id, end_ms, Some(1), "4989");
        ev.answer_ms = Some(answer_ms);
        spool.append_blocking(&ev).unwrap();
    }

    fn run_once(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_billing"))
            .arg("--config")
            .arg(&self.config)
            .arg("--once")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn call_split_by_a_failover_is_one_ok_cdr_whatever_arrives_first() {
    let env = Env::start("max_call_secs = 3600");
    let partner = Partner::new(&env);
    let answered = now_ms() - 7_200_000;
    // The failed node's spool: both calls answered 2 h ago, no stops.
    let spool = env.spool_writer(1 << 20);
    for call in ["ok-first", "orphan-first"] {
        spool
            .append_blocking(&event(EventKind::Start, call, answered, Some(1), "4989"))
            .unwrap();
    }
    drop(spool);

    // "ok-first": the partner ended it and its billing ran first.
    partner.stop("ok-first", answered, answered + 120_000);
    partner.run_once();
    // The failed node comes back: its billing orphans both starts.
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.cdr("orphan-first", "status")[0], "orphaned");
    // "orphan-first": the partner's stop is billed after the orphan.
    partner.stop("orphan-first", answered, answered + 90_000);
    partner.run_once();

    for (call, secs, cents) in [("ok-first", 120, "20"), ("orphan-first", 90, "20")] {
        assert_eq!(
            env.count(&format!("call_id = '{call}'")),
            1,
            "{call}: one row per dialog"
        );
        assert_eq!(
            env.cdr(call, "status, duration_ms, rated, billed_secs, cost, error"),
            ["ok", &(secs * 1000).to_string(), "1", "120", cents, "NULL"],
            "{call}"
        );
    }
}
