//! Paths from this node to the outside: its two NICs and the bond over them
//! (node side, [`netlink`] and [`bonding`]), and the external uplinks plus
//! this node's internal port on each of the two switch modules (switch
//! side, [`snmp`]).
//!
//! NIC *i* is wired to switch module *i* (INTA*n* on each). A path exists
//! through module *i* when NIC *i* is up, the module's INTA port is up and
//! the module has at least one external uplink up. The lesson of IBM's
//! Flex bonding notes: with MII monitoring a node's link stays up while
//! its module has lost every uplink, and the bond does not fail over. So
//! an active slave pointing at a module without uplinks is CRITICAL even
//! though every NIC is up.

pub mod bonding;
pub mod netlink;
pub mod snmp;

use crate::status::Status;
use crate::verdict::{CheckKind, CheckVerdict, Finding, Metric};
use serde::{Deserialize, Serialize};

/// One switch module as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulePorts {
    /// Module name (`io1`).
    pub name: String,
    /// Uplinks that must be up (`EXT1`..`EXT10`).
    pub uplinks: Vec<String>,
    /// Uplinks watched but not required (`EXT11`..`EXT14`).
    #[serde(default)]
    pub optional_uplinks: Vec<String>,
    /// This node's internal port on the module (`INTA3`).
    pub node_port: String,
    /// The node NIC wired to this module (`eth0`).
    pub nic: String,
}

/// The node-side state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeLinks {
    /// Each configured NIC: name, present, up, operstate word.
    pub nics: Vec<NicState>,
    /// Bond status, when a bond is configured and readable.
    pub bond: Option<bonding::BondStatus>,
    /// Bond configured but unreadable: why.
    pub bond_error: Option<String>,
}

/// One NIC's link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicState {
    /// Name.
    pub name: String,
    /// Exists.
    pub present: bool,
    /// Carries traffic.
    pub up: bool,
    /// Operstate word.
    pub operstate: String,
}

impl NodeLinks {
    /// Build from a netlink dump for the configured NIC names.
    pub fn from_links(nics: &[String], links: &[netlink::Link]) -> NodeLinks {
        NodeLinks {
            nics: nics
                .iter()
                .map(|n| match links.iter().find(|l| &l.name == n) {
                    Some(l) => NicState {
                        name: n.clone(),
                        present: true,
                        up: l.is_up(),
                        operstate: l.operstate_word().to_string(),
                    },
                    None => NicState {
                        name: n.clone(),
                        present: false,
                        up: false,
                        operstate: "ABSENT".to_string(),
                    },
                })
                .collect(),
            bond: None,
            bond_error: None,
        }
    }
}

/// Read the node side: link states through `reader` (its network
/// namespace), the bond from `<root>/proc/net/bonding/<bond>`.
pub fn read_node(
    reader: &mut netlink::LinkReader,
    nics: &[String],
    root: &std::path::Path,
    bond: Option<&str>,
) -> Result<NodeLinks, netlink::NetlinkError> {
    let links = reader.dump()?;
    let mut node = NodeLinks::from_links(nics, &links);
    if let Some(b) = bond {
        let path = root.join("proc/net/bonding").join(b);
        match std::fs::read_to_string(&path) {
            Ok(text) => match bonding::parse(&path.display().to_string(), &text) {
                Ok(status) => node.bond = Some(status),
                Err(e) => node.bond_error = Some(e.to_string()),
            },
            Err(e) => node.bond_error = Some(format!("cannot read {}: {e}", path.display())),
        }
    }
    Ok(node)
}

/// Switch-side reading of one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModuleReading {
    /// Ports as read.
    Ports(Vec<snmp::PortState>),
    /// Module unreachable or misconfigured: why.
    Unreachable(String),
}

/// Everything the uplink verdict needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkReading {
    /// Node side.
    pub node: NodeLinks,
    /// Per module (same order as the configuration).
    pub modules: Vec<(String, ModuleReading)>,
    /// Unix seconds.
    pub observed_at: u64,
}

/// Three-valued path knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Yes,
    No,
    Unknown,
}

/// The uplink verdict.
pub fn verdict(r: &UplinkReading, modules: &[ModulePorts]) -> CheckVerdict {
    let mut findings = Vec::new();
    let mut metrics = Vec::new();
    let mut paths: Vec<(String, String, Path)> = Vec::new(); // (module, nic, path)

    for nic in &r.node.nics {
        metrics.push(Metric::labelled(
            "nic_up",
            "nic",
            &nic.name,
            if nic.up { 1.0 } else { 0.0 },
        ));
        if !nic.up {
            findings.push(Finding {
                subject: nic.name.clone(),
                status: Status::Warning,
                detail: if nic.present {
                    format!("link {}", nic.operstate)
                } else {
                    "interface absent".to_string()
                },
            });
        }
    }
    if let Some(e) = &r.node.bond_error {
        findings.push(Finding {
            subject: "bond".to_string(),
            status: Status::Warning,
            detail: e.clone(),
        });
    }
    if let Some(b) = &r.node.bond {
        for s in b.slaves.iter().filter(|s| !s.mii_up) {
            findings.push(Finding {
                subject: format!("bond slave {}", s.name),
                status: Status::Warning,
                detail: format!("MII down ({} link failures)", s.link_failures),
            });
        }
    }

    for m in modules {
        let nic_up = r.node.nics.iter().any(|n| n.name == m.nic && n.up);
        let reading = r.modules.iter().find(|(n, _)| n == &m.name).map(|(_, x)| x);
        let path = match reading {
            None | Some(ModuleReading::Unreachable(_)) => {
                let why = match reading {
                    Some(ModuleReading::Unreachable(w)) => w.clone(),
                    _ => "no reading".to_string(),
                };
                findings.push(Finding {
                    subject: m.name.clone(),
                    status: Status::Warning,
                    detail: format!("switch module unreachable: {why}"),
                });
                metrics.push(Metric::labelled(
                    "switch_module_reachable",
                    "module",
                    &m.name,
                    0.0,
                ));
                if nic_up {
                    Path::Unknown
                } else {
                    Path::No
                }
            }
            Some(ModuleReading::Ports(ports)) => {
                metrics.push(Metric::labelled(
                    "switch_module_reachable",
                    "module",
                    &m.name,
                    1.0,
                ));
                let mut up = 0usize;
                let mut required_up = 0usize;
                let mut down = Vec::new();
                for name in m.uplinks.iter().chain(&m.optional_uplinks) {
                    let required = m.uplinks.contains(name);
                    let p = ports.iter().find(|p| &p.name == name);
                    let is_up = p.is_some_and(|p| p.oper_up);
                    metrics.push(Metric {
                        name: "uplink_up".to_string(),
                        labels: vec![
                            ("module".to_string(), m.name.clone()),
                            ("port".to_string(), name.clone()),
                        ],
                        value: if is_up { 1.0 } else { 0.0 },
                        unit: String::new(),
                    });
                    if let Some(p) = p {
                        // ifHighSpeed: a 10G uplink negotiated at 1G shows here.
                        metrics.push(Metric {
                            name: "uplink_speed_mbps".to_string(),
                            labels: vec![
                                ("module".to_string(), m.name.clone()),
                                ("port".to_string(), name.clone()),
                            ],
                            value: p.speed_mbps as f64,
                            unit: String::new(),
                        });
                    }
                    if is_up {
                        up += 1;
                        required_up += usize::from(required);
                    } else if required {
                        let why = match p {
                            Some(p) if !p.admin_up => "admin down",
                            Some(_) => "down",
                            None => "not reported",
                        };
                        down.push(format!("{name} {why}"));
                    }
                }
                metrics.push(Metric::labelled(
                    "switch_uplinks_up",
                    "module",
                    &m.name,
                    up as f64,
                ));
                let inta = ports.iter().find(|p| p.name == m.node_port);
                let inta_up = inta.is_some_and(|p| p.oper_up);
                if !inta_up {
                    findings.push(Finding {
                        subject: format!("{}:{}", m.name, m.node_port),
                        status: Status::Warning,
                        detail: "this node's internal port is down on the switch".to_string(),
                    });
                }
                if up == 0 {
                    findings.push(Finding {
                        subject: m.name.clone(),
                        status: Status::Warning,
                        detail: "no external uplink up".to_string(),
                    });
                } else if !down.is_empty() {
                    findings.push(Finding {
                        subject: m.name.clone(),
                        status: Status::Warning,
                        detail: format!(
                            "{} of {} uplinks up; {}",
                            required_up,
                            m.uplinks.len(),
                            down.join(", ")
                        ),
                    });
                }
                if nic_up && inta_up && up > 0 {
                    Path::Yes
                } else {
                    Path::No
                }
            }
        };
        paths.push((m.name.clone(), m.nic.clone(), path));
    }

    let any_yes = paths.iter().any(|(_, _, p)| *p == Path::Yes);
    let all_no = !paths.is_empty() && paths.iter().all(|(_, _, p)| *p == Path::No);
    if all_no {
        findings.push(Finding {
            subject: "node".to_string(),
            status: Status::Critical,
            detail: "no path to the outside (NICs down or no module with an external uplink)"
                .to_string(),
        });
    } else if let Some(active) = r.node.bond.as_ref().and_then(|b| b.active_slave.as_ref()) {
        // Active-backup sends everything through the active slave. If its
        // link is down MII monitoring fails over by itself; if its link is
        // up but the module has no way out, nothing fails over.
        let active_link_up = r.node.nics.iter().any(|n| &n.name == active && n.up);
        let stuck = paths
            .iter()
            .find(|(_, nic, p)| nic == active && *p == Path::No && active_link_up);
        if let Some((module, _, _)) = stuck {
            let status = if any_yes {
                Status::Critical
            } else {
                Status::Warning
            };
            findings.push(Finding {
                subject: "bond".to_string(),
                status,
                detail: format!(
                    "active slave {active} goes through {module}, which has no path out; the bond will not fail over on MII (link is up)"
                ),
            });
        }
    } else if !any_yes && !paths.is_empty() {
        findings.push(Finding {
            subject: "node".to_string(),
            status: Status::Unknown,
            detail: "cannot tell whether any path exists (switch modules unreachable)".to_string(),
        });
    }
    let ok = format!(
        "{} NIC(s) up, all uplinks up on {} module(s)",
        r.node.nics.len(),
        modules.len()
    );
    CheckVerdict::from_findings(CheckKind::Uplinks, findings, metrics, ok).observed(r.observed_at)
}

#[cfg(test)]
mod tests;
