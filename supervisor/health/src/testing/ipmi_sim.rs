//! OpenIPMI's `ipmi_sim` configured as a chassis management module with six
//! Power Supply sensors (PSU1..PSU6, numbers 0x41..0x46, entity 0Ah
//! instance = bay) and one Power Unit redundancy sensor ("PS Redundancy",
//! 0x50, type 09h, reading type 0Bh), LAN on a loopback UDP port, console
//! on a loopback TCP port for toggling failures.

use super::{free_tcp_port, free_udp_port, PeerError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// User name configured in the simulator.
pub const USER: &str = "admin";
/// Password configured in the simulator.
pub const PASSWORD: &str = "flexvisor-sim";
/// First PSU sensor number.
pub const PSU_SENSOR_BASE: u8 = 0x41;
/// Redundancy sensor number.
pub const REDUNDANCY_SENSOR: u8 = 0x50;

/// A running simulator; killed and its directory removed on drop.
#[derive(Debug)]
pub struct IpmiSim {
    child: Child,
    /// UDP port of the LAN channel on 127.0.0.1.
    pub lan_port: u16,
    /// TCP port of the console on 127.0.0.1.
    pub console_port: u16,
    dir: tempfile::TempDir,
}

/// A compact sensor record (SDR type 02h, IPMI v2.0 table 43-2) for a
/// discrete sensor owned by the BMC at 0x20.
fn compact_sdr(
    record_id: u16,
    number: u8,
    entity: u8,
    instance: u8,
    stype: u8,
    code: u8,
    name: &str,
) -> Vec<u8> {
    let name = name.as_bytes();
    let mask: [u8; 2] = [0xFF, 0x00];
    let mut body = vec![
        0x20, 0x00, number, entity, instance, 0x7F, 0x40, stype, code, mask[0], mask[1], mask[0],
        mask[1], mask[0], mask[1], 0xC0, 0x00, 0x00, // units: no analog reading
        0x01, 0x00, // record sharing
        0x00, 0x00, // hysteresis
        0x00, 0x00, 0x00, // reserved
        0x00, // OEM
    ];
    // Names are short ASCII literals defined in this module (< 16 bytes).
    body.push(0xC0 | (name.len() as u8 & 0x1F));
    body.extend_from_slice(name);
    let mut rec = Vec::with_capacity(body.len() + 5);
    rec.extend_from_slice(&record_id.to_le_bytes());
    rec.extend_from_slice(&[0x51, 0x02, body.len() as u8]);
    rec.extend_from_slice(&body);
    rec
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:#04x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Send an ASF presence ping (DSP0136 §3.2.4) and wait briefly for the pong.
fn rmcp_pong(port: u16) -> bool {
    const PING: [u8; 12] = [
        0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x00, 0x00, 0x00,
    ];
    let Ok(sock) = std::net::UdpSocket::bind(("127.0.0.1", 0)) else {
        return false;
    };
    if sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
        || sock.send_to(&PING, ("127.0.0.1", port)).is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(sock.recv(&mut buf), Ok(n) if n >= 8 && buf[8] == 0x40)
}

/// The emulator command file.
pub fn emu_commands() -> String {
    let mut lines = vec![
        "mc_setbmc 0x20".to_string(),
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr".to_string(),
    ];
    for i in 0..6u8 {
        let num = PSU_SENSOR_BASE + i;
        lines.push(format!("sensor_add 0x20 0 {num} 0x08 0x6f"));
        let sdr = compact_sdr(
            u16::from(i) + 1,
            num,
            0x0A,
            i + 1,
            0x08,
            0x6F,
            &format!("PSU{}", i + 1),
        );
        lines.push(format!("main_sdr_add 0x20 {}", hex(&sdr)));
    }
    lines.push(format!("sensor_add 0x20 0 {REDUNDANCY_SENSOR} 0x09 0x0b"));
    let sdr = compact_sdr(7, REDUNDANCY_SENSOR, 0x15, 1, 0x09, 0x0B, "PS Redundancy");
    lines.push(format!("main_sdr_add 0x20 {}", hex(&sdr)));
    let all: Vec<u8> = (0..6)
        .map(|i| PSU_SENSOR_BASE + i)
        .chain([REDUNDANCY_SENSOR])
        .collect();
    for n in &all {
        lines.push(format!(
            "sensor_set_event_support 0x20 0 {n} enable scanning per-state 000000011111111 000000011111111 000000011111111 000000011111111"
        ));
    }
    for i in 0..6u8 {
        lines.push(format!(
            "sensor_set_bit_clr_rest 0x20 0 {} 0 1 0",
            PSU_SENSOR_BASE + i
        ));
    }
    lines.push(format!(
        "sensor_set_bit_clr_rest 0x20 0 {REDUNDANCY_SENSOR} 0 1 0"
    ));
    lines.push("mc_enable 0x20".to_string());
    lines.join("\n") + "\n"
}

fn lan_conf(lan_port: u16, console_port: u16) -> String {
    format!(
        r#"name "flexvisor-cmm"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {lan_port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
user 2 true "{USER}" "{PASSWORD}" admin 10 none md2 md5 straight
console 127.0.0.1 {console_port}
"#
    )
}

impl IpmiSim {
    /// Start `ipmi_sim` and wait until its console accepts connections.
    pub fn start() -> Result<IpmiSim, PeerError> {
        let dir = tempfile::tempdir().map_err(|e| PeerError::Setup(format!("tempdir: {e}")))?;
        let lan_port = free_udp_port()?;
        let console_port = free_tcp_port()?;
        let conf = dir.path().join("lan.conf");
        let emu = dir.path().join("emu.cmds");
        let state = dir.path().join("state");
        let write = |p: &Path, s: &str| {
            std::fs::write(p, s).map_err(|e| PeerError::Setup(format!("{}: {e}", p.display())))
        };
        write(&conf, &lan_conf(lan_port, console_port))?;
        write(&emu, &emu_commands())?;
        std::fs::create_dir_all(&state).map_err(|e| PeerError::Setup(format!("state dir: {e}")))?;
        let log = std::fs::File::create(dir.path().join("sim.log"))
            .map_err(|e| PeerError::Setup(format!("log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| PeerError::Setup(format!("log: {e}")))?;
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(&conf)
            .arg("-f")
            .arg(&emu)
            .arg("-s")
            .arg(&state)
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| PeerError::Missing {
                binary: "ipmi_sim",
                package: "openipmi",
                detail: e.to_string(),
            })?;
        let sim = IpmiSim {
            child,
            lan_port,
            console_port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Probe the LAN port only: a console connection dropped before
            // ipmi_sim writes its prompt kills it with SIGPIPE.
            if rmcp_pong(lan_port) {
                break;
            }
            if Instant::now() > deadline {
                return Err(PeerError::Setup(format!(
                    "ipmi_sim did not answer an RMCP ping within 20s; log: {}",
                    sim.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sim)
    }

    /// The simulator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim.log")).unwrap_or_default()
    }

    /// Run emulator commands on the console, waiting for each prompt.
    pub fn console(&self, commands: &[&str]) -> Result<String, PeerError> {
        let mut s = TcpStream::connect(("127.0.0.1", self.console_port))
            .map_err(|e| PeerError::Setup(format!("console connect: {e}")))?;
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| PeerError::Setup(format!("console: {e}")))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut read_until_prompt = |s: &mut TcpStream, out: &mut Vec<u8>| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.ends_with(b"> ") {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
        };
        read_until_prompt(&mut s, &mut out);
        for c in commands {
            s.write_all(format!("{c}\n").as_bytes())
                .map_err(|e| PeerError::Setup(format!("console write: {e}")))?;
            out.clear();
            read_until_prompt(&mut s, &mut out);
            let text = String::from_utf8_lossy(&out);
            if text.to_lowercase().contains("error") || text.contains("Invalid") {
                return Err(PeerError::Setup(format!("ipmi_sim rejected {c:?}: {text}")));
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Set or clear one Power Supply offset on PSU `bay` (1..6): 0 presence,
    /// 1 failure, 2 predictive failure, 3 AC lost.
    pub fn set_psu_bit(&self, bay: u8, offset: u8, on: bool) -> Result<(), PeerError> {
        let num = PSU_SENSOR_BASE + bay - 1;
        self.console(&[&format!(
            "sensor_set_bit 0x20 0 {num} {offset} {} 1",
            u8::from(on)
        )])
        .map(|_| ())
    }

    /// Set the redundancy sensor to exactly one generic 0Bh offset.
    pub fn set_redundancy(&self, offset: u8) -> Result<(), PeerError> {
        self.console(&[&format!(
            "sensor_set_bit_clr_rest 0x20 0 {REDUNDANCY_SENSOR} {offset} 1 1"
        )])
        .map(|_| ())
    }

    /// Install a seventh, working PSU while running: its sensor and an SDR
    /// record (record id 8) added to the main repository, which moves the
    /// repository's most-recent-addition timestamp.
    pub fn add_seventh_psu(&self) -> Result<(), PeerError> {
        let num = PSU_SENSOR_BASE + 6;
        let sdr = compact_sdr(8, num, 0x0A, 7, 0x08, 0x6F, "PSU7");
        self.console(&[
            &format!("sensor_add 0x20 0 {num} 0x08 0x6f"),
            &format!(
                "sensor_set_event_support 0x20 0 {num} enable scanning per-state 000000011111111 000000011111111 000000011111111 000000011111111"
            ),
            &format!("sensor_set_bit_clr_rest 0x20 0 {num} 0 1 0"),
            &format!("main_sdr_add 0x20 {}", hex(&sdr)),
        ])
        .map(|_| ())
    }

    /// `ipmitool -I lanplus` arguments for this simulator (before the
    /// subcommand).
    pub fn ipmitool_args(&self) -> Vec<String> {
        [
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            "127.0.0.1",
            "-p",
            &self.lan_port.to_string(),
            "-U",
            USER,
            "-P",
            PASSWORD,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Run `ipmitool ... sdr type "Power Supply"` and return its stdout.
    pub fn ipmitool_power_supply(&self) -> Result<String, PeerError> {
        let out = Command::new("ipmitool")
            .args(self.ipmitool_args())
            .args(["sdr", "type", "Power Supply"])
            .output()
            .map_err(|e| PeerError::Missing {
                binary: "ipmitool",
                package: "ipmitool",
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(PeerError::Setup(format!(
                "ipmitool failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row of `ipmitool sdr type "Power Supply"`: name and the state text.
pub fn parse_ipmitool_sdr_type(out: &str) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() == 5 && !rows.iter().any(|(n, _)| n == cols[0]) {
            rows.push((cols[0].to_string(), cols[4].to_string()));
        }
    }
    rows
}
