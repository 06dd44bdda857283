//! sip-lb: the stateless SIP load balancer of the lb nodes.
//!
//! Relays SIP between subscribers (front: UDP, TCP, TLS) and the proxy pairs
//! (internal: UDP), choosing a pair by Call-ID hash, following Route headers
//! for in-dialog requests, inserting double Record-Route and Path, fixing
//! NAT'ed Via/Contact, answering broken requests with 4xx, and banning
//! flooding sources. Modules: [`config`] (file), [`relay`] (decisions),
//! [`dispatch`] (pair choice and health), [`flood`] (rate limits), [`net`]
//! (sockets and tasks), [`metrics`], [`notify`] (readiness), [`probe`].

mod config;
mod dispatch;
mod flood;
mod metrics;
mod net;
mod probe;
mod relay;

use flexvisor_daemon::notify;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const HELP: &str = "\
sip-lb: stateless SIP load balancer (flexvisor lb nodes)

USAGE:
    sip-lb --config FILE [--notify-fd N]   run the load balancer
    sip-lb --config FILE --check           check the configuration and exit
    sip-lb probe ADDR [--timeout-ms N] [--json]
                                           health probe: OPTIONS to a running sip-lb

OPTIONS:
    --config FILE     TOML configuration (listen, [tls], [[proxy]], [keepalive],
                      [nat], [flood], [metrics]); see docs/dependencies/sip-lb.md
    --notify-fd N     write a newline to fd N once listening (s6 readiness)
    --check           validate the configuration only
    -h, --help        this text
    -V, --version     version

Readiness: if NOTIFY_SOCKET is set, READY=1 is sent once all sockets listen.
Signals: SIGUSR1 prints a status line to stderr; SIGTERM/SIGINT stop.
Probe exit codes: 0 all proxy pairs up, 1 some pairs down, 2 no answer or no
pair up, 3 usage error.
";

enum Cmd {
    Run {
        config: PathBuf,
        notify_fd: Option<i32>,
        check: bool,
    },
    Probe(probe::Args),
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Cmd, String> {
    if args.first().map(String::as_str) == Some("probe") {
        return probe::parse_args(&args[1..]).map(Cmd::Probe);
    }
    let mut config = None;
    let mut notify_fd = None;
    let mut check = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Cmd::Help),
            "-V" | "--version" => return Ok(Cmd::Version),
            "--check" => check = true,
            "--config" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a file")?));
            }
            "--notify-fd" => {
                let v = it.next().ok_or("--notify-fd needs a number")?;
                notify_fd = Some(
                    v.parse::<i32>()
                        .map_err(|_| format!("--notify-fd {v}: not a number"))?,
                );
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let config = config.ok_or("--config FILE is required (see --help)")?;
    Ok(Cmd::Run {
        config,
        notify_fd,
        check,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Err(e) => {
            eprintln!("sip-lb: {e}");
            ExitCode::from(3)
        }
        Ok(Cmd::Help) => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Cmd::Version) => {
            println!("sip-lb {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Cmd::Probe(a)) => probe::run(&a),
        Ok(Cmd::Run {
            config,
            notify_fd,
            check,
        }) => run(&config, notify_fd, check),
    }
}

fn run(path: &std::path::Path, notify_fd: Option<i32>, check: bool) -> ExitCode {
    let cfg = match config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sip-lb: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!(
            "sip-lb: {}: OK ({} proxy pairs)",
            path.display(),
            cfg.proxies.len()
        );
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cfg.listen.workers * 2).clamp(2, 16))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sip-lb: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let shared = match net::start(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sip-lb: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some(addr) = cfg.metrics.listen {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    let s = Arc::clone(&shared);
                    tokio::spawn(metrics::serve(l, Arc::new(move || s.render_metrics())));
                }
                Err(e) => {
                    eprintln!("sip-lb: cannot bind metrics.listen {addr}: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        eprintln!(
            "sip-lb: listening (udp {:?}, tcp {:?}, tls {:?}, internal {}), {} proxy pairs",
            cfg.listen.udp,
            cfg.listen.tcp,
            cfg.listen.tls,
            cfg.listen.internal,
            cfg.proxies.len()
        );
        if let Err(e) = notify::sd_notify_ready() {
            eprintln!("sip-lb: NOTIFY_SOCKET: {e}");
        }
        if let Some(fd) = notify_fd {
            if let Err(e) = notify::fd_notify_ready(fd) {
                eprintln!("sip-lb: {e}");
            }
        }
        wait_for_signals(&shared).await
    })
}

async fn wait_for_signals(shared: &net::Shared) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        eprintln!("sip-lb: cannot install signal handlers");
        return ExitCode::from(1);
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => eprintln!("sip-lb: {}", shared.status_line()),
        }
    }
    eprintln!("sip-lb: stopping; {}", shared.status_line());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn argument_parsing() {
        assert!(matches!(parse_args(&args("--help")), Ok(Cmd::Help)));
        assert!(matches!(
            parse_args(&args("--config /x --notify-fd 4")),
            Ok(Cmd::Run {
                notify_fd: Some(4),
                check: false,
                ..
            })
        ));
        assert!(parse_args(&args("--notify-fd x --config y")).is_err());
        assert!(parse_args(&args("")).is_err());
        assert!(parse_args(&args("--bogus")).is_err());
        assert!(matches!(
            parse_args(&args("probe 127.0.0.1:5060")),
            Ok(Cmd::Probe(_))
        ));
    }
}
