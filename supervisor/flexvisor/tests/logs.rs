//! Service output is kept across restarts, line by line with timestamps;
//! what a service wrote just before crashing (even without a newline) is
//! not lost; `logs -f` streams new lines.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::{Op, Reply};
use flexvisor::logs::LogLine;

#[test]
fn logs_survive_restart_including_last_words() {
    let sup = Sup::start(&[(
        "talker",
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {dir}/runs; n=$(wc -l < {dir}/runs); echo \"hello from run $n\"; echo \"to stderr $n\" >&2; if [ $n -eq 1 ]; then printf 'last words'; exit 1; fi; exec sleep 100000"]
"#,
    )]);
    sup.wait_until("second run ready", |st| {
        st.services
            .iter()
            .any(|s| s.restarts == 1 && s.state == "ready")
    });
    wait_for("second run output", || {
        let v = sup
            .call(Op::Logs {
                service: "talker".into(),
                lines: None,
                follow: false,
            })
            .unwrap();
        v.to_string().contains("to stderr 2")
    });
    let v = sup
        .call(Op::Logs {
            service: "talker".into(),
            lines: None,
            follow: false,
        })
        .unwrap();
    let lines: Vec<LogLine> = serde_json::from_value(v).unwrap();
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let want = [
        "hello from run 1",
        "to stderr 1",
        "last words",
        "hello from run 2",
        "to stderr 2",
    ];
    for w in want {
        assert!(texts.contains(&w), "missing {w:?} in {texts:?}");
    }
    assert!(
        texts.iter().position(|t| *t == "last words")
            < texts.iter().position(|t| *t == "hello from run 2")
    );
    // The file has the same lines, timestamped.
    let file = std::fs::read_to_string(sup.path("log/talker.log")).unwrap();
    assert!(
        file.lines()
            .any(|l| l.ends_with(" last words") && l.contains('T') && l.contains('Z')),
        "{file}"
    );
}

#[test]
fn follow_streams_new_lines() {
    let sup = Sup::start(&[(
        "ticker",
        r#"command = "/bin/sh"
args = ["-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done"]
"#,
    )]);
    sup.wait_state("ticker", "ready");
    let mut c = sup.client();
    let mut seen = Vec::new();
    c.stream(
        Op::Logs {
            service: "ticker".into(),
            lines: Some(0),
            follow: true,
        },
        |r| {
            if let Reply::Log { line, .. } = r {
                seen.push(line.text);
            }
            seen.len() < 5
        },
    )
    .unwrap();
    assert_eq!(seen.len(), 5);
    let nums: Vec<u32> = seen
        .iter()
        .map(|t| t.trim_start_matches("tick ").parse().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
}
