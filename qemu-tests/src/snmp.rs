//! The two EN2092 switch modules as SNMP agents.
//!
//! Each module is a real `snmpd` (net-snmp) inside the run's namespace,
//! listening on the module's management address from the profile. Its
//! IF-MIB `ifTable` and `ifXTable` are served through `pass_persist` by the
//! harness binary itself (`qemu-tests snmp-ifmib-helper`), which reads the
//! port states from a small file the harness rewrites when it cuts or
//! restores links: so what SNMP reports and what the virtual fabric does
//! change together.
//!
//! Ports follow the EN2092 numbering: `INTA1`..`INTA14` (node-facing,
//! ifIndex 1..14) and `EXT1`..`EXT14` (uplinks, ifIndex 43..56).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::netns::Netns;
use crate::proc::{self, Daemon, ProcError};

/// `ifTable` (IF-MIB, RFC 2863).
pub const IF_TABLE: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2];
/// `ifXTable` (IF-MIB, RFC 2863).
pub const IFX_TABLE: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1];
/// `ifOperStatus` column.
pub const IF_OPER_STATUS: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
/// `ifName` column.
pub const IF_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];

/// Errors of the SNMP agents.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snmpd for `{name}` did not answer on {address}:161 within 20s; log:\n{log}")]
    NotAnswering {
        name: String,
        address: String,
        log: String,
    },
    #[error("`{name}` has no port `{port}`")]
    NoPort { name: String, port: String },
    #[error("bad port state file {path} line {line}: {text:?}")]
    BadState {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

/// One switch port as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortState {
    /// ifIndex.
    pub index: u32,
    /// ifName (`EXT1`, `INTA5`).
    pub name: String,
    /// ifOperStatus up (1) or down (2).
    pub up: bool,
}

/// The EN2092 ports: INTA1..14 and EXT1..14 (11..14 are the 10 GbE
/// uplinks), all up.
pub fn en2092_ports() -> Vec<PortState> {
    let int = (1..=14).map(|i| PortState {
        index: i,
        name: format!("INTA{i}"),
        up: true,
    });
    let ext = (1..=14).map(|i| PortState {
        index: 42 + i,
        name: format!("EXT{i}"),
        up: true,
    });
    int.chain(ext).collect()
}

/// Serialise port states, one `index name up|down` per line.
pub fn render_state(ports: &[PortState]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{} {} {}\n",
                p.index,
                p.name,
                if p.up { "up" } else { "down" }
            )
        })
        .collect()
}

/// Parse what [`render_state`] wrote.
pub fn parse_state(path: &Path, text: &str) -> Result<Vec<PortState>, SnmpError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let bad = || SnmpError::BadState {
                path: path.to_owned(),
                line: i + 1,
                text: l.to_owned(),
            };
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [idx, name, st] if *st == "up" || *st == "down" => Ok(PortState {
                    index: idx.parse().map_err(|_| bad())?,
                    name: (*name).to_owned(),
                    up: *st == "up",
                }),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// A value in a `pass_persist` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnmpValue {
    Integer(i64),
    Str(String),
    Gauge(u32),
}

/// The IF-MIB objects for `ports`, sorted by OID.
pub fn ifmib_objects(ports: &[PortState]) -> BTreeMap<Vec<u32>, SnmpValue> {
    let mut m = BTreeMap::new();
    let col = |base: &[u32], c: u32, i: u32| {
        let mut o = base.to_vec();
        o.extend([1, c, i]);
        o
    };
    for p in ports {
        m.insert(
            col(IF_TABLE, 1, p.index),
            SnmpValue::Integer(i64::from(p.index)),
        );
        m.insert(col(IF_TABLE, 2, p.index), SnmpValue::Str(p.name.clone()));
        m.insert(col(IF_TABLE, 3, p.index), SnmpValue::Integer(6)); // ethernetCsmacd
        m.insert(col(IF_TABLE, 7, p.index), SnmpValue::Integer(1)); // admin up
        m.insert(
            col(IF_TABLE, 8, p.index),
            SnmpValue::Integer(if p.up { 1 } else { 2 }),
        );
        m.insert(col(IFX_TABLE, 1, p.index), SnmpValue::Str(p.name.clone()));
        // ifHighSpeed in Mb/s: EXT11..EXT14 are the 10 GbE ports.
        let mbps = if p.index >= 53 { 10_000 } else { 1_000 };
        m.insert(col(IFX_TABLE, 15, p.index), SnmpValue::Gauge(mbps));
    }
    m
}

/// Parse a dotted OID (`.1.3.6` or `1.3.6`).
pub fn parse_oid(s: &str) -> Option<Vec<u32>> {
    let s = s.trim().trim_start_matches('.');
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split('.').map(|p| p.parse().ok()).collect()
}

fn dotted(o: &[u32]) -> String {
    o.iter().map(|x| format!(".{x}")).collect()
}

/// Answer one `get`/`getnext` for objects under `subtree`.
pub fn answer(
    objects: &BTreeMap<Vec<u32>, SnmpValue>,
    subtree: &[u32],
    op: &str,
    oid: &[u32],
) -> Option<(Vec<u32>, SnmpValue)> {
    let hit = match op {
        "get" => objects.get_key_value(oid),
        _ => objects
            .range::<Vec<u32>, _>((
                std::ops::Bound::Excluded(oid.to_vec()),
                std::ops::Bound::Unbounded,
            ))
            .next(),
    }?;
    hit.0
        .starts_with(subtree)
        .then(|| (hit.0.clone(), hit.1.clone()))
}

/// The `pass_persist` loop (net-snmp `snmpd.conf(5)`): PING/PONG, get,
/// getnext, set (refused). Port states are re-read from `state` on every
/// request; an unreadable file answers NONE.
pub fn pass_persist(
    input: impl BufRead,
    mut out: impl Write,
    state: &Path,
    subtree: &[u32],
) -> std::io::Result<()> {
    let mut lines = input.lines();
    while let Some(cmd) = lines.next() {
        let cmd = cmd?;
        match cmd.trim() {
            "PING" => writeln!(out, "PONG")?,
            "get" | "getnext" => {
                let oid = lines.next().transpose()?.unwrap_or_default();
                let reply = parse_oid(&oid).and_then(|oid| {
                    let text = std::fs::read_to_string(state).ok()?;
                    let ports = parse_state(state, &text).ok()?;
                    answer(&ifmib_objects(&ports), subtree, cmd.trim(), &oid)
                });
                match reply {
                    Some((o, SnmpValue::Integer(i))) => {
                        write!(out, "{}\ninteger\n{i}\n", dotted(&o))?
                    }
                    Some((o, SnmpValue::Str(s))) => write!(out, "{}\nstring\n{s}\n", dotted(&o))?,
                    Some((o, SnmpValue::Gauge(g))) => write!(out, "{}\ngauge\n{g}\n", dotted(&o))?,
                    None => writeln!(out, "NONE")?,
                }
            }
            "set" => {
                let _ = lines.next();
                let _ = lines.next();
                writeln!(out, "not-writable")?;
            }
            "" => {}
            _ => writeln!(out, "NONE")?,
        }
        out.flush()?;
    }
    Ok(())
}

/// How one module's agent is started.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Module name (`io1`).
    pub name: String,
    /// Address the agent listens on (UDP 161), inside the namespace.
    pub address: String,
    /// SNMP v2c community.
    pub community: String,
    /// The harness binary (serves `snmp-ifmib-helper`).
    pub helper: PathBuf,
}

/// A running EN2092 agent; killed on drop.
#[derive(Debug)]
pub struct En2092Agent {
    spec: AgentSpec,
    netns: Arc<Netns>,
    state_path: PathBuf,
    ports: Vec<PortState>,
    daemon: Daemon,
}

impl En2092Agent {
    /// Write the config and port states into `dir`, start `snmpd` in
    /// `netns`, and wait until it answers `sysName`.
    pub fn start(spec: AgentSpec, dir: &Path, netns: Arc<Netns>) -> Result<En2092Agent, SnmpError> {
        proc::require("snmpd", "snmpd")?;
        proc::require("snmpget", "snmp")?;
        let ports = en2092_ports();
        let state_path = dir.join(format!("{}.ports", spec.name));
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|source| SnmpError::Write {
                path: path.to_owned(),
                source,
            })
        };
        write(&state_path, &render_state(&ports))?;
        let helper = |sub: &str| {
            format!(
                "{} snmp-ifmib-helper --state {} --subtree {sub}",
                spec.helper.display(),
                state_path.display()
            )
        };
        let conf = dir.join(format!("{}.snmpd.conf", spec.name));
        write(
            &conf,
            &format!(
                "agentAddress udp:{addr}:161\nrocommunity {comm} default\nsysName {name}\n\
sysDescr Lenovo Flex System Fabric EN2092 1Gb Ethernet Scalable Switch (flexvisor simulator)\n\
pass_persist {ift} {h1}\npass_persist {ifx} {h2}\n",
                addr = spec.address,
                comm = spec.community,
                name = spec.name,
                ift = dotted(IF_TABLE),
                ifx = dotted(IFX_TABLE),
                h1 = helper("iftable"),
                h2 = helper("ifxtable"),
            ),
        )?;
        let persist = dir.join(format!("{}.snmp-persist", spec.name));
        let _ = std::fs::create_dir_all(&persist);
        let mut cmd = netns.command("snmpd");
        cmd.env("SNMP_PERSISTENT_DIR", &persist)
            .env("MIBS", "")
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(&conf)
            .args(["-I", "-interfaces,ifTable,ifXTable", "-p"])
            .arg(dir.join(format!("{}.snmpd.pid", spec.name)));
        let daemon = Daemon::spawn(
            &spec.name,
            cmd,
            &dir.join(format!("{}.snmpd.log", spec.name)),
        )?;
        let agent = En2092Agent {
            spec,
            netns,
            state_path,
            ports,
            daemon,
        };
        if proc::poll(Duration::from_secs(20), || {
            agent.get(".1.3.6.1.2.1.1.5.0").ok()
        })
        .is_none()
        {
            return Err(SnmpError::NotAnswering {
                name: agent.spec.name.clone(),
                address: agent.spec.address.clone(),
                log: agent.daemon.log(),
            });
        }
        Ok(agent)
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// `snmpget -Oqv` of one OID, from inside the namespace.
    pub fn get(&self, oid: &str) -> Result<String, SnmpError> {
        let mut c = self.netns.command("snmpget");
        c.env("MIBS", "")
            .args([
                "-v2c",
                "-c",
                &self.spec.community,
                "-Oqv",
                "-t",
                "1",
                "-r",
                "1",
            ])
            .arg(format!("{}:161", self.spec.address))
            .arg(oid);
        Ok(proc::run(&mut c)?.trim().trim_matches('"').to_owned())
    }

    /// `snmpwalk -Oqn` of a subtree: (oid, value) pairs.
    pub fn walk(&self, oid: &str) -> Result<Vec<(String, String)>, SnmpError> {
        let mut c = self.netns.command("snmpwalk");
        c.env("MIBS", "")
            .args([
                "-v2c",
                "-c",
                &self.spec.community,
                "-Oqn",
                "-t",
                "2",
                "-r",
                "1",
            ])
            .arg(format!("{}:161", self.spec.address))
            .arg(oid);
        let out = proc::run(&mut c)?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(o, v)| (o.to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect())
    }

    /// Set the operational state of ports whose name matches.
    pub fn set_ports(&mut self, names: &[String], up: bool) -> Result<(), SnmpError> {
        for n in names {
            let p = self
                .ports
                .iter_mut()
                .find(|p| &p.name == n)
                .ok_or_else(|| SnmpError::NoPort {
                    name: self.spec.name.clone(),
                    port: n.clone(),
                })?;
            p.up = up;
        }
        // Write then rename: the helper never reads half a file.
        let tmp = self.state_path.with_extension("ports.tmp");
        std::fs::write(&tmp, render_state(&self.ports))
            .and_then(|()| std::fs::rename(&tmp, &self.state_path))
            .map_err(|source| SnmpError::Write {
                path: self.state_path.clone(),
                source,
            })
    }

    /// The agent's log.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getnext_walks_the_table_in_oid_order_and_stops_at_its_end() {
        let mut ports = en2092_ports();
        ports[14].up = false; // EXT1
        let objs = ifmib_objects(&ports);
        let first = answer(&objs, IF_TABLE, "getnext", IF_TABLE).unwrap();
        assert_eq!(first.0, parse_oid(".1.3.6.1.2.1.2.2.1.1.1").unwrap());
        let oper = answer(
            &objs,
            IF_TABLE,
            "get",
            &parse_oid("1.3.6.1.2.1.2.2.1.8.43").unwrap(),
        );
        assert_eq!(oper.unwrap().1, SnmpValue::Integer(2));
        let last = parse_oid(".1.3.6.1.2.1.2.2.1.8.56").unwrap();
        assert_eq!(answer(&objs, IF_TABLE, "getnext", &last), None);
    }

    #[test]
    fn pass_persist_protocol_round_trip() {
        let dir = std::env::temp_dir().join(format!("fvq-snmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = dir.join("io1.ports");
        std::fs::write(&st, render_state(&en2092_ports())).unwrap();
        let input = "PING\nget\n.1.3.6.1.2.1.31.1.1.1.1.43\ngetnext\n.1.3.6.1.2.1.31.1.1.1.15.56\nset\n.1\ninteger 1\n";
        let mut out = Vec::new();
        pass_persist(input.as_bytes(), &mut out, &st, IFX_TABLE).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "PONG\n.1.3.6.1.2.1.31.1.1.1.1.43\nstring\nEXT1\nNONE\nnot-writable\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_state_line_is_named() {
        let e = parse_state(Path::new("io1.ports"), "1 INTA1 up\n2 INTA2 sideways\n").unwrap_err();
        assert!(e.to_string().contains("io1.ports line 2"), "{e}");
    }
}
