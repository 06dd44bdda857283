//! A dependent starts only once its dependency said it is ready, whichever
//! readiness mechanism the dependency uses.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

/// Each dependency becomes ready late (after a pause) and leaves a file
/// when it does; each dependent records whether that file existed when it
/// started.
#[test]
fn dependents_start_only_after_dependency_is_ready() {
    let sup = Sup::start(&[
        (
            "db",
            r#"command = "/bin/sh"
args = ["-c", "sleep 0.5; touch {dir}/db.ready; echo >&3; exec sleep 100000"]
[readiness]
kind = "notify-fd"
fd = 3
"#,
        ),
        (
            "cache",
            r#"command = "/bin/sh"
args = ["-c", "sleep 0.5; touch {dir}/cache.ready; printf 'STATUS=warm\nREADY=1' | socat - UNIX-SENDTO:$NOTIFY_SOCKET; exec sleep 100000"]
[readiness]
kind = "sd-notify"
"#,
        ),
        (
            "web",
            r#"command = "/bin/sh"
args = ["-c", "if [ -e {dir}/db.ready ] && [ -e {dir}/cache.ready ]; then echo yes > {dir}/web.saw; else echo no > {dir}/web.saw; fi; exec sleep 100000"]
requires = ["db"]
wants = ["cache"]
"#,
        ),
    ]);
    sup.wait_console("flexvisor: ready");
    let saw = std::fs::read_to_string(sup.path("web.saw")).unwrap();
    assert_eq!(
        saw.trim(),
        "yes",
        "web started before its dependencies were ready"
    );
    let st = sup.status();
    assert!(st.services.iter().all(|s| s.state == "ready"), "{st:#?}");
    let cache = sup.service("cache");
    assert_eq!(cache.status.as_deref(), Some("warm"));
}

/// A service whose notification never comes is killed after its start
/// timeout, and its dependent never starts.
#[test]
fn never_ready_dependency_blocks_dependent() {
    let sup = Sup::start(&[
        (
            "slow",
            r#"command = "/bin/sleep"
args = ["100000"]
start_timeout_ms = 300
[readiness]
kind = "notify-fd"
fd = 4
[restart]
limit = 2
"#,
        ),
        (
            "app",
            r#"command = "/bin/sh"
args = ["-c", "touch {dir}/app.started; exec sleep 100000"]
requires = ["slow"]
"#,
        ),
    ]);
    sup.wait_state("slow", "failed");
    let app = sup.service("app");
    assert_eq!(app.state, "down");
    assert_eq!(app.waiting_for.as_deref(), Some("slow (failed)"));
    assert!(!sup.path("app.started").exists());
    sup.wait_console("not ready within 300 ms");
}

/// TCP readiness: ready once the port accepts.
#[test]
fn tcp_readiness_waits_for_listener() {
    let port = 20_000 + (marker() % 20_000);
    let sup = Sup::start(&[
        (
            "listener",
            &format!(
                r#"command = "/bin/sh"
args = ["-c", "sleep 0.4; touch {{dir}}/listening; exec socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork EXEC:/bin/cat"]
[readiness]
kind = "tcp"
address = "127.0.0.1:{port}"
interval_ms = 50
"#
            ),
        ),
        (
            "client",
            r#"command = "/bin/sh"
args = ["-c", "test -e {dir}/listening && echo yes > {dir}/client.saw; exec sleep 100000"]
requires = ["listener"]
"#,
        ),
    ]);
    sup.wait_console("flexvisor: ready");
    assert_eq!(
        std::fs::read_to_string(sup.path("client.saw"))
            .unwrap_or_default()
            .trim(),
        "yes"
    );
}

/// sd_notify watchdog: a service that stops sending WATCHDOG=1 is
/// restarted; one that keeps sending it is left alone.
#[test]
fn sd_notify_watchdog_missed_restarts_service() {
    let sup = Sup::start(&[(
        "pinger",
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {dir}/runs; n=$(wc -l < {dir}/runs); echo \"WATCHDOG_USEC=$WATCHDOG_USEC\"; printf READY=1 | socat - UNIX-SENDTO:$NOTIFY_SOCKET; i=0; while [ $n -gt 1 ] || [ $i -lt 3 ]; do i=$((i+1)); sleep 0.1; printf WATCHDOG=1 | socat - UNIX-SENDTO:$NOTIFY_SOCKET; done; exec sleep 100000"]
watchdog_ms = 1000
[readiness]
kind = "sd-notify"
"#,
    )]);
    sup.wait_console("pinger: no WATCHDOG=1 within 1000 ms");
    sup.wait_until("second run ready", |st| {
        st.services[0].restarts == 1 && st.services[0].state == "ready"
    });
    // The second run keeps pinging: still the same instance well after a
    // whole watchdog period.
    let pid = sup.service("pinger").pid;
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let p = sup.service("pinger");
    assert_eq!((p.pid, p.restarts), (pid, 1), "{}", sup.console());
    let logs = sup
        .call(flexvisor::control::proto::Op::Logs {
            service: "pinger".into(),
            lines: None,
            follow: false,
        })
        .unwrap();
    assert!(logs.to_string().contains("WATCHDOG_USEC=1000000"), "{logs}");
}
