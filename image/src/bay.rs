//! Which chassis bay this node sits in, asked of the node's own BMC (the
//! x240's IMM) through the kernel's IPMI device (`/dev/ipmi0`, modules
//! `ipmi_si` + `ipmi_devintf`).
//!
//! Two readings, in this order:
//!
//! 1. PICMG *Get Address Info* (NetFn 2Ch, command 01h, PICMG identifier
//!    00h): the *site number* of the blade's slot, what bladed BMCs report
//!    for the physical slot.
//! 2. The BMC's FRU inventory (device 0): a chassis, board or product info
//!    field reading `bay=N` (the same convention as the SMBIOS chassis
//!    asset tag qemu sets), e.g. the product asset tag.
//!
//! Whether the x240 IMM2 answers (1), and which FRU field it fills with
//! the bay, is not documented in anything available here; see
//! docs/image.md ("Wrong bay"). The parsers are pure and unit-tested; the
//! device access is a thin `ioctl` layer.

use std::path::Path;
use std::time::Duration;

/// Why the BMC could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum BayError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("IPMI request netfn {netfn:#04x} cmd {cmd:#04x}: {source}")]
    Io {
        netfn: u8,
        cmd: u8,
        #[source]
        source: std::io::Error,
    },
    #[error("IPMI request netfn {netfn:#04x} cmd {cmd:#04x}: no answer within {secs} s")]
    Timeout { netfn: u8, cmd: u8, secs: u64 },
    #[error("IPMI request netfn {netfn:#04x} cmd {cmd:#04x}: completion code {code:#04x}")]
    Completion { netfn: u8, cmd: u8, code: u8 },
}

/// Where a bay reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// PICMG Get Address Info, site number.
    Picmg,
    /// A `bay=N` field of the BMC's FRU inventory.
    Fru,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Picmg => "ipmi-picmg",
            Source::Fru => "ipmi-fru",
        }
    }
}

/// The site number of a PICMG Get Address Info response (completion code
/// first): `[cc, 00h, hw addr, IPMB-0 addr, FFh, FRU id, site id, site
/// type, ...]`. Only front-board sites (type 00h) with a non-zero number.
pub fn parse_address_info(resp: &[u8]) -> Option<u32> {
    match resp {
        [0x00, 0x00, _, _, _, _, site, 0x00, ..] if *site > 0 => Some(u32::from(*site)),
        _ => None,
    }
}

/// `bay=N` (case-insensitive, leading zeros allowed, surrounding text
/// allowed) in a field.
pub fn bay_in(text: &str) -> Option<u32> {
    let lower = text.to_ascii_lowercase();
    let i = lower.find("bay=")?;
    let digits: String = lower[i + 4..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok().filter(|n| *n > 0)
}

/// The text fields of one FRU info area starting at `off` (type/length
/// bytes, IPMI FRU spec 1.2 §13): 8-bit ASCII and 6-bit packed ASCII
/// fields, until the C1h end marker. `skip` bytes of fixed header come
/// first (version, length, and per area language/date/type).
fn area_fields(data: &[u8], off: usize, skip: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Some(len) = data.get(off + 1).map(|l| usize::from(*l) * 8) else {
        return out;
    };
    let end = (off + len).min(data.len());
    let mut i = off + skip;
    while i < end {
        let tl = data[i];
        if tl == 0xC1 {
            break;
        }
        let n = usize::from(tl & 0x3F);
        let Some(bytes) = data.get(i + 1..i + 1 + n) else {
            break;
        };
        let text = match tl >> 6 {
            // 6-bit packed ASCII: 4 characters per 3 bytes, LSB first.
            2 => {
                let mut s = String::new();
                for chunk in bytes.chunks(3) {
                    let mut v: u32 = 0;
                    for (k, b) in chunk.iter().enumerate() {
                        v |= u32::from(*b) << (8 * k);
                    }
                    for k in 0..(chunk.len() * 8 / 6) {
                        // A 6-bit value plus 20h is printable ASCII.
                        s.push(char::from(((v >> (6 * k)) & 0x3F) as u8 + 0x20));
                    }
                }
                s
            }
            // 8-bit ASCII (and binary, which will not match `bay=`).
            _ => bytes.iter().map(|b| char::from(*b)).collect(),
        };
        out.push(text);
        i += 1 + n;
    }
    out
}

/// Every text field of the chassis, board and product info areas of a FRU
/// inventory (common header at offset 0, offsets in multiples of 8).
pub fn fru_fields(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if data.len() < 8 || data[0] & 0x0F != 0x01 {
        return out;
    }
    // (header byte holding the area offset, fixed bytes before the fields)
    for (at, skip) in [(2usize, 3usize), (3, 6), (4, 3)] {
        let off = usize::from(data[at]) * 8;
        if off != 0 && off < data.len() {
            out.extend(area_fields(data, off, skip));
        }
    }
    out
}

/// The bay a FRU inventory names, if any field says `bay=N`.
pub fn bay_in_fru(data: &[u8]) -> Option<u32> {
    fru_fields(data).iter().find_map(|f| bay_in(f))
}

/// The local BMC through the kernel's IPMI device.
#[derive(Debug)]
pub struct Bmc {
    file: std::fs::File,
    seq: i64,
}

// Linux <linux/ipmi.h>, x86-64 layouts.
const IPMI_SYSTEM_INTERFACE_ADDR_TYPE: i32 = 0x0c;
const IPMI_BMC_CHANNEL: i16 = 0x0f;
/// `_IOR('i', 13, struct ipmi_req)` (40 bytes).
const IPMICTL_SEND_COMMAND: u64 = 0x8028_690d;
/// `_IOWR('i', 11, struct ipmi_recv)` (48 bytes).
const IPMICTL_RECEIVE_MSG_TRUNC: u64 = 0xc030_690b;

#[repr(C)]
struct SystemInterfaceAddr {
    addr_type: i32,
    channel: i16,
    lun: u8,
}

#[repr(C)]
struct IpmiMsg {
    netfn: u8,
    cmd: u8,
    data_len: u16,
    data: *mut u8,
}

#[repr(C)]
struct IpmiReq {
    addr: *mut u8,
    addr_len: u32,
    msgid: i64,
    msg: IpmiMsg,
}

#[repr(C)]
struct IpmiRecv {
    recv_type: i32,
    addr: *mut u8,
    addr_len: u32,
    msgid: i64,
    msg: IpmiMsg,
}

impl Bmc {
    /// Open the IPMI device (`/dev/ipmi0`).
    pub fn open(path: &Path) -> Result<Bmc, BayError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| BayError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Bmc { file, seq: 0 })
    }

    /// One request to the BMC; the response data with the completion code
    /// first.
    pub fn request(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, BayError> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let ioerr = |source| BayError::Io { netfn, cmd, source };
        self.seq += 1;
        let mut addr = SystemInterfaceAddr {
            addr_type: IPMI_SYSTEM_INTERFACE_ADDR_TYPE,
            channel: IPMI_BMC_CHANNEL,
            lun: 0,
        };
        let mut body = data.to_vec();
        let mut req = IpmiReq {
            addr: (&mut addr as *mut SystemInterfaceAddr).cast(),
            addr_len: std::mem::size_of::<SystemInterfaceAddr>() as u32,
            msgid: self.seq,
            msg: IpmiMsg {
                netfn,
                cmd,
                data_len: body.len() as u16,
                data: body.as_mut_ptr(),
            },
        };
        // SAFETY: `req` and what it points to (`addr`, `body`) are live,
        // correctly laid out (#[repr(C)], <linux/ipmi.h> on x86-64) and
        // outlive the call; the kernel only reads them.
        let rc = unsafe { libc::ioctl(fd, IPMICTL_SEND_COMMAND as _, &mut req) };
        if rc < 0 {
            return Err(ioerr(std::io::Error::last_os_error()));
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(BayError::Timeout {
                    netfn,
                    cmd,
                    secs: timeout.as_secs(),
                });
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(60_000) as i32) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ioerr(e));
            }
            if n == 0 {
                continue;
            }
            let mut raddr = [0u8; 64];
            let mut rdata = vec![0u8; 300];
            let mut recv = IpmiRecv {
                recv_type: 0,
                addr: raddr.as_mut_ptr(),
                addr_len: raddr.len() as u32,
                msgid: 0,
                msg: IpmiMsg {
                    netfn: 0,
                    cmd: 0,
                    data_len: rdata.len() as u16,
                    data: rdata.as_mut_ptr(),
                },
            };
            // SAFETY: `recv` points at buffers of the lengths it states,
            // live for the call; the kernel writes at most those lengths.
            let rc = unsafe { libc::ioctl(fd, IPMICTL_RECEIVE_MSG_TRUNC as _, &mut recv) };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                // EMSGSIZE: truncated, still delivered.
                if e.raw_os_error() != Some(libc::EMSGSIZE) {
                    return Err(ioerr(e));
                }
            }
            if recv.msgid != self.seq {
                continue; // an answer to an earlier, timed-out request
            }
            rdata.truncate(usize::from(recv.msg.data_len));
            return Ok(rdata);
        }
    }

    /// The bay by PICMG Get Address Info, if the BMC answers it.
    pub fn picmg_site(&mut self) -> Result<Option<u32>, BayError> {
        let r = self.request(0x2C, 0x01, &[0x00], Duration::from_secs(5))?;
        Ok(parse_address_info(&r))
    }

    /// FRU device `dev`'s inventory (Get FRU Inventory Area Info, then
    /// Read FRU Data in 16-byte pieces; at most 4 KiB).
    pub fn fru(&mut self, dev: u8) -> Result<Vec<u8>, BayError> {
        let t = Duration::from_secs(5);
        let info = self.request(0x0A, 0x10, &[dev], t)?;
        if info.first() != Some(&0) || info.len() < 3 {
            return Err(BayError::Completion {
                netfn: 0x0A,
                cmd: 0x10,
                code: info.first().copied().unwrap_or(0xFF),
            });
        }
        let size = usize::from(u16::from_le_bytes([info[1], info[2]])).min(4096);
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let off = out.len() as u16;
            let n = (size - out.len()).min(16) as u8;
            let [lo, hi] = off.to_le_bytes();
            let r = self.request(0x0A, 0x11, &[dev, lo, hi, n], t)?;
            match r.as_slice() {
                [0, count, rest @ ..] if *count > 0 => {
                    out.extend_from_slice(&rest[..usize::from(*count).min(rest.len())])
                }
                [code, ..] => {
                    return Err(BayError::Completion {
                        netfn: 0x0A,
                        cmd: 0x11,
                        code: *code,
                    })
                }
                [] => break,
            }
        }
        Ok(out)
    }

    /// The bay this BMC reports, and how: PICMG site number first, then a
    /// `bay=N` FRU field. `None` when it answers neither.
    pub fn bay(&mut self) -> Result<Option<(u32, Source)>, BayError> {
        // Not a PICMG controller: an error completion code, or no answer.
        if let Ok(Some(b)) = self.picmg_site() {
            return Ok(Some((b, Source::Picmg)));
        }
        Ok(bay_in_fru(&self.fru(0)?).map(|b| (b, Source::Fru)))
    }
}

/// A FRU inventory with one product info area whose asset tag is `tag`
/// (for tests and the simulated BMC of the image tests).
pub fn fru_with_asset_tag(tag: &str) -> Vec<u8> {
    let mut area = vec![0x01, 0x00, 0x00]; // version, length (set below), English
    for f in ["flexvisor", "x240 node", "", "", "", tag, ""] {
        // manufacturer, name, part, version, serial, asset tag, FRU file id
        area.push(0xC0 | (f.len() as u8 & 0x3F));
        area.extend_from_slice(&f.as_bytes()[..f.len().min(63)]);
    }
    area.push(0xC1);
    while (area.len() + 1) % 8 != 0 {
        area.push(0);
    }
    area.push(0); // checksum, below
    area[1] = (area.len() / 8) as u8;
    let sum = area.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let last = area.len() - 1;
    area[last] = sum.wrapping_neg();
    let mut header = vec![0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
    let hsum = header.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    header.push(hsum.wrapping_neg());
    header.extend(area);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picmg_site_number_of_a_front_board() {
        assert_eq!(
            parse_address_info(&[0, 0, 0x41, 0x82, 0xFF, 0, 7, 0]),
            Some(7)
        );
        // Not a front board, site 0, error completion code, short.
        assert_eq!(parse_address_info(&[0, 0, 0x41, 0x82, 0xFF, 0, 7, 1]), None);
        assert_eq!(parse_address_info(&[0, 0, 0x41, 0x82, 0xFF, 0, 0, 0]), None);
        assert_eq!(parse_address_info(&[0xC1]), None);
        assert_eq!(parse_address_info(&[0, 0, 1]), None);
    }

    #[test]
    fn bay_field_forms() {
        assert_eq!(bay_in("bay=7"), Some(7));
        assert_eq!(bay_in("chassis1 BAY=07 x240"), Some(7));
        assert_eq!(bay_in("bay=0"), None);
        assert_eq!(bay_in("bay 7"), None);
        assert_eq!(bay_in("bay="), None);
    }

    #[test]
    fn fru_asset_tag_round_trip() {
        let fru = fru_with_asset_tag("bay=12");
        assert_eq!(fru.len() % 8, 0);
        assert_eq!(fru[..8].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        let fields = fru_fields(&fru);
        assert!(fields.contains(&"bay=12".to_owned()), "{fields:?}");
        assert_eq!(bay_in_fru(&fru), Some(12));
        assert_eq!(bay_in_fru(&fru_with_asset_tag("rack 3")), None);
    }

    #[test]
    fn six_bit_packed_fields_are_decoded() {
        // "BAY=7" is not 6-bit friendly in lower case; 6-bit ASCII is upper
        // case: "BAY=12" packs into 6 characters = 36 bits = 5 bytes.
        let text = "BAY=12";
        let mut v: u64 = 0;
        for (k, c) in text.bytes().enumerate() {
            v |= u64::from(c - 0x20) << (6 * k);
        }
        let packed: Vec<u8> = (0..5).map(|k| (v >> (8 * k)) as u8).collect();
        let mut area = vec![0x01, 0x02, 0x00, 0x80 | 5];
        area.extend(&packed);
        area.push(0xC1);
        area.resize(16, 0);
        let mut fru = vec![0x01, 0, 0, 0, 0x01, 0, 0, 0];
        fru.extend(area);
        let fields = fru_fields(&fru);
        assert!(fields[0].starts_with("BAY=12"), "{fields:?}");
        assert_eq!(bay_in_fru(&fru), Some(12));
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 1) as u8).collect();
            let _ = fru_fields(&junk);
            let mut j = junk.clone();
            if j.len() > 4 {
                j[0] = 1;
                j[2] = 1;
                j[3] = 1;
                j[4] = 1;
            }
            let _ = fru_fields(&j);
            let _ = parse_address_info(&junk);
        }
    }

    proptest::proptest! {
        #[test]
        fn fru_parser_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = fru_fields(&data);
            let _ = bay_in_fru(&data);
        }
    }
}
