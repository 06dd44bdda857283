//! The services an image carries: definitions for
//! `/etc/flexvisor/services.d` per role, what each needs in the system
//! (the project's static binaries, Debian packages, helper definitions,
//! hook programs), and the per-bay configuration files, generated from the
//! node configuration into the config partition (`/config/services/`).
//!
//! The image's base services (`acpid` for the power button,
//! `console-report`, `mdadm-monitor`) are `boot = true`: flexvisor runs
//! them on every node whatever the role lists.
//!
//! Secrets never enter the image: generated files name them as
//! `@secret:NAME@`, and `/usr/libexec/flexvisor/run-service` fills them in
//! at start from the node's secrets file (`/etc/flexvisor/secrets.toml` ->
//! `/config/secrets.toml`, `name = value` lines).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use chassis::{NodeConfig, RoleKind};

/// Base services of every image, by file name.
pub const BASE: &[(&str, &str)] = &[
    ("acpid.toml", include_str!("../data/services/acpid.toml")),
    (
        "console-report.toml",
        include_str!("../data/services/console-report.toml"),
    ),
    (
        "mdadm-monitor.toml",
        include_str!("../data/services/mdadm-monitor.toml"),
    ),
];

/// A node service this builder knows how to install and run.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub name: &'static str,
    /// Its `services.d` definition.
    pub definition: &'static str,
    /// Static project binaries it needs in `/usr/bin` (from the bin dir).
    pub binaries: &'static [&'static str],
    /// Debian packages whose programs it runs (see `builder::PACKAGE_FILES`).
    pub packages: &'static [&'static str],
    /// Helper services it `requires`, by name and definition.
    pub helpers: &'static [(&'static str, &'static str)],
}

/// Every node service the images can run.
pub const KNOWN: &[Known] = &[
    Known {
        name: "sip-lb",
        definition: include_str!("../data/services/sip-lb.toml"),
        binaries: &["sip-lb"],
        packages: &[],
        helpers: &[],
    },
    Known {
        name: "sip-proxy",
        definition: include_str!("../data/services/sip-proxy.toml"),
        binaries: &["sip-proxy"],
        packages: &[],
        helpers: &[],
    },
    Known {
        name: "mariadb",
        definition: include_str!("../data/services/mariadb.toml"),
        binaries: &[],
        packages: &["mariadb-server-core"],
        helpers: &[],
    },
    Known {
        name: "redis",
        definition: include_str!("../data/services/redis.toml"),
        binaries: &[],
        packages: &["redis-server", "redis-tools"],
        helpers: &[],
    },
    Known {
        name: "media-relay",
        definition: include_str!("../data/services/media-relay.toml"),
        binaries: &["media-relay"],
        packages: &[],
        helpers: &[],
    },
    Known {
        name: "billing",
        definition: include_str!("../data/services/billing.toml"),
        binaries: &["billing"],
        packages: &[],
        helpers: &[],
    },
    Known {
        name: "web-api",
        definition: include_str!("../data/services/web-api.toml"),
        binaries: &["web-api"],
        packages: &[],
        helpers: &[],
    },
];

/// Programs that hooks of the profile name, by path: the static binary
/// that provides them (installed in `/usr/bin`, the path a symlink to it).
pub const HOOK_PROGRAMS: &[(&str, &str)] = &[
    ("/usr/libexec/flexvisor/db-promote", "db-failover"),
    ("/usr/libexec/flexvisor/db-demote", "db-failover"),
    ("/usr/libexec/flexvisor/redis-promote", "db-failover"),
    ("/usr/libexec/flexvisor/redis-demote", "db-failover"),
];

/// Why a node's services cannot be provided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeedError {
    #[error("{hostname} (role {role}): the image builder has no service definition for `{service}` (known: {known}); flexvisor would refuse this node")]
    NoDefinition {
        hostname: String,
        role: String,
        service: String,
        known: String,
    },
    #[error("{hostname} (role {role}): hook `{path}` is not a program the image provides (known: {known})")]
    UnknownHook {
        hostname: String,
        role: String,
        path: String,
        known: String,
    },
}

/// What a node's services need in its system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// services.d files by file name (base services included).
    pub definitions: BTreeMap<String, String>,
    /// Static project binaries, with what needs each (for errors).
    pub binaries: BTreeMap<String, String>,
    /// Debian packages whose programs are installed.
    pub packages: Vec<String>,
    /// Symlinks (path in the system, target).
    pub symlinks: Vec<(String, String)>,
}

/// Everything the services and hooks of `n` need; an unknown service or
/// hook is an error (never a half image).
pub fn needs(n: &NodeConfig) -> Result<Needs, NeedError> {
    let mut out = Needs {
        definitions: BASE
            .iter()
            .map(|(f, b)| ((*f).to_owned(), (*b).to_owned()))
            .collect(),
        ..Needs::default()
    };
    let known = || KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", ");
    for s in n.services.iter().chain(&n.active_services) {
        let k = KNOWN
            .iter()
            .find(|k| k.name == s)
            .ok_or_else(|| NeedError::NoDefinition {
                hostname: n.hostname.clone(),
                role: n.role.as_str().to_owned(),
                service: s.clone(),
                known: known(),
            })?;
        out.definitions
            .insert(format!("{s}.toml"), k.definition.to_owned());
        for (h, body) in k.helpers {
            out.definitions
                .insert(format!("{h}.toml"), (*body).to_owned());
        }
        for b in k.binaries {
            out.binaries
                .entry((*b).to_owned())
                .or_insert_with(|| format!("service `{s}`"));
        }
        for p in k.packages {
            if !out.packages.iter().any(|x| x == p) {
                out.packages.push((*p).to_owned());
            }
        }
    }
    let hooks = n
        .hooks
        .iter()
        .flat_map(|h| h.master.iter().chain(&h.backup))
        .cloned()
        .collect::<Vec<_>>();
    for path in hooks {
        // A hook is a shell command line; its program is the first word.
        let prog = path.split_whitespace().next().unwrap_or("").to_owned();
        let (_, bin) = HOOK_PROGRAMS
            .iter()
            .find(|(p, _)| *p == prog)
            .ok_or_else(|| NeedError::UnknownHook {
                hostname: n.hostname.clone(),
                role: n.role.as_str().to_owned(),
                path: path.clone(),
                known: HOOK_PROGRAMS
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        out.binaries
            .entry((*bin).to_owned())
            .or_insert_with(|| format!("hook `{prog}`"));
        let link = (
            prog.trim_start_matches('/').to_owned(),
            format!("/usr/bin/{bin}"),
        );
        if !out.symlinks.contains(&link) {
            out.symlinks.push(link);
        }
    }
    Ok(out)
}

/// What a bay's configuration needs beyond its own node configuration,
/// taken from the profile: where its chassis sits, and the first db node
/// of its chassis (the proxies' replication source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// Position of the node's chassis in the profile (0 for the first).
    pub chassis_index: u32,
    /// Hostname and internal address of the first db node of the chassis.
    pub db_source: Option<(String, IpAddr)>,
}

impl Site {
    /// The site of `n` in profile `p`.
    pub fn of(p: &chassis::model::Profile, n: &NodeConfig) -> Site {
        let idx = p.chassis.iter().position(|c| c.name == n.chassis);
        let db_source = idx.and_then(|i| {
            p.chassis[i]
                .bays
                .iter()
                .filter(|b| b.role == RoleKind::Db.as_str())
                .min_by_key(|b| b.bay)
                .and_then(|b| {
                    let a = b
                        .addresses
                        .get("internal")
                        .or_else(|| b.addresses.get("management"))?;
                    Some((b.hostname.clone(), a.parse().ok()?))
                })
        });
        Site {
            chassis_index: idx.unwrap_or(0) as u32,
            db_source,
        }
    }
}

fn addr_on(n: &NodeConfig, network: &str) -> Option<IpAddr> {
    n.network
        .addresses
        .iter()
        .find(|a| a.network == network)
        .map(|a| a.address)
}

fn internal(n: &NodeConfig) -> Option<IpAddr> {
    addr_on(n, "internal").or_else(|| addr_on(n, "management"))
}

fn sock(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// The MariaDB `server-id`: the bay, plus 100 per chassis before this one,
/// unique across every db and proxy node of the deployment.
pub fn server_id(n: &NodeConfig, site: &Site) -> u32 {
    site.chassis_index * 100 + n.bay
}

fn has(n: &NodeConfig, service: &str) -> bool {
    n.services
        .iter()
        .chain(&n.active_services)
        .any(|s| s == service)
}

/// The database sip-proxy reads subscribers from (web-api writes it).
pub const PROVISIONING_DB: &str = "provisioning";
/// The central database of billing's CDRs and rating profiles.
pub const BILLING_DB: &str = "billing";

/// The db pair's shared internal address, as this node reaches it.
fn db_vip(n: &NodeConfig) -> Option<IpAddr> {
    n.cluster
        .pairs
        .iter()
        .find(|p| p.role == RoleKind::Db && p.chassis == n.chassis)
        .or_else(|| n.cluster.pairs.iter().find(|p| p.role == RoleKind::Db))
        .and_then(|p| p.vips.get("internal").or_else(|| p.vips.values().next()))
        .copied()
}

fn pair_vip(n: &NodeConfig) -> Option<IpAddr> {
    n.vips
        .iter()
        .find(|v| v.network == "internal")
        .map(|v| v.address)
        .or_else(|| internal(n))
}

fn media_relay_file(n: &NodeConfig, m: &mut BTreeMap<String, String>) {
    let addr = pair_vip(n).map(|a| a.to_string()).unwrap_or_default();
    let c = format!(
        "# Generated from node.toml by flexvisor-image: {} (bay {}).\n\
         control = \"127.0.0.1:2223\"\n\
         address = \"{addr}\"\n\
         port_min = 30000\n\
         port_max = 39999\n\
         timeout_secs = 60\n\
         freebind = true\n\
         \n\
         [redis]\n\
         url = \"redis://127.0.0.1:6379/\"\n\
         key_prefix = \"media-relay:{}:\"\n\
         \n\
         [metrics]\n\
         listen = \"127.0.0.1:9107\"\n",
        n.hostname, n.bay, n.pair.name
    );
    m.insert("media-relay.toml".to_owned(), c);
}

fn billing_file(n: &NodeConfig, m: &mut BTreeMap<String, String>) {
    let central = db_vip(n).map(|a| sock(a, 3306)).unwrap_or_default();
    let c = format!(
        "# Generated from node.toml by flexvisor-image: {} (bay {}).\n\
         node = \"{}\"\n\
         spool_dir = \"/data/spool/sip-proxy\"\n\
         state_dir = \"/data/billing\"\n\
         central_url = \"mysql://billing:@secret:billing.db_password@@{central}/{BILLING_DB}\"\n",
        n.hostname, n.bay, n.hostname
    );
    m.insert("billing.toml".to_owned(), c);
}

fn web_api_file(n: &NodeConfig, m: &mut BTreeMap<String, String>) {
    let central = db_vip(n).map(|a| sock(a, 3306)).unwrap_or_default();
    let c = format!(
        "# Generated from node.toml by flexvisor-image: {} (bay {}).\n\
         # Every address (freebind): the node serves on the pair's shared ones.\n\
         listen = \"0.0.0.0:443\"\n\
         freebind = true\n\
         database_url = \"mysql://webapi:@secret:web-api.db_password@@{central}/{PROVISIONING_DB}\"\n\
         \n\
         [tls]\n\
         cert = \"/run/web-api/cert.pem\"\n\
         key = \"/run/web-api/key.pem\"\n",
        n.hostname, n.bay
    );
    m.insert("web-api.toml".to_owned(), c);
}

fn mariadb_files(n: &NodeConfig, site: &Site, m: &mut BTreeMap<String, String>) {
    let db = n.role == RoleKind::Db;
    let mut c = format!(
        "# Generated from node.toml by flexvisor-image: {} (bay {}, role {}).\n\
         [mariadbd]\n\
         user = mysql\n\
         datadir = /data/mysql\n\
         tmpdir = /tmp\n\
         socket = /run/mysqld/mysqld.sock\n\
         pid-file = /run/mysqld/mysqld.pid\n\
         port = 3306\n\
         bind-address = {}\n\
         skip-name-resolve\n\
         character-set-server = utf8mb4\n\
         collation-server = utf8mb4_general_ci\n\
         performance-schema = OFF\n\
         innodb-buffer-pool-size = 64M\n\
         innodb-log-file-size = 16M\n\
         innodb-data-file-path = ibdata1:10M:autoextend\n\
         innodb-temp-data-file-path = ibtmp1:4M:autoextend\n\
         server-id = {}\n\
         relay-log = /data/mysql/relay\n\
         binlog-format = ROW\n",
        n.hostname,
        n.bay,
        n.role.as_str(),
        if db { "0.0.0.0" } else { "127.0.0.1" },
        server_id(n, site)
    );
    if db {
        // Master/master with the pair peer: both log (and pass on) every
        // change; keys interleave so both could take writes.
        let offset = if n.bay <= n.pair.peer.bay { 1 } else { 2 };
        let _ = write!(
            c,
            "log-bin = /data/mysql/binlog\n\
             log-slave-updates = ON\n\
             expire-logs-days = 3\n\
             auto-increment-increment = 2\n\
             auto-increment-offset = {offset}\n"
        );
    } else {
        // A read-only replica of the provisioning data.
        let _ = write!(
            c,
            "read-only = ON\n\
             replicate-do-db = {PROVISIONING_DB}\n"
        );
    }
    m.insert("mariadb.cnf".to_owned(), c);

    // Run at every start (init-file), secrets filled in then.
    let mut sql = String::from(
        "-- Generated from node.toml by flexvisor-image; run by mariadbd at every start.\n\
         SET sql_log_bin = 0;\n\
         CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '@secret:db.replication_password@';\n\
         ALTER USER 'repl'@'%' IDENTIFIED BY '@secret:db.replication_password@';\n\
         GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';\n",
    );
    if db {
        // The central clients: web-api (web pair) and billing (proxies).
        let _ = write!(
            sql,
            "CREATE DATABASE IF NOT EXISTS {PROVISIONING_DB};\n\
             CREATE DATABASE IF NOT EXISTS {BILLING_DB};\n\
             CREATE USER IF NOT EXISTS 'webapi'@'%' IDENTIFIED BY '@secret:web-api.db_password@';\n\
             ALTER USER 'webapi'@'%' IDENTIFIED BY '@secret:web-api.db_password@';\n\
             GRANT ALL ON {PROVISIONING_DB}.* TO 'webapi'@'%';\n\
             CREATE USER IF NOT EXISTS 'billing'@'%' IDENTIFIED BY '@secret:billing.db_password@';\n\
             ALTER USER 'billing'@'%' IDENTIFIED BY '@secret:billing.db_password@';\n\
             GRANT ALL ON {BILLING_DB}.* TO 'billing'@'%';\n\
             CREATE USER IF NOT EXISTS '@secret:mariadb.user@'@'%' IDENTIFIED BY '@secret:mariadb.password@';\n\
             ALTER USER '@secret:mariadb.user@'@'%' IDENTIFIED BY '@secret:mariadb.password@';\n\
             GRANT SUPER, READ_ONLY ADMIN, BINLOG MONITOR, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.* TO '@secret:mariadb.user@'@'%';\n"
        );
    }
    if has(n, "sip-proxy") {
        let _ = write!(
            sql,
            "CREATE USER IF NOT EXISTS 'sipproxy'@'127.0.0.1' IDENTIFIED BY '@secret:sip-proxy.db_password@';\n\
             ALTER USER 'sipproxy'@'127.0.0.1' IDENTIFIED BY '@secret:sip-proxy.db_password@';\n\
             GRANT SELECT ON {PROVISIONING_DB}.* TO 'sipproxy'@'127.0.0.1';\n"
        );
    }
    let source = if db {
        internal_peer(n).map(|a| (n.pair.peer.hostname.clone(), a))
    } else {
        site.db_source.clone()
    };
    if let Some((host, addr)) = source {
        let _ = write!(
            sql,
            "-- replication source: {host}\n\
             STOP SLAVE;\n\
             CHANGE MASTER TO MASTER_HOST = '{addr}', MASTER_PORT = 3306, MASTER_USER = 'repl', \
             MASTER_PASSWORD = '@secret:db.replication_password@', MASTER_USE_GTID = slave_pos, \
             MASTER_CONNECT_RETRY = 10;\n\
             START SLAVE;\n"
        );
    }
    m.insert("mariadb-init.sql".to_owned(), sql);
}

fn internal_peer(n: &NodeConfig) -> Option<IpAddr> {
    let a = &n.pair.peer.addresses;
    a.get("internal").or_else(|| a.get("management")).copied()
}

fn redis_file(n: &NodeConfig, m: &mut BTreeMap<String, String>) {
    // db pairs: the shared cache; proxy pairs: registrations and call
    // state. Both replicate to the pair's standby.
    let replicated = matches!(n.role, RoleKind::Db | RoleKind::Proxy);
    let mut c = format!(
        "# Generated from node.toml by flexvisor-image: {} (bay {}, role {}).\n",
        n.hostname,
        n.bay,
        n.role.as_str()
    );
    if replicated {
        // Reachable by the pair's peer (and, on db nodes, on the pair's
        // address), so bound to every address; the networks are the
        // chassis' own. Every node starts as a master; the VRRP hooks
        // (db-/redis-promote, db-/redis-demote) make the backup a replica
        // of the master.
        c.push_str(
            "# Master or replica per VRRP state: the db-failover hooks switch it.\n\
             bind * -::*\nprotected-mode no\n\
             # One replica per pair: start its full resync at once instead\n\
             # of waiting for more replicas to join the transfer.\n\
             repl-diskless-sync-delay 0\n",
        );
    } else {
        c.push_str("bind 127.0.0.1 -::1\nprotected-mode yes\n");
    }
    c.push_str(
        "port 6379\n\
         daemonize no\n\
         supervised systemd\n\
         logfile \"\"\n\
         dir /data/redis\n\
         save \"\"\n\
         appendonly no\n\
         replica-read-only yes\n\
         maxmemory-policy noeviction\n",
    );
    m.insert("redis.conf".to_owned(), c);
}

fn sip_proxy_file(n: &NodeConfig, m: &mut BTreeMap<String, String>) {
    let vip = n
        .vips
        .iter()
        .find(|v| v.network == "internal")
        .map(|v| v.address)
        .or_else(|| internal(n));
    let rr = vip.map(|a| sock(a, 5060)).unwrap_or_default();
    let c = format!(
        "# Generated from node.toml by flexvisor-image: {} (bay {}).\n\
         # The lbs send to the pair's shared address; listening on every\n\
         # address lets the node take it over without restarting.\n\
         listen = \"0.0.0.0:5060\"\n\
         record_route = \"{rr}\"\n\
         node = \"{}\"\n\
         domains = [@list:sip.domains@]\n\
         database_url = \"mysql://sipproxy:@secret:sip-proxy.db_password@@127.0.0.1:3306/{PROVISIONING_DB}\"\n\
         redis_url = \"redis://127.0.0.1:6379/\"\n\
         # MD5 challenged first: most phones answer only the first one.\n\
         algorithms = [\"MD5\", \"SHA-256\"]\n\
         spool_dir = \"/data/spool/sip-proxy\"\n\
         nonce_secret = \"@secret:sip-proxy.nonce_secret@\"\n",
        n.hostname, n.bay, n.hostname
    );
    m.insert("sip-proxy.toml".to_owned(), c);
}

/// Per-bay configuration files for `/config/services/`, by file name.
pub fn node_files(n: &NodeConfig, site: &Site) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if has(n, "sip-lb") {
        let mut s = String::from("# Generated from node.toml by flexvisor-image.\n[listen]\n");
        let ext_vip = n
            .vips
            .iter()
            .find(|v| v.network == "external")
            .map(|v| v.address);
        if let Some(ext) = ext_vip.or_else(|| addr_on(n, "external")) {
            let _ = writeln!(s, "udp = \"{}\"", sock(ext, 5060));
        }
        if let Some(int) = internal(n) {
            let _ = writeln!(s, "internal = \"{}\"", sock(int, 5060));
        }
        for p in n
            .cluster
            .pairs
            .iter()
            .filter(|p| p.role == RoleKind::Proxy && p.reachable)
        {
            if let Some(vip) = p.vips.get("internal").or_else(|| p.vips.values().next()) {
                let _ = write!(
                    s,
                    "\n[[proxy]]\nname = \"{}\"\naddress = \"{}\"\n",
                    p.name,
                    sock(*vip, 5060)
                );
            }
        }
        m.insert("sip-lb.toml".to_owned(), s);
    }
    if has(n, "mariadb") {
        mariadb_files(n, site, &mut m);
    }
    if has(n, "redis") {
        redis_file(n, &mut m);
    }
    if has(n, "sip-proxy") {
        sip_proxy_file(n, &mut m);
    }
    if has(n, "media-relay") {
        media_relay_file(n, &mut m);
    }
    if has(n, "billing") {
        billing_file(n, &mut m);
    }
    if has(n, "web-api") {
        web_api_file(n, &mut m);
    }
    m
}

/// The secrets the generated files of `n` name (`@secret:NAME@`), sorted.
pub fn secrets_named(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for body in files.values() {
        let mut rest = body.as_str();
        let next = |r: &str| match (r.find("@secret:"), r.find("@list:")) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        while let Some(i) = next(rest) {
            let start = i + if rest[i..].starts_with("@list:") {
                6
            } else {
                8
            };
            let after = &rest[start..];
            let Some(end) = after.find('@') else { break };
            let name = after[..end].to_owned();
            if !out.contains(&name) {
                out.push(name);
            }
            rest = &after[end + 1..];
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(profile: &str, bay: u32) -> (chassis::model::Profile, NodeConfig) {
        let path = format!(
            "{}/../chassis-profiles/{profile}",
            env!("CARGO_MANIFEST_DIR")
        );
        let l = chassis::load_file(std::path::Path::new(&path)).unwrap();
        let n = chassis::node::resolve(&l.profile, bay, None).unwrap();
        (l.profile, n)
    }

    #[test]
    fn lb_gets_sip_lb_with_its_addresses_and_the_proxy_pairs() {
        let (p, n) = node("c5-50k.toml", 5);
        let need = needs(&n).unwrap();
        assert_eq!(need.binaries.keys().collect::<Vec<_>>(), ["sip-lb"]);
        assert!(need.packages.is_empty());
        let f = node_files(&n, &Site::of(&p, &n));
        let cfg = &f["sip-lb.toml"];
        // Phones reach the pair's shared address (bound with IP_FREEBIND
        // on the backup too), not the node's own.
        assert!(cfg.contains("udp = \"198.51.100.152:5060\""), "{cfg}");
        assert!(cfg.contains("internal = \"10.20.1.105:5060\""), "{cfg}");
        assert!(cfg.contains("[[proxy]]"), "{cfg}");
        assert!(need.definitions.contains_key("sip-lb.toml"));
        assert!(need.definitions.contains_key("acpid.toml"));
    }

    #[test]
    fn db_pair_replicates_master_master_with_its_peer() {
        let (p, a) = node("c5-50k.toml", 3);
        let (_, b) = node("c5-50k.toml", 4);
        let need = needs(&a).unwrap();
        assert_eq!(
            need.packages,
            ["mariadb-server-core", "redis-server", "redis-tools"]
        );
        assert_eq!(
            need.binaries["db-failover"],
            "hook `/usr/libexec/flexvisor/db-promote`"
        );
        assert!(need.symlinks.contains(&(
            "usr/libexec/flexvisor/db-demote".into(),
            "/usr/bin/db-failover".into()
        )));
        assert!(need.definitions.contains_key("redis.toml"));
        let fa = node_files(&a, &Site::of(&p, &a));
        let fb = node_files(&b, &Site::of(&p, &b));
        assert!(fa["mariadb.cnf"].contains("server-id = 3\n"));
        assert!(fb["mariadb.cnf"].contains("server-id = 4\n"));
        assert!(fa["mariadb.cnf"].contains("auto-increment-offset = 1\n"));
        assert!(fb["mariadb.cnf"].contains("auto-increment-offset = 2\n"));
        assert!(fa["mariadb.cnf"].contains("log-bin"));
        assert!(fa["mariadb-init.sql"].contains("MASTER_HOST = '10.20.1.104'"));
        assert!(fb["mariadb-init.sql"].contains("MASTER_HOST = '10.20.1.103'"));
        assert!(fa["redis.conf"].contains("bind * -::*"));
        assert!(fa["redis.conf"].contains("\nrepl-diskless-sync-delay 0\n"));
        assert!(!fa.contains_key("sip-proxy.toml"));
        assert_eq!(
            secrets_named(&fa),
            [
                "billing.db_password",
                "db.replication_password",
                "mariadb.password",
                "mariadb.user",
                "web-api.db_password"
            ]
        );
    }

    #[test]
    fn proxy_replicates_read_only_from_the_first_db_node_of_its_chassis() {
        let (p, n) = node("c5-50k.toml", 7);
        let site = Site::of(&p, &n);
        assert_eq!(
            site.db_source,
            Some(("db1a".into(), "10.20.1.103".parse().unwrap()))
        );
        let f = node_files(&n, &site);
        let cnf = &f["mariadb.cnf"];
        assert!(cnf.contains("read-only = ON") && cnf.contains("replicate-do-db = provisioning"));
        assert!(cnf.contains("bind-address = 127.0.0.1") && !cnf.contains("log-bin"));
        assert!(f["mariadb-init.sql"].contains("MASTER_HOST = '10.20.1.103'"));
        // Registrations and call state: the pair's standby replicates them.
        let redis = &f["redis.conf"];
        assert!(redis.contains("bind * -::*") && redis.contains("repl-diskless-sync-delay 0"));
        let need = needs(&n).unwrap();
        assert!(need.symlinks.contains(&(
            "usr/libexec/flexvisor/redis-promote".into(),
            "/usr/bin/db-failover".into()
        )));
        assert!(need.symlinks.contains(&(
            "usr/libexec/flexvisor/redis-demote".into(),
            "/usr/bin/db-failover".into()
        )));
        let sp = &f["sip-proxy.toml"];
        assert!(sp.contains("record_route = \"10.20.1.13:5060\""), "{sp}");
        assert!(sp.contains("node = \"proxy1a\""), "{sp}");
        assert!(sp.contains("algorithms = [\"MD5\", \"SHA-256\"]"), "{sp}");
        assert_eq!(
            secrets_named(&f),
            [
                "billing.db_password",
                "db.replication_password",
                "sip-proxy.db_password",
                "sip-proxy.nonce_secret",
                "sip.domains"
            ]
        );
        assert!(f["media-relay.toml"].contains("address = \"10.20.1.13\""));
        assert!(f["billing.toml"].contains("@10.20.1.11:3306/billing"));
    }

    #[test]
    fn server_ids_are_unique_across_chassis() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../chassis-profiles/c5-400k-2chassis.toml"
        );
        let l = chassis::load_file(std::path::Path::new(path)).unwrap();
        let mut ids = Vec::new();
        for (c, b) in chassis::node::bays(&l.profile) {
            let n = chassis::node::resolve(&l.profile, b, Some(c)).unwrap();
            if has(&n, "mariadb") {
                ids.push(server_id(&n, &Site::of(&l.profile, &n)));
            }
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn unknown_service_is_an_error_naming_it() {
        let (_, mut n) = node("c5-50k.toml", 5);
        n.services.push("voicemail".into());
        let e = needs(&n).unwrap_err().to_string();
        assert!(e.contains("`voicemail`") && e.contains("lb1a"), "{e}");
    }
}
