//! Power module health read from the Flex System chassis management module
//! over SNMP (v2c or v3): the CMM's second view of the PSUs, next to the
//! IPMI sensors of [`super::ipmi`].
//!
//! # The MIB
//!
//! The Flex CMM MIB (`CME-MIB`, file `cme.mib`, "Chassis Management Module
//! (CMM) MIB for SNMP", v21, IBM 2014) keeps the layout of the BladeCenter
//! management module's `BLADE-MIB` (`mmblade.mib`) under IBM's enterprise
//! arc: `ibm` = 1.3.6.1.4.1.2, `ibmAgents` = .3,
//! `netfinitySupportProcessorAgent` = .51, `bladeCenterSnmpMIB` = .2,
//! `monitors` = .2, `powerModuleHealth` = .4. The table:
//!
//! | object | OID | syntax |
//! |---|---|---|
//! | `powerModuleHealthTable` | 1.3.6.1.4.1.2.3.51.2.2.4.1 | |
//! | `powerModuleHealthEntry` | 1.3.6.1.4.1.2.3.51.2.2.4.1.1 | INDEX { powerModuleIndex } |
//! | `powerModuleIndex` | ….4.1.1.1 | INTEGER, the power module bay |
//! | `powerModuleExists` | ….4.1.1.2 | INTEGER { false(0), true(1) } |
//! | `powerModuleState` | ….4.1.1.3 | INTEGER { unknown(0), good(1), warning(2), notAvailable(3), critical(4) } |
//! | `powerModuleDetails` | ….4.1.1.4 | OCTET STRING, free text |
//! | `powerModuleDescription` | ….4.1.1.9 | OCTET STRING |
//!
//! The CMM's web UI calls the three health states Normal / Attention /
//! Critical, its CLI OK / Non-critical / Critical.
//!
//! # Mapping onto [`PsuState`]
//!
//! `powerModuleIndex` is the PSU bay; the reading names each row after the
//! configured bay's sensor name so the power verdict can compare it with the
//! IPMI reading of the same bay.
//!
//! - exists false(0): not present (not working).
//! - good(1): working.
//! - warning(2): working with a problem (like an IPMI predictive failure):
//!   the bay counts as working, the finding is WARNING.
//! - critical(4): failed.
//! - notAvailable(3), unknown(0) or any other value: no usable reading (not
//!   working: the verdict takes the worse of the sources, so a CMM that
//!   cannot vouch for a PSU does not make it count).
//!
//! `powerModuleDetails` is kept as the state's detail text.
//!
//! # Reading
//!
//! The bays come from the profile, so no walk is needed: one GET of
//! `exists`, `state` and `details` of each configured bay (18 varbinds for
//! six PSUs, one request; batches of 24). A bay the agent answers with
//! noSuchInstance/noSuchObject has no row: the verdict reports it as
//! missing from this source. Every request has the configured timeout;
//! after any error the session is dropped and rebuilt on the next read
//! (snmp2's async session does not retransmit).

use super::{PowerReading, PsuBay, PsuState};
use crate::uplinks::snmp::{self as snmp, SnmpAuth, SnmpError};
use serde::{Deserialize, Serialize};
use snmp2::{AsyncSession, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `powerModuleHealthEntry` (CME-MIB / BLADE-MIB).
pub const POWER_MODULE_ENTRY: &[u64] = &[1, 3, 6, 1, 4, 1, 2, 3, 51, 2, 2, 4, 1, 1];
/// `powerModuleExists` column number.
pub const COL_EXISTS: u64 = 2;
/// `powerModuleState` column number.
pub const COL_STATE: u64 = 3;
/// `powerModuleDetails` column number.
pub const COL_DETAILS: u64 = 4;

/// Varbinds per GET (small enough for any agent's PDU limit): 8 bays.
const GET_BATCH: usize = 24;

/// `powerModuleState` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleState {
    /// unknown(0).
    Unknown,
    /// good(1): Normal / OK.
    Good,
    /// warning(2): Attention / Non-critical.
    Warning,
    /// notAvailable(3).
    NotAvailable,
    /// critical(4).
    Critical,
    /// A value the MIB does not define.
    Other(i64),
}

impl ModuleState {
    /// Decode the MIB integer.
    pub fn from_mib(v: i64) -> ModuleState {
        match v {
            0 => ModuleState::Unknown,
            1 => ModuleState::Good,
            2 => ModuleState::Warning,
            3 => ModuleState::NotAvailable,
            4 => ModuleState::Critical,
            other => ModuleState::Other(other),
        }
    }
}

/// One row of `powerModuleHealthTable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerModule {
    /// `powerModuleIndex` (the bay).
    pub index: u32,
    /// `powerModuleExists`; `None` when the agent left the column out.
    pub exists: Option<bool>,
    /// `powerModuleState`; `None` when the agent left the column out.
    pub state: Option<ModuleState>,
    /// `powerModuleDetails`.
    pub details: String,
}

impl PowerModule {
    fn new(index: u32) -> PowerModule {
        PowerModule {
            index,
            exists: None,
            state: None,
            details: String::new(),
        }
    }

    /// The row as a PSU state named `sensor` (see the module doc).
    pub fn psu_state(&self, sensor: &str) -> PsuState {
        let present = self.exists == Some(true);
        let (readable, failed, warning) = match self.state {
            Some(ModuleState::Good) => (true, false, false),
            Some(ModuleState::Warning) => (true, false, true),
            Some(ModuleState::Critical) => (true, true, false),
            // An absent module has no health to report.
            _ if self.exists == Some(false) => (true, false, false),
            _ => (false, false, false),
        };
        PsuState {
            name: sensor.to_string(),
            sensor_number: u8::try_from(self.index).unwrap_or(u8::MAX),
            readable,
            present,
            failed,
            predictive_failure: warning,
            input_lost: false,
            input_out_of_range: false,
            config_error: false,
            detail: self.details.trim().to_string(),
        }
    }
}

/// A value of one of the three columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellValue {
    /// INTEGER (or an unsigned type).
    Int(i64),
    /// OCTET STRING.
    Text(String),
    /// Anything else (wrong type, exception).
    Other,
}

/// Fold `(OID, value)` pairs into rows. Pairs outside the three columns or
/// with an index that is not one sub-identifier are ignored, as are values
/// of the wrong type. Pure, for the tests and the fuzz-style proptest.
pub fn rows_from_cells<I>(cells: I) -> BTreeMap<u32, PowerModule>
where
    I: IntoIterator<Item = (Vec<u64>, CellValue)>,
{
    let mut rows: BTreeMap<u32, PowerModule> = BTreeMap::new();
    let n = POWER_MODULE_ENTRY.len();
    for (oid, value) in cells {
        if oid.len() != n + 2 || !oid.starts_with(POWER_MODULE_ENTRY) {
            continue;
        }
        let Ok(index) = u32::try_from(oid[n + 1]) else {
            continue;
        };
        let col = oid[n];
        if ![COL_EXISTS, COL_STATE, COL_DETAILS].contains(&col) {
            continue;
        }
        let row = rows.entry(index).or_insert_with(|| PowerModule::new(index));
        match (col, value) {
            (COL_EXISTS, CellValue::Int(v)) => row.exists = Some(v == 1),
            (COL_STATE, CellValue::Int(v)) => row.state = Some(ModuleState::from_mib(v)),
            (COL_DETAILS, CellValue::Text(t)) => row.details = t,
            _ => {}
        }
    }
    rows
}

/// Cells of a response's varbinds: exceptions (noSuchInstance,
/// noSuchObject, endOfMibView) are dropped, so a bay the agent has no row
/// for gets no row.
fn cells_of<'a>(
    varbinds: impl Iterator<Item = (snmp2::Oid<'a>, Value<'a>)>,
) -> Vec<(Vec<u64>, CellValue)> {
    varbinds
        .filter_map(|(name, value)| {
            let cell = match value {
                Value::Integer(i) => CellValue::Int(i),
                Value::Unsigned32(u) | Value::Counter32(u) => CellValue::Int(i64::from(u)),
                Value::OctetString(t) => CellValue::Text(String::from_utf8_lossy(t).into_owned()),
                Value::NoSuchInstance | Value::NoSuchObject | Value::EndOfMibView => return None,
                _ => CellValue::Other,
            };
            Some((snmp::oid_parts(&name), cell))
        })
        .collect()
}

/// Decode an unencrypted (v1/v2c) response message straight from the wire
/// into rows: the same path a live read takes after USM, exposed for the
/// fuzz target (`fuzz/fuzz_targets/cmm_snmp_reply.rs`) and tests.
pub fn rows_from_message(bytes: &[u8]) -> Result<BTreeMap<u32, PowerModule>, String> {
    let pdu = snmp2::Pdu::from_bytes(bytes).map_err(|e| format!("{e:?}"))?;
    if pdu.error_status != 0 {
        return Err(format!(
            "error-status {} at varbind {}",
            pdu.error_status, pdu.error_index
        ));
    }
    Ok(rows_from_cells(cells_of(pdu.varbinds)))
}

/// The rows as a [`PowerReading`]: one PSU per configured bay whose row
/// exists (a bay without a row is left out, so the verdict reports it as
/// missing from this source).
pub fn reading_from_rows(
    rows: &BTreeMap<u32, PowerModule>,
    bays: &[PsuBay],
    source: &str,
    now_unix: u64,
) -> PowerReading {
    let psus = bays
        .iter()
        .filter_map(|b| rows.get(&u32::from(b.bay)).map(|r| r.psu_state(&b.sensor)))
        .collect();
    PowerReading {
        source: source.to_string(),
        psus,
        redundancy: None,
        observed_at: now_unix,
    }
}

/// Reads the power module table of one CMM.
pub struct CmmPowerReader {
    agent: String,
    auth: SnmpAuth,
    timeout: Duration,
    session: Option<AsyncSession>,
    /// SNMP requests sent by the last read (for benchmarks).
    pub last_requests: u64,
}

impl std::fmt::Debug for CmmPowerReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmmPowerReader")
            .field("agent", &self.agent)
            .field("connected", &self.session.is_some())
            .finish()
    }
}

impl CmmPowerReader {
    /// A reader for `agent` (`host:port`); connects lazily.
    pub fn new(agent: &str, auth: SnmpAuth, timeout: Duration) -> CmmPowerReader {
        CmmPowerReader {
            agent: agent.to_string(),
            auth,
            timeout,
            session: None,
            last_requests: 0,
        }
    }

    /// Source name used in readings and findings (`cmm-snmp host:port`).
    pub fn describe(&self) -> String {
        format!("cmm-snmp {}", self.agent)
    }

    /// Read the rows of these bays (`powerModuleIndex` values); a bay the
    /// agent has no row for is absent from the result.
    pub async fn read_rows(
        &mut self,
        bays: &[u32],
    ) -> Result<BTreeMap<u32, PowerModule>, SnmpError> {
        let r = self.read_inner(bays).await;
        if r.is_err() {
            self.session = None;
        }
        r
    }

    /// Read the table as a [`PowerReading`] for `bays`. An agent with no row
    /// for any of them is an error, not six missing PSUs.
    pub async fn read(
        &mut self,
        bays: &[PsuBay],
        now_unix: u64,
    ) -> Result<PowerReading, SnmpError> {
        let wanted: Vec<u32> = bays.iter().map(|b| u32::from(b.bay)).collect();
        let rows = self.read_rows(&wanted).await?;
        if rows.is_empty() && !wanted.is_empty() {
            // Like an SDR without PSU sensors: the agent is not (or no
            // longer) a Flex CMM, which is not the same as six dead PSUs.
            return Err(SnmpError::Protocol {
                agent: self.agent.clone(),
                what: "get powerModuleHealthTable".to_string(),
                detail: format!("no row for any configured bay {wanted:?}"),
            });
        }
        Ok(reading_from_rows(&rows, bays, &self.describe(), now_unix))
    }

    fn proto(&self, what: &str, detail: impl std::fmt::Debug) -> SnmpError {
        SnmpError::Protocol {
            agent: self.agent.clone(),
            what: what.to_string(),
            detail: format!("{detail:?}"),
        }
    }

    async fn read_inner(&mut self, bays: &[u32]) -> Result<BTreeMap<u32, PowerModule>, SnmpError> {
        if self.session.is_none() {
            self.session = Some(snmp::open_session(&self.agent, &self.auth, self.timeout).await?);
        }
        let agent = self.agent.clone();
        let mut oids = Vec::new();
        for bay in bays {
            for col in [COL_EXISTS, COL_STATE, COL_DETAILS] {
                let mut parts = POWER_MODULE_ENTRY.to_vec();
                parts.extend([col, u64::from(*bay)]);
                oids.push(snmp::oid(&parts).map_err(|e| self.proto("OID", e))?);
            }
        }
        let mut cells = Vec::new();
        let mut requests = 0u64;
        for chunk in oids.chunks(GET_BATCH) {
            let refs: Vec<&snmp2::Oid<'_>> = chunk.iter().collect();
            let timeout = self.timeout;
            let Some(session) = self.session.as_mut() else {
                break;
            };
            requests += 1;
            let pdu = match tokio::time::timeout(timeout, session.get_many(&refs)).await {
                Err(_) => {
                    return Err(SnmpError::Timeout {
                        agent,
                        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        what: "get powerModuleHealthTable".to_string(),
                    })
                }
                Ok(Err(e)) => {
                    return Err(snmp::protocol_error(
                        &agent,
                        "get powerModuleHealthTable",
                        e,
                    ))
                }
                Ok(Ok(p)) => p,
            };
            if pdu.error_status != 0 {
                return Err(snmp::protocol_error(
                    &agent,
                    "get powerModuleHealthTable",
                    format!(
                        "error-status {} at varbind {}",
                        pdu.error_status, pdu.error_index
                    ),
                ));
            }
            cells.extend(cells_of(pdu.varbinds));
        }
        self.last_requests = requests;
        Ok(rows_from_cells(cells))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::Feed;
    use proptest::prelude::*;

    fn cell(col: u64, idx: u64, v: CellValue) -> (Vec<u64>, CellValue) {
        let mut o = POWER_MODULE_ENTRY.to_vec();
        o.extend([col, idx]);
        (o, v)
    }

    #[test]
    fn rows_map_onto_psu_states() {
        let rows = rows_from_cells([
            cell(COL_EXISTS, 1, CellValue::Int(1)),
            cell(COL_STATE, 1, CellValue::Int(1)),
            cell(COL_DETAILS, 1, CellValue::Text("OK".into())),
            cell(COL_EXISTS, 2, CellValue::Int(1)),
            cell(COL_STATE, 2, CellValue::Int(4)),
            cell(
                COL_DETAILS,
                2,
                CellValue::Text("Power supply failed".into()),
            ),
            cell(COL_EXISTS, 3, CellValue::Int(0)),
            cell(COL_STATE, 3, CellValue::Int(3)),
            cell(COL_EXISTS, 4, CellValue::Int(1)),
            cell(COL_STATE, 4, CellValue::Int(2)),
            cell(COL_EXISTS, 5, CellValue::Int(1)),
            cell(COL_STATE, 5, CellValue::Int(3)),
            // Wrong type and a foreign column are ignored.
            cell(COL_STATE, 6, CellValue::Text("good".into())),
            cell(9, 6, CellValue::Text("2500W".into())),
        ]);
        let bays: Vec<PsuBay> = (1..=6)
            .map(|b| PsuBay {
                bay: b,
                sensor: format!("PSU{b}"),
                feed: Feed::Mains,
            })
            .collect();
        let r = reading_from_rows(&rows, &bays, "cmm-snmp x:161", 5);
        let by = |n: &str| r.psus.iter().find(|p| p.name == n).cloned();
        let p1 = by("PSU1").expect("row 1");
        assert!(p1.is_working() && p1.problem().is_none());
        let p2 = by("PSU2").expect("row 2");
        assert!(!p2.is_working() && p2.failed);
        assert_eq!(p2.detail, "Power supply failed");
        assert_eq!(by("PSU3").and_then(|p| p.problem()), Some("not present"));
        let p4 = by("PSU4").expect("row 4");
        assert!(p4.is_working() && p4.problem().is_some());
        assert_eq!(by("PSU5").and_then(|p| p.problem()), Some("no reading"));
        // Row 6 has only a mistyped state: readable false.
        assert_eq!(by("PSU6").and_then(|p| p.problem()), Some("no reading"));
        assert_eq!(ModuleState::from_mib(9), ModuleState::Other(9));
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 128 {
            out.push(n as u8);
        } else {
            out.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn ber_oid(parts: &[u64]) -> Vec<u8> {
        // Every arc here is below 128: one byte each.
        let mut c = vec![(parts[0] * 40 + parts[1]) as u8];
        c.extend(parts[2..].iter().map(|p| *p as u8));
        tlv(0x06, &c)
    }

    /// A v2c GetResponse for bay 1 (exists, good, details) and a
    /// noSuchInstance for bay 7, encoded by hand.
    fn v2c_response() -> Vec<u8> {
        let vb = |col: u64, idx: u64, value: Vec<u8>| {
            let mut o = POWER_MODULE_ENTRY.to_vec();
            o.extend([col, idx]);
            let mut c = ber_oid(&o);
            c.extend(value);
            tlv(0x30, &c)
        };
        let mut list = Vec::new();
        list.extend(vb(COL_EXISTS, 1, tlv(0x02, &[1])));
        list.extend(vb(COL_STATE, 1, tlv(0x02, &[1])));
        list.extend(vb(COL_DETAILS, 1, tlv(0x04, b"OK")));
        list.extend(vb(COL_STATE, 7, vec![0x81, 0x00]));
        let mut pdu = tlv(0x02, &[7]); // request-id
        pdu.extend(tlv(0x02, &[0])); // error-status
        pdu.extend(tlv(0x02, &[0])); // error-index
        pdu.extend(tlv(0x30, &list));
        let mut msg = tlv(0x02, &[1]); // version 2c
        msg.extend(tlv(0x04, b"public"));
        msg.extend(tlv(0xA2, &pdu));
        tlv(0x30, &msg)
    }

    #[test]
    fn wire_response_decodes_and_garbage_is_an_error() {
        let rows = rows_from_message(&v2c_response()).expect("decode");
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[&1];
        assert_eq!(
            (r.exists, r.state, r.details.as_str()),
            (Some(true), Some(ModuleState::Good), "OK")
        );
        // The fuzz seed: six modules, PSU4 critical, bay 7 noSuchInstance.
        let seed = include_bytes!("../../fuzz/corpus/cmm_snmp_reply/v2c_six_modules_psu4_critical");
        let rows = rows_from_message(seed).expect("seed decodes");
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(rows[&4].state, Some(ModuleState::Critical));
        assert_eq!(rows[&4].details, "Power supply 4 failed");
        let msg = v2c_response();
        for cut in 0..msg.len() {
            assert!(rows_from_message(&msg[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = rows_from_message(&bytes);
        }

        #[test]
        fn arbitrary_cells_never_panic(cells in proptest::collection::vec(
            (proptest::collection::vec(0u64..u64::MAX, 0..20), any::<i64>()), 0..50)) {
            let rows = rows_from_cells(cells.into_iter().map(|(o, v)| (o, CellValue::Int(v))));
            for r in rows.values() {
                let _ = r.psu_state("PSU1").problem();
            }
        }
    }
}
