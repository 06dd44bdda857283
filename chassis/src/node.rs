//! The resolved configuration of one node: what its image bakes in.
//!
//! [`NodeConfig`] is the single source the supervisor, the image builder and
//! the ansible inventory read (`flexctl profile node`). It is produced only
//! from a profile that validated, so every address here parsed and every
//! reference resolved; consumers need no further checks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{self, Profile};
use crate::roles::RoleKind;

/// Version of the [`NodeConfig`] format; bumped on incompatible change.
pub const NODE_CONFIG_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub schema: u32,
    pub deployment: String,
    pub chassis: String,
    pub bay: u32,
    pub hostname: String,
    pub role: RoleKind,
    /// Path of the secrets file on the node.
    pub secrets: String,
    pub pair: PairConfig,
    pub network: NetworkConfig,
    /// Services this node runs, in the role's order.
    pub services: Vec<String>,
    /// Services run only while this node is the pair's VRRP master.
    pub active_services: Vec<String>,
    #[serde(default)]
    pub hooks: Option<HookConfig>,
    pub vips: Vec<VipConfig>,
    pub health: HealthConfig,
    /// Where the other pairs of the cluster answer.
    pub cluster: ClusterView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    pub name: String,
    pub peer: Peer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub hostname: String,
    pub chassis: String,
    pub bay: u32,
    pub addresses: BTreeMap<String, IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub bond: BondConfig,
    pub addresses: Vec<InterfaceAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BondConfig {
    pub name: String,
    pub mode: String,
    pub miimon_ms: u32,
    pub slaves: Vec<NicConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicConfig {
    pub name: String,
    pub switch: String,
    pub port: String,
}

/// One address of the node, on the bond or one of its VLANs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceAddress {
    pub network: String,
    /// `bond0`, or `bond0.<vlan>` on a tagged network.
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub backup: Option<String>,
    pub timeout_s: u32,
}

/// One VRRP instance this node takes part in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipConfig {
    pub network: String,
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub vrid: u8,
    pub advert_interval_cs: u16,
    pub priority: u8,
    pub peer_priority: u8,
    pub preempt: bool,
    pub preempt_delay_s: u32,
    pub accept: bool,
    /// The peer's own address on this network, for unicast adverts.
    #[serde(default)]
    pub peer_address: Option<IpAddr>,
    pub track: Vec<TrackConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackConfig {
    pub check: String,
    #[serde(default)]
    pub weight: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub metrics_port: u16,
    pub raid_arrays: Vec<String>,
    pub stale_after_s: u32,
    pub power: PowerSource,
    pub switches: Vec<SwitchSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSource {
    pub cmm_address: IpAddr,
    #[serde(default)]
    pub ipmi: Option<model::Ipmi>,
    #[serde(default)]
    pub snmp: Option<model::Snmp>,
    pub n: u32,
    pub psus: Vec<model::Psu>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSource {
    pub name: String,
    pub address: IpAddr,
    pub snmp: model::Snmp,
    pub uplinks: Vec<String>,
    /// This node's NIC wired to the module, and the module's port for it.
    pub nic: String,
    pub node_port: String,
}

/// The shared addresses of every pair, by role, as this node may reach them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterView {
    pub pairs: Vec<PairEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairEndpoint {
    pub name: String,
    pub role: RoleKind,
    pub chassis: String,
    /// Shared address per network.
    pub vips: BTreeMap<String, IpAddr>,
    /// Whether this node's role routes to the pair (proxy scope applied).
    pub reachable: bool,
}

/// Why a node could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no node in bay {bay}{} (bays in use: {used})", chassis.as_ref().map(|c| format!(" of chassis `{c}`")).unwrap_or_default())]
    NoSuchBay {
        bay: u32,
        chassis: Option<String>,
        used: String,
    },
    #[error("bay {bay} exists in several chassis ({names}); name one with --chassis")]
    AmbiguousBay { bay: u32, names: String },
    #[error("no chassis named `{0}`")]
    NoSuchChassis(String),
}

// Internal invariant helpers: the profile validated, so parses succeed.
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn net(p: &Profile, name: &str) -> Option<IpNet> {
    p.networks.get(name).and_then(|n| n.subnet.parse().ok())
}

/// Every (chassis name, bay number) in the profile, in file order.
pub fn bays(p: &Profile) -> Vec<(&str, u32)> {
    p.chassis
        .iter()
        .flat_map(|c| c.bays.iter().map(move |b| (c.name.as_str(), b.bay)))
        .collect()
}

/// Resolve the node in `bay` (of `chassis`, required when several chassis
/// use that bay). `p` must have validated.
pub fn resolve(p: &Profile, bay: u32, chassis: Option<&str>) -> Result<NodeConfig, ResolveError> {
    if let Some(name) = chassis {
        if !p.chassis.iter().any(|c| c.name == name) {
            return Err(ResolveError::NoSuchChassis(name.to_owned()));
        }
    }
    let hits: Vec<(&model::Chassis, &model::Bay)> = p
        .chassis
        .iter()
        .filter(|c| chassis.is_none_or(|n| c.name == n))
        .flat_map(|c| c.bays.iter().map(move |b| (c, b)))
        .filter(|(_, b)| b.bay == bay)
        .collect();
    let (c, b) = match hits.as_slice() {
        [one] => *one,
        [] => {
            let used = p
                .chassis
                .iter()
                .filter(|c| chassis.is_none_or(|n| c.name == n))
                .flat_map(|c| c.bays.iter().map(|b| b.bay.to_string()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ResolveError::NoSuchBay {
                bay,
                chassis: chassis.map(str::to_owned),
                used,
            });
        }
        many => {
            return Err(ResolveError::AmbiguousBay {
                bay,
                names: many
                    .iter()
                    .map(|(c, _)| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    let role: RoleKind = b.role.parse().unwrap_or(RoleKind::Web);
    let role_def = p.roles.get(&b.role);

    let (peer_chassis, peer_bay) = p
        .chassis
        .iter()
        .flat_map(|pc| pc.bays.iter().map(move |pb| (pc, pb)))
        .find(|(_, pb)| pb.pair == b.pair && pb.hostname != b.hostname)
        .map(|(pc, pb)| (pc.name.clone(), pb))
        .unwrap_or_else(|| (c.name.clone(), b));

    let bond = BondConfig {
        name: p.bond.name.clone(),
        mode: p.bond.mode.clone(),
        miimon_ms: p.bond.miimon_ms,
        slaves: b
            .nics
            .iter()
            .map(|n| NicConfig {
                name: n.name.clone(),
                switch: n.switch.clone(),
                port: n.port.clone(),
            })
            .collect(),
    };
    let interface_for = |network: &str| match p.networks.get(network).and_then(|n| n.vlan) {
        Some(v) => format!("{}.{v}", p.bond.name),
        None => p.bond.name.clone(),
    };
    let addresses = b
        .addresses
        .iter()
        .map(|(network, a)| InterfaceAddress {
            network: network.clone(),
            interface: interface_for(network),
            address: ip(a),
            prefix_len: net(p, network).map_or(32, |n| n.prefix_len()),
            gateway: p
                .networks
                .get(network)
                .and_then(|n| n.gateway.as_deref())
                .map(ip),
            vlan: p.networks.get(network).and_then(|n| n.vlan),
        })
        .collect();

    let vips = p
        .pairs
        .iter()
        .filter(|pair| pair.name == b.pair)
        .flat_map(|pair| &pair.vips)
        .map(|v| VipConfig {
            network: v.network.clone(),
            interface: interface_for(&v.network),
            address: ip(&v.address),
            prefix_len: net(p, &v.network).map_or(32, |n| n.prefix_len()),
            vrid: u8::try_from(v.vrid).unwrap_or(u8::MAX),
            advert_interval_cs: u16::try_from(v.advert_interval_cs).unwrap_or(100),
            priority: prio(v, &b.hostname),
            peer_priority: prio(v, &peer_bay.hostname),
            preempt: v.preempt,
            preempt_delay_s: v.preempt_delay_s,
            accept: v.accept,
            peer_address: peer_bay.addresses.get(&v.network).map(|a| ip(a)),
            track: v
                .track
                .iter()
                .map(|t| TrackConfig {
                    check: t.check.clone(),
                    weight: t.weight,
                })
                .collect(),
        })
        .collect();

    let health = HealthConfig {
        metrics_port: p.health.metrics_port,
        raid_arrays: p.health.raid_arrays.clone(),
        stale_after_s: p.health.stale_after_s,
        power: PowerSource {
            cmm_address: ip(&c.cmm.address),
            ipmi: c.cmm.ipmi.clone(),
            snmp: c.cmm.snmp.clone(),
            n: c.power.n,
            psus: c.power.psus.clone(),
        },
        switches: c
            .switches
            .iter()
            .map(|s| {
                let nic = b.nics.iter().find(|n| n.switch == s.name);
                SwitchSource {
                    name: s.name.clone(),
                    address: ip(&s.address),
                    snmp: s.snmp.clone(),
                    uplinks: s.uplinks.clone(),
                    nic: nic.map(|n| n.name.clone()).unwrap_or_default(),
                    node_port: nic.map(|n| n.port.clone()).unwrap_or_default(),
                }
            })
            .collect(),
    };

    Ok(NodeConfig {
        schema: NODE_CONFIG_SCHEMA,
        deployment: p.name.clone(),
        chassis: c.name.clone(),
        bay: b.bay,
        hostname: b.hostname.clone(),
        role,
        secrets: p.secrets.clone(),
        pair: PairConfig {
            name: b.pair.clone(),
            peer: Peer {
                hostname: peer_bay.hostname.clone(),
                chassis: peer_chassis,
                bay: peer_bay.bay,
                addresses: peer_bay
                    .addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), ip(v)))
                    .collect(),
            },
        },
        network: NetworkConfig { bond, addresses },
        services: role_def.map(|r| r.services.clone()).unwrap_or_default(),
        active_services: role_def
            .map(|r| r.active_services.clone())
            .unwrap_or_default(),
        hooks: role_def.and_then(|r| r.hooks.as_ref()).map(|h| HookConfig {
            master: h.master.clone(),
            backup: h.backup.clone(),
            timeout_s: h.timeout_s,
        }),
        vips,
        health,
        cluster: cluster_view(p, &c.name, role),
    })
}

fn prio(v: &model::Vip, host: &str) -> u8 {
    v.priority
        .get(host)
        .and_then(|p| u8::try_from(*p).ok())
        .unwrap_or(100)
}

fn cluster_view(p: &Profile, own_chassis: &str, own_role: RoleKind) -> ClusterView {
    let chassis_only = p.load_balancing.proxy_scope == "chassis";
    let pairs = p
        .pairs
        .iter()
        .filter_map(|pair| {
            let (c, b) = p
                .chassis
                .iter()
                .flat_map(|c| c.bays.iter().map(move |b| (c, b)))
                .find(|(_, b)| b.pair == pair.name)?;
            let role: RoleKind = b.role.parse().ok()?;
            let reachable = !(own_role == RoleKind::Lb
                && role == RoleKind::Proxy
                && chassis_only
                && c.name != own_chassis);
            Some(PairEndpoint {
                name: pair.name.clone(),
                role,
                chassis: c.name.clone(),
                vips: pair
                    .vips
                    .iter()
                    .map(|v| (v.network.clone(), ip(&v.address)))
                    .collect(),
                reachable,
            })
        })
        .collect();
    ClusterView { pairs }
}
