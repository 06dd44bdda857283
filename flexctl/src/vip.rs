//! `flexctl vip`: the node's VRRP instances (state, effective priority and
//! why, master, last transition and its cause), from the supervisor, and
//! how the role hooks those transitions ran went. While a failed hook is
//! outstanding it is printed on stderr, and the table form exits 1 (WARNING).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use flexvisor::control::client::Client;
use flexvisor::control::proto::Op;
use flexvisor_vrrp::Status;

#[derive(Debug, Args)]
pub struct Cmd {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Control socket of the supervisor.
    #[arg(long, value_name = "PATH", env = "FLEXVISOR_SOCKET", default_value = flexvisor::control::DEFAULT_SOCKET)]
    socket: PathBuf,
}

pub fn run(cmd: Cmd) -> Result<ExitCode> {
    let data = Client::connect(&cmd.socket)?.call(Op::Subsystem {
        name: "vrrp".into(),
        request: serde_json::Value::Null,
    })?;
    let list: Vec<Status> = serde_json::from_value(data.clone()).context("vrrp reply")?;
    let status: flexvisor::control::proto::Status =
        serde_json::from_value(Client::connect(&cmd.socket)?.call(Op::Status)?)
            .context("status reply")?;
    let hooks = status.hooks;
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else if list.is_empty() {
        println!("no VRRP instance running on this node");
    } else {
        for s in &list {
            println!("{s}");
        }
    }
    if !cmd.json {
        if let Some(r) = &hooks.running {
            println!("hook {} ({}) running for {} s", r.name, r.role, r.for_s);
        }
        if let Some(p) = &hooks.pending {
            println!("hook for {p} waits for the running one");
        }
        if let Some(l) = &hooks.last {
            println!("last {l}");
        }
    }
    match &hooks.failure {
        Some(f) => {
            eprintln!("WARNING: {} (until a later hook run succeeds)", f.message);
            // `--json` is data for scripts (the instance list, exit 0);
            // the table is what a technician or a check command reads.
            Ok(if cmd.json {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
