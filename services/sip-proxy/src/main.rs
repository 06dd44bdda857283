//! `sip-proxy`: the proxy/registrar daemon of a proxy node. Thin: parses
//! the command line, loads the config, starts [`sip_proxy::proxy::Proxy`],
//! signals readiness and runs until SIGTERM/SIGINT.

use anyhow::Context;
use sip_proxy::config::Config;
use sip_proxy::proxy::Proxy;
use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
sip-proxy: stateful SIP proxy and registrar for flexvisor proxy nodes

USAGE:
    sip-proxy --config FILE [--notify-fd N]
    sip-proxy --check-config FILE
    sip-proxy --probe HOST:PORT [--json]

OPTIONS:
    --config FILE        TOML configuration (listen, record_route, node, domains,
                         database_url, redis_url, spool_dir, nonce_secret, ...)
    --notify-fd N        write a newline to file descriptor N once listening
                         (otherwise READY=1 goes to $NOTIFY_SOCKET if set)
    --check-config FILE  validate the configuration and exit (0 ok, 2 invalid)
    --probe HOST:PORT    health probe: send OPTIONS to a running proxy;
                         exit 0 when it answers 200, 2 when not (3 on usage error)
    --json               with --probe, print the result as JSON
    -h, --help           this text

Readiness: the proxy is ready once MariaDB and Redis answered and the UDP
socket is bound.
";

enum Mode {
    Run {
        config: PathBuf,
        notify_fd: Option<u32>,
    },
    Check(PathBuf),
    Probe {
        addr: String,
        json: bool,
    },
    Help,
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let mut config = None;
    let mut notify_fd = None;
    let mut check = None;
    let mut probe = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--check-config" => check = Some(PathBuf::from(value("--check-config")?)),
            "--probe" => probe = Some(value("--probe")?),
            "--json" => json = true,
            "--notify-fd" => {
                let v = value("--notify-fd")?;
                notify_fd = Some(
                    v.parse()
                        .map_err(|_| format!("--notify-fd: {v:?} is not a number"))?,
                );
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if let Some(c) = check {
        return Ok(Mode::Check(c));
    }
    if let Some(addr) = probe {
        return Ok(Mode::Probe { addr, json });
    }
    match config {
        Some(config) => Ok(Mode::Run { config, notify_fd }),
        None => Err("--config FILE is required (see --help)".into()),
    }
}

fn notify_ready(fd: Option<u32>) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(fd) = fd {
        let path = format!("/proc/self/fd/{fd}");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("opening --notify-fd {fd}"))?;
        f.write_all(b"\n")
            .with_context(|| format!("writing readiness to fd {fd}"))?;
        return Ok(());
    }
    if let Some(sock) = std::env::var_os("NOTIFY_SOCKET") {
        let s = std::os::unix::net::UnixDatagram::unbound().context("creating notify socket")?;
        let path = sock.to_string_lossy().into_owned();
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .context("abstract NOTIFY_SOCKET")?;
            s.send_to_addr(b"READY=1\n", &addr)
                .with_context(|| format!("sending READY=1 to {path}"))?;
        } else {
            s.send_to(b"READY=1\n", &path)
                .with_context(|| format!("sending READY=1 to {path}"))?;
        }
    }
    Ok(())
}

async fn run(config: PathBuf, notify_fd: Option<u32>) -> anyhow::Result<()> {
    let cfg = Config::load(&config)?;
    let proxy = Proxy::start(cfg).await?;
    eprintln!("sip-proxy: listening on udp {}", proxy.local_addr());
    notify_ready(notify_fd)?;
    let runner = tokio::spawn(proxy.clone().run());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        r = runner => { r.context("proxy task ended")?; }
    }
    eprintln!("sip-proxy: shutting down");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse_args(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sip-proxy: {e}");
            return ExitCode::from(3);
        }
    };
    match mode {
        Mode::Help => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Mode::Check(path) => match Config::load(&path) {
            Ok(_) => {
                println!("{}: OK", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sip-proxy: {e}");
                ExitCode::from(2)
            }
        },
        Mode::Probe { addr, json } => sip_proxy::probe::run(&addr, json),
        Mode::Run { config, notify_fd } => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sip-proxy: starting runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(run(config, notify_fd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sip-proxy: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
