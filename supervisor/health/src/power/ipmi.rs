//! Reading Power Supply (type 08h) and Power Unit redundancy (type 09h,
//! generic reading type 0Bh) sensors over IPMI with `ipmi-rs`: from the
//! chassis management module over LAN (RMCP+) or from the local BMC
//! through `/dev/ipmi0`.
//!
//! The SDR repository is read once (in pieces, see [`super::sdr_partial`])
//! and cached across scans, even across a lost session; each scan then
//! costs one Get SDR Repository Info plus one Get Sensor Reading per
//! sensor. The SDR is read again only when the repository's record count
//! or most-recent-addition or erase timestamp changes, or a reading answers
//! "sensor not present" (0xCBh). After any other error only the session
//! is re-established.

use super::sdr_partial::{self, PartialSdrReader};
use super::{PowerReading, PsuState, Redundancy};
use ipmi_rs::connection::{
    CompletionErrorCode, IpmiCommand, IpmiConnection, Message, NetFn, NotEnoughData,
};
use ipmi_rs::rmcp::Rmcp;
use ipmi_rs::Ipmi;
use std::path::PathBuf;
use std::time::Duration;

/// Sensor type Power Supply (IPMI v2.0 table 42-3).
pub const SENSOR_TYPE_POWER_SUPPLY: u8 = 0x08;
/// Sensor type Power Unit.
pub const SENSOR_TYPE_POWER_UNIT: u8 = 0x09;
/// Generic event/reading type "redundancy" (table 42-2).
pub const READING_TYPE_REDUNDANCY: u8 = 0x0B;

/// RMCP+ activations tried before a scan fails.
pub const ACTIVATION_ATTEMPTS: u32 = 3;

/// Where to read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpmiTarget {
    /// RMCP+ session to a BMC or CMM.
    Lan {
        /// Host name or address.
        host: String,
        /// UDP port (623).
        port: u16,
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// The local BMC through the OpenIPMI device.
    Local {
        /// `/dev/ipmi0`.
        device: PathBuf,
    },
}

impl IpmiTarget {
    /// Short description for findings and errors (no secrets).
    pub fn describe(&self) -> String {
        match self {
            IpmiTarget::Lan { host, port, .. } => format!("ipmi-lan {host}:{port}"),
            IpmiTarget::Local { device } => format!("ipmi-local {}", device.display()),
        }
    }
}

/// Error reading power sensors.
#[derive(Debug, thiserror::Error)]
pub enum IpmiReadError {
    /// Could not open the device or session.
    #[error("{target}: cannot connect: {detail}")]
    Connect {
        /// Target description.
        target: String,
        /// What failed.
        detail: String,
    },
    /// A command failed.
    #[error("{target}: {what}: {detail}")]
    Command {
        /// Target description.
        target: String,
        /// Step.
        what: String,
        /// What failed.
        detail: String,
    },
    /// The SDR repository has no Power Supply sensor at all.
    #[error("{target}: SDR repository lists no Power Supply (08h) sensor")]
    NoPsuSensors {
        /// Target description.
        target: String,
    },
}

/// `Get Sensor Reading` (NetFn Sensor/Event, cmd 0x2D) returning the raw
/// response bytes; ipmi-rs's own command hides the discrete state bits.
#[derive(Debug, Clone, Copy)]
pub struct GetSensorReadingRaw(pub u8);

impl From<GetSensorReadingRaw> for Message {
    fn from(c: GetSensorReadingRaw) -> Self {
        Message::new_request(NetFn::SensorEvent, 0x2D, vec![c.0])
    }
}

impl IpmiCommand for GetSensorReadingRaw {
    type Output = Vec<u8>;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<Vec<u8>, NotEnoughData> {
        if data.len() < 2 {
            return Err(NotEnoughData);
        }
        Ok(data.to_vec())
    }
}

/// `Get SDR Repository Info` (NetFn Storage, cmd 0x20), reduced to the
/// record count and the most-recent-addition and most-recent-erase
/// timestamps (IPMI v2.0 §33.9): they change whenever the repository
/// does. The count is included because some BMCs (OpenIPMI's `ipmi_sim`)
/// leave the timestamps unspecified.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetSdrRepositoryStamp;

/// Record count, most-recent-addition and most-recent-erase timestamps.
pub type SdrStamp = (u16, u32, u32);

impl From<GetSdrRepositoryStamp> for Message {
    fn from(_: GetSdrRepositoryStamp) -> Self {
        Message::new_request(NetFn::Storage, 0x20, Vec::new())
    }
}

impl IpmiCommand for GetSdrRepositoryStamp {
    type Output = SdrStamp;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<SdrStamp, NotEnoughData> {
        // version, count(2), free(2), addition(4), erase(4), support
        let add = data.get(5..9).ok_or(NotEnoughData)?;
        let erase = data.get(9..13).ok_or(NotEnoughData)?;
        let count = data.get(1..3).ok_or(NotEnoughData)?;
        Ok((
            u16::from_le_bytes([count[0], count[1]]),
            u32::from_le_bytes([add[0], add[1], add[2], add[3]]),
            u32::from_le_bytes([erase[0], erase[1], erase[2], erase[3]]),
        ))
    }
}

/// A sensor of interest found in the SDR repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerSensor {
    /// ID string (`PSU1`).
    pub name: String,
    /// Sensor number.
    pub number: u8,
    /// Entity instance (bay number on most chassis).
    pub entity_instance: u8,
    /// Power supply or redundancy.
    pub kind: PowerSensorKind,
}

/// What a [`PowerSensor`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerSensorKind {
    /// Type 08h.
    PowerSupply,
    /// Type 09h with generic reading type 0Bh (or any 0Bh sensor).
    Redundancy,
}

/// Decode a Get Sensor Reading response (bytes: reading, flags, states
/// 0-7, states 8-14) into the 15-bit state mask, or `None` when the
/// sensor says its reading is unavailable or scanning is off.
pub fn state_bits(resp: &[u8]) -> Option<u16> {
    let flags = *resp.get(1)?;
    if flags & 0x20 != 0 || flags & 0x40 == 0 {
        return None;
    }
    let lo = u16::from(resp.get(2).copied().unwrap_or(0));
    let hi = u16::from(resp.get(3).copied().unwrap_or(0) & 0x7F);
    Some(lo | (hi << 8))
}

/// Power Supply sensor-specific offsets (IPMI v2.0 table 42-3, type 08h).
pub fn psu_state(name: &str, number: u8, bits: Option<u16>) -> PsuState {
    let bit = |n: u16| bits.is_some_and(|b| b & (1 << n) != 0);
    PsuState {
        name: name.to_string(),
        sensor_number: number,
        readable: bits.is_some(),
        present: bit(0),
        failed: bit(1),
        predictive_failure: bit(2),
        input_lost: bit(3) || bit(4),
        input_out_of_range: bit(5),
        config_error: bit(6),
        detail: String::new(),
    }
}

/// Generic redundancy states (table 42-2, reading type 0Bh). Several bits
/// may be set; the most severe wins.
pub fn redundancy_state(bits: u16) -> Redundancy {
    if bits & (1 << 5) != 0 {
        Redundancy::InsufficientResources
    } else if bits & (1 << 1) != 0 {
        Redundancy::Lost
    } else if bits & ((1 << 3) | (1 << 4)) != 0 {
        Redundancy::NonRedundantSufficient
    } else if bits & ((1 << 2) | (1 << 6) | (1 << 7)) != 0 {
        Redundancy::Degraded
    } else if bits & 1 != 0 {
        Redundancy::Full
    } else {
        Redundancy::NoState
    }
}

/// Find the power sensors in raw SDR records (bytes as read).
pub fn power_sensors(records: &[(ipmi_rs::storage::sdr::Record, Vec<u8>)]) -> Vec<PowerSensor> {
    let mut out = Vec::new();
    for (record, _) in records {
        let Some(common) = record.common_data() else {
            continue;
        };
        let ty = u8::from(common.ty);
        let reading_type = match common.event_reading_type_code {
            ipmi_rs::storage::sdr::event_reading_type_code::EventReadingTypeCodes::DiscreteGeneric(c) => Some(c),
            _ => None,
        };
        let kind = if ty == SENSOR_TYPE_POWER_SUPPLY {
            PowerSensorKind::PowerSupply
        } else if reading_type == Some(READING_TYPE_REDUNDANCY)
            && (ty == SENSOR_TYPE_POWER_UNIT || ty == SENSOR_TYPE_POWER_SUPPLY)
        {
            PowerSensorKind::Redundancy
        } else {
            continue;
        };
        out.push(PowerSensor {
            name: common.sensor_id.to_string(),
            number: common.key.sensor_number.get(),
            entity_instance: match common.entity_instance {
                ipmi_rs::storage::sdr::record::EntityInstance::Physical {
                    instance_number, ..
                }
                | ipmi_rs::storage::sdr::record::EntityInstance::LogicalContainer {
                    instance_number,
                    ..
                } => instance_number,
            },
            kind,
        });
    }
    out
}

/// Run `$body` with `$i` bound to the open session's `Ipmi` (either
/// transport), or `None` without a session.
macro_rules! on_session {
    ($session:expr, |$i:ident| $body:expr) => {
        match $session {
            Some(Session::Lan(b)) => {
                let $i = b.as_mut();
                Some($body)
            }
            Some(Session::Local($i)) => Some($body),
            None => None,
        }
    };
}

enum Session {
    Lan(Box<Ipmi<Rmcp>>),
    Local(Ipmi<ipmi_rs::File>),
}

/// A reusable reader for one target: session plus cached sensor list.
pub struct PsuScanner {
    target: IpmiTarget,
    timeout: Duration,
    session: Option<Session>,
    sensors: Vec<PowerSensor>,
    /// Repository timestamps the cached `sensors` were read under.
    sdr_stamp: Option<SdrStamp>,
    /// IPMI requests sent by the last scan (for benchmarks).
    pub last_requests: u64,
    /// Times the SDR repository was read (cache misses), for tests.
    pub sdr_reads: u64,
}

impl std::fmt::Debug for PsuScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PsuScanner")
            .field("target", &self.target.describe())
            .field("connected", &self.session.is_some())
            .field("sensors", &self.sensors)
            .finish()
    }
}

fn dbg<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn read_sensors<C: IpmiConnection>(
    ipmi: &mut Ipmi<C>,
    target: &str,
    requests: &mut u64,
) -> Result<Vec<PowerSensor>, IpmiReadError> {
    let mut reader = PartialSdrReader::new();
    let records = sdr_partial::read_all(ipmi, &mut reader).map_err(|e| IpmiReadError::Command {
        target: target.to_string(),
        what: "reading the SDR repository".to_string(),
        detail: e.to_string(),
    })?;
    *requests += reader.requests;
    Ok(power_sensors(&records))
}

fn read_stamp<C: IpmiConnection>(
    ipmi: &mut Ipmi<C>,
    target: &str,
    requests: &mut u64,
) -> Result<Option<SdrStamp>, IpmiReadError> {
    *requests += 1;
    match ipmi.send_recv(GetSdrRepositoryStamp) {
        Ok(stamp) => Ok(Some(stamp)),
        // A BMC without the command: rely on "sensor not present" alone.
        Err(ipmi_rs::IpmiError::Failed { .. }) => Ok(None),
        Err(e) => Err(IpmiReadError::Command {
            target: target.to_string(),
            what: "Get SDR Repository Info".to_string(),
            detail: dbg(e),
        }),
    }
}

/// Why reading the cached sensors failed.
enum StatesError {
    /// A cached sensor number is gone (0xCBh): the SDR cache is out of date.
    NotPresent(IpmiReadError),
    /// Anything else.
    Other(IpmiReadError),
}

fn read_states<C: IpmiConnection>(
    ipmi: &mut Ipmi<C>,
    target: &str,
    sensors: &[PowerSensor],
    requests: &mut u64,
) -> Result<(Vec<PsuState>, Option<Redundancy>), StatesError> {
    let mut psus = Vec::new();
    let mut redundancy = None;
    for s in sensors {
        *requests += 1;
        let resp = ipmi.send_recv(GetSensorReadingRaw(s.number)).map_err(|e| {
            let not_present = matches!(
                &e,
                ipmi_rs::IpmiError::Failed {
                    completion_code: CompletionErrorCode::RequestedDatapointNotPresent,
                    ..
                }
            );
            let err = IpmiReadError::Command {
                target: target.to_string(),
                what: format!("Get Sensor Reading {} ({:#04x})", s.name, s.number),
                detail: dbg(e),
            };
            if not_present {
                StatesError::NotPresent(err)
            } else {
                StatesError::Other(err)
            }
        })?;
        let bits = state_bits(&resp);
        match s.kind {
            PowerSensorKind::PowerSupply => psus.push(psu_state(&s.name, s.number, bits)),
            PowerSensorKind::Redundancy => {
                redundancy = Some(bits.map(redundancy_state).unwrap_or(Redundancy::NoState));
            }
        }
    }
    Ok((psus, redundancy))
}

impl PsuScanner {
    /// A scanner; connects lazily on the first [`PsuScanner::scan`].
    pub fn new(target: IpmiTarget, timeout: Duration) -> PsuScanner {
        PsuScanner {
            target,
            timeout,
            session: None,
            sensors: Vec::new(),
            sdr_stamp: None,
            last_requests: 0,
            sdr_reads: 0,
        }
    }

    /// The cached power sensors (empty before the first scan).
    pub fn sensors(&self) -> &[PowerSensor] {
        &self.sensors
    }

    fn connect(&mut self) -> Result<(), IpmiReadError> {
        let target = self.target.describe();
        let session = match &self.target {
            IpmiTarget::Lan {
                host,
                port,
                username,
                password,
            } => {
                let mut rmcp = Rmcp::new((host.as_str(), *port), self.timeout).map_err(|e| {
                    IpmiReadError::Connect {
                        target: target.clone(),
                        detail: e.to_string(),
                    }
                })?;
                // ipmi-rs sends the ASF ping and each session-setup message
                // once, with no retransmission: one lost datagram fails the
                // activation. Retry the whole activation a few times.
                let mut last = None;
                for _ in 0..ACTIVATION_ATTEMPTS {
                    match rmcp.activate(true, Some(username), Some(password.as_bytes())) {
                        Ok(()) => {
                            last = None;
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                if let Some(e) = last {
                    return Err(IpmiReadError::Connect {
                        target,
                        detail: format!(
                            "RMCP+ session activation failed after {ACTIVATION_ATTEMPTS} attempts: {e:?}"
                        ),
                    });
                }
                Session::Lan(Box::new(Ipmi::new(rmcp)))
            }
            IpmiTarget::Local { device } => {
                let file = ipmi_rs::File::new(device, self.timeout).map_err(|e| {
                    IpmiReadError::Connect {
                        target: target.clone(),
                        detail: e.to_string(),
                    }
                })?;
                Session::Local(Ipmi::new(file))
            }
        };
        self.session = Some(session);
        Ok(())
    }

    /// Read every PSU and the redundancy sensor. On error the session is
    /// dropped so the next scan starts a new one; the SDR cache is kept
    /// (the next scan checks the repository timestamps before using it).
    pub fn scan(&mut self, now_unix: u64) -> Result<PowerReading, IpmiReadError> {
        let result = self.scan_inner(now_unix);
        if result.is_err() {
            self.session = None;
        }
        result
    }

    fn no_session(&self) -> IpmiReadError {
        IpmiReadError::Connect {
            target: self.target.describe(),
            detail: "no session".to_string(),
        }
    }

    fn refresh_sensors(&mut self, target: &str, requests: &mut u64) -> Result<(), IpmiReadError> {
        self.sensors.clear();
        self.sdr_reads += 1;
        let sensors = on_session!(self.session.as_mut(), |i| read_sensors(i, target, requests))
            .ok_or_else(|| self.no_session())??;
        if !sensors
            .iter()
            .any(|s| s.kind == PowerSensorKind::PowerSupply)
        {
            return Err(IpmiReadError::NoPsuSensors {
                target: target.to_string(),
            });
        }
        self.sensors = sensors;
        Ok(())
    }

    fn scan_inner(&mut self, now_unix: u64) -> Result<PowerReading, IpmiReadError> {
        if self.session.is_none() {
            self.connect()?;
        }
        let target = self.target.describe();
        let mut requests = 0;
        let stamp = on_session!(self.session.as_mut(), |i| read_stamp(
            i,
            &target,
            &mut requests
        ))
        .ok_or_else(|| self.no_session())??;
        if stamp.is_none() || stamp != self.sdr_stamp {
            // Changed (or unknowable): the cache may be out of date. With
            // no stamp at all, keep the cache and rely on 0xCBh instead.
            if stamp.is_some() || self.sensors.is_empty() {
                self.sdr_stamp = None;
                self.refresh_sensors(&target, &mut requests)?;
                self.sdr_stamp = stamp;
            }
        }
        let mut retried = false;
        let (psus, redundancy) = loop {
            let sensors = std::mem::take(&mut self.sensors);
            let r = on_session!(self.session.as_mut(), |i| read_states(
                i,
                &target,
                &sensors,
                &mut requests
            ));
            let Some(r) = r else {
                self.sensors = sensors;
                return Err(self.no_session());
            };
            self.sensors = sensors;
            match r {
                Ok(v) => break v,
                Err(StatesError::NotPresent(e)) if retried => return Err(e),
                Err(StatesError::NotPresent(_)) => {
                    retried = true;
                    self.sdr_stamp = None;
                    self.refresh_sensors(&target, &mut requests)?;
                    self.sdr_stamp = stamp;
                }
                Err(StatesError::Other(e)) => return Err(e),
            }
        };
        self.last_requests = requests;
        Ok(PowerReading {
            source: target,
            psus,
            redundancy,
            observed_at: now_unix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_local_bmc_device_is_an_error_naming_it() {
        let mut s = PsuScanner::new(
            IpmiTarget::Local {
                device: PathBuf::from("/nonexistent/ipmi0"),
            },
            Duration::from_millis(100),
        );
        let e = s.scan(0).expect_err("no device");
        assert!(
            e.to_string()
                .starts_with("ipmi-local /nonexistent/ipmi0: cannot connect"),
            "{e}"
        );
    }

    #[test]
    fn repository_stamp_is_addition_and_erase_time() {
        let resp = [
            0x51, 7, 0, 0x00, 0x10, 1, 2, 3, 4, 0xAA, 0xBB, 0xCC, 0xDD, 0x2F,
        ];
        assert_eq!(
            GetSdrRepositoryStamp::parse_success_response(&resp).ok(),
            Some((7, 0x0403_0201, 0xDDCC_BBAA))
        );
        assert!(GetSdrRepositoryStamp::parse_success_response(&resp[..12]).is_err());
    }

    #[test]
    fn psu_offsets_decode() {
        // present + AC lost
        let s = psu_state("PSU3", 0x43, state_bits(&[0, 0xC0, 0b0000_1001, 0]));
        assert!(s.present && s.input_lost && !s.failed && s.readable);
        assert!(!s.is_working());
        let u = psu_state("PSU4", 0x44, state_bits(&[0, 0xE0, 0x01, 0]));
        assert!(!u.readable);
        assert_eq!(redundancy_state(0x01), Redundancy::Full);
        assert_eq!(redundancy_state(0x04), Redundancy::Degraded);
        assert_eq!(
            redundancy_state(0x02 | 0x20),
            Redundancy::InsufficientResources
        );
    }
}
