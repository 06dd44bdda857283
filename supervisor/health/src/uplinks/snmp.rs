//! Switch-module port state over SNMP v2c/v3 (IF-MIB, RFC 2863):
//! `ifName` (falling back to `ifDescr`) to find the ports by name once,
//! then `ifAdminStatus`, `ifOperStatus` and `ifHighSpeed` of the configured
//! ports on every poll. Each request has a timeout; after any error the
//! session and the name index are dropped and rebuilt on the next poll
//! (snmp2's async session neither retries nor skips stale replies).

use serde::{Deserialize, Serialize};
use snmp2::{AsyncSession, Oid, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `ifDescr` column.
const IF_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
/// `ifAdminStatus` column.
const IF_ADMIN: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 7];
/// `ifOperStatus` column.
const IF_OPER: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
/// `ifName` column (IF-MIB ifXTable).
const IF_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
/// `ifHighSpeed` column (Mbit/s).
const IF_HIGH_SPEED: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15];
/// Varbinds per GET (small enough for any agent's PDU limit).
const GET_BATCH: usize = 24;

/// SNMP security settings (secrets already resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version", rename_all = "lowercase")]
pub enum SnmpAuth {
    /// v2c with a community.
    V2c {
        /// Community string.
        community: String,
    },
    /// v3 USM.
    V3 {
        /// User name.
        user: String,
        /// `md5`, `sha1`, `sha256`, `sha512`...
        auth_protocol: String,
        /// Authentication pass phrase.
        auth_password: String,
        /// `des`, `aes128`...; absent for authNoPriv.
        privacy_protocol: Option<String>,
        /// Privacy pass phrase.
        privacy_password: Option<String>,
    },
}

/// Error polling a switch module.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    /// No answer within the timeout.
    #[error("{agent}: no SNMP answer within {timeout_ms} ms ({what})")]
    Timeout {
        /// Agent address.
        agent: String,
        /// Timeout.
        timeout_ms: u64,
        /// Request.
        what: String,
    },
    /// Socket or protocol error.
    #[error("{agent}: SNMP {what}: {detail}")]
    Protocol {
        /// Agent address.
        agent: String,
        /// Request.
        what: String,
        /// Error text.
        detail: String,
    },
    /// Bad configuration (unknown protocol name).
    #[error("{agent}: SNMP configuration: {source}")]
    Config {
        /// Agent address.
        agent: String,
        /// What is wrong.
        #[source]
        source: ConfigProblem,
    },
    /// A configured port name is not in the agent's IF-MIB.
    #[error("{agent}: port {port} not found in ifName/ifDescr")]
    UnknownPort {
        /// Agent address.
        agent: String,
        /// Port name.
        port: String,
    },
}

/// A configuration problem detail.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

/// IF-MIB state of one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortState {
    /// Port name (`EXT1`, `INTA3`).
    pub name: String,
    /// ifIndex.
    pub if_index: u32,
    /// ifAdminStatus 1 = up.
    pub admin_up: bool,
    /// ifOperStatus 1 = up.
    pub oper_up: bool,
    /// ifOperStatus raw value (1 up, 2 down, 3 testing, 5 dormant, 7 lowerLayerDown...).
    pub oper_status: i64,
    /// ifHighSpeed in Mbit/s.
    pub speed_mbps: u64,
}

pub(crate) fn oid(parts: &[u64]) -> Result<Oid<'static>, String> {
    Oid::from(parts).map_err(|e| format!("bad OID {parts:?}: {e:?}"))
}

pub(crate) fn oid_parts(o: &Oid<'_>) -> Vec<u64> {
    o.iter().map(|it| it.collect()).unwrap_or_default()
}

fn auth_protocol(name: &str) -> Result<snmp2::v3::AuthProtocol, ConfigProblem> {
    use snmp2::v3::AuthProtocol::*;
    Ok(match name.to_ascii_lowercase().as_str() {
        "md5" => Md5,
        "sha" | "sha1" => Sha1,
        "sha224" => Sha224,
        "sha256" => Sha256,
        "sha384" => Sha384,
        "sha512" => Sha512,
        other => return Err(ConfigProblem(format!("unknown auth protocol {other:?}"))),
    })
}

fn cipher(name: &str) -> Result<snmp2::v3::Cipher, ConfigProblem> {
    use snmp2::v3::Cipher::*;
    Ok(match name.to_ascii_lowercase().as_str() {
        "des" => Des,
        "aes" | "aes128" => Aes128,
        "aes192" => Aes192,
        "aes256" => Aes256,
        other => return Err(ConfigProblem(format!("unknown privacy protocol {other:?}"))),
    })
}

pub(crate) fn protocol_error(agent: &str, what: &str, detail: impl std::fmt::Debug) -> SnmpError {
    SnmpError::Protocol {
        agent: agent.to_string(),
        what: what.to_string(),
        detail: format!("{detail:?}"),
    }
}

/// Open an SNMP session to `agent` (`host:port`): v2c, or v3 USM with
/// engine discovery, all within `timeout`. Shared by the switch-module
/// poller and the CMM power-module reader.
pub async fn open_session(
    agent: &str,
    auth: &SnmpAuth,
    timeout: Duration,
) -> Result<AsyncSession, SnmpError> {
    let fut = async {
        match auth {
            SnmpAuth::V2c { community } => AsyncSession::new_v2c(agent, community.as_bytes(), 1)
                .await
                .map_err(|e| protocol_error(agent, "open session", e)),
            SnmpAuth::V3 {
                user,
                auth_protocol: ap,
                auth_password,
                privacy_protocol,
                privacy_password,
            } => {
                let cfg = |p| SnmpError::Config {
                    agent: agent.to_string(),
                    source: p,
                };
                let auth = match (privacy_protocol, privacy_password) {
                    (Some(c), Some(pw)) => snmp2::v3::Auth::AuthPriv {
                        cipher: cipher(c).map_err(cfg)?,
                        privacy_password: pw.as_bytes().to_vec(),
                    },
                    (None, None) => snmp2::v3::Auth::AuthNoPriv,
                    _ => {
                        return Err(cfg(ConfigProblem(
                            "privacy protocol and password must be given together".into(),
                        )))
                    }
                };
                let sec = snmp2::v3::Security::new(user.as_bytes(), auth_password.as_bytes())
                    .with_auth_protocol(auth_protocol(ap).map_err(cfg)?)
                    .with_auth(auth);
                let mut s = AsyncSession::new_v3(agent, 1, sec)
                    .await
                    .map_err(|e| protocol_error(agent, "open session", e))?;
                s.init()
                    .await
                    .map_err(|e| protocol_error(agent, "v3 engine discovery", e))?;
                Ok(s)
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| SnmpError::Timeout {
            agent: agent.to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            what: "session setup".to_string(),
        })?
}

/// Polls one switch module.
pub struct SwitchPoller {
    agent: String,
    auth: SnmpAuth,
    timeout: Duration,
    session: Option<AsyncSession>,
    index: BTreeMap<String, u32>,
    /// SNMP requests sent by the last poll.
    pub last_requests: u64,
}

impl std::fmt::Debug for SwitchPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchPoller")
            .field("agent", &self.agent)
            .field("connected", &self.session.is_some())
            .field("ports_indexed", &self.index.len())
            .finish()
    }
}

impl SwitchPoller {
    /// A poller for `agent` (`host:port`); connects lazily.
    pub fn new(agent: &str, auth: SnmpAuth, timeout: Duration) -> SwitchPoller {
        SwitchPoller {
            agent: agent.to_string(),
            auth,
            timeout,
            session: None,
            index: BTreeMap::new(),
            last_requests: 0,
        }
    }

    fn proto(&self, what: &str, detail: impl std::fmt::Debug) -> SnmpError {
        SnmpError::Protocol {
            agent: self.agent.clone(),
            what: what.to_string(),
            detail: format!("{detail:?}"),
        }
    }

    fn timeout_err(&self, what: &str) -> SnmpError {
        SnmpError::Timeout {
            agent: self.agent.clone(),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            what: what.to_string(),
        }
    }

    async fn connect(&mut self) -> Result<(), SnmpError> {
        self.session = Some(open_session(&self.agent, &self.auth, self.timeout).await?);
        Ok(())
    }

    /// Walk `ifName` (or `ifDescr` if the agent has no ifXTable) into a
    /// name -> ifIndex map.
    async fn build_index(&mut self, requests: &mut u64) -> Result<(), SnmpError> {
        let mut index = BTreeMap::new();
        for column in [IF_NAME, IF_DESCR] {
            let mut cursor = oid(column).map_err(|e| self.proto("OID", e))?;
            let mut cursor_parts = column.to_vec();
            // Bounded walk: a switch has at most a few hundred interfaces.
            for _ in 0..1024 {
                let timeout = self.timeout;
                let Some(session) = self.session.as_mut() else {
                    break;
                };
                *requests += 1;
                let next = tokio::time::timeout(timeout, session.getnext(&cursor)).await;
                let pdu = match next {
                    Err(_) => return Err(self.timeout_err("walk ifName")),
                    Ok(Err(e)) => return Err(self.proto("walk ifName", e)),
                    Ok(Ok(p)) => p,
                };
                let mut got = None;
                for (name, value) in pdu.varbinds {
                    let parts = oid_parts(&name);
                    if parts.len() != column.len() + 1 || !parts.starts_with(column) {
                        break;
                    }
                    if let Value::OctetString(s) = value {
                        let Ok(idx) = u32::try_from(parts[column.len()]) else {
                            break;
                        };
                        got = Some((parts, String::from_utf8_lossy(s).into_owned(), idx));
                    }
                }
                let Some((parts, name, idx)) = got else {
                    break;
                };
                if parts <= cursor_parts {
                    break; // agent not advancing
                }
                index.insert(name, idx);
                cursor = oid(&parts).map_err(|e| self.proto("OID", e))?;
                cursor_parts = parts;
            }
            if !index.is_empty() {
                break;
            }
        }
        self.index = index;
        Ok(())
    }

    /// Read the given ports. Unknown port names are an error (a
    /// configuration mistake is not an outage).
    pub async fn poll(&mut self, ports: &[String]) -> Result<Vec<PortState>, SnmpError> {
        let r = self.poll_inner(ports).await;
        if r.is_err() {
            self.session = None;
            self.index.clear();
        }
        r
    }

    async fn poll_inner(&mut self, ports: &[String]) -> Result<Vec<PortState>, SnmpError> {
        let mut requests = 0;
        if self.session.is_none() {
            self.connect().await?;
        }
        if self.index.is_empty() || ports.iter().any(|p| !self.index.contains_key(p)) {
            self.build_index(&mut requests).await?;
        }
        let mut wanted: Vec<(String, u32)> = Vec::new();
        for p in ports {
            match self.index.get(p) {
                Some(i) => wanted.push((p.clone(), *i)),
                None => {
                    return Err(SnmpError::UnknownPort {
                        agent: self.agent.clone(),
                        port: p.clone(),
                    })
                }
            }
        }
        let mut values: BTreeMap<Vec<u64>, i64> = BTreeMap::new();
        let mut oids: Vec<Oid<'static>> = Vec::new();
        for (_, idx) in &wanted {
            for col in [IF_ADMIN, IF_OPER, IF_HIGH_SPEED] {
                let mut parts = col.to_vec();
                parts.push(u64::from(*idx));
                oids.push(oid(&parts).map_err(|e| self.proto("OID", e))?);
            }
        }
        for chunk in oids.chunks(GET_BATCH) {
            let refs: Vec<&Oid<'_>> = chunk.iter().collect();
            let timeout = self.timeout;
            let Some(session) = self.session.as_mut() else {
                break;
            };
            requests += 1;
            let res = tokio::time::timeout(timeout, session.get_many(&refs)).await;
            let pdu = match res {
                Err(_) => return Err(self.timeout_err("get port status")),
                Ok(Err(e)) => return Err(self.proto("get port status", e)),
                Ok(Ok(p)) => p,
            };
            for (name, value) in pdu.varbinds {
                let v = match value {
                    Value::Integer(i) => i,
                    Value::Unsigned32(u) | Value::Counter32(u) => i64::from(u),
                    _ => continue,
                };
                values.insert(oid_parts(&name), v);
            }
        }
        let get = |col: &[u64], idx: u32| {
            let mut k = col.to_vec();
            k.push(u64::from(idx));
            values.get(&k).copied()
        };
        let out = wanted
            .into_iter()
            .map(|(name, idx)| {
                let oper = get(IF_OPER, idx).unwrap_or(4); // 4 = unknown
                PortState {
                    name,
                    if_index: idx,
                    admin_up: get(IF_ADMIN, idx) == Some(1),
                    oper_up: oper == 1,
                    oper_status: oper,
                    speed_mbps: get(IF_HIGH_SPEED, idx)
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                }
            })
            .collect();
        self.last_requests = requests;
        Ok(out)
    }
}
