//! Malformed and torn spool lines: each is reported with file:line and
//! field, moved to a quarantine file with that reason, and the good lines
//! around it are still mediated, rated and committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::io::Write;

#[test]
fn malformed_and_torn_lines_are_quarantined_and_processing_continues() {
    let env = Env::start("");
    let spool = env.spool_writer(1 << 20);
    let t = now_ms() - 600_000;
    call(&spool, "good-1", t, 60_000, Some(1), "4989");
    drop(spool);
    let file = env.spool.join(&env.spool_files()[0]);
    let name = env.spool_files()[0].clone();
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        // line 3: not JSON
        f.write_all(b"this is not json\n").unwrap();
        // line 4: wrong type for time_ms
        let mut v = serde_json::to_value(event(
            sip_proxy::spool::EventKind::Start,
            "bad-t",
            t,
            Some(1),
            "49",
        ))
        .unwrap();
        v["time_ms"] = serde_json::Value::String("noon".into());
        f.write_all(format!("{v}\n").as_bytes()).unwrap();
        // line 5: missing call_id
        let mut v = serde_json::to_value(event(
            sip_proxy::spool::EventKind::Stop,
            "x",
            t,
            Some(1),
            "49",
        ))
        .unwrap();
        v.as_object_mut().unwrap().remove("call_id");
        f.write_all(format!("{v}\n").as_bytes()).unwrap();
    }
    // More good events after the bad ones, written by the proxy's writer
    // into the same file is impossible (it opens a new file), so append
    // them as the writer would, then a torn last line (proxy crash).
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        for kind in [
            sip_proxy::spool::EventKind::Start,
            sip_proxy::spool::EventKind::Stop,
        ] {
            let ev = event(
                kind,
                "good-2",
                if kind == sip_proxy::spool::EventKind::Start {
                    t
                } else {
                    t + 30_000
                },
                Some(1),
                "4989",
            );
            f.write_all(format!("{}\n", serde_json::to_string(&ev).unwrap()).as_bytes())
                .unwrap();
        }
        f.write_all(b"{\"kind\":\"start\",\"call_id\":\"to")
            .unwrap();
    }
    // A newer file closes this one (the torn line is final).
    let _next = env.spool_writer(1 << 20);

    let out = env.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let path = file.display().to_string();
    assert!(
        stderr.contains(&format!("{path}:3: not a JSON object")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:4: field `time_ms`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:5: field `call_id`: missing")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{path}:8: torn line")), "{stderr}");

    // Good calls on both sides of the bad lines are committed and rated.
    assert_eq!(env.count("status = 'ok' AND rated = 1"), 2);
    assert_eq!(env.count("1"), 2);

    // The quarantine file holds the four lines with file, line, field, reason.
    let qdir = env.state.join("quarantine");
    let qfiles: Vec<_> = std::fs::read_dir(&qdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(qfiles.len(), 1, "{qfiles:?}");
    assert!(qfiles[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(&name));
    let text = std::fs::read_to_string(&qfiles[0]).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = recs.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 5, 8]);
    assert_eq!(recs[0]["text"], "this is not json");
    assert_eq!(recs[1]["field"], "time_ms");
    assert_eq!(recs[2]["field"], "call_id");
    assert!(recs[3]["reason"].as_str().unwrap().contains("torn"));
    assert!(recs.iter().all(|r| r["file"] == path.as_str()));
    assert_eq!(env.status()["quarantined_total"], 4);
    // The file itself is done: nothing in it is left to process.
    assert_eq!(env.done_files(), [name]);
}
