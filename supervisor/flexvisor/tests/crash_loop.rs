//! A service that keeps crashing is marked failed after the configured
//! number of failures instead of restarting forever; a manual restart
//! gives it a fresh start.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

#[test]
fn crash_loop_ends_in_failed_and_manual_restart_resets() {
    let sup = Sup::start(&[(
        "flappy",
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {dir}/runs; if [ -e {dir}/fixed ]; then exec sleep 100000; fi; exit 7"]
[restart]
limit = 4
window_s = 60
initial_backoff_ms = 20
max_backoff_ms = 100
"#,
    )]);
    let f = sup.wait_state("flappy", "failed");
    assert_eq!(f.last_exit.as_deref(), Some("exit code 7"));
    // Still failed a while later: no restart storm.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sup.service("flappy").state, "failed");
    let runs = std::fs::read_to_string(sup.path("runs")).unwrap();
    assert_eq!(runs.lines().count(), 4, "exactly `limit` runs");
    sup.wait_console("crash loop: 4 failures");

    std::fs::write(sup.path("fixed"), "").unwrap();
    sup.call(Op::Restart {
        service: "flappy".into(),
    })
    .unwrap();
    let s = sup.wait_state("flappy", "ready");
    assert_eq!(
        s.restarts, 3,
        "restart counter is history, the crash-loop window was reset"
    );
}
