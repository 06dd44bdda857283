//! `flexctl profile`: check, show, resolve a node, Ansible inventory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chassis::{node, LoadError, Loaded};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Validate profiles; print every problem with file:line:column.
    ///
    /// Exits 0 when all files are valid, 1 otherwise.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the problems as JSON (one array of objects).
        #[arg(long)]
        json: bool,
    },
    /// Show the bays of a profile as a table.
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the fully resolved configuration of one node.
    ///
    /// This is what the node's image bakes in and the supervisor reads.
    Node {
        file: PathBuf,
        #[command(flatten)]
        at: BayArg,
        /// JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Print an Ansible dynamic inventory (the `--list` form).
    Inventory {
        file: PathBuf,
        /// Accepted for Ansible's inventory-script protocol; the output is the list.
        #[arg(long)]
        list: bool,
        /// Ansible's per-host query; hostvars are in `_meta`, so this prints `{}`.
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct BayArg {
    /// Node bay, 1..14.
    #[arg(long)]
    pub bay: u32,
    /// Chassis name, when the profile has several chassis.
    #[arg(long)]
    pub chassis: Option<String>,
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check { files, json } => check(&files, json),
        Cmd::Show { file, json } => {
            let Some(l) = load_or_report(&file)? else {
                return Ok(ExitCode::from(1));
            };
            show(&l, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Node { file, at, json } => {
            let Some(l) = load_or_report(&file)? else {
                return Ok(ExitCode::from(1));
            };
            let n = match node::resolve(&l.profile, at.bay, at.chassis.as_deref()) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("flexctl: {}: {e}", file.display());
                    return Ok(ExitCode::from(1));
                }
            };
            let text = if json {
                serde_json::to_string_pretty(&n)? + "\n"
            } else {
                toml::to_string(&n)?
            };
            print(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inventory {
            file,
            list: _,
            host,
        } => {
            let Some(l) = load_or_report(&file)? else {
                return Ok(ExitCode::from(1));
            };
            if host.is_some() {
                print("{}\n")?;
                return Ok(ExitCode::SUCCESS);
            }
            let inv = chassis::inventory::inventory(&l.profile)?;
            print(&(serde_json::to_string_pretty(&inv)? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Load a profile; on problems print them to stderr and return `None`.
fn load_or_report(file: &Path) -> anyhow::Result<Option<Loaded>> {
    match chassis::load_file(file) {
        Ok(l) => Ok(Some(l)),
        Err(LoadError::Invalid(r)) => {
            eprint!("{}", r.render());
            eprintln!(
                "flexctl: {}: {} problem(s); nothing was used",
                file.display(),
                r.diagnostics.len()
            );
            Ok(None)
        }
        Err(e @ LoadError::Io { .. }) => Err(e.into()),
    }
}

fn check(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut bad = 0;
    for f in files {
        match chassis::load_file(f) {
            Ok(l) => {
                if !json {
                    let nodes = node::bays(&l.profile).len();
                    println!(
                        "{}: ok ({} chassis, {nodes} nodes, {} pairs)",
                        f.display(),
                        l.profile.chassis.len(),
                        l.profile.pairs.len()
                    );
                }
            }
            Err(LoadError::Invalid(r)) => {
                bad += 1;
                if json {
                    all.extend(r.diagnostics.iter().map(|d| r.source.locate(d)));
                } else {
                    eprint!("{}", r.render());
                    eprintln!("{}: {} problem(s)\n", f.display(), r.diagnostics.len());
                }
            }
            Err(e @ LoadError::Io { .. }) => {
                bad += 1;
                eprintln!("flexctl: {e}");
            }
        }
    }
    if json {
        print(&(serde_json::to_string_pretty(&all)? + "\n"))?;
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(l: &Loaded, json: bool) -> anyhow::Result<()> {
    let p = &l.profile;
    let mut rows = Vec::new();
    for (chassis, bay) in node::bays(p) {
        let n = node::resolve(p, bay, Some(chassis)).context("resolving a validated profile")?;
        rows.push(n);
    }
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|n| {
                serde_json::json!({
                    "chassis": n.chassis,
                    "bay": n.bay,
                    "hostname": n.hostname,
                    "role": n.role,
                    "pair": n.pair.name,
                    "addresses": n.network.addresses.iter().map(|a| (a.network.clone(), a.address.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                    "vips": n.vips.iter().map(|v| serde_json::json!({"network": v.network, "address": v.address, "vrid": v.vrid, "priority": v.priority})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({ "name": p.name, "subscribers": p.subscribers, "nodes": v });
        return print(&(serde_json::to_string_pretty(&doc)? + "\n"));
    }
    let mut out = format!(
        "{} — {}\n{} subscribers, {} chassis, {} nodes, db replication {}\n\n",
        p.name,
        p.description,
        p.subscribers,
        p.chassis.len(),
        rows.len(),
        p.database.replication
    );
    let header = [
        "CHASSIS",
        "BAY",
        "HOSTNAME",
        "ROLE",
        "PAIR",
        "MANAGEMENT",
        "INTERNAL",
        "EXTERNAL",
        "VIP (vrid, prio)",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|n| {
            let addr = |net: &str| {
                n.network
                    .addresses
                    .iter()
                    .find(|a| a.network == net)
                    .map_or_else(|| "-".to_owned(), |a| a.address.to_string())
            };
            let vips = n
                .vips
                .iter()
                .map(|v| format!("{} ({}, {})", v.address, v.vrid, v.priority))
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                n.chassis.clone(),
                n.bay.to_string(),
                n.hostname.clone(),
                n.role.to_string(),
                n.pair.name.clone(),
                addr("management"),
                addr("internal"),
                addr("external"),
                if vips.is_empty() { "-".into() } else { vips },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    out += &line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in table {
        out += &line(r);
    }
    print(&out)
}

/// Write to stdout, treating a closed pipe (`| head`) as success.
fn print(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
