//! `sip-lb probe`: sends OPTIONS to a running sip-lb and turns the answer
//! into a health-style exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use sip::{HeaderName, Message};

/// Probe arguments.
#[derive(Debug)]
pub struct Args {
    target: SocketAddr,
    timeout: Duration,
    json: bool,
}

/// Parses `ADDR [--timeout-ms N] [--json]`.
pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut target = None;
    let mut timeout = Duration::from_millis(2000);
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--timeout-ms" => {
                let v = it.next().ok_or("--timeout-ms needs a number")?;
                timeout = Duration::from_millis(
                    v.parse()
                        .map_err(|_| format!("--timeout-ms {v}: not a number"))?,
                );
            }
            other if target.is_none() => {
                target = Some(
                    other
                        .parse()
                        .map_err(|_| format!("probe: {other:?} is not IP:PORT"))?,
                );
            }
            other => return Err(format!("probe: unexpected argument {other:?}")),
        }
    }
    Ok(Args {
        target: target.ok_or("probe: ADDR (IP:PORT of the lb's UDP listener) is required")?,
        timeout,
        json,
    })
}

/// Runs the probe and reports.
pub fn run(a: &Args) -> ExitCode {
    let (code, status, up, total, detail) = match ask(a) {
        Ok((up, total)) if up == total => (0, "ok", up, total, String::new()),
        Ok((up, total)) if up > 0 => (1, "warning", up, total, "some proxy pairs down".into()),
        Ok((up, total)) => (2, "critical", up, total, "no proxy pair up".into()),
        Err(e) => (2, "critical", 0, 0, e),
    };
    if a.json {
        println!(
            "{{\"status\":\"{status}\",\"target\":\"{}\",\"pairs_up\":{up},\"pairs_total\":{total},\"detail\":\"{}\"}}",
            a.target,
            detail.replace('\\', "\\\\").replace('"', "\\\"")
        );
    } else {
        println!(
            "sip-lb {}: {status}: {up}/{total} proxy pairs up{}{detail}",
            a.target,
            if detail.is_empty() { "" } else { "; " }
        );
    }
    ExitCode::from(code)
}

fn ask(a: &Args) -> Result<(u32, u32), String> {
    let bind: SocketAddr = if a.target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|e| format!("{e}"))?;
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    sock.connect(a.target)
        .map_err(|e| format!("connect {}: {e}", a.target))?;
    let local = sock.local_addr().map_err(|e| format!("{e}"))?;
    let nonce = std::process::id();
    let req = format!(
        "OPTIONS sip:{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{nonce}\r\n\
         Max-Forwards: 1\r\nFrom: <sip:probe@{local}>;tag=p{nonce}\r\nTo: <sip:{t}>\r\n\
         Call-ID: probe-{nonce}@{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        t = a.target
    );
    sock.set_read_timeout(Some(a.timeout))
        .map_err(|e| format!("{e}"))?;
    sock.send(req.as_bytes())
        .map_err(|e| format!("send to {}: {e}", a.target))?;
    let mut buf = vec![0u8; 65_536];
    let n = sock
        .recv(&mut buf)
        .map_err(|e| format!("no answer within {:?}: {e}", a.timeout))?;
    let Ok(Message::Response(r)) = Message::parse(&buf[..n]) else {
        return Err("answer is not a SIP response".into());
    };
    if r.status != 200 {
        return Err(format!("answered {} {}", r.status, r.reason));
    }
    let v = r
        .headers
        .get(&HeaderName::Other("X-Flexvisor-Pairs-Up".into()))
        .ok_or("answer lacks X-Flexvisor-Pairs-Up (not a sip-lb?)")?;
    let (up, total) = v.split_once('/').ok_or("bad X-Flexvisor-Pairs-Up")?;
    Ok((
        up.trim().parse().map_err(|_| "bad X-Flexvisor-Pairs-Up")?,
        total
            .trim()
            .parse()
            .map_err(|_| "bad X-Flexvisor-Pairs-Up")?,
    ))
}
