//! `flexctl raid replace`: the field procedure after a hot-swapped node
//! disk. The logic lives in the `flexvisor-raid-replace` crate; this
//! module parses the arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use flexvisor_raid_replace::system::{self, Options};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Partition a replacement disk like the surviving one, copy the boot
    /// partitions (ESP, system slots) onto it and add its RAID partitions
    /// to the degraded md mirrors (md0 config, md1 data).
    ///
    /// Without DEVICE, the single blank disk at least as large as the
    /// survivor's partitions is used. A disk with partitions, an md
    /// superblock, a filesystem or other data is refused unless named and
    /// --force is given; the surviving disk, a disk in use or too small is
    /// always refused. Exit 0 done (with --wait: every array clean),
    /// 2 refused or failed.
    Replace {
        /// The new disk (`/dev/sdb` or `sdb`).
        device: Option<String>,
        /// Wait until the rebuild has finished and every array is clean.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 2) after this many seconds.
        #[arg(long, value_name = "SECS", requires = "wait")]
        timeout: Option<u64>,
        /// Overwrite what the named disk carries (partitions, superblocks).
        #[arg(long, requires = "device")]
        force: bool,
        /// Only this array (repeatable; default: every degraded array).
        #[arg(long = "array", value_name = "MD")]
        arrays: Vec<String>,
        /// Print the result as JSON on stdout (progress goes to stderr).
        #[arg(long)]
        json: bool,
        /// Root for /proc, /sys and /dev (tests).
        #[arg(long, hide = true, default_value = "/")]
        root: PathBuf,
    },
}

pub fn run(cmd: Cmd) -> Result<ExitCode> {
    let Cmd::Replace {
        device,
        wait,
        timeout,
        force,
        arrays,
        json,
        root,
    } = cmd;
    let opts = Options {
        root: root.clone(),
        device,
        force,
        arrays,
    };
    let mut say = |l: &str| {
        if json {
            eprintln!("flexctl raid: {l}");
        } else {
            println!("{l}");
        }
    };
    let fail = |e: &dyn std::fmt::Display| {
        if json {
            println!(
                "{}",
                serde_json::json!({ "ok": false, "error": e.to_string() })
            );
        }
        eprintln!("flexctl raid replace: {e}");
        ExitCode::from(2)
    };
    let prepared = match system::prepare(&opts) {
        Ok(p) => p,
        Err(e) => return Ok(fail(&e)),
    };
    let arrays: Vec<&str> = prepared.members.iter().map(|m| m.array.as_str()).collect();
    say(&format!(
        "replacing the missing disk of {} with /dev/{} (survivor /dev/{})",
        arrays.join(", "),
        prepared.disk,
        prepared.survivor
    ));
    let mut report = match system::execute(&prepared, &mut say) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    if wait {
        let t = timeout.map(Duration::from_secs);
        if let Err(e) = system::wait(&root, &mut report, Duration::from_secs(1), t, &mut say) {
            return Ok(fail(&e));
        }
        say(&format!(
            "rebuild finished in {:.1} s: every array clean",
            report.rebuild_secs.unwrap_or(0.0)
        ));
    } else {
        say("rebuild started; follow it with `flexctl health --check raid` or /proc/mdstat");
    }
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = serde_json::Value::Bool(true);
        println!("{v}");
    }
    Ok(ExitCode::SUCCESS)
}
