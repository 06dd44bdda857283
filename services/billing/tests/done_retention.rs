//! Committed spool files are kept in done/ for `done_keep_days`, then
//! deleted; younger ones and the files still being worked on stay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn old_done_files_are_deleted_recent_ones_kept() {
    let env = Env::start("done_keep_days = 7");
    let done = env.spool.join("done");
    std::fs::create_dir_all(&done).unwrap();
    let old = format!("acc-{:013}-000000.jsonl", now_ms() - 8 * 86_400_000);
    let recent = format!("acc-{:013}-000000.jsonl", now_ms() - 6 * 86_400_000);
    std::fs::write(done.join(&old), b"").unwrap();
    std::fs::write(done.join(&recent), b"").unwrap();
    let spool = env.spool_writer(1 << 20);
    call(&spool, "r-1", now_ms() - 100_000, 1_000, Some(1), "4989");
    drop(spool);
    let _next = env.spool_writer(1 << 20);

    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = env.done_files();
    assert!(!files.contains(&old), "{files:?}");
    assert!(files.contains(&recent), "{files:?}");
    assert_eq!(files.len(), 2, "the just committed file joined: {files:?}");
    assert_eq!(env.count("1"), 1);
}
