//! Partial SDR reads (IPMI v2.0 §33.12 "Get SDR", §33.11 "Reserve SDR
//! Repository") on top of `ipmi-rs`'s public [`IpmiCommand`] trait.
//!
//! `ipmi_rs::Ipmi::sdrs` asks for each record in one request (offset 0,
//! length 0xFF). BMCs whose response buffer is smaller than a record
//! refuse that with completion code 0xCA ("cannot return number of
//! requested data bytes"); OpenIPMI's `ipmi_sim` is one of them. ipmitool
//! copes by reading the 5-byte header first and then the body in pieces,
//! under a reservation, shrinking the piece size when the BMC complains.
//! This module does the same and hands the reassembled bytes to
//! `ipmi_rs::storage::sdr::Record::parse`.
//!
//! Self-contained on purpose (depends on `ipmi-rs` only) so it can be
//! offered upstream as is.

use ipmi_rs::connection::{
    CompletionErrorCode, IpmiCommand, IpmiConnection, Message, NetFn, NotEnoughData,
};
use ipmi_rs::storage::sdr::{Record, RecordId};
use ipmi_rs::{Ipmi, IpmiError};

/// Size of the SDR header (record id, version, type, length).
pub const SDR_HEADER_LEN: u8 = 5;
/// First piece size tried for the body; ipmitool starts at the same
/// conservative size for LAN sessions.
pub const DEFAULT_PIECE: u8 = 16;
/// Smallest piece size before giving up.
pub const MIN_PIECE: u8 = 2;
/// Reservations tried per record before giving up. A CMM read by every
/// node of the chassis (14 on a Flex chassis) has one reservation for
/// all of them: each reader's Reserve SDR Repository cancels the others'
/// (completion code 0xC5), so a record may need many attempts.
pub const RESERVATION_ATTEMPTS: u32 = 40;
/// Backoff before the first re-reservation; doubles per attempt up to
/// [`MAX_BACKOFF`], each wait jittered to between half and all of it so
/// contending readers spread out instead of cancelling each other in step.
pub const BASE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(4);
/// Upper bound of one backoff wait.
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// The wait before re-reserving after `attempt` cancelled reservations
/// (0-based), before jitter: `BASE_BACKOFF * 2^attempt`, capped.
pub fn backoff_ceiling(attempt: u32) -> std::time::Duration {
    BASE_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF)
}

/// A jittered wait in `[ceiling/2, ceiling]` for `attempt`. The jitter
/// comes from std's per-process random hash keys mixed with the thread
/// and the clock (no RNG dependency for a sleep).
fn jittered_backoff(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    h.write(format!("{:?}", std::thread::current().id()).as_bytes());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let ceiling = backoff_ceiling(attempt);
    let half = ceiling / 2;
    let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + std::time::Duration::from_micros(h.finish() % span)
}

/// `Reserve SDR Repository` (NetFn Storage, cmd 0x22).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReserveSdrRepository;

impl From<ReserveSdrRepository> for Message {
    fn from(_: ReserveSdrRepository) -> Self {
        Message::new_request(NetFn::Storage, 0x22, Vec::new())
    }
}

impl IpmiCommand for ReserveSdrRepository {
    type Output = u16;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<u16, NotEnoughData> {
        match data {
            [lo, hi, ..] => Ok(u16::from_le_bytes([*lo, *hi])),
            _ => Err(NotEnoughData),
        }
    }
}

/// `Get SDR` (NetFn Storage, cmd 0x23) for `length` bytes at `offset`.
#[derive(Debug, Clone, Copy)]
pub struct GetSdrPartial {
    /// Reservation from [`ReserveSdrRepository`]; 0 is allowed only for
    /// reads at offset 0.
    pub reservation: u16,
    /// Record to read.
    pub record_id: u16,
    /// Byte offset into the record.
    pub offset: u8,
    /// Bytes to read (0xFF = whole record).
    pub length: u8,
}

/// One piece of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdrPiece {
    /// Record id of the following record (0xFFFF after the last).
    pub next_record_id: u16,
    /// The bytes returned.
    pub data: Vec<u8>,
}

impl From<GetSdrPartial> for Message {
    fn from(c: GetSdrPartial) -> Self {
        let mut data = Vec::with_capacity(6);
        data.extend_from_slice(&c.reservation.to_le_bytes());
        data.extend_from_slice(&c.record_id.to_le_bytes());
        data.push(c.offset);
        data.push(c.length);
        Message::new_request(NetFn::Storage, 0x23, data)
    }
}

impl IpmiCommand for GetSdrPartial {
    type Output = SdrPiece;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<SdrPiece, NotEnoughData> {
        match data {
            [lo, hi, rest @ ..] => Ok(SdrPiece {
                next_record_id: u16::from_le_bytes([*lo, *hi]),
                data: rest.to_vec(),
            }),
            _ => Err(NotEnoughData),
        }
    }
}

/// Error reading one SDR record in pieces.
#[derive(Debug, thiserror::Error)]
pub enum SdrReadError<E: std::fmt::Debug> {
    /// The transport or the BMC failed a command.
    #[error("SDR record {record_id:#06x}: {what} failed: {error:?}")]
    Command {
        /// Record being read.
        record_id: u16,
        /// Which step.
        what: &'static str,
        /// ipmi-rs error.
        error: IpmiError<E, NotEnoughData>,
    },
    /// The BMC returned fewer bytes than asked and the piece size cannot
    /// shrink further.
    #[error("SDR record {record_id:#06x}: BMC refuses reads even of {MIN_PIECE} bytes")]
    PieceTooSmall {
        /// Record being read.
        record_id: u16,
    },
    /// The BMC returned a piece of the wrong length.
    #[error("SDR record {record_id:#06x}: asked {asked} bytes at offset {offset}, got {got}")]
    ShortPiece {
        /// Record being read.
        record_id: u16,
        /// Offset asked.
        offset: u8,
        /// Length asked.
        asked: u8,
        /// Length returned.
        got: usize,
    },
    /// The reservation kept being cancelled (SDR repository changing).
    #[error("SDR record {record_id:#06x}: reservation cancelled repeatedly")]
    ReservationLost {
        /// Record being read.
        record_id: u16,
    },
    /// ipmi-rs could not parse the reassembled record.
    #[error("SDR record {record_id:#06x}: cannot parse: {detail}")]
    Parse {
        /// Record being read.
        record_id: u16,
        /// Parser message.
        detail: String,
    },
}

/// Completion codes that mean "ask for fewer bytes" (IPMI v2.0 §5.2):
/// 0xCA cannot return requested bytes, 0xC7 request length invalid, 0xC8
/// request field length limit exceeded, 0xFF unspecified (some BMCs).
fn wants_smaller(cc: CompletionErrorCode) -> bool {
    matches!(
        cc,
        CompletionErrorCode::CannotReturnNumOfRequestedBytes
            | CompletionErrorCode::RequestDataLenInvalid
            | CompletionErrorCode::RequestDataLengthLimitExceeded
            | CompletionErrorCode::Unspecified
    )
}

fn completion_code<E: std::fmt::Debug>(
    err: &IpmiError<E, NotEnoughData>,
) -> Option<CompletionErrorCode> {
    match err {
        IpmiError::Failed {
            completion_code, ..
        } => Some(*completion_code),
        IpmiError::Command {
            completion_code, ..
        } => *completion_code,
        _ => None,
    }
}

/// Reads SDR records in pieces, remembering the piece size the BMC
/// accepts so later records need no probing.
#[derive(Debug)]
pub struct PartialSdrReader {
    reservation: Option<u16>,
    piece: u8,
    /// Commands sent so far (for benchmarks and tests).
    pub requests: u64,
    /// Reservations found cancelled so far (other readers, SDR changes).
    pub cancellations: u64,
}

impl Default for PartialSdrReader {
    fn default() -> Self {
        PartialSdrReader {
            reservation: None,
            piece: DEFAULT_PIECE,
            requests: 0,
            cancellations: 0,
        }
    }
}

impl PartialSdrReader {
    /// A reader starting at [`DEFAULT_PIECE`] bytes per request.
    pub fn new() -> PartialSdrReader {
        PartialSdrReader::default()
    }

    /// Current piece size.
    pub fn piece_size(&self) -> u8 {
        self.piece
    }

    fn reserve<C: IpmiConnection>(
        &mut self,
        ipmi: &mut Ipmi<C>,
        record_id: u16,
    ) -> Result<u16, SdrReadError<C::Error>> {
        self.requests += 1;
        let r = ipmi
            .send_recv(ReserveSdrRepository)
            .map_err(|error| SdrReadError::Command {
                record_id,
                what: "Reserve SDR Repository",
                error,
            })?;
        self.reservation = Some(r);
        Ok(r)
    }

    /// Read record `record_id`: its raw bytes and the next record id.
    pub fn read_raw<C: IpmiConnection>(
        &mut self,
        ipmi: &mut Ipmi<C>,
        record_id: u16,
    ) -> Result<(Vec<u8>, u16), SdrReadError<C::Error>> {
        for attempt in 0..RESERVATION_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(jittered_backoff(attempt - 1));
            }
            let reservation = match self.reservation {
                Some(r) => r,
                None => self.reserve(ipmi, record_id)?,
            };
            match self.read_with(ipmi, record_id, reservation) {
                Err(ReadStep::Cancelled) => {
                    self.reservation = None;
                    self.cancellations += 1;
                    continue;
                }
                Err(ReadStep::Fatal(e)) => return Err(e),
                Ok(v) => return Ok(v),
            }
        }
        Err(SdrReadError::ReservationLost { record_id })
    }

    /// Read and parse record `record_id` with ipmi-rs's record parser.
    pub fn read_record<C: IpmiConnection>(
        &mut self,
        ipmi: &mut Ipmi<C>,
        record_id: u16,
    ) -> Result<(Record, Vec<u8>, u16), SdrReadError<C::Error>> {
        let (bytes, next) = self.read_raw(ipmi, record_id)?;
        let record = Record::parse(&bytes).map_err(|e| SdrReadError::Parse {
            record_id,
            detail: format!("{e:?}"),
        })?;
        Ok((record, bytes, next))
    }

    fn get<C: IpmiConnection>(
        &mut self,
        ipmi: &mut Ipmi<C>,
        cmd: GetSdrPartial,
    ) -> Result<SdrPiece, IpmiError<C::Error, NotEnoughData>> {
        self.requests += 1;
        ipmi.send_recv(cmd)
    }

    fn read_with<C: IpmiConnection>(
        &mut self,
        ipmi: &mut Ipmi<C>,
        record_id: u16,
        reservation: u16,
    ) -> Result<(Vec<u8>, u16), ReadStep<C::Error>> {
        let header = self
            .get(
                ipmi,
                GetSdrPartial {
                    reservation,
                    record_id,
                    offset: 0,
                    length: SDR_HEADER_LEN,
                },
            )
            .map_err(|e| classify(record_id, "Get SDR header", e))?;
        if header.data.len() < usize::from(SDR_HEADER_LEN) {
            return Err(ReadStep::Fatal(SdrReadError::ShortPiece {
                record_id,
                offset: 0,
                asked: SDR_HEADER_LEN,
                got: header.data.len(),
            }));
        }
        let body_len = header.data[4];
        let total = usize::from(SDR_HEADER_LEN) + usize::from(body_len);
        let mut bytes = header.data;
        bytes.truncate(usize::from(SDR_HEADER_LEN));
        while bytes.len() < total {
            // Offsets fit in u8: total <= 5 + 255 and the loop stops there;
            // the last byte offset is 259 only for a 255-byte body, which
            // the spec forbids (records are at most 255 bytes overall).
            let Ok(offset) = u8::try_from(bytes.len()) else {
                return Err(ReadStep::Fatal(SdrReadError::ShortPiece {
                    record_id,
                    offset: u8::MAX,
                    asked: 0,
                    got: bytes.len(),
                }));
            };
            let want = u8::try_from((total - bytes.len()).min(usize::from(self.piece)))
                .unwrap_or(self.piece);
            let cmd = GetSdrPartial {
                reservation,
                record_id,
                offset,
                length: want,
            };
            match self.get(ipmi, cmd) {
                Ok(piece) => {
                    if piece.data.len() != usize::from(want) {
                        return Err(ReadStep::Fatal(SdrReadError::ShortPiece {
                            record_id,
                            offset,
                            asked: want,
                            got: piece.data.len(),
                        }));
                    }
                    bytes.extend_from_slice(&piece.data);
                }
                Err(e) => match completion_code(&e) {
                    Some(cc) if wants_smaller(cc) => {
                        if self.piece <= MIN_PIECE {
                            return Err(ReadStep::Fatal(SdrReadError::PieceTooSmall { record_id }));
                        }
                        self.piece = (self.piece / 2).max(MIN_PIECE);
                    }
                    _ => return Err(classify(record_id, "Get SDR body", e)),
                },
            }
        }
        Ok((bytes, header.next_record_id))
    }
}

enum ReadStep<E: std::fmt::Debug> {
    Cancelled,
    Fatal(SdrReadError<E>),
}

fn classify<E: std::fmt::Debug>(
    record_id: u16,
    what: &'static str,
    error: IpmiError<E, NotEnoughData>,
) -> ReadStep<E> {
    // 0xC5: reservation cancelled or invalid.
    if completion_code(&error) == Some(CompletionErrorCode::ReservationCancelledOrInvalidId) {
        return ReadStep::Cancelled;
    }
    ReadStep::Fatal(SdrReadError::Command {
        record_id,
        what,
        error,
    })
}

/// A parsed record with the bytes it was parsed from.
pub type RawRecord = (Record, Vec<u8>);

/// Iterate all SDR records from the first, in pieces.
pub fn read_all<C: IpmiConnection>(
    ipmi: &mut Ipmi<C>,
    reader: &mut PartialSdrReader,
) -> Result<Vec<RawRecord>, SdrReadError<C::Error>> {
    let mut out = Vec::new();
    let mut id = RecordId::FIRST.value();
    // A repository holds at most 0xFFFF records; the bound also stops a
    // BMC that loops its next-record ids.
    for _ in 0..u16::MAX {
        if id == RecordId::LAST.value() {
            break;
        }
        let (record, bytes, next) = reader.read_record(ipmi, id)?;
        out.push((record, bytes));
        if next == id {
            break;
        }
        id = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jitter_stays_in_range() {
        assert_eq!(backoff_ceiling(0), BASE_BACKOFF);
        assert_eq!(backoff_ceiling(1), BASE_BACKOFF * 2);
        assert_eq!(backoff_ceiling(30), MAX_BACKOFF);
        for attempt in 0..RESERVATION_ATTEMPTS {
            let c = backoff_ceiling(attempt);
            let j = jittered_backoff(attempt);
            assert!(j >= c / 2 && j <= c, "attempt {attempt}: {j:?} vs {c:?}");
        }
    }

    #[test]
    fn get_sdr_request_layout() {
        let m: Message = GetSdrPartial {
            reservation: 0x1234,
            record_id: 0x0007,
            offset: 5,
            length: 16,
        }
        .into();
        assert_eq!(m.cmd(), 0x23);
        assert_eq!(m.data(), &[0x34, 0x12, 0x07, 0x00, 5, 16]);
        let p = GetSdrPartial::parse_success_response(&[0x08, 0x00, 1, 2, 3]).expect("piece");
        assert_eq!(p.next_record_id, 8);
        assert_eq!(p.data, vec![1, 2, 3]);
        assert!(GetSdrPartial::parse_success_response(&[1]).is_err());
        assert_eq!(
            ReserveSdrRepository::parse_success_response(&[0x02, 0x01]).ok(),
            Some(0x0102)
        );
    }
}
