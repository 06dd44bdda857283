//! A GUID Partition Table writer (UEFI 2.10 §5.3), pure: a [`Table`] in,
//! the bytes of the primary and backup structures out.
//!
//! It writes 512-byte sectors, a protective MBR, 128 entries of 128 bytes,
//! and nothing random: every GUID is given by the caller (see [`crate::ids`]).

use crate::ids::Uuid;

pub const SECTOR: u64 = 512;
const ENTRIES: u32 = 128;
const ENTRY_SIZE: u32 = 128;
/// Sectors taken by the entry array: 128 * 128 / 512.
const ENTRY_SECTORS: u64 = (ENTRIES as u64 * ENTRY_SIZE as u64) / SECTOR;
const HEADER_SIZE: u32 = 92;

/// Partition type GUIDs (Discoverable Partitions Specification / UEFI).
pub mod types {
    pub const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    /// Linux root (x86-64).
    pub const ROOT_X86_64: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
    /// Linux RAID member.
    pub const LINUX_RAID: &str = "a19d880f-05fc-4d3b-a006-743f0f84911e";
    /// Linux filesystem data.
    pub const LINUX_DATA: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
}

/// One partition, in sectors, inclusive range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub type_guid: Uuid,
    pub guid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// Why a table cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GptError {
    #[error("partition `{name}` ({first}..={last}) lies outside the usable sectors {lo}..={hi}")]
    OutOfRange {
        name: String,
        first: u64,
        last: u64,
        lo: u64,
        hi: u64,
    },
    #[error("partitions `{a}` and `{b}` overlap")]
    Overlap { a: String, b: String },
    #[error("partition name `{0}` is longer than 36 UTF-16 code units")]
    NameTooLong(String),
    #[error("{0} partitions; a table holds at most 128")]
    TooMany(usize),
    #[error("not a GPT disk written by flexvisor-image: {0}")]
    Parse(String),
}

/// A whole-disk partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub disk_guid: Uuid,
    pub total_sectors: u64,
    pub partitions: Vec<Partition>,
}

impl Table {
    /// First sector a partition may use (after MBR, header and entries).
    pub fn first_usable() -> u64 {
        2 + ENTRY_SECTORS
    }

    /// Last sector a partition may use (before backup entries and header).
    pub fn last_usable(total_sectors: u64) -> u64 {
        total_sectors - 2 - ENTRY_SECTORS
    }

    /// Check ranges, overlaps and names.
    pub fn validate(&self) -> Result<(), GptError> {
        if self.partitions.len() > ENTRIES as usize {
            return Err(GptError::TooMany(self.partitions.len()));
        }
        let (lo, hi) = (Self::first_usable(), Self::last_usable(self.total_sectors));
        for p in &self.partitions {
            if p.first_lba < lo || p.last_lba > hi || p.first_lba > p.last_lba {
                return Err(GptError::OutOfRange {
                    name: p.name.clone(),
                    first: p.first_lba,
                    last: p.last_lba,
                    lo,
                    hi,
                });
            }
            if p.name.encode_utf16().count() > 36 {
                return Err(GptError::NameTooLong(p.name.clone()));
            }
        }
        for (i, a) in self.partitions.iter().enumerate() {
            for b in &self.partitions[i + 1..] {
                if a.first_lba <= b.last_lba && b.first_lba <= a.last_lba {
                    return Err(GptError::Overlap {
                        a: a.name.clone(),
                        b: b.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (i, p) in self.partitions.iter().enumerate() {
            let e = &mut out[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
            e[0..16].copy_from_slice(&p.type_guid.to_gpt_bytes());
            e[16..32].copy_from_slice(&p.guid.to_gpt_bytes());
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            // attributes (48..56) stay zero
            for (j, unit) in p.name.encode_utf16().take(36).enumerate() {
                e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }

    fn header(
        &self,
        my_lba: u64,
        alternate_lba: u64,
        entries_lba: u64,
        entries_crc: u32,
    ) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        // 16..20 header CRC, filled below; 20..24 reserved
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&Self::first_usable().to_le_bytes());
        h[48..56].copy_from_slice(&Self::last_usable(self.total_sectors).to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.to_gpt_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn protective_mbr(&self) -> Vec<u8> {
        let mut m = vec![0u8; SECTOR as usize];
        let size = u32::try_from(self.total_sectors - 1).unwrap_or(u32::MAX);
        let rec = &mut m[446..462];
        rec[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
        rec[4] = 0xee;
        rec[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        rec[8..12].copy_from_slice(&1u32.to_le_bytes());
        rec[12..16].copy_from_slice(&size.to_le_bytes());
        m[510] = 0x55;
        m[511] = 0xaa;
        m
    }

    /// Protective MBR, primary header and entries: write at offset 0.
    pub fn primary(&self) -> Result<Vec<u8>, GptError> {
        self.validate()?;
        let entries = self.entries();
        let crc = crc32fast::hash(&entries);
        let mut out = self.protective_mbr();
        out.extend(self.header(1, self.total_sectors - 1, 2, crc));
        out.extend(entries);
        Ok(out)
    }

    /// Backup entries and header: write at [`Table::backup_offset`].
    pub fn backup(&self) -> Result<Vec<u8>, GptError> {
        self.validate()?;
        let entries = self.entries();
        let crc = crc32fast::hash(&entries);
        let last = self.total_sectors - 1;
        let mut out = entries;
        out.extend(self.header(last, 1, last - ENTRY_SECTORS, crc));
        Ok(out)
    }

    pub fn backup_offset(&self) -> u64 {
        (self.total_sectors - 1 - ENTRY_SECTORS) * SECTOR
    }

    /// Bytes of [`Table::primary`]: what [`Table::parse`] reads.
    pub const PRIMARY_BYTES: usize = ((2 + ENTRY_SECTORS) * SECTOR) as usize;

    /// Read back a primary table (protective MBR, header at LBA 1, entries
    /// at LBA 2; header and entry CRCs checked) of a disk of
    /// `total_sectors`. Only tables of this writer's shape are accepted
    /// (128 entries of 128 bytes).
    pub fn parse(primary: &[u8], total_sectors: u64) -> Result<Table, GptError> {
        let bad = |m: &str| GptError::Parse(m.to_owned());
        if primary.len() < Self::PRIMARY_BYTES {
            return Err(bad("shorter than MBR, header and entries"));
        }
        let h = &primary[SECTOR as usize..2 * SECTOR as usize];
        if &h[0..8] != b"EFI PART" {
            return Err(bad("no `EFI PART` signature at LBA 1"));
        }
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |b: &[u8], i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        if u32_at(h, 12) != HEADER_SIZE {
            return Err(bad("header size is not 92"));
        }
        let mut hc = h[..HEADER_SIZE as usize].to_vec();
        hc[16..20].fill(0);
        if crc32fast::hash(&hc) != u32_at(h, 16) {
            return Err(bad("header CRC mismatch"));
        }
        if u64_at(h, 72) != 2 || u32_at(h, 80) != ENTRIES || u32_at(h, 84) != ENTRY_SIZE {
            return Err(bad("entries are not 128 x 128 bytes at LBA 2"));
        }
        let entries = &primary[2 * SECTOR as usize..Self::PRIMARY_BYTES];
        if crc32fast::hash(entries) != u32_at(h, 88) {
            return Err(bad("entry array CRC mismatch"));
        }
        let guid = |b: &[u8]| {
            // GPT's mixed-endian encoding back to canonical order.
            Uuid([
                b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12],
                b[13], b[14], b[15],
            ])
        };
        let mut partitions = Vec::new();
        for e in entries.chunks(ENTRY_SIZE as usize) {
            if e[0..16].iter().all(|b| *b == 0) {
                continue;
            }
            let units: Vec<u16> = e[56..128]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            partitions.push(Partition {
                name: String::from_utf16_lossy(&units),
                type_guid: guid(&e[0..16]),
                guid: guid(&e[16..32]),
                first_lba: u64_at(e, 32),
                last_lba: u64_at(e, 40),
            });
        }
        let t = Table {
            disk_guid: guid(&h[56..72]),
            total_sectors,
            partitions,
        };
        t.validate()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    fn table() -> Table {
        Table {
            disk_guid: u("11111111-2222-4333-8444-555555555555"),
            total_sectors: 8192,
            partitions: vec![
                Partition {
                    name: "esp".into(),
                    type_guid: u(types::ESP),
                    guid: u("aaaaaaaa-2222-4333-8444-555555555555"),
                    first_lba: 2048,
                    last_lba: 4095,
                },
                Partition {
                    name: "data".into(),
                    type_guid: u(types::LINUX_DATA),
                    guid: u("bbbbbbbb-2222-4333-8444-555555555555"),
                    first_lba: 4096,
                    last_lba: Table::last_usable(8192),
                },
            ],
        }
    }

    #[test]
    fn header_crcs_verify() {
        let t = table();
        let p = t.primary().unwrap();
        assert_eq!(p.len(), 34 * 512);
        let hdr = &p[512..1024];
        assert_eq!(&hdr[0..8], b"EFI PART");
        let mut h = hdr[..92].to_vec();
        let stored = u32::from_le_bytes(h[16..20].try_into().unwrap());
        h[16..20].fill(0);
        assert_eq!(crc32fast::hash(&h), stored);
        let ecrc = u32::from_le_bytes(hdr[88..92].try_into().unwrap());
        assert_eq!(crc32fast::hash(&p[1024..]), ecrc);
        assert_eq!(&p[510..512], &[0x55, 0xaa]);
    }

    #[test]
    fn backup_points_back_at_primary() {
        let t = table();
        let b = t.backup().unwrap();
        assert_eq!(b.len(), 33 * 512);
        let hdr = &b[32 * 512..];
        assert_eq!(u64::from_le_bytes(hdr[24..32].try_into().unwrap()), 8191);
        assert_eq!(u64::from_le_bytes(hdr[32..40].try_into().unwrap()), 1);
        assert_eq!(t.backup_offset() + b.len() as u64, 8192 * 512);
    }

    #[test]
    fn overlap_and_range_rejected() {
        let mut t = table();
        t.partitions[1].first_lba = 4000;
        assert!(matches!(t.primary(), Err(GptError::Overlap { .. })));
        let mut t = table();
        t.partitions[1].last_lba = 8191;
        assert!(matches!(t.primary(), Err(GptError::OutOfRange { .. })));
    }
}
