//! `qemu-tests`: boot a chassis profile's nodes under qemu, inject faults,
//! print progress and a result table, write JSON.
//!
//! Exit codes (health style): 0 every scenario passed, 1 some BLOCKED (a
//! dependency is missing), 2 some FAILED, 3 bad input.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use qemu_tests::report::RunReport;
use qemu_tests::scenario::{self, RunConfig, SCENARIOS};

#[derive(Debug, Parser)]
#[command(
    name = "qemu-tests",
    version,
    about = "Boot every node of a chassis profile under qemu, wired like the real chassis, and run fault scenarios",
    after_help = "Exit codes: 0 all passed, 1 some BLOCKED, 2 some FAILED, 3 bad input.\nLogs, consoles and QMP events of each scenario stay in --out."
)]
struct Cli {
    /// Chassis profile (e.g. chassis-profiles/c5-50k.toml).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Run this scenario (repeatable); see --list.
    #[arg(long = "scenario", value_name = "NAME", conflicts_with = "all")]
    scenarios: Vec<String>,
    /// Run every scenario (the default when no --scenario is given).
    #[arg(long)]
    all: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Output directory (default target/qemu-tests/runs/<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run the scenarios that use every node on these pairs only
    /// (comma separated, e.g. `lb1`); the default is every pair.
    #[arg(long, value_delimiter = ',', value_name = "PAIR")]
    pairs: Vec<String>,
    /// Guest memory per node in MiB.
    #[arg(long, default_value_t = 384)]
    memory: u32,
    /// Seconds a node may take from power on to ready.
    #[arg(long, default_value_t = 300)]
    boot_timeout: u64,
    /// Build and boot a chassis for every scenario. By default a scenario
    /// whose nodes are all in the chassis the previous one left running
    /// (after a PASS) runs on it.
    #[arg(long)]
    fresh: bool,
    #[command(subcommand)]
    helper: Option<Helper>,
}

#[derive(Debug, Subcommand)]
enum Helper {
    /// (internal) net-snmp pass_persist helper serving IF-MIB port states.
    #[command(hide = true)]
    SnmpIfmibHelper {
        #[arg(long)]
        state: PathBuf,
        /// `iftable` or `ifxtable`.
        #[arg(long)]
        subtree: String,
    },
}

fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    // target/<profile>/qemu-tests -> target
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().and_then(|p| p.parent()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// On SIGINT/SIGTERM, kill what the run started (drop guards do not run
/// on a signal) and exit 130.
fn cleanup_on_signal() -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    // Blocked here, before any thread starts, so every thread inherits the
    // mask and only the waiter below receives these signals.
    set.thread_block()?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            eprintln!("qemu-tests: interrupted; stopping VMs and simulators");
            qemu_tests::cleanup::run_all();
            std::process::exit(130);
        }
    });
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.helper.is_none() {
        if let Err(e) = cleanup_on_signal() {
            eprintln!("qemu-tests: cannot install the signal cleanup: {e}");
        }
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("qemu-tests: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    if let Some(Helper::SnmpIfmibHelper { state, subtree }) = cli.helper {
        let tree = match subtree.as_str() {
            "iftable" => qemu_tests::snmp::IF_TABLE,
            "ifxtable" => qemu_tests::snmp::IFX_TABLE,
            other => anyhow::bail!("--subtree {other:?}: expected iftable or ifxtable"),
        };
        let stdin = std::io::stdin();
        qemu_tests::snmp::pass_persist(stdin.lock(), std::io::stdout().lock(), &state, tree)?;
        return Ok(0);
    }
    if cli.list {
        for s in SCENARIOS {
            println!("{:<18} {}", s.name, s.about);
        }
        return Ok(0);
    }
    let profile = cli.profile.context("--profile is required")?;
    chassis::load_file(&profile).map_err(|e| match e {
        chassis::LoadError::Invalid(r) => anyhow::anyhow!("{}", r.render()),
        other => anyhow::anyhow!("{other}"),
    })?;
    let chosen: Vec<&'static scenario::Scenario> = if cli.scenarios.is_empty() {
        SCENARIOS.iter().collect()
    } else {
        cli.scenarios
            .iter()
            .map(|n| {
                scenario::find(n).with_context(|| {
                    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                    format!("no scenario {n:?}; known: {}", names.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let target = target_dir();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = cli
        .out
        .unwrap_or_else(|| target.join("qemu-tests/runs").join(stamp.to_string()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let cfg = RunConfig {
        profile: profile.clone(),
        out_dir: out.clone(),
        cache_dir: target.join("qemu-tests-cache"),
        workspace: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        pairs: (!cli.pairs.is_empty()).then(|| cli.pairs.clone()),
        helper: std::env::current_exe().context("locating this binary")?,
        memory_mib: cli.memory,
        accel: "tcg".into(),
        boot_timeout: Duration::from_secs(cli.boot_timeout),
        fresh: cli.fresh,
    };
    let t0 = Instant::now();
    let mut results = Vec::new();
    let mut shared = None;
    for s in chosen {
        let mut progress = |line: &str| {
            println!("{line}");
            let _ = std::io::stdout().flush();
        };
        results.push(scenario::run(&cfg, s, &mut progress, &mut shared));
    }
    // The last chassis powers off before the table.
    drop(shared);
    let report = RunReport {
        profile: profile.display().to_string(),
        scenarios: results,
        wall_s: t0.elapsed().as_secs_f64(),
    };
    println!("\n{}", report.table());
    println!("logs, consoles and QMP events: {}", out.display());
    if let Some(j) = cli.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&j, text + "\n").with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(report.exit_code())
}
