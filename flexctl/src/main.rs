//! `flexctl`: the operator's command line for flexvisor.
//!
//! Thin by design: each subcommand module parses its arguments, calls the
//! library that holds the logic, and prints. Exit codes follow the
//! monitoring-plugin convention where a command reports health
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); other commands exit 0 on
//! success, 1 on a usage or input problem, 2 on a failure to act.

mod control;
mod health;
mod image;
mod profile;
mod raid;
mod vip;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "flexctl", version, about = "Operate a flexvisor chassis: profiles, nodes, health", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, show and resolve chassis profiles.
    #[command(subcommand)]
    Profile(profile::Cmd),
    /// Build node images per bay and boot them under qemu.
    #[command(subcommand)]
    Image(image::Cmd),
    /// Node health verdict (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    Health(health::Cmd),
    /// Shared addresses: the node's VRRP instances.
    Vip(vip::Cmd),
    /// md RAID-1 field procedures (replace a failed disk).
    #[command(subcommand)]
    Raid(raid::Cmd),
    /// Supervisor control (flexvisor control socket).
    #[command(flatten)]
    Control(control::Cmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(cmd) => profile::run(cmd),
        Command::Control(cmd) => control::run(cmd),
        Command::Image(cmd) => image::run(cmd),
        Command::Health(cmd) => health::run(cmd),
        Command::Vip(cmd) => vip::run(cmd),
        Command::Raid(cmd) => raid::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flexctl: {e:#}");
            ExitCode::from(2)
        }
    }
}
