//! What a transition acts on: the local Redis and MariaDB, and the pair
//! peer's Redis (demote makes the local Redis its replica).
//!
//! In production the peer comes from the node configuration: the pair
//! peer's own address on the network of the db pair's VIP (`internal` in
//! the C5 profiles). Tests and operators can name everything with flags.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chassis::{NodeConfig, RoleKind};

use crate::credentials::Credentials;

/// Network whose peer address is used when the node has no VIP.
pub const DEFAULT_NETWORK: &str = "internal";

/// Why the targets could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read node configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node configuration {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("node configuration {path}: role is `{role}`; db-failover acts on db nodes, and with `--only redis` on proxy nodes")]
    NotDb { path: PathBuf, role: String },
    #[error(
        "node configuration {path}: pair peer {peer} has no address on network `{network}` \
         (it has: {known}); pass --peer-host"
    )]
    NoPeerAddress {
        path: PathBuf,
        peer: String,
        network: String,
        known: String,
    },
}

/// A Redis server: where and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where the local MariaDB answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlEndpoint {
    Socket(PathBuf),
    Tcp { host: String, port: u16 },
}

impl fmt::Display for MysqlEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MysqlEndpoint::Socket(p) => write!(f, "{}", p.display()),
            MysqlEndpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            MysqlEndpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// The local MariaDB and the account used there and, on promote, at the
/// server it replicates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlTarget {
    pub endpoint: MysqlEndpoint,
    pub user: String,
    pub password: Option<String>,
}

/// Everything a transition touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The pair peer's address (for Redis replication).
    pub peer_host: String,
    /// Where the peer came from: `--peer-host` or the node configuration.
    pub peer_source: String,
    pub redis: RedisTarget,
    pub peer_redis: RedisTarget,
    pub mysql: MysqlTarget,
}

/// Command-line choices that shape [`Targets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub peer_host: Option<String>,
    pub redis_host: String,
    pub redis_port: u16,
    pub peer_redis_port: Option<u16>,
    pub mysql_socket: PathBuf,
    pub mysql_host: Option<String>,
    pub mysql_port: u16,
}

/// The peer's address on the pair's network, from a node configuration.
/// `redis_only`: only the Redis half runs, which proxy pairs use too (their
/// Redis holds registrations and call state, replicated to the standby).
pub fn peer_from_node(
    node: &NodeConfig,
    path: &Path,
    redis_only: bool,
) -> Result<IpAddr, TargetError> {
    let allowed = node.role == RoleKind::Db || (redis_only && node.role == RoleKind::Proxy);
    if !allowed {
        return Err(TargetError::NotDb {
            path: path.to_path_buf(),
            role: node.role.as_str().to_owned(),
        });
    }
    let network = node
        .vips
        .first()
        .map(|v| v.network.as_str())
        .unwrap_or(DEFAULT_NETWORK);
    node.pair
        .peer
        .addresses
        .get(network)
        .copied()
        .ok_or_else(|| TargetError::NoPeerAddress {
            path: path.to_path_buf(),
            peer: node.pair.peer.hostname.clone(),
            network: network.to_owned(),
            known: node
                .pair
                .peer
                .addresses
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Read and parse a node configuration file.
pub fn load_node(path: &Path) -> Result<NodeConfig, TargetError> {
    let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| TargetError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Build the targets. `peer` is the address from the node configuration,
/// used unless `--peer-host` was given.
pub fn targets(choices: &Choices, peer: Option<(IpAddr, String)>, creds: &Credentials) -> Targets {
    let (peer_host, peer_source) = match (&choices.peer_host, peer) {
        (Some(h), _) => (h.clone(), "--peer-host".to_owned()),
        (None, Some((ip, source))) => (ip.to_string(), source),
        // main() always supplies one of the two.
        (None, None) => ("127.0.0.1".to_owned(), "default".to_owned()),
    };
    let redis = RedisTarget {
        host: choices.redis_host.clone(),
        port: choices.redis_port,
        password: creds.redis_password.clone(),
    };
    let peer_redis = RedisTarget {
        host: peer_host.clone(),
        port: choices.peer_redis_port.unwrap_or(choices.redis_port),
        password: creds.redis_password.clone(),
    };
    let endpoint = match &choices.mysql_host {
        Some(h) => MysqlEndpoint::Tcp {
            host: h.clone(),
            port: choices.mysql_port,
        },
        None => MysqlEndpoint::Socket(choices.mysql_socket.clone()),
    };
    Targets {
        peer_host,
        peer_source,
        redis,
        peer_redis,
        mysql: MysqlTarget {
            endpoint,
            user: creds
                .mysql_user
                .clone()
                .unwrap_or_else(|| "root".to_owned()),
            password: creds.mysql_password.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn profile_node(bay: u32) -> NodeConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let loaded = chassis::load_file(&root.join("chassis-profiles/c5-200k.toml")).unwrap();
        chassis::node::resolve(&loaded.profile, bay, None).unwrap()
    }

    fn db_bay() -> u32 {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let loaded = chassis::load_file(&root.join("chassis-profiles/c5-200k.toml")).unwrap();
        chassis::node::bays(&loaded.profile)
            .into_iter()
            .map(|(_, b)| b)
            .find(|b| {
                chassis::node::resolve(&loaded.profile, *b, None)
                    .unwrap()
                    .role
                    == RoleKind::Db
            })
            .unwrap()
    }

    #[test]
    fn db_node_names_its_peer_on_the_vip_network() {
        let n = profile_node(db_bay());
        let peer = peer_from_node(&n, Path::new("n.toml"), false).unwrap();
        let net = n.vips.first().map(|v| v.network.clone()).unwrap();
        assert_eq!(Some(&peer), n.pair.peer.addresses.get(&net));
        assert_ne!(n.hostname, n.pair.peer.hostname);
    }

    #[test]
    fn non_db_node_is_refused_with_its_role() {
        let mut n = profile_node(db_bay());
        n.role = RoleKind::Proxy;
        let e = peer_from_node(&n, Path::new("/x/n.toml"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/n.toml") && e.contains("`proxy`"), "{e}");
        // A proxy pair replicates its Redis: `--only redis` acts on it.
        assert!(peer_from_node(&n, Path::new("/x/n.toml"), true).is_ok());
        n.role = RoleKind::Web;
        let e = peer_from_node(&n, Path::new("/x/n.toml"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`web`"), "{e}");
    }

    #[test]
    fn missing_peer_address_lists_what_the_peer_has() {
        let mut n = profile_node(db_bay());
        n.pair.peer.addresses.remove("internal");
        let e = peer_from_node(&n, Path::new("n.toml"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`internal`") && e.contains("management"), "{e}");
    }

    #[test]
    fn flags_override_the_node_and_peer_port_defaults_to_local() {
        let c = Choices {
            peer_host: Some("127.0.0.9".into()),
            redis_host: "127.0.0.1".into(),
            redis_port: 6390,
            peer_redis_port: None,
            mysql_socket: "/s".into(),
            mysql_host: None,
            mysql_port: 3306,
        };
        let t = targets(
            &c,
            Some(("10.0.0.1".parse().unwrap(), "node".into())),
            &Credentials::default(),
        );
        assert_eq!(t.peer_redis.to_string(), "127.0.0.9:6390");
        assert_eq!(t.mysql.endpoint.to_string(), "/s");
        assert_eq!(t.mysql.user, "root");
    }
}
