//! `billing`: the mediation and rating daemon of the proxy nodes (see the
//! library docs). This file only parses arguments and wires signals,
//! readiness and exit codes.

use std::io::Write as _;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use billing::config::Config;
use billing::daemon::{now_ms, Daemon};
use billing::status::{judge, Status, Verdict};

const HELP: &str = "\
billing: mediate the sip-proxy accounting spool into rated CDRs and commit
them to the central MariaDB.

USAGE:
    billing --config FILE [--notify-fd N]   run the daemon
    billing --config FILE --once            process what is in the spool, commit, exit
    billing --config FILE --check-config    check the configuration and exit
    billing status --config FILE [--json]   report the daemon's status (health exit codes)

OPTIONS:
    -c, --config FILE   configuration file (TOML)
    --notify-fd N       write a newline to fd N once running (s6 readiness)
    --once              exit when the spool is drained; exit 1 if CDRs had to be
                        kept locally because the central database is unreachable
    --check-config      print the checked configuration and exit (2 on error)
    --json              machine-readable status
    -h, --help          this text

EXIT CODES (status): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
SIGTERM/SIGINT: finish the current step and transaction, then exit 0.
";

#[derive(Debug, PartialEq, Eq)]
enum Cmd {
    Help,
    Run {
        config: PathBuf,
        notify_fd: Option<i32>,
        once: bool,
    },
    Check {
        config: PathBuf,
    },
    Status {
        config: PathBuf,
        json: bool,
    },
}

fn parse_args(args: &[String]) -> Result<Cmd, String> {
    let (status, rest) = match args.first().map(String::as_str) {
        Some("status") => (true, &args[1..]),
        _ => (false, args),
    };
    let mut config = None;
    let mut notify_fd = None;
    let (mut once, mut check, mut json) = (false, false, false);
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Cmd::Help),
            "-c" | "--config" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a FILE")?));
            }
            "--notify-fd" if !status => {
                let v = it.next().ok_or("--notify-fd needs a number")?;
                notify_fd = Some(
                    v.parse()
                        .map_err(|_| format!("--notify-fd {v}: not a number"))?,
                );
            }
            "--once" if !status => once = true,
            "--check-config" if !status => check = true,
            "--json" if status => json = true,
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let config = config.ok_or("--config FILE is required (see --help)")?;
    Ok(if status {
        Cmd::Status { config, json }
    } else if check {
        Cmd::Check { config }
    } else {
        Cmd::Run {
            config,
            notify_fd,
            once,
        }
    })
}

/// Writes a newline to fd `fd` and closes it (s6 `notification-fd`).
fn notify_ready(fd: i32) -> std::io::Result<()> {
    if fd < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--notify-fd {fd}: refusing to use stdin/stdout/stderr"),
        ));
    }
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .map_err(|e| std::io::Error::new(e.kind(), format!("--notify-fd {fd}: not open: {e}")))?;
    // SAFETY: fd is open (checked above), >= 3, and handed to us by the
    // supervisor to write once and close; nothing else here uses it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(b"\n")
}

fn run(config: PathBuf, notify_fd: Option<i32>, once: bool) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = Arc::new(AtomicBool::new(false));
        for kind in [
            tokio::signal::unix::SignalKind::terminate(),
            tokio::signal::unix::SignalKind::interrupt(),
        ] {
            let mut sig = tokio::signal::unix::signal(kind)?;
            let flag = shutdown.clone();
            tokio::spawn(async move {
                sig.recv().await;
                flag.store(true, Ordering::SeqCst);
            });
        }
        let mut daemon = Daemon::new(cfg, shutdown.clone())?;
        if let Some(fd) = notify_fd {
            notify_ready(fd)?;
        }
        eprintln!("billing: running (pid {})", std::process::id());
        let left = daemon.run(once).await?;
        if shutdown.load(Ordering::SeqCst) {
            eprintln!("billing: stopped by signal, {left} batch(es) waiting for the central database");
            return Ok(ExitCode::SUCCESS);
        }
        if once && !daemon.profiles_loaded() {
            eprintln!("billing: billing profiles could not be loaded; nothing was mediated");
            return Ok(ExitCode::from(1));
        }
        if once && left > 0 {
            eprintln!(
                "billing: central database unreachable; {left} batch(es) kept in {} for the next run",
                daemon.status_path().parent().map(|p| p.display().to_string()).unwrap_or_default()
            );
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn status(config: PathBuf, json: bool) -> ExitCode {
    let out = |verdict: Verdict, summary: String, st: Option<Status>| {
        if json {
            let v = serde_json::json!({"verdict": verdict, "summary": summary, "status": st});
            println!("{v}");
        } else {
            println!("billing {verdict:?}: {summary}");
        }
        ExitCode::from(verdict.exit_code())
    };
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => return out(Verdict::Unknown, e.to_string(), None),
    };
    let path = cfg.state_dir.join("status.json");
    let st: Status = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return out(Verdict::Unknown, format!("{}: {e}", path.display()), None),
    };
    let (verdict, summary) = judge(&st, now_ms(), pid_alive(st.pid));
    out(verdict, summary, Some(st))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Cmd::Help) => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Cmd::Check { config }) => match Config::load(&config) {
            Ok(cfg) => {
                println!("{}: OK\n{cfg:#?}", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("billing: {e}");
                ExitCode::from(2)
            }
        },
        Ok(Cmd::Status { config, json }) => status(config, json),
        Ok(Cmd::Run {
            config,
            notify_fd,
            once,
        }) => match run(config, notify_fd, once) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("billing: {e:#}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("billing: {e}");
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(&args("--help")), Ok(Cmd::Help));
        assert_eq!(
            parse_args(&args("--config /c --notify-fd 4 --once")),
            Ok(Cmd::Run {
                config: "/c".into(),
                notify_fd: Some(4),
                once: true
            })
        );
        assert_eq!(
            parse_args(&args("status --config /c --json")),
            Ok(Cmd::Status {
                config: "/c".into(),
                json: true
            })
        );
        assert!(parse_args(&args("status --config /c --once")).is_err());
        assert!(parse_args(&args("--once")).is_err());
        assert!(parse_args(&args("--notify-fd x --config /c")).is_err());
    }
}
