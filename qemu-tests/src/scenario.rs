//! The fault scenarios and their runner.
//!
//! Every scenario first brings up the chassis around the nodes it needs
//! (namespace, fabrics, CMM, EN2092 agents) and checks those answer, then
//! gets the node images. What a scenario cannot do because a part of
//! flexvisor does not exist yet ends it as `BLOCKED: <what is missing>`,
//! never as a pass. Who holds a shared address is read from the wire: the
//! fabrics record every VRRP advertisement and ARP announcement (like the
//! upstream router sees them), so no guest cooperation is needed for it.
//!
//! Several scenarios in one run share one chassis: a scenario whose nodes
//! are all in the chassis the previous one left running (after a PASS)
//! runs on it instead of building and booting its own ([`Shared`]); nodes
//! a scenario left powered off are powered on again first. `--fresh` gives
//! every scenario its own chassis.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chassis::NodeConfig;

use crate::guest::{Missing, NodeImages};

use crate::ipmi::Redundancy;
use crate::report::{Figure, Outcome, ScenarioResult};
use crate::world::{Chassis, Node, NodeBoot, Options};

/// Console line flexvisor prints once every service of the node is ready.
pub const READY_MARKER: &str = "flexvisor: ready";

/// Console line flexvisor prints when boot ended with services failed
/// (instead of [`READY_MARKER`]).
pub const DEGRADED_MARKER: &str = "flexvisor: started degraded";

/// Console line flexvisor prints when the node's configuration cannot
/// run (e.g. a service the role lists is not in the image).
pub const FATAL_MARKER: &str = "flexvisor: cannot start:";

/// Prefix of the console line flexvisor prints on every change of the
/// node's overall health (`flexvisor: health <STATUS> <summary>`), the
/// same verdict `flexctl health` shows.
pub const HEALTH_MARKER: &str = "flexvisor: health ";

/// Generous bound for a check the guests act on (health polls, VRRP
/// convergence) under TCG on a loaded machine: only to avoid hanging.
pub const SETTLE: Duration = Duration::from_secs(120);

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The chassis profile.
    pub profile: PathBuf,
    /// Output directory of this run (per scenario subdirectories).
    pub out_dir: PathBuf,
    /// Cache for images and the probe kernel (under `target/`).
    pub cache_dir: PathBuf,
    /// The workspace root (static binaries are built under its `target/`).
    pub workspace: PathBuf,
    /// Restrict scenarios that use every node to these pairs (`None`: all).
    pub pairs: Option<Vec<String>>,
    /// The harness binary (SNMP helper).
    pub helper: PathBuf,
    /// Guest memory per node in MiB.
    pub memory_mib: u32,
    /// qemu accelerator.
    pub accel: String,
    /// How long a node may take from power on to ready under TCG.
    pub boot_timeout: Duration,
    /// Boot a chassis for every scenario instead of sharing one.
    pub fresh: bool,
}

/// A running chassis handed from one scenario to the next.
pub struct Shared {
    chassis: Chassis,
    missing: Option<String>,
    boot_marks: std::collections::BTreeMap<String, u64>,
    /// The scenario that booted it.
    booted_by: &'static str,
    /// Where its consoles, disks and QMP logs are.
    dir: PathBuf,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("booted_by", &self.booted_by)
            .field("dir", &self.dir)
            .finish()
    }
}

/// A scenario: name, what it shows, and its body.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Name for `--scenario`.
    pub name: &'static str,
    /// One line for `--list` and the docs.
    pub about: &'static str,
    /// Pairs it needs (`None`: every node of the profile).
    pub pairs: Option<&'static [&'static str]>,
    body: fn(&mut Ctx) -> Result<Outcome, Step>,
}

/// All scenarios, in the order `--all` runs them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "smoke",
        about: "lb1 pair only: cold boot of both nodes, one failover of the shared IP",
        pairs: Some(&["lb1"]),
        body: smoke,
    },
    Scenario {
        name: "cold-boot",
        about: "all nodes reach ready, every pair elects exactly one master, health OK everywhere",
        pairs: None,
        body: cold_boot,
    },
    Scenario {
        name: "power-cut",
        about: "each active node powered off in turn (QMP quit / BMC power off): standby takes the IP, node rejoins",
        pairs: None,
        body: power_cut,
    },
    Scenario {
        name: "disk-failure",
        about: "a drive pulled from a running node: RAID degraded, CRITICAL, service continues; replaced: rebuild, OK",
        pairs: Some(&["lb1"]),
        body: disk_failure,
    },
    Scenario {
        name: "uplink-loss",
        about: "uplinks of one EN2092 down: WARNING, bond fails over, no IP moves; both down: customer-facing CRITICAL",
        pairs: None,
        body: uplink_loss,
    },
    Scenario {
        name: "psu-failure",
        about: "PSUs failed on the CMM: WARNING at redundancy lost, CRITICAL below N, on every node",
        pairs: None,
        body: psu_failure,
    },
    Scenario {
        name: "split-brain",
        about: "link between the two nodes of a pair cut and healed: one master afterwards, addresses re-announced",
        pairs: Some(&["lb1"]),
        body: split_brain,
    },
    Scenario {
        name: "sip-call-failover",
        about: "a registered call through the load balancers survives a proxy failover",
        pairs: Some(crate::sip_call::PAIRS),
        body: crate::sip_call::sip_call_failover,
    },
];

/// Find a scenario by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// How a step ended early.
#[derive(Debug)]
pub enum Step {
    /// A check failed or the harness could not act.
    Fail(String),
    /// A dependency is missing.
    Blocked(String),
}

impl<E: std::error::Error> From<E> for Step {
    fn from(e: E) -> Step {
        Step::Fail(e.to_string())
    }
}

/// A running scenario: its chassis, progress output and findings.
pub struct Ctx<'a> {
    pub(crate) cfg: &'a RunConfig,
    scenario: &'static Scenario,
    started: Instant,
    pub(crate) run_dir: PathBuf,
    details: Vec<String>,
    figures: Vec<Figure>,
    progress: &'a mut dyn FnMut(&str),
    chassis: Option<Chassis>,
    missing: Option<String>,
    /// Per node, the console offset of its latest power on.
    boot_marks: std::collections::BTreeMap<String, u64>,
    /// The chassis the previous scenario left running, on offer.
    offered: Option<Shared>,
    /// This scenario runs on a chassis another one booted: (that
    /// scenario, its directory).
    reused: Option<(&'static str, PathBuf)>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("scenario", &self.scenario.name)
            .finish()
    }
}

impl Ctx<'_> {
    /// Report progress and record it as a detail.
    pub fn step(&mut self, msg: &str) {
        let line = format!(
            "[{:>6.1}s] {}: {msg}",
            self.started.elapsed().as_secs_f64(),
            self.scenario.name
        );
        (self.progress)(&line);
        self.details.push(msg.to_owned());
    }

    pub(crate) fn figure(&mut self, name: &str, value: f64, unit: &str) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    pub(crate) fn chassis(&mut self) -> Result<&mut Chassis, Step> {
        self.chassis
            .as_mut()
            .ok_or_else(|| Step::Fail("chassis not built".into()))
    }

    /// Build the chassis for the scenario's pairs; check its simulators
    /// answer; then get the images (BLOCKED without them).
    pub(crate) fn bring_up(&mut self) -> Result<(), Step> {
        let loaded = chassis::load_file(&self.cfg.profile).map_err(|e| match e {
            chassis::LoadError::Invalid(r) => Step::Fail(r.render()),
            other => Step::Fail(other.to_string()),
        })?;
        let profile = loaded.profile;
        let mut configs: Vec<NodeConfig> = Vec::new();
        for (ch, bay) in chassis::node::bays(&profile) {
            let n = chassis::node::resolve(&profile, bay, Some(ch))
                .map_err(|e| Step::Fail(e.to_string()))?;
            if profile.chassis.first().map(|c| c.name.as_str()) != Some(ch) {
                continue; // the harness models one chassis
            }
            let wanted = match (self.scenario.pairs, &self.cfg.pairs) {
                (Some(p), _) => p.contains(&n.pair.name.as_str()),
                (None, Some(p)) => p.contains(&n.pair.name),
                (None, None) => true,
            };
            if wanted {
                configs.push(n);
            }
        }
        if let Some(sh) = self.offered.take() {
            let has_all = configs
                .iter()
                .all(|c| sh.chassis.nodes.iter().any(|n| n.name() == c.hostname));
            if has_all {
                std::fs::create_dir_all(&self.run_dir)?;
                self.step(&format!(
                    "on the running chassis of {} ({} node(s); consoles in {})",
                    sh.booted_by,
                    sh.chassis.nodes.len(),
                    sh.dir.display()
                ));
                self.chassis = Some(sh.chassis);
                self.missing = sh.missing;
                self.boot_marks = sh.boot_marks;
                self.reused = Some((sh.booted_by, sh.dir));
                return Ok(());
            }
            self.step(&format!(
                "powering off the chassis of {}: this scenario needs other nodes",
                sh.booted_by
            ));
            drop(sh);
        }
        let bays: Vec<u32> = configs.iter().map(|c| c.bay).collect();
        let t_img = Instant::now();
        let images = {
            let progress = &mut self.progress;
            let mut say = |l: &str| progress(&format!("  image: {l}"));
            crate::guest::extra_bins(&configs)
                .and_then(|extra| crate::guest::static_bins(&self.cfg.workspace, &extra, &mut say))
                .and_then(|bins| {
                    NodeImages::prepare(
                        &self.cfg.profile,
                        &profile.name,
                        &bays,
                        &self.cfg.cache_dir,
                        &bins,
                        &crate::guest::chassis_secrets(&profile),
                        &mut say,
                    )
                })
        };
        if images.is_ok() {
            self.figure(
                "static binaries and images",
                t_img.elapsed().as_secs_f64(),
                "s",
            );
        }
        let boots: Result<Vec<(NodeConfig, NodeBoot)>, Missing> = match &images {
            Ok(img) => configs
                .iter()
                .map(|c| {
                    img.bay(c.bay).map(|(disk, kernel, initrd, cmdline)| {
                        let mib = std::fs::metadata(&disk)
                            .map(|m| m.len() / (1024 * 1024))
                            .unwrap_or(256);
                        (
                            c.clone(),
                            NodeBoot {
                                kernel,
                                initrd,
                                cmdline,
                                disk0: Some(disk),
                                disk_mib: mib.max(64),
                            },
                        )
                    })
                })
                .collect(),
            Err(m) => Err(m.clone()),
        };
        let opts = Options {
            run_dir: self.run_dir.clone(),
            helper: self.cfg.helper.clone(),
            memory_mib: self.cfg.memory_mib,
            accel: self.cfg.accel.clone(),
        };
        let nodes = boots.as_deref().unwrap_or(&[]);
        self.step(&format!(
            "building the chassis: namespace, fabrics, CMM, EN2092 agents, {} node(s)",
            nodes.len()
        ));
        let ch = Chassis::build(&profile, &self.cfg.profile, nodes, &opts)?;
        let rows = ch.cmm.psu_rows()?;
        if rows.len() != 6 {
            return Err(Step::Fail(format!(
                "CMM reports {} PSU sensors, not 6: {rows:?}",
                rows.len()
            )));
        }
        for sw in &ch.switches {
            let name = sw.get(".1.3.6.1.2.1.31.1.1.1.1.43")?;
            if name != "EXT1" {
                return Err(Step::Fail(format!(
                    "{}: ifName.43 is {name:?}, not EXT1",
                    sw.name()
                )));
            }
        }
        self.step(&format!(
            "CMM answers with 6 PSUs over RMCP+, {} EN2092 agent(s) answer IF-MIB (namespace {})",
            ch.switches.len(),
            ch.netns.name()
        ));
        self.chassis = Some(ch);
        if let Err(Missing(m)) = boots {
            self.missing = Some(format!("node images: {m}"));
        }
        let grown = grow_mariadb_disks(self)?;
        if !grown.is_empty() {
            self.step(&format!(
                "disks of the MariaDB nodes grown to {} MiB before power on: {}",
                MARIADB_DISK >> 20,
                grown.join(", ")
            ));
        }
        Ok(())
    }

    /// On a shared chassis: power on again the nodes a scenario before
    /// left off, and wait for them to be ready.
    fn restore(&mut self) -> Result<(), Step> {
        let off: Vec<String> = self
            .chassis()?
            .nodes
            .iter()
            .filter(|n| !n.running())
            .map(|n| n.name().to_owned())
            .collect();
        if off.is_empty() {
            let n = self.chassis()?.nodes.len();
            self.step(&format!("all {n} node(s) running"));
            return Ok(());
        }
        let t0 = Instant::now();
        let timeout = self.cfg.boot_timeout;
        for name in &off {
            let node = self.chassis()?.node_mut(name)?;
            let mark = node.console.mark();
            if node.bmc().is_some() {
                node.bmc_power("on")?;
            } else {
                node.insert()?;
            }
            self.boot_marks.insert(name.clone(), mark);
        }
        self.step(&format!(
            "powered on {} again (left off by the scenario before)",
            off.join(", ")
        ));
        for name in &off {
            let mark = self.boot_marks.get(name).copied().unwrap_or(0);
            let left = timeout
                .saturating_sub(t0.elapsed())
                .max(Duration::from_secs(1));
            self.chassis()?
                .node_by_name(name)?
                .console
                .wait_for_text(mark, READY_MARKER, left)
                .map_err(|e| Step::Fail(format!("{name} after power on: {e}")))?;
        }
        self.step(&format!(
            "{} ready again after {:.1}s",
            off.join(", "),
            t0.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// The pair a scenario is about (its own `pairs`, else `--pairs`), when
    /// it runs on a chassis with more nodes.
    fn focus_pair(&self) -> Option<String> {
        self.scenario
            .pairs
            .and_then(|p| p.first().map(|s| (*s).to_owned()))
            .or_else(|| self.cfg.pairs.as_ref().and_then(|p| p.first().cloned()))
    }

    /// BLOCKED unless the node images are there.
    fn need_images(&self) -> Result<(), Step> {
        match &self.missing {
            Some(m) => Err(Step::Blocked(m.clone())),
            None => Ok(()),
        }
    }

    /// Power on every node and wait for each to be ready.
    pub(crate) fn boot_all(&mut self) -> Result<(), Step> {
        self.need_images()?;
        if self.reused.is_some() {
            return self.restore();
        }
        let t0 = Instant::now();
        let timeout = self.cfg.boot_timeout;
        let names: Vec<String> = self
            .chassis()?
            .nodes
            .iter()
            .map(|n| n.name().to_owned())
            .collect();
        let mut marks = Vec::new();
        for n in &names {
            let node = self.chassis()?.node_mut(n)?;
            let mark = node.console.mark();
            node.insert()?;
            marks.push(mark);
            self.boot_marks.insert(n.clone(), mark);
        }
        self.step(&format!(
            "powered on {} node(s) through their BMCs",
            names.len()
        ));
        let mut fatal = Vec::new();
        let mut late = Vec::new();
        for (n, mark) in names.iter().zip(marks) {
            // One deadline for all: they boot together.
            let left = timeout
                .saturating_sub(t0.elapsed())
                .max(Duration::from_secs(1));
            let node = self.chassis()?.node_by_name(n)?;
            let found =
                node.console
                    .wait_for(mark, "ready or a fatal supervisor error", left, |l| {
                        l.contains(READY_MARKER) || l.contains(FATAL_MARKER)
                    });
            let line = match found {
                Ok(l) => l,
                Err(_) => {
                    let last = node
                        .console
                        .lines_since(mark)
                        .iter()
                        .rev()
                        .find_map(|l| health_line(l).map(|(s, sum)| format!("{s} {sum}")))
                        .unwrap_or_else(|| "no health line".into());
                    self.step(&format!(
                        "{n} not ready after {:.0}s; last health: {last}",
                        timeout.as_secs_f64()
                    ));
                    late.push(format!("{n} (last health: {last})"));
                    continue;
                }
            };
            let secs = t0.elapsed().as_secs_f64();
            if let Some(i) = line.find(DEGRADED_MARKER) {
                let why = line[i + "flexvisor: ".len()..].trim().to_owned();
                self.step(&format!("{n} {why} after {secs:.1}s"));
                late.push(format!("{n} ({why})"));
                continue;
            }
            match line.find(FATAL_MARKER) {
                Some(i) => {
                    let why = line[i + FATAL_MARKER.len()..].trim().to_owned();
                    self.step(&format!("{n} cannot start after {secs:.1}s: {why}"));
                    fatal.push(format!("{n}: {why}"));
                }
                None => self.step(&format!("{n} ready after {secs:.1}s")),
            }
        }
        if !late.is_empty() {
            return Err(Step::Fail(format!(
                "{} of {} nodes did not become ready (bound {}s): {}",
                late.len(),
                names.len(),
                timeout.as_secs(),
                late.join("; ")
            )));
        }
        if !fatal.is_empty() {
            return Err(Step::Blocked(format!(
                "{} of {} node images do not start: {}",
                fatal.len(),
                names.len(),
                fatal.join("; ")
            )));
        }
        self.figure("boot to ready (all)", t0.elapsed().as_secs_f64(), "s");
        Ok(())
    }

    /// VRIDs of the nodes present, with their advertisement interval (cs).
    fn vrids(&mut self) -> Result<Vec<(u8, u16)>, Step> {
        let mut vrids: Vec<(u8, u16)> = self
            .chassis()?
            .nodes
            .iter()
            .flat_map(|n| n.config.vips.iter().map(|v| (v.vrid, v.advert_interval_cs)))
            .collect();
        vrids.sort();
        vrids.dedup();
        Ok(vrids)
    }

    /// Wait until every VRID of the nodes present has exactly one node
    /// advertising (as the upstream router sees it on the fabrics), the
    /// same one for a whole settle window of three advertisement intervals,
    /// and, where `expect` names a node for a VRID, that node. Only adverts
    /// sent after this call count. Fails, with what the fabrics saw, when
    /// the election has not settled within `within`.
    fn elect(
        &mut self,
        expect: &[(u8, String)],
        within: Duration,
    ) -> Result<Vec<(u8, String)>, Step> {
        let vrids = self.vrids()?;
        let settle = Duration::from_millis(
            vrids
                .iter()
                .map(|v| u64::from(v.1) * 30)
                .max()
                .unwrap_or(3000),
        );
        let ch = self.chassis()?;
        let since = Instant::now();
        let mut stable: Option<(Vec<(u8, String)>, Instant)> = None;
        let mut view: Vec<(u8, Vec<String>)> = Vec::new();
        loop {
            let now = Instant::now();
            if now >= since + settle {
                let from = now.checked_sub(settle).unwrap_or(since).max(since);
                view = vrids
                    .iter()
                    .map(|(v, _)| (*v, ch.fabrics.advertisers(*v, from)))
                    .collect();
                let single: Option<Vec<(u8, String)>> = view
                    .iter()
                    .map(|(v, a)| match a.as_slice() {
                        [one] => Some((*v, one.clone())),
                        _ => None,
                    })
                    .collect();
                let good = single.filter(|s| expect.iter().all(|e| s.contains(e)));
                match (good, &stable) {
                    (Some(s), Some((prev, at))) if *prev == s => {
                        if now >= *at + settle {
                            let took = since.elapsed().as_secs_f64();
                            self.figure("election settled", took, "s");
                            return Ok(s);
                        }
                    }
                    (Some(s), _) => stable = Some((s, now)),
                    (None, _) => stable = None,
                }
            }
            if now >= since + within {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let seen: Vec<String> = view
            .iter()
            .map(|(v, a)| match a.as_slice() {
                [] => format!("VRID {v}: no master advertises"),
                [one] => format!("VRID {v}: {one} advertises"),
                many => format!("VRID {v}: several masters advertise: {}", many.join(", ")),
            })
            .collect();
        let none = view.iter().all(|(_, a)| a.is_empty());
        if none {
            let ch = self.chassis()?;
            let none_runs_vrrp = ch.nodes.iter().all(|n| {
                status_report(&n.console.text()).is_some_and(|r| !r.to_string().contains("vrrp"))
            });
            if none_runs_vrrp {
                let services: Vec<String> = ch
                    .nodes
                    .first()
                    .and_then(|n| status_report(&n.console.text()))
                    .map(|r| service_names(&r))
                    .unwrap_or_default();
                return Err(Step::Blocked(format!(
                    "the node images run no VRRP instance (flexctl status lists only: {})",
                    services.join(", ")
                )));
            }
        }
        let want = if expect.is_empty() {
            String::new()
        } else {
            let e: Vec<String> = expect
                .iter()
                .map(|(v, n)| format!("VRID {v} on {n}"))
                .collect();
            format!(" (expected {})", e.join(", "))
        };
        let transitions = self.vrrp_transitions();
        Err(Step::Fail(format!(
            "no single stable master per VRID within {}s{want}: {}; VRRP transitions on the consoles: {}",
            within.as_secs(),
            seen.join("; "),
            transitions.join(" | ")
        )))
    }

    /// The single master of each VRID once the election settled.
    pub(crate) fn masters(&mut self) -> Result<Vec<(u8, String)>, Step> {
        self.elect(&[], SETTLE)
    }

    /// Every VRRP state change flexvisor printed, per node, since its
    /// latest power on (evidence for a failed election).
    fn vrrp_transitions(&mut self) -> Vec<String> {
        let marks = self.boot_marks.clone();
        let Ok(ch) = self.chassis() else {
            return Vec::new();
        };
        ch.nodes
            .iter()
            .map(|n| {
                let from = marks.get(n.name()).copied().unwrap_or(0);
                let t: Vec<String> = n
                    .console
                    .lines_since(from)
                    .iter()
                    .filter_map(|l| vrrp_transition(l).map(str::to_owned))
                    .collect();
                format!("{}: {}", n.name(), t.join(", "))
            })
            .collect()
    }

    /// Each node's latest overall health on its console since its latest
    /// power on (`None`: not printed yet).
    fn health(&mut self) -> Result<Vec<(String, Option<String>)>, Step> {
        let marks = self.boot_marks.clone();
        Ok(self
            .chassis()?
            .nodes
            .iter()
            .map(|n| {
                let from = marks.get(n.name()).copied().unwrap_or(0);
                let last = n
                    .console
                    .lines_since(from)
                    .iter()
                    .rev()
                    .find_map(|l| health_line(l).map(|(s, sum)| format!("{s} {sum}")));
                (n.name().to_owned(), last)
            })
            .collect())
    }

    /// Wait until the overall health of every node is what `want` says for
    /// it (`None`: any), as flexvisor prints it; fails with each node's
    /// last health line after [`SETTLE`].
    fn wait_health(
        &mut self,
        what: &str,
        want: &dyn Fn(&Node) -> Option<&'static str>,
    ) -> Result<(), Step> {
        let expected: Vec<(String, Option<&'static str>)> = self
            .chassis()?
            .nodes
            .iter()
            .map(|n| (n.name().to_owned(), want(n)))
            .collect();
        let t0 = Instant::now();
        let mut last = Vec::new();
        while t0.elapsed() < SETTLE {
            last = self.health()?;
            let ok = last
                .iter()
                .zip(&expected)
                .all(|((_, got), (_, want))| match want {
                    None => true,
                    Some(w) => got.as_deref().and_then(|g| g.split(' ').next()) == Some(*w),
                });
            if ok {
                let got: Vec<String> = last
                    .iter()
                    .map(|(n, g)| {
                        format!(
                            "{n} {}",
                            g.as_deref()
                                .and_then(|g| g.split(' ').next())
                                .unwrap_or("-")
                        )
                    })
                    .collect();
                self.step(&format!(
                    "health {what}: {} (after {:.1}s)",
                    got.join(", "),
                    t0.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let got: Vec<String> = last
            .iter()
            .zip(&expected)
            .map(|((n, g), (_, w))| {
                format!(
                    "{n}: want {} got {:?}",
                    w.unwrap_or("any"),
                    g.as_deref().unwrap_or("no health line yet")
                )
            })
            .collect();
        Err(Step::Fail(format!(
            "health {what} not reached within {}s: {}",
            SETTLE.as_secs(),
            got.join("; ")
        )))
    }

    /// Every node's health `status`.
    fn health_everywhere(&mut self, status: &'static str) -> Result<(), Step> {
        self.wait_health(&format!("{status} on every node"), &|_| Some(status))
    }
}

/// Disk size of the nodes that run MariaDB, as `flexvisor-image`'s own qemu
/// runner gives them (image/src/qemu.rs): an image-sized data mirror is too
/// small for mariadbd.
pub const MARIADB_DISK: u64 = 1 << 30;

/// Grow both disks of every node running MariaDB to [`MARIADB_DISK`]
/// (sparse) before its first power on; returns the nodes. The harness
/// sizes disk0 like the image, and the data mirror the image grows over
/// it at first boot is then too small for MariaDB's datadir (mariadbd
/// exits 1 in a crash loop on db and proxy nodes).
fn grow_mariadb_disks(ctx: &mut Ctx) -> Result<Vec<String>, Step> {
    let mut grown = Vec::new();
    for n in &ctx.chassis()?.nodes {
        if !n.config.services.iter().any(|s| s == "mariadb") {
            continue;
        }
        for d in &n.spec.disks {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&d.file)
                .map_err(|e| Step::Fail(format!("{}: {e}", d.file.display())))?;
            let len = f.metadata()?.len();
            if len < MARIADB_DISK {
                f.set_len(MARIADB_DISK)
                    .map_err(|e| Step::Fail(format!("{}: {e}", d.file.display())))?;
            }
        }
        grown.push(n.name().to_owned());
    }
    Ok(grown)
}

/// The state change in a flexvisor VRRP console line
/// (`flexvisor: lb1-internal Backup -> Master (priority 150): cause`).
pub fn vrrp_transition(line: &str) -> Option<&str> {
    let rest = &line[line.find("flexvisor: ")? + "flexvisor: ".len()..];
    let arrow = rest.find(" -> ")?;
    let (name, _) = rest[..arrow].split_once(' ')?;
    (!name.is_empty() && rest.contains("(priority ")).then_some(rest.trim_end())
}

/// Status and summary of a flexvisor health console line.
pub fn health_line(line: &str) -> Option<(&str, &str)> {
    let rest = &line[line.find(HEALTH_MARKER)? + HEALTH_MARKER.len()..];
    let (status, summary) = rest.split_once(' ').unwrap_or((rest, ""));
    ["OK", "WARNING", "CRITICAL", "UNKNOWN"]
        .contains(&status)
        .then_some((status, summary.trim_end()))
}

/// Marker lines around the `flexctl status --json` the image prints on the
/// console once every service is ready.
const STATUS_BEGIN: &str = "flexvisor-report: status begin";
const STATUS_END: &str = "flexvisor-report: status end";

/// The last supervisor status report on a console, if any.
pub fn status_report(console: &str) -> Option<serde_json::Value> {
    let start = console.rfind(STATUS_BEGIN)? + STATUS_BEGIN.len();
    let len = console[start..].find(STATUS_END)?;
    serde_json::from_str(console[start..start + len].trim()).ok()
}

/// Names of the services in a status report.
pub fn service_names(report: &serde_json::Value) -> Vec<String> {
    report["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Run one scenario; progress lines go to `progress`. `shared`: the chassis the previous scenario left
/// running, taken when this one's nodes are all in it; on a PASS this
/// scenario's chassis is left there for the next one.
pub fn run(
    cfg: &RunConfig,
    scenario: &'static Scenario,
    progress: &mut dyn FnMut(&str),
    shared: &mut Option<Shared>,
) -> ScenarioResult {
    let started = Instant::now();
    let run_dir = cfg.out_dir.join(scenario.name);
    let mut ctx = Ctx {
        cfg,
        scenario,
        started,
        run_dir: run_dir.clone(),
        details: Vec::new(),
        figures: Vec::new(),
        progress,
        chassis: None,
        missing: None,
        boot_marks: std::collections::BTreeMap::new(),
        // With --fresh nothing is offered: a chassis left over powers off now.
        offered: shared.take().filter(|_| !cfg.fresh),
        reused: None,
    };
    ctx.step(&format!("start ({})", scenario.about));
    let outcome = match (scenario.body)(&mut ctx) {
        Ok(o) => o,
        Err(Step::Fail(m)) => Outcome::Fail(m),
        Err(Step::Blocked(m)) => Outcome::Blocked(m),
    };
    // A chassis after a PASS stays up for the next scenario; otherwise
    // everything is powered off before timing ends.
    let keep = !cfg.fresh && matches!(outcome, Outcome::Pass);
    let left = ctx.chassis.take().filter(|_| keep).map(|chassis| {
        let (booted_by, dir) = ctx
            .reused
            .clone()
            .unwrap_or((scenario.name, run_dir.clone()));
        Shared {
            chassis,
            missing: ctx.missing.clone(),
            boot_marks: ctx.boot_marks.clone(),
            booted_by,
            dir,
        }
    });
    *shared = left;
    let label = format!(
        "{}{}",
        outcome.label(),
        if outcome.reason().is_empty() {
            String::new()
        } else {
            format!(": {}", outcome.reason())
        }
    );
    ctx.step(&label);
    ScenarioResult {
        scenario: scenario.name.to_owned(),
        outcome,
        wall_s: started.elapsed().as_secs_f64(),
        details: ctx.details,
        figures: ctx.figures,
        run_dir: run_dir.display().to_string(),
    }
}

/// The VRRP bound: Master_Down_Interval (RFC 5798 §6.1) for the backup's
/// priority, plus the slack a TCG guest needs to act on it.
pub(crate) fn takeover_bound(adv_cs: u16, backup_priority: u8) -> Duration {
    let adv = f64::from(adv_cs) / 100.0;
    let skew = (256.0 - f64::from(backup_priority)) * adv / 256.0;
    Duration::from_secs_f64(3.0 * adv + skew + 2.0)
}

/// The VRIDs of `pair` with their configuration (from its first node).
fn pair_vips(ctx: &mut Ctx, pair: &str) -> Result<Vec<chassis::node::VipConfig>, Step> {
    ctx.chassis()?
        .nodes
        .iter()
        .find(|n| n.config.pair.name == pair)
        .map(|n| n.config.vips.clone())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Step::Fail(format!(
                "pair {pair} is not in this chassis or has no shared address"
            ))
        })
}

/// Cut the power of the master of `pair` (QMP quit, or `ipmitool chassis
/// power off` against its BMC), measure until its standby advertises every
/// VRID of the pair, power it on again through its BMC and check it
/// rejoins (master again if preempt, else standby).
fn fail_over(ctx: &mut Ctx, pair: &str, by_bmc: bool) -> Result<(), Step> {
    let masters = ctx.masters()?;
    let vips = pair_vips(ctx, pair)?;
    let first = vips[0].clone();
    let master = masters
        .iter()
        .find(|(v, _)| *v == first.vrid)
        .map(|(_, m)| m.clone())
        .ok_or_else(|| Step::Fail(format!("VRID {} has no master", first.vrid)))?;
    let ch = ctx.chassis()?;
    let standby = ch
        .nodes
        .iter()
        .find(|n| n.config.pair.name == pair && n.name() != master)
        .map(|n| {
            (
                n.name().to_owned(),
                n.config.vips.first().map_or(100, |v| v.priority),
            )
        })
        .ok_or_else(|| Step::Fail(format!("{master} has no standby in the chassis")))?;
    let how = if by_bmc {
        "BMC chassis power off"
    } else {
        "QMP quit"
    };
    ctx.step(&format!(
        "{master} holds {} (VRID {}); cutting its power by {how}",
        first.address, first.vrid
    ));
    let ch = ctx.chassis()?;
    let t0 = Instant::now();
    if by_bmc {
        ch.node_by_name(&master)?.bmc_power("off")?;
    } else {
        ch.node_by_name(&master)?.power_cut()?;
    }
    let bound = takeover_bound(first.advert_interval_cs, standby.1);
    let took = crate::proc::poll(bound * 3, || {
        vips.iter()
            .all(|v| ch.fabrics.advertisers(v.vrid, t0).contains(&standby.0))
            .then(|| t0.elapsed())
    })
    .ok_or_else(|| {
        Step::Fail(format!(
            "{} did not advertise every VRID of {pair} within {:.1}s after {master} lost power",
            standby.0,
            (bound * 3).as_secs_f64()
        ))
    })?;
    let secs = took.as_secs_f64();
    ctx.figure(&format!("{pair} takeover ({how})"), secs, "s");
    if took > bound {
        return Err(Step::Fail(format!(
            "{} took {secs:.1}s to take {}, bound {:.1}s",
            standby.0,
            first.address,
            bound.as_secs_f64()
        )));
    }
    ctx.step(&format!(
        "{} took over {} in {secs:.1}s (bound {:.1}s)",
        standby.0,
        first.address,
        bound.as_secs_f64()
    ));
    let t1 = Instant::now();
    let ch = ctx.chassis()?;
    let mark = ch.node_by_name(&master)?.console.mark();
    ch.node_by_name(&master)?.bmc_power("on")?;
    ctx.boot_marks.insert(master.clone(), mark);
    let timeout = ctx.cfg.boot_timeout;
    ctx.chassis()?
        .node_by_name(&master)?
        .console
        .wait_for_text(mark, READY_MARKER, timeout)
        .map_err(|e| Step::Fail(format!("{master} after power on: {e}")))?;
    ctx.figure(
        &format!("{master} BMC power on to ready"),
        t1.elapsed().as_secs_f64(),
        "s",
    );
    let expected: Vec<(u8, String)> = vips
        .iter()
        .map(|v| {
            (
                v.vrid,
                if v.preempt {
                    master.clone()
                } else {
                    standby.0.clone()
                },
            )
        })
        .collect();
    let after = ctx.elect(&expected, SETTLE)?;
    ctx.step(&format!(
        "{master} powered on by its BMC and rejoined; masters {after:?} (preempt = {})",
        first.preempt
    ));
    Ok(())
}

/// Fail unless, since `since`, every VRID in `masters` was advertised by its
/// master alone (no shared address moved).
fn no_vip_moved(ctx: &mut Ctx, masters: &[(u8, String)], since: Instant) -> Result<(), Step> {
    let ch = ctx.chassis()?;
    for (vrid, m) in masters {
        let adv = ch.fabrics.advertisers(*vrid, since);
        if adv != [m.clone()] {
            return Err(Step::Fail(format!(
                "VRID {vrid} held by {m} before; advertised since by {adv:?}"
            )));
        }
    }
    Ok(())
}

fn smoke(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    ctx.boot_all()?;
    let m = ctx.masters()?;
    ctx.step(&format!("one master per VRID: {m:?}"));
    ctx.health_everywhere("OK")?;
    fail_over(ctx, "lb1", false)?;
    Ok(Outcome::Pass)
}

fn cold_boot(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    ctx.boot_all()?;
    let m = ctx.masters()?;
    ctx.step(&format!("one master per VRID: {m:?}"));
    ctx.health_everywhere("OK")?;
    Ok(Outcome::Pass)
}

fn power_cut(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    ctx.boot_all()?;
    let mut pairs: Vec<String> = ctx
        .chassis()?
        .nodes
        .iter()
        .filter(|n| !n.config.vips.is_empty())
        .map(|n| n.config.pair.name.clone())
        .collect();
    pairs.dedup();
    if pairs.len() == 1 {
        // One pair: both ways of cutting the power, one after the other.
        fail_over(ctx, &pairs[0], false)?;
        fail_over(ctx, &pairs[0], true)?;
    } else {
        for (i, p) in pairs.iter().enumerate() {
            fail_over(ctx, p, i % 2 == 1)?;
        }
    }
    Ok(Outcome::Pass)
}

fn disk_failure(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    ctx.boot_all()?;
    let before = ctx.masters()?;
    ctx.health_everywhere("OK")?;
    // The master of the scenario's pair (on a shared chassis there are more).
    let focus_vrid = match ctx.focus_pair() {
        Some(p) => pair_vips(ctx, &p)?.first().map(|v| v.vrid),
        None => None,
    };
    let victim = before
        .iter()
        .find(|(v, _)| focus_vrid.is_none_or(|f| f == *v))
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let console = ctx.chassis()?.node_by_name(&victim)?.console.clone();
    let mark = console.mark();
    ctx.step(&format!(
        "pulling disk1 from {victim}, the master (device_del, waiting for DEVICE_DELETED)"
    ));
    let t0 = Instant::now();
    ctx.chassis()?.node_by_name(&victim)?.pull_disk(1)?;
    if let Ok(l) = console.wait_for(mark, "an md failure line", Duration::from_secs(30), |l| {
        l.contains("md/raid1") && (l.contains("Disk failure") || l.contains("Operation continuing"))
    }) {
        ctx.step(&format!("{victim} kernel: {}", l.trim()));
    }
    let v = victim.clone();
    ctx.wait_health(&format!("CRITICAL on {v} only"), &move |n| {
        Some(if n.name() == v { "CRITICAL" } else { "OK" })
    })?;
    if !ctx.chassis()?.node_by_name(&victim)?.running() {
        return Err(Step::Fail(format!(
            "{victim} stopped after losing one disk"
        )));
    }
    no_vip_moved(ctx, &before, t0)?;
    ctx.step(&format!(
        "{victim} runs on one disk; no shared address moved"
    ));
    let mark = console.mark();
    let id = ctx
        .chassis()?
        .node_by_name(&victim)?
        .insert_new_disk("disk2")?;
    ctx.step(&format!("inserted a new empty disk {id} into {victim}"));
    // The field procedure, on the node's technician console: one command
    // that partitions the new disk like the survivor and adds it to the
    // mirrors. Until the guest has seen the hot-plugged disk it answers
    // "no blank disk": retry for a while.
    let cmd = "flexctl raid replace --wait --json --timeout 900";
    let t_cmd = Instant::now();
    let (rc, out) = loop {
        let (rc, out) = ctx
            .chassis()?
            .node_by_name(&victim)?
            .exec(cmd, Duration::from_secs(1200))?;
        if rc == 2 && out.contains("no blank disk") && t_cmd.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        break (rc, out);
    };
    let took = t_cmd.elapsed().as_secs_f64();
    // What the technician saw, kept with the consoles.
    let _ = std::fs::write(
        ctx.run_dir.join(format!("{victim}-raid-replace.txt")),
        format!("$ {cmd}\n{out}(exit {rc})\n"),
    );
    let json: Option<serde_json::Value> = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l.trim()).ok());
    let Some(report) = json.filter(|_| rc == 0) else {
        return Err(Step::Fail(format!(
            "`{cmd}` on {victim} exited {rc}: {}",
            out.trim()
        )));
    };
    let added: Vec<String> = report["added"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{} <- {}",
                        x["array"].as_str().unwrap_or("?"),
                        x["partition"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if added.len() < 2 || report["clean"] != serde_json::Value::Bool(true) {
        return Err(Step::Fail(format!(
            "`{cmd}` on {victim} did not complete both mirrors: {report}"
        )));
    }
    let rebuild = report["rebuild_secs"].as_f64().unwrap_or(0.0);
    ctx.figure("replace command", took, "s");
    ctx.figure("md rebuild", rebuild, "s");
    ctx.step(&format!(
        "`{cmd}` on {victim}: /dev/{} partitioned like /dev/{}, {}, rebuilt in {rebuild:.1}s (command {took:.1}s)",
        report["disk"].as_str().unwrap_or("?"),
        report["survivor"].as_str().unwrap_or("?"),
        added.join(", ")
    ));
    let recovery = console
        .lines_since(mark)
        .into_iter()
        .find(|l| l.contains("md: recovery of RAID array"));
    match recovery {
        Some(l) => ctx.step(&format!("{victim} kernel: {}", l.trim())),
        None => {
            return Err(Step::Fail(format!(
                "{victim}: the command reported clean arrays but the kernel printed no `md: recovery of RAID array` line"
            )))
        }
    }
    // The RAID check while the mirrors rebuild: WARNING (the node is still
    // on one disk), whatever the other checks say at that moment.
    let lines = console.lines_since(mark);
    let rebuilding = lines
        .iter()
        .filter_map(|l| health_line(l))
        .find_map(|(_, sum)| {
            let raid = &sum[sum.find("raid WARNING: ")?..];
            raid.contains("rebuilding")
                .then(|| raid.split(';').next().unwrap_or(raid).to_owned())
        });
    match rebuilding {
        Some(r) => ctx.step(&format!("{victim} health during the rebuild: {r}")),
        None => {
            return Err(Step::Fail(format!(
                "{victim} never reported the RAID check WARNING (rebuilding) during the rebuild"
            )))
        }
    }
    ctx.health_everywhere("OK")?;
    no_vip_moved(ctx, &before, t0)?;
    ctx.step("no shared address moved during the failure and the rebuild");
    Ok(Outcome::Pass)
}

fn uplink_loss(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    let ch = ctx.chassis()?;
    ch.set_uplinks("io1", false)?;
    let oper = ch.switches[0].get(".1.3.6.1.2.1.2.2.1.8.43")?;
    let other = ch.switches[1].get(".1.3.6.1.2.1.2.2.1.8.43")?;
    if oper != "2" || other != "1" {
        return Err(Step::Fail(format!(
            "after io1 uplink loss: io1 EXT1 ifOperStatus {oper}, io2 {other}"
        )));
    }
    ch.set_uplinks("io1", true)?;
    ctx.step("io1 uplink loss shows in IF-MIB (EXT1 down on io1 only) and restores");
    ctx.boot_all()?;
    let before = ctx.masters()?;
    ctx.health_everywhere("OK")?;
    // What each node's io2 port has received so far: an active-backup
    // bond sends only on its active NIC, so frames arriving there show the
    // bond failed over to io2 (read on the wire, like the module would).
    let io2_ports: Vec<(String, String)> = ctx
        .chassis()?
        .nodes
        .iter()
        .filter_map(|n| {
            n.config
                .network
                .bond
                .slaves
                .iter()
                .find(|s| s.switch == "io2")
                .map(|s| (n.name().to_owned(), s.port.clone()))
        })
        .collect();
    let mut base = Vec::new();
    for (_, port) in &io2_ports {
        base.push(ctx.chassis()?.fabrics.stats("io2", port)?.rx);
    }
    let t0 = Instant::now();
    ctx.chassis()?.set_uplinks("io1", false)?;
    ctx.step("io1 uplinks down (fabric, IF-MIB, L2 failover of its node ports)");
    let ch = ctx.chassis()?;
    for ((name, port), rx0) in io2_ports.iter().zip(&base) {
        crate::proc::poll(Duration::from_secs(60), || {
            ch.fabrics
                .stats("io2", port)
                .ok()
                .filter(|s| s.rx >= rx0 + 3)
        })
        .ok_or_else(|| {
            Step::Fail(format!(
                "{name}: bond did not fail over to io2: no frames from it on io2:{port} within 60 s"
            ))
        })?;
    }
    ctx.step("every node's bond sends on its io2 NIC (frames arrive on its io2 port)");
    ctx.health_everywhere("WARNING")?;
    no_vip_moved(ctx, &before, t0)?;
    ctx.step("no shared address moved");
    ctx.chassis()?.set_uplinks("io2", false)?;
    ctx.step("io2 uplinks down too: no module has an uplink");
    ctx.wait_health("CRITICAL on customer-facing nodes", &|n| {
        customer_facing(n).then_some("CRITICAL")
    })?;
    ctx.chassis()?.set_uplinks("io1", true)?;
    ctx.chassis()?.set_uplinks("io2", true)?;
    ctx.step("uplinks of both modules restored");
    ctx.health_everywhere("OK")?;
    let m = ctx.masters()?;
    ctx.step(&format!(
        "one master per VRID after the uplinks came back: {m:?}"
    ));
    Ok(Outcome::Pass)
}

/// A node with an address on the external (customers') network.
fn customer_facing(n: &Node) -> bool {
    n.config
        .network
        .addresses
        .iter()
        .any(|a| a.network == "external")
}

fn psu_failure(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    let ch = ctx.chassis()?;
    let r = ch.set_psu(2, false)?;
    let rows = ch.cmm.psu_rows()?;
    let failed: Vec<&(String, String)> =
        rows.iter().filter(|(_, s)| s.contains("Failure")).collect();
    if r != Redundancy::Degraded || failed.len() != 1 {
        return Err(Step::Fail(format!(
            "after failing PSU2: redundancy {r:?}, ipmitool rows {rows:?}"
        )));
    }
    ctx.step("PSU2 failed on the CMM: ipmitool shows it, redundancy degraded");
    ctx.chassis()?.set_psu(2, true)?;
    ctx.boot_all()?;
    let before = ctx.masters()?;
    ctx.health_everywhere("OK")?;
    let t0 = Instant::now();
    let r = ctx.chassis()?.set_psu(2, false)?;
    ctx.step(&format!("PSU2 failed: 5 of 6 working, redundancy {r:?}"));
    ctx.health_everywhere("WARNING")?;
    let ch = ctx.chassis()?;
    let mut r = Redundancy::Degraded;
    for bay in [4, 5, 6] {
        r = ch.set_psu(bay, false)?;
    }
    let down = ch
        .cmm
        .psu_rows()?
        .iter()
        .filter(|(_, s)| s.contains("Failure"))
        .count();
    if r != Redundancy::Insufficient || down != 4 {
        return Err(Step::Fail(format!(
            "4 PSUs failed: redundancy {r:?}, ipmitool shows {down} failed"
        )));
    }
    ctx.step("PSU2,4,5,6 failed: 2 of 6 working, below N=3 (ipmitool shows 4 failed)");
    ctx.health_everywhere("CRITICAL")?;
    for bay in [2, 4, 5, 6] {
        ctx.chassis()?.set_psu(bay, true)?;
    }
    ctx.step("all PSUs repaired");
    ctx.health_everywhere("OK")?;
    no_vip_moved(ctx, &before, t0)?;
    ctx.step("no shared address moved (the power tracker lowers both nodes alike)");
    Ok(Outcome::Pass)
}

fn split_brain(ctx: &mut Ctx) -> Result<Outcome, Step> {
    ctx.bring_up()?;
    ctx.boot_all()?;
    // The scenario's pair (on a shared chassis there are more nodes).
    let focus = ctx.focus_pair();
    let names: Vec<String> = ctx
        .chassis()?
        .nodes
        .iter()
        .filter(|n| focus.as_ref().is_none_or(|p| &n.config.pair.name == p))
        .map(|n| n.name().to_owned())
        .collect();
    let [a, b] = names.as_slice() else {
        return Err(Step::Fail(format!(
            "split brain needs one pair, got {names:?}"
        )));
    };
    let pair_name = ctx.chassis()?.node_by_name(a)?.config.pair.name.clone();
    let pair_vrids: Vec<u8> = pair_vips(ctx, &pair_name)?.iter().map(|v| v.vrid).collect();
    let before = ctx.masters()?;
    let t0 = Instant::now();
    ctx.chassis()?.partition(a, b, true);
    ctx.step(&format!("cut every path between {a} and {b}"));
    let ch = ctx.chassis()?;
    let both = crate::proc::poll(SETTLE, || {
        pair_vrids
            .iter()
            .all(|v| ch.fabrics.advertisers(*v, t0).len() == 2)
            .then(|| t0.elapsed())
    })
    .ok_or_else(|| {
        Step::Fail(format!(
            "the partition did not split the pair: not both of {a}, {b} advertise every VRID"
        ))
    })?;
    ctx.step(&format!(
        "split brain: both {a} and {b} master of every VRID after {:.1}s",
        both.as_secs_f64()
    ));
    let healed = Instant::now();
    ctx.chassis()?.partition(a, b, false);
    ctx.step("healed the partition");
    let m = ctx.elect(&before, SETTLE)?;
    ctx.step(&format!("one master per VRID afterwards, as before: {m:?}"));
    let ch = ctx.chassis()?;
    let vips: Vec<std::net::IpAddr> = ch
        .node_by_name(a)?
        .config
        .vips
        .iter()
        .map(|v| v.address)
        .collect();
    let announced: Vec<std::net::IpAddr> = ch
        .fabrics
        .seen_since(Some(healed))
        .into_iter()
        .filter_map(|s| match s.what {
            crate::fabric::Observed::Arp { ip } => Some(std::net::IpAddr::V4(ip)),
            _ => None,
        })
        .collect();
    for v in vips {
        if !announced.contains(&v) {
            return Err(Step::Fail(format!(
                "{v} was not re-announced (no ARP for it after the heal)"
            )));
        }
    }
    ctx.step("every shared address re-announced by ARP after the heal");
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_report_is_the_last_complete_block() {
        let c = "noise\nflexvisor-report: status begin\n{\"services\":[{\"name\":\"old\"}]}\nflexvisor-report: status end\n\
flexvisor-report: status begin\n{\"services\":[{\"name\":\"sip-lb\"},{\"name\":\"acpid\"}]}\n\nflexvisor-report: status end\n";
        let r = status_report(c).unwrap();
        assert_eq!(service_names(&r), ["sip-lb", "acpid"]);
        assert!(status_report("flexvisor-report: status begin\n{\"services\":").is_none());
    }

    #[test]
    fn health_and_vrrp_console_lines_are_read() {
        assert_eq!(
            health_line("flexvisor: health WARNING services WARNING: sip-lb starting\r"),
            Some(("WARNING", "services WARNING: sip-lb starting"))
        );
        assert_eq!(health_line("flexvisor: health OK"), Some(("OK", "")));
        assert_eq!(health_line("flexvisor: health maybe"), None);
        assert_eq!(
            health_line("flexvisor: raid check-changed: raid UNKNOWN -> OK: clean"),
            None
        );
        assert_eq!(
            vrrp_transition("flexvisor: lb1-internal Backup -> Master (priority 150): master down timer expired"),
            Some("lb1-internal Backup -> Master (priority 150): master down timer expired")
        );
        assert_eq!(
            vrrp_transition("flexvisor: raid check-changed: raid UNKNOWN -> OK: 2 array(s) clean"),
            None
        );
    }

    #[test]
    fn bound_is_master_down_interval_plus_slack() {
        let b = takeover_bound(100, 100);
        // 3 s + (256-100)/256 s + 2 s
        assert!(
            (b.as_secs_f64() - (5.0 + 156.0 / 256.0)).abs() < 1e-9,
            "{b:?}"
        );
    }

    #[test]
    fn every_issue_scenario_is_listed_once() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
        for n in [
            "cold-boot",
            "power-cut",
            "disk-failure",
            "uplink-loss",
            "psu-failure",
            "split-brain",
            "sip-call-failover",
            "smoke",
        ] {
            assert!(find(n).is_some(), "{n}");
        }
    }
}
