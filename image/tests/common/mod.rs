//! Shared test helpers: static builds of the binaries an image carries,
//! profiles, temporary directories removed on drop, and building an image.
#![allow(dead_code)]

pub mod bmc;

use std::path::{Path, PathBuf};
use std::process::Command;

use flexvisor_image::{Built, Options, Selection};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn profile(name: &str) -> PathBuf {
    workspace().join("chassis-profiles").join(name)
}

/// A directory removed (with everything in it) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fv-image-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Directory holding static (musl) `flexvisor`, `flexctl` and `sip-lb`:
/// `$FLEXVISOR_STATIC_BIN_DIR` if set, else built now into
/// `target/image-musl` (its own target dir: the outer `cargo test` holds the
/// lock of the shared one). Panics with the reason when that fails.
pub fn static_bins() -> PathBuf {
    static_bins_with(&[])
}

/// [`static_bins`] plus the static builds of the binaries `extra` (each a
/// workspace package with a binary of the same name, e.g. `db-failover`).
pub fn static_bins_with(extra: &[&str]) -> PathBuf {
    if let Some(d) = std::env::var_os("FLEXVISOR_STATIC_BIN_DIR") {
        return PathBuf::from(d);
    }
    let target = "x86_64-unknown-linux-musl";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(target))
        .unwrap_or(false);
    if !installed {
        let ok = Command::new("rustup")
            .args(["target", "add", target])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "the {target} Rust target is needed for a static flexvisor: `rustup target add {target}` failed");
    }
    let dir = workspace().join("target/image-musl");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", &dir)
        // Small, quick to build: no debug info; optimised enough for TCG.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_PROFILE_DEV_OPT_LEVEL", "1")
        .args(["build", "--target", target])
        .args(
            ["flexvisor", "flexctl", "sip-lb"]
                .iter()
                .chain(extra)
                .flat_map(|p| ["-p", p, "--bin", p]),
        )
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "static build of flexvisor/flexctl/sip-lb {extra:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(target).join("debug")
}

/// Options for a build with the static binaries of [`static_bins`].
pub fn options() -> Options {
    let bins = static_bins();
    let mut o = Options::new(bins.join("flexvisor"));
    o.epoch = 1_700_000_000;
    o
}

/// Build one bay of a profile into `out`.
pub fn build_bay(profile_name: &str, bay: u32, out: &Path, opts: &Options) -> Built {
    let mut say = |s: &str| eprintln!("build: {s}");
    let mut built = flexvisor_image::build(
        &profile(profile_name),
        &Selection::Bay(bay),
        None,
        out,
        opts,
        &mut say,
    )
    .unwrap_or_else(|e| panic!("building bay {bay} of {profile_name}: {e}"));
    assert_eq!(built.len(), 1);
    built.remove(0)
}

/// A secrets file for test images, with every secret the db, proxy and web
/// services name (see `services::secrets_named`).
pub fn secrets_file(dir: &Path) -> PathBuf {
    let p = dir.join("secrets.toml");
    std::fs::write(
        &p,
        "# test deployment secrets\n\
         db.replication_password = repl-test-secret\n\
         mariadb.user = failover\n\
         mariadb.password = failover-test-secret\n\
         sip-proxy.db_password = sipproxy-test-secret\n\
         sip-proxy.nonce_secret = nonce-test-secret\n\
         sip.domains = example.com, example.org\n\
         billing.db_password = billing-test-secret\n\
         web-api.db_password = webapi-test-secret\n",
    )
    .expect("write secrets file");
    p
}

/// The text between `begin` and `end` in `text`.
pub fn between<'a>(text: &'a str, begin: &str, end: &str) -> &'a str {
    let a = text.find(begin).map(|i| i + begin.len()).unwrap_or(0);
    let b = text[a..].find(end).map(|i| a + i).unwrap_or(text.len());
    &text[a..b]
}

/// The `flexctl status --json` the guest printed between the report
/// markers, as (service, state) pairs.
pub fn reported_states(console: &str) -> Vec<(String, String)> {
    let status: serde_json::Value = serde_json::from_str(between(
        console,
        "flexvisor-report: status begin",
        "flexvisor-report: status end",
    ))
    .unwrap_or_else(|e| {
        panic!("flexctl status --json from the guest is not JSON ({e}):\n{console}")
    });
    status["services"]
        .as_array()
        .expect("services in the status")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}
