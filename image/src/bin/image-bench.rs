//! `image-bench`: figures for the node images, printed as a table.
//!
//! - image size per role (apparent and allocated), c5-200k, one bay each;
//! - time to build all 14 bays of c5-200k from a warm package cache (empty
//!   system cache), next to copying the 14 finished images (the I/O floor);
//! - time for a configuration-only rebuild of all 14 (node.toml changed):
//!   in place (config partitions patched) next to writing the 14 whole;
//! - boot time to `flexvisor: ready` under TCG, next to the kernel alone
//!   reaching the initramfs (the anchor).
//!
//! Usage: image-bench [--bins DIR] [--no-boot]; DIR holds static
//! flexvisor, flexctl and every service binary of the roles (default
//! target/x86_64-unknown-linux-musl/release).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flexvisor_image::packages::Cache;
use flexvisor_image::qemu::{BootSpec, Vm};
use flexvisor_image::{build, Options, Selection};

const HELP: &str = "image-bench: image sizes, build and rebuild times, boot time under TCG

USAGE: image-bench [--bins DIR] [--no-boot] [--json]
  --bins DIR   static flexvisor, flexctl, sip-lb, sip-proxy, media-relay, billing,
               web-api, db-failover [target/x86_64-unknown-linux-musl/release]
  --no-boot    skip the qemu boot measurement
  --json       print the figures as JSON
";

struct Row {
    what: String,
    value: String,
    anchor: String,
    ratio: String,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{HELP}");
        return Ok(());
    }
    let bins = args
        .iter()
        .position(|a| a == "--bins")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/x86_64-unknown-linux-musl/release"));
    let boot = !args.iter().any(|a| a == "--no-boot");
    let json = args.iter().any(|a| a == "--json");
    let profile = Path::new("chassis-profiles/c5-200k.toml");
    if !profile.is_file() {
        bail!(
            "run from the workspace root ({} not found)",
            profile.display()
        );
    }
    let work = std::env::temp_dir().join(format!("fv-image-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run(&bins, boot, profile, &work);
    let _ = std::fs::remove_dir_all(&work);
    let rows = result?;
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"what": r.what, "value": r.value, "anchor": r.anchor, "ratio": r.ratio}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{:<44} {:>12} {:>26} {:>8}",
            "MEASURE", "FLEXVISOR", "ANCHOR", "RATIO"
        );
        for r in rows {
            println!(
                "{:<44} {:>12} {:>26} {:>8}",
                r.what, r.value, r.anchor, r.ratio
            );
        }
    }
    Ok(())
}

fn run(bins: &Path, boot: bool, profile: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    // Warm package cache, empty system cache.
    let shared = Cache::default_root();
    let cache = work.join("cache");
    std::fs::create_dir_all(&cache)?;
    std::fs::create_dir_all(shared.join("apt"))?;
    std::fs::create_dir_all(shared.join("extract"))?;
    std::os::unix::fs::symlink(shared.join("apt"), cache.join("apt"))?;
    std::os::unix::fs::symlink(shared.join("extract"), cache.join("extract"))?;
    let mut opts = Options::new(bins.join("flexvisor"));
    opts.cache = Cache::new(&cache);
    opts.epoch = 1_700_000_000;
    let out = work.join("out");
    let mut quiet = |_: &str| {};
    // Download/extract once so the timing below sees a warm package cache.
    build(
        profile,
        &Selection::Bay(1),
        None,
        &work.join("warmup"),
        &opts,
        &mut quiet,
    )
    .context("warm-up build")?;
    let _ = std::fs::remove_dir_all(cache.join("systems"));

    let t = Instant::now();
    let built =
        build(profile, &Selection::All, None, &out, &opts, &mut quiet).context("build all")?;
    let full = t.elapsed();

    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for b in &built {
        if seen.insert(b.role.clone()) {
            let alloc = std::fs::metadata(&b.image)?.blocks() * 512;
            rows.push(Row {
                what: format!("image size, role {} ({})", b.role, b.hostname),
                value: mib(b.size),
                anchor: format!("{} allocated", mib(alloc)),
                ratio: format!("{:.2}", alloc as f64 / b.size as f64),
            });
        }
    }

    // I/O floor: copying the 14 finished images.
    let copy_dir = work.join("copy");
    std::fs::create_dir_all(&copy_dir)?;
    let t = Instant::now();
    for b in &built {
        let st = std::process::Command::new("cp")
            .arg("--sparse=always")
            .arg(&b.image)
            .arg(&copy_dir)
            .status()?;
        if !st.success() {
            bail!("cp failed");
        }
    }
    let copy = t.elapsed();
    let _ = std::fs::remove_dir_all(&copy_dir);
    rows.push(Row {
        what: format!("build all {} bays, warm package cache", built.len()),
        value: secs(full),
        anchor: format!("cp of the images {}", secs(copy)),
        ratio: format!("{:.1}", full.as_secs_f64() / copy.as_secs_f64()),
    });

    // Configuration-only rebuild: the profile changes, the systems do not.
    let text = std::fs::read_to_string(profile)?;
    let changed = text.replacen("stale_after_s = 60", "stale_after_s = 61", 1);
    if changed == text {
        bail!(
            "could not find stale_after_s = 60 in {} to change",
            profile.display()
        );
    }
    let p2 = work.join("c5-200k-changed.toml");
    std::fs::write(&p2, changed)?;
    let t = Instant::now();
    let again = build(&p2, &Selection::All, None, &out, &opts, &mut quiet).context("rebuild")?;
    let rebuild = t.elapsed();
    if again.iter().any(|b| !b.system_cached) {
        bail!("a configuration-only rebuild rebuilt a system");
    }
    if again.iter().any(|b| !b.config_only) {
        bail!("a configuration-only rebuild rewrote a whole image");
    }
    // The same rebuild without images to patch: every image written whole
    // from the cached systems (what a config-only rebuild used to cost).
    let t = Instant::now();
    let whole = build(
        &p2,
        &Selection::All,
        None,
        &work.join("out2"),
        &opts,
        &mut quiet,
    )
    .context("rebuild into an empty directory")?;
    let whole_t = t.elapsed();
    let _ = std::fs::remove_dir_all(work.join("out2"));
    rows.push(Row {
        what: format!("config-only rebuild of all {} (in place)", again.len()),
        value: secs(rebuild),
        anchor: format!("whole images {}", secs(whole_t)),
        ratio: format!("{:.2}", rebuild.as_secs_f64() / whole_t.as_secs_f64()),
    });
    rows.push(Row {
        what: format!("  whole images, cached systems ({})", whole.len()),
        value: secs(whole_t),
        anchor: format!("full build {}", secs(full)),
        ratio: format!("{:.2}", whole_t.as_secs_f64() / full.as_secs_f64()),
    });

    if boot {
        let lb = again
            .iter()
            .find(|b| b.role == "lb")
            .context("no lb bay in c5-200k")?;
        let spec = BootSpec::for_image(&lb.image)?;
        let t = Instant::now();
        let mut vm = Vm::start(spec)?;
        vm.wait_for(
            "flexvisor-init: loading boot modules",
            Duration::from_secs(300),
        )?;
        let kernel = t.elapsed();
        vm.wait_for("flexvisor: ready", Duration::from_secs(300))?;
        let ready = t.elapsed();
        vm.qmp("system_powerdown")?;
        let _ = vm.wait_exit(Duration::from_secs(120));
        rows.push(Row {
            what: format!("boot to ready under TCG ({}, first boot)", lb.hostname),
            value: secs(ready),
            anchor: format!("kernel to initramfs {}", secs(kernel)),
            ratio: format!("{:.1}", ready.as_secs_f64() / kernel.as_secs_f64()),
        });
    }
    Ok(rows)
}
