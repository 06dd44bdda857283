//! Running a scenario from a test, with the workspace's paths.

use std::path::PathBuf;
use std::time::Duration;

use qemu_tests::report::ScenarioResult;
use qemu_tests::scenario::{self, RunConfig};

use super::{profile_path, workspace};

/// Scenarios share the image cache and boot many VMs: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One progress line on stderr, past the test harness's output capture.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Keep a failed scenario's logs and consoles (not its disk images) for
/// the reader of the failure; returns where they are.
pub fn keep_logs(out: tempfile::TempDir) -> PathBuf {
    fn strip_disks(dir: &std::path::Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                strip_disks(&p);
            } else if p.extension().is_some_and(|x| x == "img") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    let dir = out.keep();
    strip_disks(&dir);
    dir
}

/// Run scenario `name` on the lb1 pair of c5-50k, progress on stderr.
pub fn scenario(name: &str) -> (ScenarioResult, tempfile::TempDir) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::Builder::new()
        .prefix("fvq-scenario")
        .tempdir()
        .expect("out dir");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let cfg = RunConfig {
        profile: profile_path(),
        out_dir: out.path().to_owned(),
        cache_dir: target.join("qemu-tests-cache"),
        workspace: workspace(),
        pairs: Some(vec!["lb1".into()]),
        helper: PathBuf::from(env!("CARGO_BIN_EXE_qemu-tests")),
        memory_mib: 384,
        accel: "tcg".into(),
        boot_timeout: Duration::from_secs(600),
        fresh: true,
    };
    let s = scenario::find(name).expect("scenario exists");
    // Straight to stderr (not `eprintln!`, which the test harness
    // captures): progress shows while the scenario runs, in CI too.
    let r = scenario::run(&cfg, s, &mut |l| say(l), &mut None);
    (r, out)
}
