//! The operator's view through `flexctl`: status exit codes (0 all ready,
//! 2 something failed, 3 supervisor unreachable), JSON status, logs and
//! the event log.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::Command;

fn flexctl(sup: &Sup, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(flexctl_bin())
        .args(args)
        .env("FLEXVISOR_SOCKET", &sup.socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_exit_codes_json_logs_and_events() {
    let sup = Sup::start(&[
        (
            "good",
            "command = \"/bin/sh\"\nargs = [\"-c\", \"echo good morning; exec sleep 100000\"]\n",
        ),
        ("bad", "command = \"/bin/false\"\n[restart]\nlimit = 2\n"),
    ]);
    sup.wait_state("good", "ready");
    sup.wait_state("bad", "failed");

    let (code, out, _) = flexctl(&sup, &["status"]);
    assert_eq!(code, 2, "a failed service is CRITICAL: {out}");
    assert!(
        out.contains("bad") && out.contains("failed") && out.contains("last: exit code 1"),
        "{out}"
    );

    let (code, out, _) = flexctl(&sup, &["status", "--json"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 2);

    let (code, _, err) = flexctl(&sup, &["stop", "bad"]);
    assert_eq!(code, 0, "{err}");
    sup.wait_until("bad not wanted", |st| {
        st.services.iter().any(|s| s.name == "bad" && !s.wanted)
    });
    let (code, out, _) = flexctl(&sup, &["status"]);
    assert_eq!(code, 0, "only wanted services count: {out}");

    wait_for("log line", || {
        flexctl(&sup, &["logs", "good", "-n", "5"])
            .1
            .contains("good morning")
    });
    let (_, events, _) = flexctl(&sup, &["events"]);
    assert!(events.contains("[service] good: ready"), "{events}");

    let (code, _, err) = flexctl(&sup, &["restart", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("no service `nope`"), "{err}");
}

#[test]
fn unreachable_supervisor_is_unknown() {
    let sup = Sup::prepare(&[]);
    let (code, _, err) = flexctl(&sup, &["status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach flexvisor"), "{err}");
}
