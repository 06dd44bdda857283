//! A service that crashes is started again at once (first restart
//! immediate), and the restart is visible in status.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn crashed_service_is_restarted() {
    let sup = Sup::start(&[(
        "worker",
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {dir}/runs; if [ $(wc -l < {dir}/runs) -eq 1 ]; then kill -SEGV $$; fi; exec sleep 100000"]
"#,
    )]);
    let st = sup.wait_until("worker restarted and ready", |st| {
        st.services
            .iter()
            .any(|s| s.name == "worker" && s.state == "ready" && s.restarts == 1)
    });
    let w = st.services.iter().find(|s| s.name == "worker").unwrap();
    assert_eq!(w.last_exit.as_deref(), Some("killed by SIGSEGV"));
    // Ready at spawn (readiness none): the second run may not have written
    // its line yet.
    let runs = || {
        std::fs::read_to_string(sup.path("runs"))
            .unwrap()
            .lines()
            .count()
    };
    wait_for("second run recorded", || runs() >= 2);
    assert_eq!(runs(), 2);
    // The console is read by another thread: wait for it, not race it.
    sup.wait_console("worker: exited: killed by SIGSEGV");
}

#[test]
fn on_failure_policy_leaves_clean_exit_down() {
    let sup = Sup::start(&[(
        "task",
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {dir}/runs; sleep 0.1; exit 0"]
[restart]
policy = "on-failure"
"#,
    )]);
    sup.wait_state("task", "down");
    // Give a wrong restart every chance to happen before looking.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(sup.service("task").state, "down");
    let runs = std::fs::read_to_string(sup.path("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1);
}
