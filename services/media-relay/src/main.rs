//! `media-relay`: the RTP/RTCP relay daemon of a proxy node. Thin: parses
//! the command line, loads the config, restores calls from Redis, binds
//! the control socket, signals readiness and runs until SIGTERM/SIGINT.

use anyhow::Context;
use media_relay::bencode::{dict, Value};
use media_relay::config::Config;
use media_relay::relay::{bind_udp, Relay};
use media_relay::{client, metrics, notify, status, store};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const HELP: &str = "\
media-relay: RTP/RTCP media relay for flexvisor proxy nodes (rtpengine ng protocol)

USAGE:
    media-relay --config FILE [--notify-fd N]
    media-relay --check-config FILE
    media-relay --status HOST:PORT [--json]

OPTIONS:
    --config FILE        TOML configuration (control, address, advertise, port_min,
                         port_max, timeout_secs, freebind, [redis], [metrics])
    --notify-fd N        write a newline to file descriptor N once the control
                         socket listens (otherwise READY=1 to $NOTIFY_SOCKET if set)
    --check-config FILE  validate the configuration and exit (0 ok, 2 invalid)
    --status HOST:PORT   ask a running relay (ng ping, list, query) and print its
                         calls with per-stream counters; exit 0 when it answers,
                         2 when it does not (3 on usage error)
    --json               with --status, print JSON
    -h, --help           this text

Control: ng commands ping, offer, answer, delete, query, list over UDP.
Failover: with [redis], every call (tags, ports, peers) is written to Redis
and restored at start, on the same ports, by whichever node runs the relay.
";

enum Mode {
    Run {
        config: PathBuf,
        notify_fd: Option<i32>,
    },
    Check(PathBuf),
    Status {
        addr: String,
        json: bool,
    },
    Help,
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let (mut config, mut notify_fd, mut check, mut stat, mut json) =
        (None, None, None, None, false);
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
            "--status" => stat = Some(value("--status")?),
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
    if let Some(addr) = stat {
        return Ok(Mode::Status { addr, json });
    }
    match config {
        Some(config) => Ok(Mode::Run { config, notify_fd }),
        None => Err("--config FILE is required (see --help)".into()),
    }
}

async fn run(config: PathBuf, notify_fd: Option<i32>) -> anyhow::Result<()> {
    let cfg = Config::load(&config)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = match &cfg.redis {
        Some(r) => match store::Store::connect(&r.url, &r.key_prefix).await {
            Ok(s) => Some(s),
            Err(e) => {
                // Relaying matters more than failover state: run without it.
                eprintln!("media-relay: WARNING: {e}; running without failover state");
                None
            }
        },
        None => None,
    };
    let relay = Relay::new(cfg.clone(), store.as_ref().map(|_| tx));
    if let Some(mut s) = store {
        let (ok, failed) = store::restore_all(&mut s, &relay)
            .await
            .context("restoring calls from redis")?;
        eprintln!("media-relay: restored {ok} calls from redis ({failed} failed)");
        tokio::spawn(store::persist_loop(s, relay.clone(), rx));
    }
    let control = bind_udp(cfg.control, cfg.freebind)
        .with_context(|| format!("binding control socket {}", cfg.control))?;
    if let Some(addr) = cfg.metrics.listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics {addr}"))?;
        tokio::spawn(metrics::serve(l, relay.clone()));
    }
    tokio::spawn(relay.clone().sweep_loop());
    let server = tokio::spawn(relay.clone().serve_control(control));
    eprintln!(
        "media-relay: control on udp {}, media on {} ports {}-{}",
        cfg.control, cfg.address, cfg.port_min, cfg.port_max
    );
    match notify_fd {
        Some(fd) => notify::fd_notify_ready(fd).context("readiness notification")?,
        None => {
            notify::sd_notify_ready().context("readiness notification")?;
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        r = server => { r.context("control task ended")?; }
    }
    // Calls stay in Redis: the node taking over restores them.
    eprintln!(
        "media-relay: shutting down ({} calls held)",
        relay.call_count()
    );
    Ok(())
}

async fn status(addr: &str, json: bool) -> ExitCode {
    let peer: std::net::SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("media-relay: --status {addr:?}: not HOST:PORT");
            return ExitCode::from(3);
        }
    };
    let critical = |e: &dyn std::fmt::Display| {
        if json {
            println!(
                "{}",
                serde_json::json!({"status": "CRITICAL", "error": e.to_string()})
            );
        } else {
            println!("CRITICAL: {e}");
        }
        ExitCode::from(2)
    };
    let c = match client::Client::new(peer).await {
        Ok(c) => Arc::new(c),
        Err(e) => return critical(&e),
    };
    if let Err(e) = c.call(&dict([("command", Value::str("ping"))])).await {
        return critical(&e);
    }
    let list = match c.call(&dict([("command", Value::str("list"))])).await {
        Ok(l) => l,
        Err(e) => return critical(&e),
    };
    let ids: Vec<String> = list
        .get("calls")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut calls = Vec::new();
    for id in ids {
        let q = dict([
            ("command", Value::str("query")),
            ("call-id", Value::str(&id)),
        ]);
        // A call may end between list and query.
        if let Ok(v) = c.call(&q).await {
            calls.push((id, v));
        }
    }
    if json {
        let arr: Vec<serde_json::Value> = calls
            .iter()
            .map(|(id, v)| {
                let mut j = status::value_json(v);
                if let Some(o) = j.as_object_mut() {
                    o.insert("call-id".into(), serde_json::Value::from(id.clone()));
                }
                j
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"status": "OK", "relay": addr, "calls": arr})
        );
    } else {
        println!("OK: {addr} answers, {} calls", calls.len());
        print!("{}", status::table(&calls));
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse_args(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("media-relay: {e}");
            return ExitCode::from(3);
        }
    };
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
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
                eprintln!("media-relay: {e}");
                ExitCode::from(2)
            }
        },
        Mode::Status { addr, json } => match rt() {
            Ok(rt) => rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), status(&addr, json))
                    .await
                    .unwrap_or(ExitCode::from(2))
            }),
            Err(e) => {
                eprintln!("media-relay: starting runtime: {e}");
                ExitCode::from(3)
            }
        },
        Mode::Run { config, notify_fd } => {
            let rt = match rt() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("media-relay: starting runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(run(config, notify_fd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("media-relay: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
