//! OpenIPMI's `ipmi_sim` in the two parts it plays in the chassis.
//!
//! - The **CMM**: a management controller with six Power Supply sensors
//!   (`PSU1`..`PSU6`, sensor numbers 0x41..0x46, entity 0Ah instance = bay)
//!   and one Power Unit redundancy sensor (`PS Redundancy`, 0x50, sensor
//!   type 09h, generic reading type 0Bh): the layout the health crate's
//!   PSU reader expects. The harness fails PSUs through the simulator's
//!   console (`sensor_set_bit`).
//! - A node's **BMC**: an `ipmi_sim` whose system interface is qemu's
//!   external BMC (`serial 15 ... codec VM` here, `ipmi-bmc-extern` plus
//!   `isa-ipmi-kcs` in qemu, so the guest has `/dev/ipmi0`) and whose
//!   `startcmd` starts the VM: `ipmitool -I lanplus chassis power
//!   on|off|cycle` then acts on the VM like on a real IMM.
//!
//! Both run inside the run's network namespace; their LAN channels and
//! consoles listen there only.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::proc::{self, Daemon, ProcError};

/// Administrator configured in every simulator.
pub const USER: &str = "admin";
/// Its password.
pub const PASSWORD: &str = "flexvisor-sim";
/// Sensor number of PSU1 (PSU n is `PSU_SENSOR_BASE + n - 1`).
pub const PSU_SENSOR_BASE: u8 = 0x41;
/// Sensor number of the PSU redundancy sensor.
pub const REDUNDANCY_SENSOR: u8 = 0x50;

/// Errors from the simulators.
#[derive(Debug, thiserror::Error)]
pub enum IpmiError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ipmi_sim `{name}`: console at 127.0.0.1:{port} (namespace {netns}) did not answer: {detail}; log:\n{log}")]
    Console {
        name: String,
        port: u16,
        netns: String,
        detail: String,
        log: String,
    },
    #[error("ipmi_sim `{name}` rejected `{command}`: {reply}")]
    Rejected {
        name: String,
        command: String,
        reply: String,
    },
    #[error("ipmitool against `{name}`: unexpected output {output:?}")]
    Unexpected { name: String, output: String },
}

/// The PSU redundancy states the CMM reports (sensor type 09h, generic
/// event/reading type 0Bh offsets, IPMI v2.0 table 42-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redundancy {
    /// Offset 00h: fully redundant.
    Full = 0,
    /// Offset 02h: redundancy degraded.
    Degraded = 2,
    /// Offset 03h: non-redundant, sufficient resources.
    NonRedundantSufficient = 3,
    /// Offset 05h: non-redundant, insufficient resources.
    Insufficient = 5,
}

/// A compact sensor record (SDR type 02h, IPMI v2.0 table 43-2) for a
/// discrete sensor of the controller at 0x20, all states readable.
fn compact_sdr(
    record_id: u16,
    number: u8,
    entity: (u8, u8),
    stype: u8,
    reading: u8,
    name: &str,
) -> Vec<u8> {
    let mut body = vec![
        0x20, 0x00, number, entity.0, entity.1, 0x7F, 0x40, stype, reading,
    ];
    body.extend_from_slice(&[0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00]); // event/reading masks
    body.extend_from_slice(&[
        0xC0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]);
    // Names are the short ASCII literals of this module (< 16 bytes), so the
    // length fits the 5-bit field.
    body.push(0xC0 | (name.len() as u8 & 0x1F));
    body.extend_from_slice(name.as_bytes());
    let mut rec = record_id.to_le_bytes().to_vec();
    // The body is at most 48 bytes by construction.
    rec.extend_from_slice(&[0x51, 0x02, body.len() as u8]);
    rec.extend_from_slice(&body);
    rec
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:#04x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const MC_ADD: &str = "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr";

/// Emulator commands of the CMM: six present PSUs, redundancy full.
pub fn cmm_emu() -> String {
    let mut l = vec!["mc_setbmc 0x20".to_owned(), MC_ADD.to_owned()];
    let mut all = Vec::new();
    for bay in 1..=6u8 {
        let n = PSU_SENSOR_BASE + bay - 1;
        all.push(n);
        l.push(format!("sensor_add 0x20 0 {n} 0x08 0x6f"));
        let sdr = compact_sdr(
            u16::from(bay),
            n,
            (0x0A, bay),
            0x08,
            0x6F,
            &format!("PSU{bay}"),
        );
        l.push(format!("main_sdr_add 0x20 {}", hex(&sdr)));
    }
    all.push(REDUNDANCY_SENSOR);
    l.push(format!("sensor_add 0x20 0 {REDUNDANCY_SENSOR} 0x09 0x0b"));
    let sdr = compact_sdr(7, REDUNDANCY_SENSOR, (0x15, 1), 0x09, 0x0B, "PS Redundancy");
    l.push(format!("main_sdr_add 0x20 {}", hex(&sdr)));
    for n in all {
        l.push(format!(
            "sensor_set_event_support 0x20 0 {n} enable scanning per-state 000000011111111 000000011111111 000000011111111 000000011111111"
        ));
        // Offset 0: PSU "presence detected" / redundancy "fully redundant".
        l.push(format!("sensor_set_bit_clr_rest 0x20 0 {n} 0 1 0"));
    }
    l.push("mc_enable 0x20".to_owned());
    l.join("\n") + "\n"
}

/// Emulator commands of a node's BMC: a bare controller (the VM is its
/// system interface).
pub fn bmc_emu() -> String {
    [
        "mc_setbmc 0x20",
        MC_ADD,
        "sel_enable 0x20 1000 0x0a",
        "mc_enable 0x20",
    ]
    .join("\n")
        + "\n"
}

/// How a simulator is started.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Name in messages and file names (`cmm`, `bmc-lb1a`).
    pub name: String,
    /// LAN (RMCP+) address and UDP port inside the namespace.
    pub lan: (String, u16),
    /// Console TCP port on 127.0.0.1 inside the namespace.
    pub console_port: u16,
    /// For a BMC: the VM channel port and the command that powers the VM on.
    pub vm: Option<VmLink>,
}

/// The BMC's side of the VM it manages.
#[derive(Debug, Clone)]
pub struct VmLink {
    /// TCP port on 127.0.0.1 (in the namespace) qemu's chardev connects to.
    pub port: u16,
    /// Shell command run on power on (it must `exec` qemu).
    pub startcmd: String,
    /// Start the VM when the simulator starts.
    pub start_now: bool,
}

fn lan_conf(s: &SimSpec) -> String {
    let mut c = format!(
        "name \"{name}\"\nset_working_mc 0x20\n  startlan 1\n    addr {a} {p}\n    priv_limit admin\n    \
allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n    \
allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n    \
guid a123456789abcdefa123456789abcdef\n  endlan\n",
        name = s.name,
        a = s.lan.0,
        p = s.lan.1
    );
    if let Some(vm) = &s.vm {
        c += &format!(
            "  serial 15 127.0.0.1 {} codec VM\n  startcmd \"{}\"\n  startnow {}\n  poweroff_wait 20\n  kill_wait 5\n",
            vm.port,
            vm.startcmd.replace('"', "\\\""),
            vm.start_now
        );
    }
    c += &format!(
        "user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight\nconsole 127.0.0.1 {}\n",
        s.console_port
    );
    c
}

/// A running `ipmi_sim`; killed on drop (which also ends a VM it started
/// only if that VM's own guard kills it: see [`crate::vm`]).
#[derive(Debug)]
pub struct IpmiSim {
    spec: SimSpec,
    netns: Arc<Netns>,
    daemon: Daemon,
}

impl IpmiSim {
    /// Write the configuration into `dir` and start the simulator inside
    /// `netns`; returns once its console answers.
    pub fn start(
        spec: SimSpec,
        emu: &str,
        dir: &Path,
        netns: Arc<Netns>,
    ) -> Result<IpmiSim, IpmiError> {
        proc::require("ipmi_sim", "openipmi")?;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|source| IpmiError::Write {
                    path: path.clone(),
                    source,
                })
                .map(|_| path)
        };
        let conf = write(&format!("{}.lan.conf", spec.name), &lan_conf(&spec))?;
        let emu = write(&format!("{}.emu", spec.name), emu)?;
        let state = dir.join(format!("{}.state", spec.name));
        std::fs::create_dir_all(&state).map_err(|source| IpmiError::Write {
            path: state.clone(),
            source,
        })?;
        // ipmi_sim dies of SIGPIPE when a console client leaves before its
        // prompt is written; start it with SIGPIPE ignored (kept over exec).
        let mut cmd = netns.command("sh");
        cmd.args(["-c", "trap '' PIPE; exec \"$0\" \"$@\"", "ipmi_sim"]);
        cmd.arg("-c")
            .arg(&conf)
            .arg("-f")
            .arg(&emu)
            .arg("-s")
            .arg(&state)
            .arg("-n");
        let daemon = Daemon::spawn(&spec.name, cmd, &dir.join(format!("{}.log", spec.name)))?;
        let sim = IpmiSim {
            spec,
            netns,
            daemon,
        };
        let port = sim.spec.console_port;
        let up = proc::poll(Duration::from_secs(20), || {
            sim.netns
                .within(move || {
                    TcpStream::connect(("127.0.0.1", port))
                        .map(|mut s| {
                            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                            read_prompt(&mut s).ends_with("> ")
                        })
                        .unwrap_or(false)
                })
                .ok()
                .filter(|ok| *ok)
        });
        if up.is_none() {
            return Err(sim.console_error("not listening after 20s"));
        }
        Ok(sim)
    }

    fn console_error(&self, detail: &str) -> IpmiError {
        IpmiError::Console {
            name: self.spec.name.clone(),
            port: self.spec.console_port,
            netns: self.netns.name().to_owned(),
            detail: detail.to_owned(),
            log: self.daemon.log(),
        }
    }

    /// The simulator's spec.
    pub fn spec(&self) -> &SimSpec {
        &self.spec
    }

    /// What the simulator logged.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Run emulator commands on the console, one prompt each.
    pub fn console(&self, commands: &[String]) -> Result<(), IpmiError> {
        let port = self.spec.console_port;
        let mut s = self
            .netns
            .within(move || TcpStream::connect(("127.0.0.1", port)))
            .and_then(|r| r)
            .map_err(|e| self.console_error(&e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| self.console_error(&e.to_string()))?;
        read_prompt(&mut s);
        for c in commands {
            s.write_all(format!("{c}\n").as_bytes())
                .map_err(|e| self.console_error(&e.to_string()))?;
            let reply = read_prompt(&mut s);
            let lower = reply.to_lowercase();
            if lower.contains("error") || lower.contains("invalid") || lower.contains("unknown") {
                return Err(IpmiError::Rejected {
                    name: self.spec.name.clone(),
                    command: c.clone(),
                    reply,
                });
            }
        }
        Ok(())
    }

    /// `ipmitool -I lanplus` against this simulator, from inside the
    /// namespace (what an operator's tool on the management network does).
    pub fn ipmitool(&self, args: &[&str]) -> Result<String, IpmiError> {
        proc::require("ipmitool", "ipmitool")?;
        let port = self.spec.lan.1.to_string();
        let mut c = self.netns.command("ipmitool");
        c.args([
            "-I",
            "lanplus",
            "-C",
            "3",
            "-N",
            "2",
            "-R",
            "3",
            "-H",
            &self.spec.lan.0,
            "-p",
            &port,
        ]);
        c.args(["-U", USER, "-P", PASSWORD]);
        c.args(args);
        Ok(proc::run(&mut c)?)
    }

    // --- CMM ---

    /// Set or clear a Power Supply sensor offset on PSU `bay` (1..6):
    /// 1 failure detected, 2 predictive failure, 3 AC lost.
    pub fn set_psu_offset(&self, bay: u8, offset: u8, on: bool) -> Result<(), IpmiError> {
        let n = PSU_SENSOR_BASE + bay.saturating_sub(1);
        self.console(&[format!(
            "sensor_set_bit 0x20 0 {n} {offset} {} 1",
            u8::from(on)
        )])
    }

    /// Set the redundancy sensor to exactly `state`.
    pub fn set_redundancy(&self, state: Redundancy) -> Result<(), IpmiError> {
        self.console(&[format!(
            "sensor_set_bit_clr_rest 0x20 0 {REDUNDANCY_SENSOR} {} 1 1",
            state as u8
        )])
    }

    /// `ipmitool sdr type "Power Supply"` rows: (sensor, state text).
    pub fn psu_rows(&self) -> Result<Vec<(String, String)>, IpmiError> {
        let out = self.ipmitool(&["sdr", "type", "Power Supply"])?;
        Ok(parse_sdr_rows(&out))
    }

    // --- BMC ---

    /// `chassis power status`: true when on.
    pub fn power_is_on(&self) -> Result<bool, IpmiError> {
        let out = self.ipmitool(&["chassis", "power", "status"])?;
        if out.contains("is on") {
            Ok(true)
        } else if out.contains("is off") {
            Ok(false)
        } else {
            Err(IpmiError::Unexpected {
                name: self.spec.name.clone(),
                output: out,
            })
        }
    }

    /// `chassis power on|off|cycle|reset`.
    pub fn power(&self, action: &str) -> Result<(), IpmiError> {
        self.ipmitool(&["chassis", "power", action]).map(|_| ())
    }
}

fn read_prompt(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !out.ends_with(b"> ") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Rows of `ipmitool sdr type ...` (`name | id | status | entity | state`).
pub fn parse_sdr_rows(out: &str) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() == 5 && !rows.iter().any(|(n, _)| n == cols[0]) {
            rows.push((cols[0].to_owned(), cols[4].to_owned()));
        }
    }
    rows
}

/// A free TCP or UDP port on 127.0.0.1 inside `netns`.
pub fn free_port(netns: &Netns, udp: bool) -> std::io::Result<u16> {
    netns
        .within(move || {
            if udp {
                std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
            } else {
                std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
            }
            .map(|a| a.port())
        })
        .and_then(|r| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdr_record_length_matches_its_header() {
        let r = compact_sdr(1, 0x41, (0x0A, 1), 0x08, 0x6F, "PSU1");
        assert_eq!(usize::from(r[4]), r.len() - 5);
        assert_eq!(&r[r.len() - 4..], b"PSU1");
    }

    #[test]
    fn bmc_config_names_the_vm_channel_and_start_command() {
        let c = lan_conf(&SimSpec {
            name: "bmc-lb1a".into(),
            lan: ("127.0.0.1".into(), 6235),
            console_port: 7000,
            vm: Some(VmLink {
                port: 9005,
                startcmd: "exec /run/lb1a/power-on.sh".into(),
                start_now: true,
            }),
        });
        assert!(c.contains("serial 15 127.0.0.1 9005 codec VM"), "{c}");
        assert!(c.contains("startcmd \"exec /run/lb1a/power-on.sh\""), "{c}");
    }
}
