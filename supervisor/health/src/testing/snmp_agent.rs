//! net-snmp's `snmpd` serving test MIB tables on a loopback UDP port.
//!
//! [`Snmpd`] is the generic harness: the served objects come from a
//! `pass_persist` script (Python, run by snmpd) that re-reads a small state
//! file (`OID<TAB>type<TAB>value` lines) on every request, so a test changes
//! a value by rewriting the file. v2c community [`COMMUNITY`] and a v3 user
//! [`V3_USER`] (SHA / AES) are configured.
//!
//! [`SnmpAgent`] serves an EN2092-like IF-MIB on top of it: ifIndex layout
//! follows the EN2092, INTA1..INTA14 are 1..14, EXT1..EXT22 are 17..38
//! (only the ports passed to [`SnmpAgent::start`] exist).
//! [`super::cmm_agent::CmmAgent`] serves the Flex CMM's power module table.

use super::{free_udp_port, PeerError};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// v2c community.
pub const COMMUNITY: &str = "flexvisor-ro";
/// v3 user.
pub const V3_USER: &str = "fvmon";
/// v3 authentication pass phrase (SHA).
pub const V3_AUTH: &str = "fvauth-secret";
/// v3 privacy pass phrase (AES).
pub const V3_PRIV: &str = "fvpriv-secret";

const PASS_SCRIPT: &str = r#"import sys
STATE = sys.argv[1]
def parse(s):
    return tuple(int(x) for x in s.strip().strip(".").split(".") if x)
def table():
    out = {}
    with open(STATE) as f:
        for line in f:
            p = line.rstrip("\n").split("\t", 2)
            if len(p) != 3:
                continue
            out[parse(p[0])] = (p[1], p[2])
    return out
def emit(oid, tv):
    sys.stdout.write("." + ".".join(map(str, oid)) + "\n" + tv[0] + "\n" + tv[1] + "\n")
while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd = line.strip()
    if cmd == "PING":
        sys.stdout.write("PONG\n")
    elif cmd in ("get", "getnext"):
        oid = parse(sys.stdin.readline())
        t = table()
        if cmd == "get":
            if oid in t:
                emit(oid, t[oid])
            else:
                sys.stdout.write("NONE\n")
        else:
            nxt = [k for k in sorted(t) if k > oid]
            if nxt:
                emit(nxt[0], t[nxt[0]])
            else:
                sys.stdout.write("NONE\n")
    elif cmd == "set":
        sys.stdin.readline()
        sys.stdin.readline()
        sys.stdout.write("not-writable\n")
    sys.stdout.flush()
"#;

/// A value served by [`Snmpd`]: `pass_persist` type name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// INTEGER.
    Integer(i64),
    /// OCTET STRING (no tabs or newlines).
    String(String),
    /// Gauge32.
    Gauge(u32),
}

/// The generic harness: snmpd with `pass_persist` subtrees served from a
/// state file. Stopped on drop.
#[derive(Debug)]
pub struct Snmpd {
    child: Option<Child>,
    /// UDP port on 127.0.0.1.
    pub port: u16,
    state: PathBuf,
    /// One OID per subtree: each subtree has its own `pass_persist`
    /// process, which snmpd starts at the first request for it.
    probes: Vec<Vec<u64>>,
    dir: tempfile::TempDir,
}

impl Snmpd {
    /// Start snmpd serving `subtrees` (dotted OIDs) from `objects`; waits
    /// until a GETNEXT on every subtree is answered (so each subtree's
    /// `pass_persist` script runs before the caller's first request).
    pub fn start(subtrees: &[&str], objects: &[(Vec<u64>, Served)]) -> Result<Snmpd, PeerError> {
        if subtrees.is_empty() {
            return Err(PeerError::Setup("no subtree to serve".into()));
        }
        let probes: Vec<Vec<u64>> = subtrees
            .iter()
            .map(|t| {
                t.trim_matches('.')
                    .split('.')
                    .map(|p| p.parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| PeerError::Setup(format!("bad subtree {t}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let dir = tempfile::tempdir().map_err(|e| PeerError::Setup(format!("tempdir: {e}")))?;
        let port = free_udp_port()?;
        let script = dir.path().join("pass.py");
        let state = dir.path().join("objects.txt");
        let conf = dir.path().join("snmpd.conf");
        let persist = dir.path().join("persist");
        std::fs::create_dir_all(&persist).map_err(|e| PeerError::Setup(format!("{e}")))?;
        std::fs::write(&script, PASS_SCRIPT).map_err(|e| PeerError::Setup(format!("{e}")))?;
        let python = which("python3").ok_or_else(|| PeerError::Missing {
            binary: "python3",
            package: "python3",
            detail: "not on PATH".into(),
        })?;
        let mut cfg = format!(
            "agentAddress udp:127.0.0.1:{port}\n\
             rocommunity {COMMUNITY} 127.0.0.1\n\
             createUser {V3_USER} SHA \"{V3_AUTH}\" AES \"{V3_PRIV}\"\n\
             rouser {V3_USER} priv\n"
        );
        for t in subtrees {
            cfg.push_str(&format!(
                "pass_persist .{} {} {} {}\n",
                t.trim_matches('.'),
                python.display(),
                script.display(),
                state.display()
            ));
        }
        std::fs::write(&conf, cfg).map_err(|e| PeerError::Setup(format!("{e}")))?;
        write_objects(&state, objects)?;
        let log = dir.path().join("snmpd.log");
        let child = Command::new("snmpd")
            .args(["-f", "-C", "-c"])
            .arg(&conf)
            .arg("-Lf")
            .arg(&log)
            .args(["-I", "-ifTable,ifXTable"])
            .arg("-p")
            .arg(dir.path().join("snmpd.pid"))
            .env("SNMP_PERSISTENT_DIR", &persist)
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| PeerError::Missing {
                binary: "snmpd",
                package: "snmpd",
                detail: e.to_string(),
            })?;
        let agent = Snmpd {
            child: Some(child),
            port,
            state,
            probes,
            dir,
        };
        agent.wait_ready()?;
        Ok(agent)
    }

    fn wait_ready(&self) -> Result<(), PeerError> {
        // Generous: a loaded machine starts python slowly (nothing timed).
        let deadline = Instant::now() + Duration::from_secs(60);
        for probe in &self.probes {
            let oid = snmp2::Oid::from(probe).map_err(|e| PeerError::Setup(format!("{e:?}")))?;
            loop {
                if let Ok(mut s) = snmp2::SyncSession::new_v2c(
                    ("127.0.0.1", self.port),
                    COMMUNITY.as_bytes(),
                    Some(Duration::from_millis(1000)),
                    0,
                ) {
                    if let Ok(pdu) = s.getnext(&oid) {
                        if pdu.varbinds.count() > 0 {
                            break;
                        }
                    }
                }
                if Instant::now() >= deadline {
                    return Err(PeerError::Setup(format!(
                        "snmpd did not answer for {probe:?} within 60 s; log: {}",
                        self.log()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// snmpd's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("snmpd.log")).unwrap_or_default()
    }

    /// `host:port` of the agent.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replace the served objects (atomically: the script never reads half).
    pub fn serve(&self, objects: &[(Vec<u64>, Served)]) -> Result<(), PeerError> {
        write_objects(&self.state, objects)
    }

    /// Stop the agent now (simulates an unreachable peer).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Arguments selecting this agent for net-snmp's tools with SNMPv3
    /// (`-v3 -l authPriv ... 127.0.0.1:PORT`).
    pub fn netsnmp_v3_args(&self) -> Vec<String> {
        [
            "-v3", "-l", "authPriv", "-u", V3_USER, "-a", "SHA", "-A", V3_AUTH, "-x", "AES", "-X",
            V3_PRIV, "-On", "-r", "1", "-t", "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.address()])
        .collect()
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_objects(state: &std::path::Path, objects: &[(Vec<u64>, Served)]) -> Result<(), PeerError> {
    let mut text = String::new();
    for (oid, v) in objects {
        let dotted: Vec<String> = oid.iter().map(u64::to_string).collect();
        let (ty, val) = match v {
            Served::Integer(i) => ("integer", i.to_string()),
            Served::String(s) => ("string", s.replace(['\t', '\n'], " ")),
            Served::Gauge(g) => ("gauge", g.to_string()),
        };
        text.push_str(&format!("{}\t{ty}\t{val}\n", dotted.join(".")));
    }
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, state))
        .map_err(|e| PeerError::Setup(format!("{}: {e}", state.display())))
}

const IFTABLE: [u64; 9] = [1, 3, 6, 1, 2, 1, 2, 2, 1];
const IFXTABLE: [u64; 10] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1];

/// One port of the simulated switch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    index: u32,
    name: String,
    admin_up: bool,
    oper_up: bool,
    speed: u32,
}

/// A running EN2092-like agent; stopped on drop.
#[derive(Debug)]
pub struct SnmpAgent {
    snmpd: Snmpd,
    /// UDP port on 127.0.0.1.
    pub port: u16,
    ports: Vec<Port>,
}

/// EN2092 ifIndex of a port name (`INTA3` -> 3, `EXT1` -> 17).
pub fn en2092_index(name: &str) -> Option<u32> {
    if let Some(n) = name.strip_prefix("INTA") {
        return n.parse().ok().filter(|n| (1..=14).contains(n));
    }
    if let Some(n) = name.strip_prefix("EXT") {
        return n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=22).contains(n))
            .map(|n| n + 16);
    }
    None
}

fn if_objects(ports: &[Port]) -> Vec<(Vec<u64>, Served)> {
    let mut out = Vec::new();
    let at = |base: &[u64], col: u64, idx: u32| {
        let mut o = base.to_vec();
        o.extend([col, u64::from(idx)]);
        o
    };
    for p in ports {
        let updown = |b: bool| Served::Integer(if b { 1 } else { 2 });
        out.push((
            at(&IFTABLE, 1, p.index),
            Served::Integer(i64::from(p.index)),
        ));
        out.push((at(&IFTABLE, 2, p.index), Served::String(p.name.clone())));
        out.push((at(&IFTABLE, 7, p.index), updown(p.admin_up)));
        out.push((at(&IFTABLE, 8, p.index), updown(p.oper_up)));
        out.push((at(&IFXTABLE, 1, p.index), Served::String(p.name.clone())));
        out.push((at(&IFXTABLE, 15, p.index), Served::Gauge(p.speed)));
    }
    out
}

impl SnmpAgent {
    /// Start snmpd with these ports, all up at 10 Gb/s.
    pub fn start(port_names: &[&str]) -> Result<SnmpAgent, PeerError> {
        let mut ports = Vec::new();
        for n in port_names {
            let index = en2092_index(n)
                .ok_or_else(|| PeerError::Setup(format!("{n} is not an EN2092 port name")))?;
            ports.push(Port {
                index,
                name: n.to_string(),
                admin_up: true,
                oper_up: true,
                speed: 10000,
            });
        }
        // ifXTable first: the readiness probe walks ifName.
        let snmpd = Snmpd::start(
            &[".1.3.6.1.2.1.31.1.1", ".1.3.6.1.2.1.2.2"],
            &if_objects(&ports),
        )?;
        Ok(SnmpAgent {
            port: snmpd.port,
            snmpd,
            ports,
        })
    }

    /// `host:port` of the agent.
    pub fn address(&self) -> String {
        self.snmpd.address()
    }

    /// Set a port's operational state (link).
    pub fn set_oper(&mut self, name: &str, up: bool) -> Result<(), PeerError> {
        self.edit(name, |p| p.oper_up = up)
    }

    /// Set a port's administrative state (`shutdown` on the switch also
    /// takes the link down).
    pub fn set_admin(&mut self, name: &str, up: bool) -> Result<(), PeerError> {
        self.edit(name, |p| {
            p.admin_up = up;
            if !up {
                p.oper_up = false;
            }
        })
    }

    fn edit(&mut self, name: &str, f: impl Fn(&mut Port)) -> Result<(), PeerError> {
        let p = self
            .ports
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| PeerError::Setup(format!("agent has no port {name}")))?;
        f(p);
        self.snmpd.serve(&if_objects(&self.ports))
    }

    /// Stop the agent now (simulates an unreachable module).
    pub fn stop(&mut self) {
        self.snmpd.stop();
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}
