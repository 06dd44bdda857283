//! Health probe: sends one OPTIONS to a running proxy over UDP and maps the
//! answer to health exit codes (0 OK, 2 CRITICAL, 3 UNKNOWN).

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Ok { status: u16, millis: u128 },
    Critical(String),
    Unknown(String),
}

/// Sends OPTIONS to `addr` from a loopback/ephemeral socket, waits 2 s.
pub fn probe(addr: &str) -> ProbeResult {
    let Some(target) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return ProbeResult::Unknown(format!("cannot resolve {addr:?}"));
    };
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return ProbeResult::Unknown(format!("binding probe socket: {e}")),
    };
    let _ = sock.connect(target);
    let local = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let branch = format!("z9hG4bKprobe{}", std::process::id());
    let msg = format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
From: <sip:probe@flexvisor.invalid>;tag=probe\r\nTo: <sip:{target}>\r\n\
Call-ID: probe-{branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let start = Instant::now();
    if let Err(e) = sock.send(msg.as_bytes()) {
        return ProbeResult::Critical(format!("sending OPTIONS to {target}: {e}"));
    }
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(2) {
        match sock.recv(&mut buf) {
            Ok(n) => match sip::Message::parse(&buf[..n]) {
                Ok(sip::Message::Response(r)) if r.status >= 200 => {
                    return if r.status == 200 {
                        ProbeResult::Ok {
                            status: r.status,
                            millis: start.elapsed().as_millis(),
                        }
                    } else {
                        ProbeResult::Critical(format!("{target} answered {}", r.status))
                    };
                }
                _ => continue,
            },
            Err(_) => {
                let _ = sock.send(msg.as_bytes());
            }
        }
    }
    ProbeResult::Critical(format!("no answer from {target} within 2 s"))
}

/// Runs the probe and prints the result; returns the health exit code.
pub fn run(addr: &str, json: bool) -> ExitCode {
    let r = probe(addr);
    let (code, status, detail) = match &r {
        ProbeResult::Ok { status, millis } => (0, "OK", format!("{status} in {millis} ms")),
        ProbeResult::Critical(d) => (2, "CRITICAL", d.clone()),
        ProbeResult::Unknown(d) => (3, "UNKNOWN", d.clone()),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"status": status, "code": code, "target": addr, "detail": detail})
        );
    } else {
        println!("{status}: {addr}: {detail}");
    }
    ExitCode::from(code)
}
