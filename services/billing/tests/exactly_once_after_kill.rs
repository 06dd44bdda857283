//! kill -9 of billing in the middle of its work, several times, then a
//! restart: every call ends up in the central database exactly once,
//! nothing is left in the outbox and every closed spool file is in done/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const CALLS: u64 = 2000;

#[test]
fn every_cdr_exactly_once_across_sigkills() {
    let env = Env::start("batch_lines = 40");
    let spool = env.spool_writer(48 * 1024);
    let t = now_ms() - 3_600_000;
    for i in 0..CALLS {
        call(
            &spool,
            &format!("k-{i:05}"),
            t + i,
            1_000 + i,
            Some(1),
            "4989",
        );
    }
    drop(spool);
    let _last = env.spool_writer(1 << 20);
    let files = env.spool_files().len();
    assert!(files > 10, "expected many spool files, got {files}");

    let mut daemon = Daemon::start(&env, "0");
    for round in 1..=5u64 {
        let at = CALLS * round / 6;
        wait_for(120, &format!("{at} CDRs before kill #{round}"), || {
            (env.count("1") >= at).then_some(())
        });
        daemon.kill9();
        daemon = Daemon::start(&env, &round.to_string());
    }
    wait_for(180, "all CDRs committed", || {
        (env.count("1") >= CALLS && env.status()["backlog_batches"] == 0).then_some(())
    });

    assert_eq!(env.count("1"), CALLS, "rows");
    assert_eq!(
        env.sql("SELECT COUNT(DISTINCT call_id) FROM cdrs WHERE call_id LIKE 'k-%' AND status = 'ok' AND rated = 1").trim(),
        CALLS.to_string()
    );
    // Spot-check content of the first and last call.
    assert_eq!(
        env.cdr("k-00000", "duration_ms, billed_secs, cost"),
        ["1000", "60", "10"]
    );
    assert_eq!(
        env.cdr(&format!("k-{:05}", CALLS - 1), "duration_ms"),
        [(1_000 + CALLS - 1).to_string()]
    );
    // Status counts rows that were new centrally: replays add nothing.
    wait_for(30, "status after commit", || {
        (env.status()["committed_total"] == CALLS).then_some(())
    });
    assert_eq!(
        std::fs::read_dir(env.state.join("outbox")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(env.state.join("quarantine"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(env.done_files().len(), files - 1);
    assert_eq!(env.spool_files().len(), 1, "only the file still open stays");
    daemon.kill9();
}
