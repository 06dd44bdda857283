//! The health monitor and the VRRP instances, hosted in the supervisor.
//!
//! Both are tokio code; the supervisor is a hand-written poll loop. So one
//! extra thread runs a current-thread tokio runtime ([`bridge`]) holding the
//! monitor, the VRRP instances and the Prometheus `/metrics` listener. It
//! talks to the poll loop through std channels plus one pipe per subsystem
//! whose read end the loop polls: [`health::HealthSub`] (`health`) and
//! [`vrrp::VrrpSub`] (`vrrp`) are the [`crate::subsystem::Subsystem`]s.
//!
//! The node configuration (`chassis::NodeConfig`) is mapped here, as pure
//! functions: [`health_config`] and [`instance_configs`].
//!
//! Master/backup rule (kept simple on purpose): the node is master while
//! ANY of its VRRP instances is master, backup otherwise. A pair normally
//! has one instance per network, all moving together.

pub mod bridge;
pub mod health;
pub mod vrrp;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use chassis::node::{NodeConfig, VipConfig};
use flexvisor_health::config::{
    HealthConfig, IpmiSource, PowerSettings, RaidSettings, Secrets, SnmpSettings, SwitchModule,
    UplinkSettings,
};
use flexvisor_health::power::{Feed, PsuBay};
use flexvisor_health::uplinks::ModulePorts;
use flexvisor_vrrp::config::{AnnounceSettings, TrackerConfig, VirtualAddress};
use flexvisor_vrrp::InstanceConfig;

/// Default location of the initramfs' bay check (see `docs/image.md`).
pub const BAY_CHECK: &str = "/run/flexvisor/bay-check";

/// How the hosted subsystems run.
#[derive(Debug, Clone)]
pub struct HostedOptions {
    /// Run the health monitor.
    pub health: bool,
    /// Run the VRRP instances.
    pub vrrp: bool,
    /// Address the `/metrics` listener binds (port from the node config).
    pub metrics_bind: IpAddr,
    /// Root under which `/proc` and `/sys` are read (tests: fixture trees).
    pub system_root: PathBuf,
    /// Leave out the CMM (power) and switch-module (SNMP) sources: power
    /// and switch-side uplinks are then not checked.
    pub local_only: bool,
    /// The initramfs' bay check file.
    pub bay_check: PathBuf,
}

/// Errors mapping the node configuration.
#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    /// A VIP entry cannot become a VRRP instance.
    #[error("node config vips[{index}] ({name}): {reason}")]
    Vip {
        index: usize,
        name: String,
        reason: String,
    },
    /// A PSU entry names an unknown feed or bay.
    #[error("node config health.power.psus[{index}]: {reason}")]
    Psu { index: usize, reason: String },
    /// The hosting thread could not be started.
    #[error("cannot start the hosted thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The wake-up pipe could not be made.
    #[error("cannot make a wake-up pipe: {0}")]
    Pipe(#[source] nix::Error),
}

/// Applies a reloaded node configuration's `vips` to the running VRRP
/// instances (see [`bridge::ToHosted::SetVrrp`]).
#[derive(Debug, Clone)]
pub struct VipReloader {
    to_hosted: tokio::sync::mpsc::UnboundedSender<bridge::ToHosted>,
}

/// What [`start`] returns: the subsystems to add to the supervisor and,
/// with VRRP, what applies reloaded vips.
pub type Hosted = (
    Vec<Box<dyn crate::subsystem::Subsystem>>,
    Option<VipReloader>,
);

/// Bound on waiting for the hosted thread to stop and start instances.
const RELOAD_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

impl VipReloader {
    /// Map `node`'s vips and hand them to the instances; `Ok` is a summary
    /// for the event log. An invalid entry changes nothing.
    pub fn apply(&self, node: &NodeConfig) -> Result<String, String> {
        let cfgs = instance_configs(node).map_err(|e| format!("vips not applied: {e}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        self.to_hosted
            .send(bridge::ToHosted::SetVrrp(cfgs, tx))
            .map_err(|_| "vips not applied: the hosted thread is gone".to_owned())?;
        rx.recv_timeout(RELOAD_BOUND).map_err(|_| {
            format!(
                "vips: no answer from the VRRP instances within {} s",
                RELOAD_BOUND.as_secs()
            )
        })
    }
}

/// Start the hosting thread and return the subsystems to add to the
/// supervisor (`health` always when `opts.health`, `vrrp` when `opts.vrrp`)
/// and, with VRRP, what applies reloaded vips.
pub fn start(node: &NodeConfig, opts: &HostedOptions) -> Result<Hosted, HostedError> {
    if !opts.health && !opts.vrrp {
        return Ok((Vec::new(), None));
    }
    let vrrp = if opts.vrrp {
        Some(instance_configs(node)?)
    } else {
        None
    };
    let (health, health_fallback) = if opts.health {
        let full = health_config(node, opts)?;
        let local = health_config(
            node,
            &HostedOptions {
                local_only: true,
                ..opts.clone()
            },
        )?;
        (Some(full), Some(local))
    } else {
        (None, None)
    };
    let plan = bridge::Plan {
        health,
        health_fallback,
        metrics: opts
            .health
            .then(|| std::net::SocketAddr::new(opts.metrics_bind, node.health.metrics_port)),
        vrrp,
        bay_mismatch: bay_mismatch(&opts.bay_check),
    };
    let ends = bridge::start(plan)?;
    let reloader = opts.vrrp.then(|| VipReloader {
        to_hosted: ends.to_hosted.clone(),
    });
    let mut subs: Vec<Box<dyn crate::subsystem::Subsystem>> = Vec::new();
    if opts.health {
        subs.push(Box::new(health::HealthSub::new(
            ends.health_rx,
            ends.health_wake,
            ends.to_hosted.clone(),
        )));
    }
    if opts.vrrp {
        subs.push(Box::new(vrrp::VrrpSub::new(
            ends.vrrp_rx,
            ends.vrrp_wake,
            ends.to_hosted,
        )));
    }
    Ok((subs, reloader))
}

/// Whether the bay check says this image is in the wrong bay.
pub fn bay_mismatch(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|t| bay_check_says_mismatch(&t))
        .unwrap_or(false)
}

/// `status=mismatch` (or a bare `mismatch`) in the bay-check text.
pub fn bay_check_says_mismatch(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l == "mismatch" || l == "status=mismatch"
    })
}

/// Secrets entry `name.key`, read from the node's secrets file when it is
/// readable (user names are not secret, but live beside the passwords).
fn secret_value(secrets: Option<&Secrets>, name: &str, key: &str) -> Option<String> {
    secrets.and_then(|s| s.get("", &format!("{name}.{key}")).ok().map(str::to_owned))
}

/// Map the node's health section to the monitor's configuration.
///
/// Credentials stay references into the node's secrets file: the profile's
/// `credentials = "cmm"` becomes `cmm.password` (IPMI; user name from
/// `cmm.username`, default `USERID`), `cmm.community` (SNMP v2c) or
/// `cmm.user`, `cmm.auth_protocol` (default `sha1`), `cmm.auth_password`,
/// `cmm.privacy_protocol`, `cmm.privacy_password` (SNMP v3).
pub fn health_config(node: &NodeConfig, opts: &HostedOptions) -> Result<HealthConfig, HostedError> {
    let h = &node.health;
    let secrets_path = PathBuf::from(&node.secrets);
    let secrets = if opts.local_only {
        None
    } else {
        Secrets::load(&secrets_path).ok()
    };
    let power = if opts.local_only {
        None
    } else {
        let mut bays = Vec::new();
        for (index, p) in h.power.psus.iter().enumerate() {
            let feed = match p.feed.as_str() {
                "mains" => Feed::Mains,
                "ups" => Feed::Ups,
                other => {
                    return Err(HostedError::Psu {
                        index,
                        reason: format!("feed `{other}` is neither `mains` nor `ups`"),
                    })
                }
            };
            let bay = u8::try_from(p.bay).map_err(|_| HostedError::Psu {
                index,
                reason: format!("bay {} out of range", p.bay),
            })?;
            bays.push(PsuBay {
                bay,
                sensor: format!("PSU{bay}"),
                feed,
            });
        }
        let mut sources: Vec<IpmiSource> = h
            .power
            .ipmi
            .iter()
            .map(|i| IpmiSource::Lan {
                host: h.power.cmm_address.to_string(),
                port: i.port,
                username: secret_value(secrets.as_ref(), &i.credentials, "username")
                    .unwrap_or_else(|| "USERID".to_owned()),
                password_ref: format!("{}.password", i.credentials),
            })
            .collect();
        // The CMM's power module table over SNMP: a second source; the
        // health crate reports where it disagrees with IPMI.
        if let Some(s) = &h.power.snmp {
            sources.push(IpmiSource::CmmSnmp {
                address: SocketAddr::new(h.power.cmm_address, s.port).to_string(),
                snmp: snmp_settings(s, secrets.as_ref()),
            });
        }
        Some(PowerSettings {
            bays,
            n: h.power.n,
            sources,
            poll_secs: 10,
            stale_after_secs: u64::from(h.stale_after_s),
            timeout_ms: 2000,
        })
    };
    let modules = if opts.local_only {
        Vec::new()
    } else {
        h.switches
            .iter()
            .map(|s| SwitchModule {
                ports: ModulePorts {
                    name: s.name.clone(),
                    uplinks: s
                        .uplinks
                        .iter()
                        .filter(|u| !is_optional_uplink(u))
                        .cloned()
                        .collect(),
                    optional_uplinks: s
                        .uplinks
                        .iter()
                        .filter(|u| is_optional_uplink(u))
                        .cloned()
                        .collect(),
                    node_port: s.node_port.clone(),
                    nic: s.nic.clone(),
                },
                address: format!("{}:{}", s.address, s.snmp.port),
                snmp: snmp_settings(&s.snmp, secrets.as_ref()),
            })
            .collect()
    };
    let nics: Vec<String> = node
        .network
        .bond
        .slaves
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let uplinks = (!nics.is_empty() || !modules.is_empty()).then(|| UplinkSettings {
        nics,
        bond: Some(node.network.bond.name.clone()),
        netns: None,
        modules,
        poll_secs: 10,
        timeout_ms: 2000,
    });
    Ok(HealthConfig {
        node: node.hostname.clone(),
        system_root: opts.system_root.clone(),
        secrets_file: (!opts.local_only).then_some(secrets_path),
        raid: RaidSettings {
            expected_arrays: h.raid_arrays.clone(),
            fallback_poll_secs: 10,
        },
        power,
        uplinks,
    })
}

/// EXT11..EXT14 are the licensed 10GbE ports: watched, not required.
fn is_optional_uplink(port: &str) -> bool {
    port.strip_prefix("EXT")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n >= 11)
}

fn snmp_settings(s: &chassis::model::Snmp, secrets: Option<&Secrets>) -> SnmpSettings {
    let c = &s.credentials;
    if s.version == "3" {
        SnmpSettings::V3 {
            user: secret_value(secrets, c, "user").unwrap_or_else(|| c.clone()),
            auth_protocol: secret_value(secrets, c, "auth_protocol")
                .unwrap_or_else(|| "sha1".to_owned()),
            auth_password_ref: format!("{c}.auth_password"),
            privacy_protocol: secret_value(secrets, c, "privacy_protocol"),
            privacy_password_ref: secret_value(secrets, c, "privacy_protocol")
                .map(|_| format!("{c}.privacy_password")),
        }
    } else {
        SnmpSettings::V2c {
            community_ref: format!("{c}.community"),
        }
    }
}

/// Map the node's shared addresses to VRRP instances (`<pair>-<network>`).
/// Adverts are multicast: the profile does not ask for unicast yet.
pub fn instance_configs(node: &NodeConfig) -> Result<Vec<InstanceConfig>, HostedError> {
    node.vips
        .iter()
        .enumerate()
        .map(|(index, v)| instance_config(node, index, v))
        .collect()
}

/// The node's own address on the VIP's network (same family), so the
/// adverts of each network's instance carry that network's source address
/// rather than whichever address the interface lists first.
fn own_address(node: &NodeConfig, v: &VipConfig) -> Option<IpAddr> {
    node.network
        .addresses
        .iter()
        .find(|a| a.network == v.network && a.address.is_ipv4() == v.address.is_ipv4())
        .map(|a| a.address)
}

fn instance_config(
    node: &NodeConfig,
    index: usize,
    v: &VipConfig,
) -> Result<InstanceConfig, HostedError> {
    let pair = &node.pair.name;
    let name = format!("{pair}-{}", v.network);
    let err = |reason: String| HostedError::Vip {
        index,
        name: name.clone(),
        reason,
    };
    let trackers = v
        .track
        .iter()
        .map(|t| {
            let weight = t
                .weight
                .map(|w| {
                    i16::try_from(w)
                        .map_err(|_| err(format!("track `{}`: weight {w} out of range", t.check)))
                })
                .transpose()?;
            Ok(TrackerConfig {
                name: t.check.clone(),
                weight,
                file: None,
            })
        })
        .collect::<Result<Vec<_>, HostedError>>()?;
    let cfg = InstanceConfig {
        name: name.clone(),
        interface: v.interface.clone(),
        vrid: v.vrid,
        priority: v.priority,
        advert_interval_cs: v.advert_interval_cs,
        preempt: v.preempt,
        preempt_delay_cs: v.preempt_delay_s.saturating_mul(100),
        // A pair with a backup hook (db-/redis-demote) has stores the
        // node copies from the master: it preempts only once that hook has
        // succeeded since boot, never with stale or empty stores.
        hold_preempt: node.hooks.as_ref().is_some_and(|h| {
            crate::hooks::HookSet::from(h)
                .command(crate::hooks::Role::Backup)
                .is_some()
        }),
        accept: v.accept,
        addresses: vec![VirtualAddress {
            addr: v.address,
            prefix: v.prefix_len,
        }],
        unicast_peers: Vec::new(),
        source: own_address(node, v),
        announce: AnnounceSettings::default(),
        trackers,
    };
    cfg.validate().map_err(|e| err(e.to_string()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
        chassis::node::resolve(&loaded.profile, 7, None).unwrap()
    }

    fn opts() -> HostedOptions {
        HostedOptions {
            health: true,
            vrrp: true,
            metrics_bind: IpAddr::from([127, 0, 0, 1]),
            system_root: PathBuf::from("/x"),
            local_only: false,
            bay_check: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn vips_become_instances_named_pair_network() {
        let n = node();
        let cfgs = instance_configs(&n).unwrap();
        assert_eq!(cfgs.len(), n.vips.len());
        for (c, v) in cfgs.iter().zip(&n.vips) {
            assert_eq!(c.name, format!("{}-{}", n.pair.name, v.network));
            assert_eq!(c.vrid, v.vrid);
            assert_eq!(c.preempt_delay_cs, v.preempt_delay_s * 100);
            assert_eq!(c.accept, v.accept);
            assert!(c.unicast_peers.is_empty());
            assert_eq!(c.trackers.len(), v.track.len());
            let own = n.network.addresses.iter().find(|a| a.network == v.network);
            assert_eq!(c.source, own.map(|a| a.address), "{}", c.name);
        }
    }

    #[test]
    fn each_network_instance_sources_from_its_own_network() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
        let lb1a = chassis::node::resolve(&loaded.profile, 5, None).unwrap();
        let cfgs = instance_configs(&lb1a).unwrap();
        let by_name = |n: &str| cfgs.iter().find(|c| c.name == n).unwrap().source;
        assert_eq!(
            by_name("lb1-internal"),
            Some("10.20.1.105".parse().unwrap())
        );
        assert_eq!(
            by_name("lb1-external"),
            Some("198.51.100.105".parse().unwrap())
        );
    }

    #[test]
    fn health_section_maps_arrays_psus_and_modules() {
        let n = node();
        let h = health_config(&n, &opts()).unwrap();
        assert_eq!(h.raid.expected_arrays, n.health.raid_arrays);
        assert_eq!(h.system_root, PathBuf::from("/x"));
        let p = h.power.unwrap();
        assert_eq!(p.bays.len(), n.health.power.psus.len());
        assert_eq!(p.n, n.health.power.n);
        let u = h.uplinks.unwrap();
        assert_eq!(u.modules.len(), n.health.switches.len());
        assert_eq!(u.bond.as_deref(), Some(n.network.bond.name.as_str()));
        let local = health_config(
            &n,
            &HostedOptions {
                local_only: true,
                ..opts()
            },
        )
        .unwrap();
        assert!(local.power.is_none() && local.secrets_file.is_none());
        assert!(local.uplinks.unwrap().modules.is_empty());
    }

    #[test]
    fn bay_check_formats() {
        assert!(bay_check_says_mismatch(
            "status=mismatch\nexpected=5\ndetected=7\n"
        ));
        assert!(bay_check_says_mismatch("mismatch\n"));
        assert!(!bay_check_says_mismatch("status=ok\nexpected=5\n"));
    }
}
