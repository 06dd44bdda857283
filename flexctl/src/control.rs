//! Control-socket subcommands: talk to the running flexvisor through
//! `flexvisor::control::client`. Printing only; the protocol lives there.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use flexvisor::control::client::{Client, ClientError};
use flexvisor::control::proto::{Op, Reply, Status};
use flexvisor::events::Event;
use flexvisor::logs::LogLine;

#[derive(Debug, Args)]
pub struct Conn {
    /// Control socket of the supervisor.
    #[arg(long, value_name = "PATH", env = "FLEXVISOR_SOCKET", default_value = flexvisor::control::DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Supervisor, service and hook states (exit 0 all ready, 1 some not yet ready or a role hook failed, 2 some failed, 3 unreachable).
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start a service (and what it requires).
    Start {
        service: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop a service (and what requires it).
    Stop {
        service: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Restart a service; resets its crash-loop counter.
    Restart {
        service: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the captured output of a service.
    Logs {
        service: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Lines of history.
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<usize>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Re-read the configuration and apply the differences.
    Reload {
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop every service in order and power the node off.
    Poweroff {
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop every service in order and reboot the node.
    Reboot {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the supervisor's event log.
    Events {
        /// Keep printing new events.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Status { json, conn } => status(&conn, json),
        Cmd::Start { service, conn } => simple(&conn, Op::Start { service }),
        Cmd::Stop { service, conn } => simple(&conn, Op::Stop { service }),
        Cmd::Restart { service, conn } => simple(&conn, Op::Restart { service }),
        Cmd::Reload { conn } => {
            let d = call(&conn, Op::Reload)?;
            println!("{}", serde_json::to_string(&d)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Poweroff { conn } => simple(&conn, Op::Poweroff),
        Cmd::Reboot { conn } => simple(&conn, Op::Reboot),
        Cmd::Logs {
            service,
            follow,
            lines,
            conn,
        } => logs(&conn, service, follow, lines),
        Cmd::Events { follow, conn } => events(&conn, follow),
    }
}

fn call(conn: &Conn, op: Op) -> Result<serde_json::Value> {
    Ok(Client::connect(&conn.socket)?.call(op)?)
}

fn simple(conn: &Conn, op: Op) -> Result<ExitCode> {
    call(conn, op)?;
    Ok(ExitCode::SUCCESS)
}

fn status(conn: &Conn, json: bool) -> Result<ExitCode> {
    let data = match Client::connect(&conn.socket).and_then(|mut c| c.call(Op::Status)) {
        Ok(d) => d,
        Err(e @ (ClientError::Connect { .. } | ClientError::Closed)) => {
            eprintln!("flexctl: {e}");
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e.into()),
    };
    let st: Status = serde_json::from_value(data.clone()).context("status reply")?;
    let code = if st.services.iter().any(|s| s.wanted && s.state == "failed") {
        2
    } else if st.hooks.failure.is_some()
        || st.services.iter().any(|s| s.wanted && s.state != "ready")
    {
        1
    } else {
        0
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(ExitCode::from(code));
    }
    println!(
        "flexvisor {} on {} (pid {}), up {}s, {}, {}, cgroups {}",
        st.version,
        st.hostname,
        st.pid,
        st.uptime_s,
        st.state,
        if st.master { "master" } else { "backup" },
        if st.cgroups { "on" } else { "off" },
    );
    let w = st
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:w$}  {:9} {:>7} {:>7} {:>8}  NOTE",
        "SERVICE", "STATE", "PID", "FOR", "RESTARTS"
    );
    for s in &st.services {
        let mut note = Vec::new();
        if !s.wanted {
            note.push("not wanted".to_owned());
        }
        if s.active_only {
            note.push("master only".to_owned());
        }
        if let Some(h) = s.health {
            note.push(if h { "healthy" } else { "UNHEALTHY" }.to_owned());
        }
        if let Some(w) = &s.waiting_for {
            note.push(format!("waiting for {w}"));
        }
        if let Some(t) = &s.status {
            note.push(format!("\"{t}\""));
        }
        if s.state != "ready" {
            if let Some(e) = &s.last_exit {
                note.push(format!("last: {e}"));
            }
        }
        println!(
            "{:w$}  {:9} {:>7} {:>6}s {:>8}  {}",
            s.name,
            s.state,
            s.pid.map_or("-".to_owned(), |p| p.to_string()),
            s.for_s,
            s.restarts,
            note.join(", ")
        );
    }
    let h = &st.hooks;
    if let Some(f) = &h.failure {
        println!(
            "hooks: WARNING {} ({} hook, at {})",
            f.message,
            f.role,
            flexvisor::logs::rfc3339_ms(f.unix_ms)
        );
    }
    if let Some(r) = &h.running {
        println!(
            "hooks: {} hook {} running for {}s (pid {})",
            r.role,
            r.name,
            r.for_s,
            r.pid.map_or("-".to_owned(), |p| p.to_string())
        );
    }
    if let Some(p) = &h.pending {
        println!("hooks: {p} hook waits for the running one");
    }
    if let (None, Some(l)) = (&h.failure, &h.last) {
        println!("hooks: last run: {l}");
    }
    for (name, v) in &st.subsystems {
        println!("{name}: {v}");
    }
    Ok(ExitCode::from(code))
}

fn print_line(l: &LogLine) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", l.render()).is_ok() && out.flush().is_ok()
}

fn logs(conn: &Conn, service: String, follow: bool, lines: Option<usize>) -> Result<ExitCode> {
    let mut c = Client::connect(&conn.socket)?;
    let op = Op::Logs {
        service,
        lines,
        follow,
    };
    if !follow {
        let tail: Vec<LogLine> = serde_json::from_value(c.call(op)?)?;
        for l in &tail {
            print_line(l);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tail: Vec<LogLine> = serde_json::from_value(c.call(op)?)?;
    for l in &tail {
        print_line(l);
    }
    while let Some(r) = c.next_reply()? {
        if let Reply::Log { line, .. } = r {
            if !print_line(&line) {
                break;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_event(e: &Event) -> bool {
    let mut out = std::io::stdout().lock();
    let svc = e
        .service
        .as_deref()
        .map(|s| format!("{s}: "))
        .unwrap_or_default();
    writeln!(
        out,
        "{:>6} {} [{}] {svc}{}",
        e.seq,
        flexvisor::logs::rfc3339_ms(e.unix_ms),
        e.source,
        e.message
    )
    .is_ok()
        && out.flush().is_ok()
}

fn events(conn: &Conn, follow: bool) -> Result<ExitCode> {
    let mut c = Client::connect(&conn.socket)?;
    let data = c.call(Op::Events { follow, since: 0 })?;
    let past: Vec<Event> = serde_json::from_value(data)?;
    for e in &past {
        print_event(e);
    }
    if follow {
        while let Some(r) = c.next_reply()? {
            if let Reply::Event { event } = r {
                if !print_event(&event) {
                    break;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
