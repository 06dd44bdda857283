//! The four node roles of a C5 cluster and what each must run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A node role. Every role is deployed as active/standby pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKind {
    /// HTTPS provisioning API.
    Web,
    /// MariaDB master/master (or Galera) and Redis master/replica.
    Db,
    /// Stateless SIP load balancer.
    Lb,
    /// SIP proxy/registrar, media relay, billing.
    Proxy,
}

impl RoleKind {
    pub const ALL: [RoleKind; 4] = [RoleKind::Web, RoleKind::Db, RoleKind::Lb, RoleKind::Proxy];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Web => "web",
            RoleKind::Db => "db",
            RoleKind::Lb => "lb",
            RoleKind::Proxy => "proxy",
        }
    }

    /// Services without which a node of this role cannot do its job.
    /// Proxies read subscribers from a local MariaDB replica and keep
    /// shared state in Redis (see shared/c5-architecture.txt §2.2.2).
    pub fn required_services(self) -> &'static [&'static str] {
        match self {
            RoleKind::Web => &["web-api"],
            RoleKind::Db => &["mariadb", "redis"],
            RoleKind::Lb => &["sip-lb"],
            RoleKind::Proxy => &["mariadb", "sip-proxy", "media-relay", "billing"],
        }
    }
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the four roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected web, db, lb or proxy)")]
pub struct UnknownRole(pub String);

impl FromStr for RoleKind {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoleKind::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}
