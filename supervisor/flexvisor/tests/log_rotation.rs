//! Log files rotate by size and keep the configured number of old files.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn log_files_rotate_by_size() {
    let sup = Sup::start(&[(
        "chatty",
        r#"command = "/bin/sh"
args = ["-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo \"line $i padding padding padding padding\"; done; touch {dir}/done; exec sleep 100000"]
[log]
max_bytes = 2048
files = 2
tail_lines = 10
"#,
    )]);
    wait_for("all lines written", || sup.path("done").exists());
    wait_for("last line logged", || {
        std::fs::read_to_string(sup.path("log/chatty.log"))
            .unwrap_or_default()
            .contains("line 200 ")
    });
    let log = sup.path("log");
    assert!(log.join("chatty.log.1").exists());
    assert!(log.join("chatty.log.2").exists());
    assert!(
        !log.join("chatty.log.3").exists(),
        "only 2 rotated files kept"
    );
    for f in ["chatty.log", "chatty.log.1", "chatty.log.2"] {
        let len = std::fs::metadata(log.join(f)).unwrap().len();
        assert!(len <= 2048, "{f} is {len} bytes");
    }
    // Rotation never splits a line: every line is complete.
    let older = std::fs::read_to_string(log.join("chatty.log.1")).unwrap();
    assert!(older.lines().all(|l| l.ends_with("padding")), "{older}");
}
