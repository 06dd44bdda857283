//! `flexvisor`: the PID-1 supervisor of a flexvisor node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flexvisor::init::{self, Halt};
use flexvisor::supervisor::{console, Options, Supervisor};

const DEFAULT_NODE: &str = "/etc/flexvisor/node.toml";

#[derive(Debug, Parser)]
#[command(
    name = "flexvisor",
    version,
    about = "Supervise the services of a flexvisor node, as PID 1 or nested",
    long_about = "Supervise the services of a flexvisor node.\n\n\
As PID 1 (or with --init) it also mounts /proc, /sys, /dev, /run, /tmp and cgroup2, \
sets the hostname and brings up the network of the node configuration, and ends the \
system with reboot(2). Otherwise it is a child subreaper supervising the same way. \
Prints `flexvisor: ready` on the console once every service is ready. \
SIGTERM/SIGPWR: poweroff; SIGINT: reboot; SIGHUP: reload."
)]
struct Args {
    /// Node configuration (from `flexctl profile node`); optional when the
    /// default path does not exist: then every defined service runs.
    #[arg(long, value_name = "PATH")]
    node_config: Option<PathBuf>,
    /// Directory of service definitions (*.toml).
    #[arg(long, value_name = "DIR", default_value = "/etc/flexvisor/services.d")]
    services_dir: PathBuf,
    /// Runtime directory (notify sockets).
    #[arg(long, value_name = "DIR", default_value = "/run/flexvisor")]
    run_dir: PathBuf,
    /// Control socket [default: RUN_DIR/control.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Directory of service log files.
    #[arg(long, value_name = "DIR", default_value = "/var/log/flexvisor")]
    log_dir: PathBuf,
    /// Keep logs in memory only.
    #[arg(long)]
    no_log_files: bool,
    /// cgroup2 mount under which service cgroups are made.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    cgroup_root: PathBuf,
    /// Use process groups only.
    #[arg(long)]
    no_cgroups: bool,
    /// Bound of the whole shutdown, after which everything is killed.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    shutdown_timeout_ms: u64,
    /// Hardware watchdog device to feed (e.g. /dev/watchdog).
    #[arg(long, value_name = "PATH")]
    watchdog: Option<PathBuf>,
    /// Start as VRRP master: run active_services from the beginning.
    #[arg(long)]
    master: bool,
    /// Perform PID-1 duties even when not PID 1.
    #[arg(long, conflicts_with = "no_init")]
    init: bool,
    /// Do not perform PID-1 duties even as PID 1 (containers, tests).
    #[arg(long)]
    no_init: bool,
    /// Check the configuration, print the start order and exit.
    #[arg(long)]
    check: bool,
    /// Do not run the health monitor (development).
    #[arg(long)]
    no_health: bool,
    /// Do not run the VRRP instances (development).
    #[arg(long)]
    no_vrrp: bool,
    /// Address the Prometheus /metrics listener binds (port: health.metrics_port).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    metrics_bind: std::net::IpAddr,
    /// Root under which the health monitor reads /proc and /sys.
    #[arg(long, value_name = "DIR", default_value = "/")]
    system_root: PathBuf,
    /// Check local disks and NICs only: no CMM (power) or switch-module sources.
    #[arg(long)]
    health_local_only: bool,
    /// The initramfs' bay check; `mismatch` keeps VRRP from starting.
    #[arg(long, value_name = "PATH", default_value = flexvisor::hosted::BAY_CHECK)]
    bay_check: PathBuf,
    /// Bring up the node's network (netlink) and exit.
    #[arg(long, hide = true)]
    network_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let init = (std::process::id() == 1 || args.init) && !args.no_init;
    let node_config = args.node_config.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_NODE);
        p.exists().then_some(p)
    });

    if args.check {
        return match flexvisor::config::load(node_config.as_deref(), &args.services_dir) {
            Ok(c) => {
                println!(
                    "configuration valid; start order: {}",
                    c.graph.start_order().join(" ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                console(&e.to_string());
                ExitCode::from(1)
            }
        };
    }

    if init {
        for e in init::mount_early() {
            console(&e.to_string());
        }
        init::trap_ctrl_alt_del();
    } else if let Err(e) = init::become_subreaper() {
        console(&e.to_string());
    }
    if init || args.network_only {
        match node_config.as_deref().map(flexvisor::config::read_node) {
            Some(Ok(node)) => {
                if init {
                    if let Err(e) = init::set_hostname(&node.hostname) {
                        console(&e.to_string());
                    }
                }
                let errs = init::netlink::bring_up(&node.network);
                for e in &errs {
                    console(&format!("network: {e}"));
                }
                if args.network_only {
                    return if errs.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    };
                }
            }
            Some(Err(e)) => console(&e.to_string()),
            None => console("no node configuration; network left as is"),
        }
    }

    let hosted_node = node_config
        .as_deref()
        .and_then(|p| flexvisor::config::read_node(p).ok());
    let hosted = flexvisor::hosted::HostedOptions {
        health: !args.no_health,
        vrrp: !args.no_vrrp,
        metrics_bind: args.metrics_bind,
        system_root: args.system_root.clone(),
        local_only: args.health_local_only,
        bay_check: args.bay_check.clone(),
    };
    let opts = Options {
        socket: args
            .socket
            .clone()
            .unwrap_or_else(|| args.run_dir.join("control.sock")),
        services_dir: args.services_dir,
        node_config,
        run_dir: args.run_dir,
        log_dir: (!args.no_log_files).then_some(args.log_dir),
        cgroup_root: (!args.no_cgroups).then_some(args.cgroup_root),
        shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
        watchdog: args.watchdog,
        master: args.master,
        init,
    };
    let mut sup = match Supervisor::new(opts) {
        Ok(s) => s,
        Err(e) => {
            console(&format!("cannot start: {e}"));
            if init {
                // PID 1 must not exit (the kernel would panic): keep reaping
                // until someone powers the machine off.
                console("fix the configuration; halting in 60 s");
                std::thread::sleep(Duration::from_secs(60));
                init::finish(Halt::Poweroff);
            }
            return ExitCode::from(1);
        }
    };
    // Health and VRRP run with a node configuration only.
    if let Some(node) = &hosted_node {
        match flexvisor::hosted::start(node, &hosted) {
            Ok((subs, reloader)) => {
                for s in subs {
                    sup.add_subsystem(s);
                }
                if let Some(r) = reloader {
                    sup.on_vips_changed(Box::new(move |n| r.apply(n)));
                }
            }
            Err(e) => console(&format!("health/VRRP not started: {e}")),
        }
    }
    match sup.run() {
        Halt::Exit => ExitCode::SUCCESS,
        h if init => init::finish(h),
        _ => ExitCode::SUCCESS,
    }
}
