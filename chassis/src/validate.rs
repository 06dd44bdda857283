//! Semantic checks of a profile that parsed: every problem, not the first.
//!
//! Each check returns diagnostics with a field path; [`crate::load`] locates
//! them in the source. Checks never panic on any input (see the proptest in
//! `tests/profile_mutations.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Diagnostic, FieldPath};
use crate::model::{Profile, Snmp};
use crate::roles::RoleKind;

/// Bays of an IBM Flex Enterprise Chassis.
pub const BAYS: std::ops::RangeInclusive<u32> = 1..=14;
/// Network names a node may have addresses on.
pub const NETWORKS: [&str; 3] = ["management", "internal", "external"];

/// Every semantic problem in `p`.
pub fn check(p: &Profile) -> Vec<Diagnostic> {
    let mut v = Checker {
        p,
        out: Vec::new(),
        nets: BTreeMap::new(),
        addresses: HashMap::new(),
    };
    v.top();
    v.networks();
    v.roles();
    v.chassis();
    v.pairs();
    v.out
}

struct Checker<'a> {
    p: &'a Profile,
    out: Vec<Diagnostic>,
    nets: BTreeMap<&'a str, IpNet>,
    /// Every address in use, with the field that first used it.
    addresses: HashMap<IpAddr, FieldPath>,
}

impl<'a> Checker<'a> {
    fn err(&mut self, code: &'static str, path: FieldPath, msg: impl Into<String>, label: &str) {
        self.out.push(Diagnostic::new(code, path, msg).label(label));
    }

    fn err_help(
        &mut self,
        code: &'static str,
        path: FieldPath,
        msg: impl Into<String>,
        label: &str,
        help: impl Into<String>,
    ) {
        self.out
            .push(Diagnostic::new(code, path, msg).label(label).help(help));
    }

    fn top(&mut self) {
        let root = FieldPath::root();
        if self.p.schema != 1 {
            self.err(
                "schema",
                root.key("schema"),
                format!("profile schema {} is not supported", self.p.schema),
                "only schema 1 exists",
            );
        }
        if !is_name(&self.p.name) {
            self.err(
                "bad-name",
                root.key("name"),
                format!("deployment name {:?} is not a plain name", self.p.name),
                "use letters, digits and '-'",
            );
        }
        let repl = self.p.database.replication.as_str();
        if !matches!(repl, "master-master" | "galera") {
            self.err(
                "db-replication",
                root.key("database").key("replication"),
                format!("unknown database replication {repl:?}"),
                "expected \"master-master\" or \"galera\"",
            );
        }
        let scope = self.p.load_balancing.proxy_scope.as_str();
        if !matches!(scope, "system" | "chassis") {
            self.err(
                "lb-scope",
                root.key("load_balancing").key("proxy_scope"),
                format!("unknown proxy scope {scope:?}"),
                "expected \"system\" or \"chassis\"",
            );
        }
        if !matches!(
            self.p.bond.mode.as_str(),
            "active-backup" | "802.3ad" | "balance-alb"
        ) {
            self.err(
                "bond-mode",
                root.key("bond").key("mode"),
                format!("unknown bonding mode {:?}", self.p.bond.mode),
                "expected \"active-backup\", \"802.3ad\" or \"balance-alb\"",
            );
        }
        if self.p.chassis.is_empty() {
            self.err(
                "no-chassis",
                root.key("chassis"),
                "the profile has no chassis",
                "add a [[chassis]] table",
            );
        }
        let db_pairs = self
            .p
            .chassis
            .iter()
            .flat_map(|c| &c.bays)
            .filter(|b| b.role == "db")
            .map(|b| b.pair.as_str())
            .collect::<BTreeSet<_>>()
            .len();
        if db_pairs > 1 && repl == "master-master" {
            self.err_help(
                "db-replication",
                root.key("database").key("replication"),
                format!("{db_pairs} db pairs cannot replicate master/master"),
                "more than one db pair needs galera",
                "set replication = \"galera\"",
            );
        }
    }

    fn networks(&mut self) {
        let root = FieldPath::root().key("networks");
        for (name, net) in &self.p.networks {
            let path = root.key(name);
            if !NETWORKS.contains(&name.as_str()) {
                self.err(
                    "unknown-network",
                    path.clone(),
                    format!("unknown network {name:?}"),
                    "expected management, internal or external",
                );
            }
            match net.subnet.parse::<IpNet>() {
                Ok(n) => {
                    self.nets.insert(name, n);
                    if let Some(gw) = &net.gateway {
                        self.address_in(&path.key("gateway"), gw, name, false);
                    }
                }
                Err(_) => self.err(
                    "bad-subnet",
                    path.key("subnet"),
                    format!("{:?} is not a subnet", net.subnet),
                    "expected a prefix such as 10.20.0.0/22",
                ),
            }
        }
        for name in NETWORKS {
            if !self.p.networks.contains_key(name) {
                self.err(
                    "missing-network",
                    root.clone(),
                    format!("network `{name}` is not defined"),
                    "every deployment needs management, internal and external",
                );
            }
        }
    }

    fn roles(&mut self) {
        let root = FieldPath::root().key("roles");
        for (name, role) in &self.p.roles {
            let path = root.key(name);
            let Ok(kind) = name.parse::<RoleKind>() else {
                self.err(
                    "unknown-role",
                    path,
                    format!("unknown role {name:?}"),
                    "expected web, db, lb or proxy",
                );
                continue;
            };
            for required in kind.required_services() {
                if !role.services.iter().any(|s| s == required) {
                    self.err_help(
                        "missing-service",
                        path.key("services"),
                        format!("role `{name}` does not run its required service `{required}`"),
                        "required service missing",
                        format!(
                            "a {name} node needs: {}",
                            kind.required_services().join(", ")
                        ),
                    );
                }
            }
            let mut seen = BTreeSet::new();
            for (i, s) in role.services.iter().enumerate() {
                if !seen.insert(s) {
                    self.err(
                        "duplicate-service",
                        path.key("services").index(i),
                        format!("service `{s}` is listed twice"),
                        "listed twice",
                    );
                }
            }
            for (i, s) in role.active_services.iter().enumerate() {
                if !role.services.contains(s) {
                    self.err(
                        "unknown-service",
                        path.key("active_services").index(i),
                        format!("active service `{s}` is not among the role's services"),
                        "not in `services`",
                    );
                }
            }
        }
        for kind in RoleKind::ALL {
            let used = self
                .p
                .chassis
                .iter()
                .flat_map(|c| &c.bays)
                .any(|b| b.role == kind.as_str());
            if used && !self.p.roles.contains_key(kind.as_str()) {
                self.err(
                    "missing-role",
                    root.clone(),
                    format!("role `{kind}` is used by bays but has no [roles.{kind}] table"),
                    "role not defined",
                );
            }
        }
    }

    fn chassis(&mut self) {
        let mut chassis_names = BTreeSet::new();
        let mut hostnames: HashMap<&str, FieldPath> = HashMap::new();
        for (ci, c) in self.p.chassis.iter().enumerate() {
            let cpath = FieldPath::root().key("chassis").index(ci);
            if !chassis_names.insert(c.name.as_str()) {
                self.err(
                    "duplicate-chassis",
                    cpath.key("name"),
                    format!("chassis name `{}` is used twice", c.name),
                    "duplicate",
                );
            }
            self.address_in(
                &cpath.key("cmm").key("address"),
                &c.cmm.address,
                "management",
                true,
            );
            if let Some(ipmi) = &c.cmm.ipmi {
                if !matches!(ipmi.interface.as_str(), "lanplus" | "lan") {
                    self.err(
                        "ipmi-interface",
                        cpath.key("cmm").key("ipmi").key("interface"),
                        format!("unknown IPMI interface {:?}", ipmi.interface),
                        "expected \"lanplus\" or \"lan\"",
                    );
                }
                self.credential_ref(
                    &cpath.key("cmm").key("ipmi").key("credentials"),
                    &ipmi.credentials,
                );
            }
            if let Some(snmp) = &c.cmm.snmp {
                self.snmp(&cpath.key("cmm").key("snmp"), snmp);
            }
            if c.cmm.ipmi.is_none() && c.cmm.snmp.is_none() {
                self.err(
                    "cmm-access",
                    cpath.key("cmm"),
                    "the CMM has neither ipmi nor snmp access",
                    "power cannot be read",
                );
            }
            self.power(ci);
            let switch_names = self.switches(ci);
            let mut bays: HashMap<u32, FieldPath> = HashMap::new();
            let mut ports: HashMap<(String, String), FieldPath> = HashMap::new();
            for (bi, b) in c.bays.iter().enumerate() {
                let bpath = cpath.key("bays").index(bi);
                if !BAYS.contains(&b.bay) {
                    self.err_help(
                        "bay-range",
                        bpath.key("bay"),
                        format!("bay {} does not exist in a Flex chassis", b.bay),
                        "outside 1..14",
                        "node bays are numbered 1 to 14",
                    );
                } else if let Some(first) = bays.insert(b.bay, bpath.key("bay")) {
                    self.err(
                        "duplicate-bay",
                        bpath.key("bay"),
                        format!(
                            "bay {} of chassis `{}` is used twice (first at {first})",
                            b.bay, c.name
                        ),
                        "duplicate bay",
                    );
                }
                if !is_name(&b.hostname) {
                    self.err(
                        "bad-hostname",
                        bpath.key("hostname"),
                        format!("{:?} is not a valid hostname", b.hostname),
                        "use lowercase letters, digits and '-'",
                    );
                } else if let Some(first) = hostnames.insert(&b.hostname, bpath.key("hostname")) {
                    self.err(
                        "duplicate-hostname",
                        bpath.key("hostname"),
                        format!("hostname `{}` is used twice (first at {first})", b.hostname),
                        "duplicate hostname",
                    );
                }
                if b.role.parse::<RoleKind>().is_err() {
                    self.err(
                        "unknown-role",
                        bpath.key("role"),
                        format!("unknown role {:?}", b.role),
                        "expected web, db, lb or proxy",
                    );
                }
                for (net, addr) in &b.addresses {
                    let apath = bpath.key("addresses").key(net);
                    if !self.p.networks.contains_key(net) {
                        self.err(
                            "unknown-network",
                            apath,
                            format!("address on undefined network `{net}`"),
                            "no such network",
                        );
                        continue;
                    }
                    self.address_in(&apath, addr, net, true);
                }
                for net in ["management", "internal"] {
                    if !b.addresses.contains_key(net) {
                        self.err(
                            "missing-address",
                            bpath.key("addresses"),
                            format!("`{}` has no {net} address", b.hostname),
                            "every node needs management and internal addresses",
                        );
                    }
                }
                if b.nics.len() != 2 {
                    self.err(
                        "nic-count",
                        bpath.key("nics"),
                        format!(
                            "`{}` has {} NICs; a node has one to each switch module",
                            b.hostname,
                            b.nics.len()
                        ),
                        "expected two NICs",
                    );
                }
                let mut nic_switches = BTreeSet::new();
                for (ni, nic) in b.nics.iter().enumerate() {
                    let npath = bpath.key("nics").index(ni);
                    if !switch_names.contains(nic.switch.as_str()) {
                        self.err(
                            "unknown-switch",
                            npath.key("switch"),
                            format!(
                                "NIC {} names unknown switch module `{}`",
                                nic.name, nic.switch
                            ),
                            "no such switch",
                        );
                    } else if !nic_switches.insert(nic.switch.as_str()) {
                        self.err(
                            "nic-switch",
                            npath.key("switch"),
                            format!(
                                "both NICs of `{}` go to switch module `{}`",
                                b.hostname, nic.switch
                            ),
                            "no redundancy",
                        );
                    }
                    if port_number(&nic.port, "INTA").is_none_or(|n| !BAYS.contains(&n)) {
                        self.err(
                            "bad-port",
                            npath.key("port"),
                            format!("{:?} is not a node-facing port", nic.port),
                            "expected INTA1..INTA14",
                        );
                    }
                    if let Some(first) =
                        ports.insert((nic.switch.clone(), nic.port.clone()), npath.key("port"))
                    {
                        self.err(
                            "duplicate-port",
                            npath.key("port"),
                            format!(
                                "port {} of switch `{}` is named twice (first at {first})",
                                nic.port, nic.switch
                            ),
                            "port named twice",
                        );
                    }
                }
            }
        }
    }

    fn power(&mut self, ci: usize) {
        let c = &self.p.chassis[ci];
        let path = FieldPath::root().key("chassis").index(ci).key("power");
        let n = c.power.n;
        let mut feeds: BTreeMap<&str, u32> = BTreeMap::new();
        let mut bays = BTreeSet::new();
        for (i, psu) in c.power.psus.iter().enumerate() {
            let ppath = path.key("psus").index(i);
            if !(1..=6).contains(&psu.bay) {
                self.err(
                    "psu-bay",
                    ppath.key("bay"),
                    format!("PSU bay {} does not exist", psu.bay),
                    "expected 1..6",
                );
            } else if !bays.insert(psu.bay) {
                self.err(
                    "duplicate-psu",
                    ppath.key("bay"),
                    format!("PSU bay {} is listed twice", psu.bay),
                    "listed twice",
                );
            }
            if !matches!(psu.feed.as_str(), "mains" | "ups") {
                self.err(
                    "psu-feed",
                    ppath.key("feed"),
                    format!("unknown feed {:?}", psu.feed),
                    "expected \"mains\" or \"ups\"",
                );
            }
            *feeds.entry(psu.feed.as_str()).or_default() += 1;
        }
        let mains = feeds.get("mains").copied().unwrap_or(0);
        let ups = feeds.get("ups").copied().unwrap_or(0);
        if n == 0 || mains != n || ups != n {
            self.err_help(
                "power-redundancy",
                path.key("psus"),
                format!(
                    "PSU feeds do not add up to N+N with N={n}: {mains} on mains, {ups} on ups"
                ),
                "not N+N",
                format!("list {n} PSUs with feed = \"mains\" and {n} with feed = \"ups\""),
            );
        }
    }

    fn switches(&mut self, ci: usize) -> BTreeSet<&'a str> {
        let c = &self.p.chassis[ci];
        let path = FieldPath::root().key("chassis").index(ci).key("switches");
        let mut names = BTreeSet::new();
        let mut io_bays = BTreeSet::new();
        if c.switches.len() != 2 {
            self.err(
                "switch-count",
                path.clone(),
                format!(
                    "chassis `{}` has {} switch modules; it needs two EN2092",
                    c.name,
                    c.switches.len()
                ),
                "expected two",
            );
        }
        for (si, s) in c.switches.iter().enumerate() {
            let spath = path.index(si);
            if !names.insert(s.name.as_str()) {
                self.err(
                    "duplicate-switch",
                    spath.key("name"),
                    format!("switch module name `{}` is used twice", s.name),
                    "duplicate",
                );
            }
            if !(1..=4).contains(&s.bay) || !io_bays.insert(s.bay) {
                self.err(
                    "switch-bay",
                    spath.key("bay"),
                    format!("I/O bay {} is out of range or used twice", s.bay),
                    "expected a distinct I/O bay 1..4",
                );
            }
            if s.model != "EN2092" {
                self.err(
                    "switch-model",
                    spath.key("model"),
                    format!("unsupported switch model {:?}", s.model),
                    "only EN2092 is supported",
                );
            }
            self.address_in(&spath.key("address"), &s.address, "management", true);
            self.snmp(&spath.key("snmp"), &s.snmp);
            let mut seen = BTreeSet::new();
            for (ui, u) in s.uplinks.iter().enumerate() {
                let upath = spath.key("uplinks").index(ui);
                if port_number(u, "EXT").is_none_or(|n| !(1..=14).contains(&n)) {
                    self.err_help(
                        "bad-port",
                        upath.clone(),
                        format!("{u:?} is not an uplink port"),
                        "expected EXT1..EXT14",
                        "EXT1..EXT10 are 1GbE, EXT11..EXT14 10GbE (licensed)",
                    );
                }
                if !seen.insert(u.as_str()) {
                    self.err(
                        "duplicate-port",
                        upath,
                        format!("port {u} of switch `{}` is named twice", s.name),
                        "port named twice",
                    );
                }
            }
            if s.uplinks.is_empty() {
                self.err(
                    "no-uplinks",
                    spath.key("uplinks"),
                    format!("switch module `{}` has no uplinks", s.name),
                    "no path to the outside",
                );
            }
        }
        names
    }

    fn pairs(&mut self) {
        // Members of each pair, from the bays.
        let mut members: BTreeMap<&str, Vec<(&str, &str, FieldPath)>> = BTreeMap::new();
        for (ci, c) in self.p.chassis.iter().enumerate() {
            for (bi, b) in c.bays.iter().enumerate() {
                let path = FieldPath::root()
                    .key("chassis")
                    .index(ci)
                    .key("bays")
                    .index(bi)
                    .key("pair");
                members
                    .entry(&b.pair)
                    .or_default()
                    .push((&b.hostname, &b.role, path));
            }
        }
        let mut declared = BTreeSet::new();
        let mut vrids: HashMap<(&str, u32), FieldPath> = HashMap::new();
        for (pi, pair) in self.p.pairs.iter().enumerate() {
            let ppath = FieldPath::root().key("pairs").index(pi);
            if !declared.insert(pair.name.as_str()) {
                self.err(
                    "duplicate-pair",
                    ppath.key("name"),
                    format!("pair `{}` is declared twice", pair.name),
                    "duplicate",
                );
            }
            let m = members.get(pair.name.as_str()).cloned().unwrap_or_default();
            let distinct: BTreeSet<&str> = m.iter().map(|(h, _, _)| *h).collect();
            if m.len() != 2 || distinct.len() != 2 {
                self.err_help(
                    "pair-members",
                    ppath.key("name"),
                    format!(
                        "pair `{}` has {} member(s) ({}); a pair has exactly two distinct nodes",
                        pair.name,
                        m.len(),
                        m.iter().map(|(h, _, _)| *h).collect::<Vec<_>>().join(", ")
                    ),
                    "not a pair",
                    "set `pair` on exactly two bays",
                );
            }
            let roles: BTreeSet<&str> = m.iter().map(|(_, r, _)| *r).collect();
            if roles.len() > 1 {
                self.err(
                    "pair-roles",
                    ppath.key("name"),
                    format!("pair `{}` mixes roles {:?}", pair.name, roles),
                    "members must share a role",
                );
            }
            for (vi, vip) in pair.vips.iter().enumerate() {
                let vpath = ppath.key("vips").index(vi);
                if !self.p.networks.contains_key(&vip.network) {
                    self.err(
                        "unknown-network",
                        vpath.key("network"),
                        format!("VIP on undefined network `{}`", vip.network),
                        "no such network",
                    );
                } else {
                    self.address_in(&vpath.key("address"), &vip.address, &vip.network, true);
                }
                if !(1..=255).contains(&vip.vrid) {
                    self.err(
                        "vrid-range",
                        vpath.key("vrid"),
                        format!("VRRP router id {} is outside 1..255", vip.vrid),
                        "outside 1..255",
                    );
                } else if let Some(first) =
                    vrids.insert((&vip.network, vip.vrid), vpath.key("vrid"))
                {
                    self.err(
                        "duplicate-vrid",
                        vpath.key("vrid"),
                        format!(
                            "VRRP router id {} is used twice on network `{}` (first at {first})",
                            vip.vrid, vip.network
                        ),
                        "duplicate router id",
                    );
                }
                if !(1..=4095).contains(&vip.advert_interval_cs) {
                    self.err(
                        "advert-interval",
                        vpath.key("advert_interval_cs"),
                        format!(
                            "advert interval {} cs is outside 1..4095",
                            vip.advert_interval_cs
                        ),
                        "RFC 5798 §5.2.7",
                    );
                }
                // accept = false (RFC 5798 Accept_Mode off) is valid: flexvisor-vrrp
                // drops traffic to the shared address on a non-owner master through
                // nf_tables, and still answers ARP/ND for it.
                for (host, prio) in &vip.priority {
                    if !distinct.contains(host.as_str()) {
                        self.err(
                            "priority-member",
                            vpath.key("priority").key(host),
                            format!(
                                "priority for `{host}`, which is not a member of pair `{}`",
                                pair.name
                            ),
                            "not a member",
                        );
                    }
                    if !(1..=255).contains(prio) {
                        self.err(
                            "priority-range",
                            vpath.key("priority").key(host),
                            format!("priority {prio} is outside 1..255"),
                            "outside 1..255",
                        );
                    }
                }
                for host in &distinct {
                    if !vip.priority.contains_key(*host) {
                        self.err(
                            "priority-missing",
                            vpath.key("priority"),
                            format!("no priority for member `{host}`"),
                            "missing member",
                        );
                    }
                }
                for (ti, t) in vip.track.iter().enumerate() {
                    let ok = matches!(t.check.as_str(), "raid" | "power" | "uplinks")
                        || t.check.strip_prefix("service:").is_some_and(is_name);
                    if !ok {
                        self.err(
                            "track-check",
                            vpath.key("track").index(ti).key("check"),
                            format!("unknown tracked check {:?}", t.check),
                            "expected raid, power, uplinks or service:<name>",
                        );
                    }
                }
            }
        }
        for (name, m) in &members {
            if !declared.contains(name) {
                if let Some((_, _, path)) = m.first() {
                    self.err_help(
                        "unknown-pair",
                        path.clone(),
                        format!("pair `{name}` is not declared"),
                        "no [[pairs]] entry",
                        "add a [[pairs]] table with its shared addresses",
                    );
                }
            }
        }
    }

    fn snmp(&mut self, path: &FieldPath, s: &Snmp) {
        if !matches!(s.version.as_str(), "2c" | "3") {
            self.err(
                "snmp-version",
                path.key("version"),
                format!("unsupported SNMP version {:?}", s.version),
                "expected \"2c\" or \"3\"",
            );
        }
        self.credential_ref(&path.key("credentials"), &s.credentials);
    }

    fn credential_ref(&mut self, path: &FieldPath, name: &str) {
        if !is_name(name) {
            self.err_help(
                "credential-ref",
                path.clone(),
                format!("{name:?} is not a credential name"),
                "name an entry of the secrets file",
                "credentials live in the secrets file; the profile only names them",
            );
        }
    }

    /// Check that `text` is an address inside network `net`, not used before.
    fn address_in(&mut self, path: &FieldPath, text: &str, net: &str, unique: bool) {
        let Ok(addr) = text.parse::<IpAddr>() else {
            self.err(
                "bad-address",
                path.clone(),
                format!("{text:?} is not an IP address"),
                "not an address",
            );
            return;
        };
        if let Some(subnet) = self.nets.get(net) {
            if !subnet.contains(&addr) || addr == subnet.network() {
                self.err(
                    "address-outside",
                    path.clone(),
                    format!("{addr} is outside the {net} network {subnet}"),
                    "outside its network",
                );
            }
        }
        if unique {
            if let Some(first) = self.addresses.get(&addr) {
                let first = first.clone();
                self.err(
                    "duplicate-address",
                    path.clone(),
                    format!("address {addr} is used twice (first at {first})"),
                    "used twice",
                );
            } else {
                self.addresses.insert(addr, path.clone());
            }
        }
    }
}

/// Lowercase host-style name: letters, digits and '-', not starting with '-'.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `INTA7` with prefix `INTA` → 7.
pub fn port_number(port: &str, prefix: &str) -> Option<u32> {
    let digits = port.strip_prefix(prefix)?;
    if digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}
