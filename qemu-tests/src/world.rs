//! The virtual chassis: one profile's chassis assembled from the pieces.
//!
//! Wiring, as in the real IBM Flex chassis:
//! - switches `io1`/`io2` (one per EN2092 in the profile) with a port per
//!   node NIC, named as in the profile (`INTA5`), and an `EXT` port cabled
//!   into `upstream`, the customer/core network both modules uplink to;
//! - the CMM (`ipmi_sim`, six PSUs) and one SNMP agent per module, on the
//!   addresses the profile gives them, inside the run's namespace;
//! - per node: a BMC `ipmi_sim` that starts the node's VM on power on.
//!
//! Fault injection lives here too ([`Chassis::set_uplinks`],
//! [`Chassis::set_psu`], [`Chassis::partition`], [`Node::pull_disk`], ...),
//! so scenarios read as steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chassis::NodeConfig;

use crate::cmm_snmp::CmmSnmp;
use crate::console::Console;
use crate::fabric::{FabricError, Fabrics};
use crate::ipmi::{self, IpmiError, IpmiSim, Redundancy, SimSpec, VmLink};
use crate::netns::Netns;
use crate::proc::ProcError;
use crate::qmp::{Qmp, QmpError};
use crate::snmp::{AgentSpec, En2092Agent, SnmpError};
use crate::tap::{TapError, TapPort};
use crate::vm::{Boot, DiskSpec, NicSpec, VmSpec};

/// Switch that stands for the network both modules uplink to.
pub const UPSTREAM: &str = "upstream";
/// Port name of a module's (aggregated) uplinks on the fabric.
pub const UPLINK_PORT: &str = "EXT";

/// Errors building or driving the virtual chassis.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error(transparent)]
    Fabric(#[from] FabricError),
    #[error(transparent)]
    Ipmi(#[from] IpmiError),
    #[error(transparent)]
    Snmp(#[from] SnmpError),
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile {path}: {detail}")]
    Profile { path: PathBuf, detail: String },
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("no node named `{0}` in this chassis")]
    NoNode(String),
    #[error("{node}: no answer to `{cmd}` on the technician's console within {secs} s; it printed: {got:?}")]
    Exec {
        node: String,
        cmd: String,
        secs: u64,
        got: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorldError + '_ {
    move |source| WorldError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What one node boots.
#[derive(Debug, Clone)]
pub struct NodeBoot {
    /// Kernel, initramfs and command line.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line.
    pub cmdline: String,
    /// First disk's initial content (copied per run); `None`: empty.
    pub disk0: Option<PathBuf>,
    /// Size of each disk in MiB when created empty.
    pub disk_mib: u64,
}

/// How to build the chassis.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory for this run's logs and disks (kept for the report).
    pub run_dir: PathBuf,
    /// The harness binary (SNMP `pass_persist` helper).
    pub helper: PathBuf,
    /// Guest memory per node, MiB.
    pub memory_mib: u32,
    /// qemu accelerator.
    pub accel: String,
}

/// One node: its configuration, VM description, BMC and console.
#[derive(Debug)]
pub struct Node {
    /// Resolved configuration (what its image bakes in).
    pub config: NodeConfig,
    /// The VM.
    pub spec: VmSpec,
    /// Its console.
    pub console: Console,
    /// QMP events log (JSON lines).
    pub events: PathBuf,
    bmc: Option<IpmiSim>,
    boot: NodeBoot,
    dir: PathBuf,
    netns: Arc<Netns>,
}

impl Node {
    /// Hostname.
    pub fn name(&self) -> &str {
        &self.config.hostname
    }

    /// A QMP session (events appended to the node's events log).
    pub fn qmp(&self, timeout: Duration) -> Result<Qmp, WorldError> {
        Ok(Qmp::connect(&self.spec.qmp, timeout, Some(&self.events))?)
    }

    /// The node's BMC, once powered.
    pub fn bmc(&self) -> Option<&IpmiSim> {
        self.bmc.as_ref()
    }

    /// Whether the VM process runs.
    pub fn running(&self) -> bool {
        self.spec.running_pid().is_some()
    }

    /// Start the BMC, which powers the VM on at once (like a node inserted
    /// into a powered chassis with auto power-on).
    pub fn insert(&mut self) -> Result<(), WorldError> {
        if self.bmc.is_some() {
            return Ok(());
        }
        let script = self.dir.join(format!("{}.power-on.sh", self.name()));
        std::fs::write(&script, self.spec.power_on_script()).map_err(io(&script))?;
        crate::proc::run(std::process::Command::new("chmod").arg("0755").arg(&script))?;
        let lan = ipmi::free_port(&self.netns, true).map_err(io(&self.dir))?;
        let console_port = ipmi::free_port(&self.netns, false).map_err(io(&self.dir))?;
        let vm_port = self.spec.bmc_port.unwrap_or(0);
        let spec = SimSpec {
            name: format!("bmc-{}", self.name()),
            lan: ("127.0.0.1".into(), lan),
            console_port,
            vm: Some(VmLink {
                port: vm_port,
                startcmd: script.display().to_string(),
                start_now: true,
            }),
        };
        self.bmc = Some(IpmiSim::start(
            spec,
            &ipmi::bmc_emu(),
            &self.dir,
            Arc::clone(&self.netns),
        )?);
        Ok(())
    }

    /// Pull the plug: QMP `quit` (qemu exits at once, no guest shutdown).
    pub fn power_cut(&self) -> Result<(), WorldError> {
        let mut q = self.qmp(Duration::from_secs(10))?;
        q.quit()?;
        crate::proc::poll(Duration::from_secs(20), || (!self.running()).then_some(()));
        Ok(())
    }

    /// `ipmitool chassis power <action>` against the node's BMC.
    pub fn bmc_power(&self, action: &str) -> Result<(), WorldError> {
        match &self.bmc {
            Some(b) => Ok(b.power(action)?),
            None => Err(WorldError::NoNode(format!(
                "{} (not inserted)",
                self.name()
            ))),
        }
    }

    /// Remove disk `index` (0 or 1) from the running node, as a drive
    /// pulled from its bay; waits for the guest to release it.
    pub fn pull_disk(&self, index: usize) -> Result<(), WorldError> {
        let id = self.spec.disks[index].id.clone();
        let mut q = self.qmp(Duration::from_secs(10))?;
        q.device_del(&id)?;
        q.wait_event("DEVICE_DELETED", Duration::from_secs(120))?;
        Ok(())
    }

    /// Run `cmd` (one shell line) on the node's technician console (the
    /// second serial port, served by [`crate::guest::TECH_CONSOLE_SERVICE`]
    /// in the image): its exit code and what it printed (stdout and
    /// stderr). Fails when no answer came within `timeout`.
    pub fn exec(&self, cmd: &str, timeout: Duration) -> Result<(i32, String), WorldError> {
        use std::io::{Read, Write};
        let Some(ctl) = &self.spec.ctl else {
            return Err(WorldError::Exec {
                node: self.name().to_owned(),
                cmd: cmd.to_owned(),
                secs: 0,
                got: "this VM has no second serial port".into(),
            });
        };
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = format!(
            "x{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut s = std::os::unix::net::UnixStream::connect(ctl).map_err(io(ctl))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(io(ctl))?;
        s.write_all(format!("{id}\n{cmd}\n").as_bytes())
            .map_err(io(ctl))?;
        let marker = format!("@@{id} rc=");
        let t0 = std::time::Instant::now();
        let mut got: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(at) = text.find(&marker) {
                let rest = &text[at + marker.len()..];
                if let Some(end) = rest.find('\n') {
                    let rc = rest[..end].trim().parse().unwrap_or(-1);
                    return Ok((rc, text[..at].to_owned()));
                }
            }
            if t0.elapsed() > timeout {
                return Err(WorldError::Exec {
                    node: self.name().to_owned(),
                    cmd: cmd.to_owned(),
                    secs: timeout.as_secs(),
                    got: text,
                });
            }
            match s.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(200)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(io(ctl)(e)),
            }
        }
    }

    /// Insert a new, empty disk in the first spare slot; returns its id.
    pub fn insert_new_disk(&self, label: &str) -> Result<String, WorldError> {
        let file = self.dir.join(format!("{}-{label}.img", self.name()));
        create_disk(&file, self.boot.disk_mib)?;
        let mut q = self.qmp(Duration::from_secs(10))?;
        let node = format!("{label}-blk");
        q.blockdev_add_file(&node, &file)?;
        let id = label.to_owned();
        q.execute(
            "device_add",
            Some(serde_json::json!({
                "driver": "virtio-blk-pci", "id": id, "drive": node,
                "serial": format!("{}-{label}", self.name()),
                "bus": VmSpec::root_port(self.spec.disks.len()),
            })),
        )?;
        Ok(id)
    }

    /// Carrier of NIC `nic` on or off (the guest sees link down).
    pub fn set_nic_link(&self, nic: &str, up: bool) -> Result<(), WorldError> {
        let mut q = self.qmp(Duration::from_secs(10))?;
        Ok(q.set_link(nic, up)?)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(mut q) = Qmp::connect(
            &self.spec.qmp,
            Duration::from_millis(300),
            Some(&self.events),
        ) {
            let _ = q.quit();
        }
        self.bmc = None;
        self.spec.kill();
    }
}

fn create_disk(path: &Path, mib: u64) -> Result<(), WorldError> {
    let f = std::fs::File::create(path).map_err(io(path))?;
    f.set_len(mib * 1024 * 1024).map_err(io(path))
}

/// The running virtual chassis. Dropping it powers everything off and
/// removes the namespace; logs stay in the run directory.
#[derive(Debug)]
pub struct Chassis {
    /// Nodes, in bay order.
    pub nodes: Vec<Node>,
    /// The EN2092 agents.
    pub switches: Vec<En2092Agent>,
    /// The CMM.
    pub cmm: IpmiSim,
    /// The CMM's SNMP agent (power module table), when the profile gives
    /// the CMM an `snmp` section.
    pub cmm_snmp: Option<CmmSnmp>,
    /// The fabrics.
    pub fabrics: Fabrics,
    psu_ok: [bool; 6],
    n: u32,
    uplinks: Vec<(String, Vec<String>)>,
    tap: TapPort,
    ext_tap: Option<TapPort>,
    sock_dir: SockDir,
    /// The namespace everything runs in.
    pub netns: Arc<Netns>,
}

/// Short directory for unix sockets (path length limit), removed on drop.
#[derive(Debug)]
struct SockDir(PathBuf);

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Chassis {
    /// Build the chassis infrastructure for `nodes` (hostnames) of
    /// `profile`: namespace, fabrics, CMM, switch agents, and the nodes'
    /// VM descriptions. No node is powered yet ([`Node::insert`]).
    pub fn build(
        profile: &chassis::model::Profile,
        profile_path: &Path,
        nodes: &[(NodeConfig, NodeBoot)],
        opts: &Options,
    ) -> Result<Chassis, WorldError> {
        let run = &opts.run_dir;
        std::fs::create_dir_all(run).map_err(io(run))?;
        let netns = Arc::new(Netns::create()?);
        let sock_dir = SockDir(std::env::temp_dir().join(netns.name()));
        std::fs::create_dir_all(&sock_dir.0).map_err(io(&sock_dir.0))?;
        let ch = profile.chassis.first().ok_or_else(|| WorldError::Profile {
            path: profile_path.to_owned(),
            detail: "no [[chassis]]".into(),
        })?;
        let mut names: Vec<&str> = ch.switches.iter().map(|s| s.name.as_str()).collect();
        names.push(UPSTREAM);
        let fabrics = Fabrics::start(&sock_dir.0, &names)?;
        for s in &ch.switches {
            fabrics.link(&s.name, UPLINK_PORT, UPSTREAM, &s.name)?;
        }
        // The management addresses (CMM, modules) on the namespace's tap,
        // which hangs off the upstream switch: guests reach them over their
        // bonds and the modules' uplinks.
        let prefix = profile
            .networks
            .get("management")
            .and_then(|n| n.subnet.split_once('/'))
            .map_or("32", |(_, p)| p)
            .to_owned();
        let mut addrs = vec![format!("{}/{prefix}", ch.cmm.address)];
        addrs.extend(ch.switches.iter().map(|s| format!("{}/32", s.address)));
        let tap_ep = fabrics.endpoint_path("mgmt-tap")?;
        fabrics.add_port(UPSTREAM, "host", None, &tap_ep)?;
        let tap = TapPort::start(
            &netns,
            "fvmgmt0",
            &addrs,
            &fabrics.switch_path(UPSTREAM)?,
            &tap_ep,
        )?;
        // The customers' side: the external network's gateway, where SIP
        // clients in the namespace reach the load balancers' shared address.
        let external = profile
            .networks
            .get("external")
            .and_then(|n| n.gateway.clone().map(|g| (g, n.subnet.clone())));
        let ext_tap = match external {
            Some((gw, subnet)) => {
                let prefix = subnet.split_once('/').map_or("32", |(_, p)| p).to_owned();
                let ep = fabrics.endpoint_path("ext-tap")?;
                fabrics.add_port(UPSTREAM, "customers", None, &ep)?;
                Some(TapPort::start(
                    &netns,
                    "fvext0",
                    &[format!("{gw}/{prefix}")],
                    &fabrics.switch_path(UPSTREAM)?,
                    &ep,
                )?)
            }
            None => None,
        };
        // CMM on the profile's address, LAN port 623 as on the real one.
        let cmm = IpmiSim::start(
            SimSpec {
                name: "cmm".into(),
                lan: (
                    ch.cmm.address.clone(),
                    ch.cmm.ipmi.as_ref().map_or(623, |i| i.port),
                ),
                console_port: ipmi::free_port(&netns, false).map_err(io(run))?,
                vm: None,
            },
            &ipmi::cmm_emu(),
            run,
            Arc::clone(&netns),
        )?;
        let cmm_snmp = match &ch.cmm.snmp {
            Some(s) => Some(CmmSnmp::start(
                &ch.cmm.address,
                s.port,
                &s.credentials,
                6,
                run,
                Arc::clone(&netns),
            )?),
            None => None,
        };
        let mut switches = Vec::new();
        for s in &ch.switches {
            switches.push(En2092Agent::start(
                AgentSpec {
                    name: s.name.clone(),
                    address: s.address.clone(),
                    community: s.snmp.credentials.clone(),
                    helper: opts.helper.clone(),
                },
                run,
                Arc::clone(&netns),
            )?);
        }
        let mut out = Vec::new();
        for (cfg, boot) in nodes {
            out.push(Self::node(cfg, boot, &fabrics, &sock_dir.0, opts, &netns)?);
        }
        Ok(Chassis {
            nodes: out,
            switches,
            cmm,
            cmm_snmp,
            fabrics,
            psu_ok: [true; 6],
            n: ch.power.n,
            uplinks: ch
                .switches
                .iter()
                .map(|s| (s.name.clone(), s.uplinks.clone()))
                .collect(),
            tap,
            ext_tap,
            sock_dir,
            netns,
        })
    }

    fn node(
        cfg: &NodeConfig,
        boot: &NodeBoot,
        fabrics: &Fabrics,
        sock_dir: &Path,
        opts: &Options,
        netns: &Arc<Netns>,
    ) -> Result<Node, WorldError> {
        let name = cfg.hostname.clone();
        let dir = opts.run_dir.join(&name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut disks = Vec::new();
        for i in 0..2 {
            let file = dir.join(format!("disk{i}.img"));
            match (&boot.disk0, i) {
                (Some(src), 0) => {
                    crate::proc::run(
                        std::process::Command::new("cp")
                            .arg("--sparse=always")
                            .arg(src)
                            .arg(&file),
                    )?;
                }
                _ => create_disk(&file, boot.disk_mib)?,
            }
            disks.push(DiskSpec {
                id: format!("disk{i}"),
                file,
                serial: format!("{name}-disk{i}"),
            });
        }
        let mut nics = Vec::new();
        for (i, nic) in cfg.network.bond.slaves.iter().enumerate() {
            let local = fabrics.endpoint_path(&format!("{name}-{}", nic.name))?;
            fabrics.add_port(&nic.switch, &nic.port, Some(&name), &local)?;
            nics.push(NicSpec {
                id: nic.name.clone(),
                mac: format!("52:54:00:{:02x}:{:02x}:{:02x}", 0x10, cfg.bay, i),
                local,
                switch: fabrics.switch_path(&nic.switch)?,
            });
        }
        let spec = VmSpec {
            name: name.clone(),
            bay: cfg.bay,
            memory_mib: opts.memory_mib,
            boot: Boot::Direct {
                kernel: boot.kernel.clone(),
                initrd: boot.initrd.clone(),
                cmdline: boot.cmdline.clone(),
            },
            disks,
            nics,
            bmc_port: Some(ipmi::free_port(netns, false).map_err(io(&dir))?),
            console: dir.join("console.log"),
            qmp: sock_dir.join(format!("{name}.qmp")),
            ctl: Some(sock_dir.join(format!("{name}.ctl"))),
            // In the socket directory: it lives exactly as long as the chassis.
            pidfile: sock_dir.join(format!("{name}.pid")),
            accel: opts.accel.clone(),
        };
        // The QMP socket lives in the short socket directory; a link in the
        // node's output directory lets an operator attach during the run.
        let link = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink(&spec.qmp, &link);
        // The console is appended to across power cycles of this run only.
        let _ = std::fs::remove_file(&spec.console);
        crate::cleanup::add_pidfile(spec.pidfile.clone());
        Ok(Node {
            config: cfg.clone(),
            console: Console::new(&spec.console),
            events: dir.join("qmp-events.jsonl"),
            spec,
            bmc: None,
            boot: boot.clone(),
            dir,
            netns: Arc::clone(netns),
        })
    }

    /// The node called `name`.
    pub fn node_by_name(&self, name: &str) -> Result<&Node, WorldError> {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| WorldError::NoNode(name.to_owned()))
    }

    /// Mutable access to the node called `name`.
    pub fn node_mut(&mut self, name: &str) -> Result<&mut Node, WorldError> {
        self.nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .ok_or_else(|| WorldError::NoNode(name.to_owned()))
    }

    /// All uplinks of module `switch` down or up: the fabric's uplink
    /// port, the agent's `EXT*` ifOperStatus, and (EN2092 Layer 2
    /// failover, which the chassis runs with) the module's node-facing
    /// ports with the carrier of every node NIC behind them.
    pub fn set_uplinks(&mut self, switch: &str, up: bool) -> Result<(), WorldError> {
        self.fabrics.set_port_up(switch, UPLINK_PORT, up)?;
        let mut int_ports = Vec::new();
        for n in &self.nodes {
            for (nic, slave) in n.spec.nics.iter().zip(&n.config.network.bond.slaves) {
                if slave.switch == switch {
                    self.fabrics.set_port_up(switch, &slave.port, up)?;
                    int_ports.push(slave.port.clone());
                    if n.running() {
                        n.set_nic_link(&nic.id, up)?;
                    }
                }
            }
        }
        if let Some(agent) = self.switches.iter_mut().find(|a| a.name() == switch) {
            let ext: Vec<String> = self
                .uplinks
                .iter()
                .find(|(s, _)| s == switch)
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            agent.set_ports(&ext, up)?;
            agent.set_ports(&int_ports, up)?;
        }
        Ok(())
    }

    /// Fail or repair PSU `bay` (1..6) on the CMM, and set the redundancy
    /// sensor from the number still working against N+N.
    pub fn set_psu(&mut self, bay: u8, ok: bool) -> Result<Redundancy, WorldError> {
        self.cmm.set_psu_offset(bay, 1, !ok)?;
        if let Some(a) = &mut self.cmm_snmp {
            a.set_psu(bay, ok)?;
        }
        if let Some(slot) = self.psu_ok.get_mut(usize::from(bay.saturating_sub(1))) {
            *slot = ok;
        }
        let working = self.psu_ok.iter().filter(|o| **o).count() as u32;
        let r = if working >= 2 * self.n {
            Redundancy::Full
        } else if working > self.n {
            Redundancy::Degraded
        } else if working == self.n {
            Redundancy::NonRedundantSufficient
        } else {
            Redundancy::Insufficient
        };
        self.cmm.set_redundancy(r)?;
        Ok(r)
    }

    /// Cut (or heal) every path between nodes `a` and `b`.
    pub fn partition(&self, a: &str, b: &str, cut: bool) {
        self.fabrics.set_partition(a, b, cut);
    }

    /// The namespace's tap on the upstream network.
    pub fn tap_name(&self) -> &str {
        self.tap.name()
    }

    /// The namespace's tap on the external network, when the profile has one.
    pub fn external_tap_name(&self) -> Option<&str> {
        self.ext_tap.as_ref().map(TapPort::name)
    }

    /// Where the unix sockets live.
    pub fn socket_dir(&self) -> &Path {
        &self.sock_dir.0
    }
}
