//! `flexctl health`: the node's health verdict, answered from the
//! supervisor's memory, printed by `flexvisor_health::report::cli_output`.
//! Exit codes follow the monitoring-plugin convention (0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN, also when the supervisor cannot be asked).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use flexvisor::control::client::Client;
use flexvisor::control::proto::Op;
use flexvisor_health::verdict::unix_now;
use flexvisor_health::{CheckKind, NodeHealth};

#[derive(Debug, Args)]
pub struct Cmd {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Only this check: raid, power, uplinks, services or vip.
    #[arg(long, value_name = "CHECK")]
    check: Option<CheckKind>,
    /// Control socket of the supervisor.
    #[arg(long, value_name = "PATH", env = "FLEXVISOR_SOCKET", default_value = flexvisor::control::DEFAULT_SOCKET)]
    socket: PathBuf,
}

pub fn run(cmd: Cmd) -> Result<ExitCode> {
    let reply = Client::connect(&cmd.socket).and_then(|mut c| {
        c.call(Op::Subsystem {
            name: "health".into(),
            request: serde_json::Value::Null,
        })
    });
    let health: NodeHealth = match reply
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value(v).map_err(|e| format!("health reply: {e}")))
    {
        Ok(h) => h,
        Err(e) if cmd.json => {
            let v = serde_json::json!({ "overall": "UNKNOWN", "error": e });
            println!("{v}");
            return Ok(ExitCode::from(3));
        }
        Err(e) => {
            println!("HEALTH UNKNOWN - cannot ask the supervisor: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let (text, code) =
        flexvisor_health::report::cli_output(&health, cmd.check, cmd.json, unix_now());
    print!("{text}");
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(3)))
}
