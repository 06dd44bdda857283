//! What a disk already carries, read from its first and last MiB: the
//! signatures that make a disk "not blank" for the replacement procedure.
//! Pure: the caller reads the bytes.

use serde::Serialize;

/// How many bytes of each end of the disk [`signatures`] looks at.
pub const PROBE_BYTES: usize = 1024 * 1024;

/// Something found on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signature {
    /// GPT header (`EFI PART` at LBA 1).
    GptPartitionTable,
    /// MBR / protective MBR boot signature 0x55AA at byte 510.
    MbrPartitionTable,
    /// md superblock (version 0.90, 1.0, 1.1 or 1.2) at `offset`.
    MdSuperblock {
        /// Metadata version.
        version: &'static str,
        /// Byte offset from the start of the disk.
        offset: u64,
    },
    /// A filesystem superblock.
    Filesystem {
        /// `ext2/3/4`, `erofs`, `xfs`, `btrfs`, `swap`, `vfat`.
        kind: &'static str,
    },
    /// Non-zero bytes that match no known signature.
    Data {
        /// Byte offset of the first non-zero byte seen.
        offset: u64,
    },
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signature::GptPartitionTable => write!(f, "a GPT partition table"),
            Signature::MbrPartitionTable => write!(f, "an MBR partition table"),
            Signature::MdSuperblock { version, offset } => {
                write!(f, "an md superblock (metadata {version}) at byte {offset}")
            }
            Signature::Filesystem { kind } => write!(f, "a {kind} filesystem"),
            Signature::Data { offset } => write!(f, "non-zero data at byte {offset}"),
        }
    }
}

/// md superblock magic (`MD_SB_MAGIC`, include/uapi/linux/raid/md_p.h).
const MD_MAGIC: u32 = 0xa92b_4efc;

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn bytes_at(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at + len)
}

/// Signatures on a disk of `size` bytes whose first bytes are `head` and
/// whose last bytes are `tail` (each up to [`PROBE_BYTES`]; shorter for
/// small disks, and they may overlap). Empty means blank: all zeros.
pub fn signatures(head: &[u8], tail: &[u8], size: u64) -> Vec<Signature> {
    let mut out = Vec::new();
    if bytes_at(head, 512, 8) == Some(b"EFI PART") {
        out.push(Signature::GptPartitionTable);
    } else if bytes_at(head, 510, 2) == Some(&[0x55, 0xaa]) {
        // A FAT boot sector also ends in 0x55AA: tell them apart.
        if bytes_at(head, 54, 3) == Some(b"FAT") || bytes_at(head, 82, 3) == Some(b"FAT") {
            out.push(Signature::Filesystem { kind: "vfat" });
        } else {
            out.push(Signature::MbrPartitionTable);
        }
    }
    // md 1.1 at 0, 1.2 at 4 KiB (Documentation/admin-guide/md.rst).
    for (version, at) in [("1.1", 0usize), ("1.2", 4096)] {
        if le32(head, at) == Some(MD_MAGIC) {
            out.push(Signature::MdSuperblock {
                version,
                offset: at as u64,
            });
        }
    }
    // md 1.0: 8 KiB before the end, 4 KiB aligned; 0.90: the last 64 KiB
    // aligned block (md_p.h MD_NEW_SIZE_SECTORS).
    let tail_start = size.saturating_sub(tail.len() as u64);
    let in_tail = |offset: u64| -> Option<usize> {
        offset
            .checked_sub(tail_start)
            .and_then(|o| usize::try_from(o).ok())
    };
    if size >= 8192 {
        let v10 = ((size - 8192) / 4096) * 4096;
        if in_tail(v10).and_then(|o| le32(tail, o)) == Some(MD_MAGIC) {
            out.push(Signature::MdSuperblock {
                version: "1.0",
                offset: v10,
            });
        }
    }
    if size >= 65536 {
        let v090 = (size & !65535) - 65536;
        if in_tail(v090).and_then(|o| le32(tail, o)) == Some(MD_MAGIC) {
            out.push(Signature::MdSuperblock {
                version: "0.90",
                offset: v090,
            });
        }
    }
    if bytes_at(head, 1080, 2) == Some(&[0x53, 0xef]) {
        out.push(Signature::Filesystem { kind: "ext2/3/4" });
    }
    if le32(head, 1024) == Some(0xe0f5_e1e2) {
        out.push(Signature::Filesystem { kind: "erofs" });
    }
    if bytes_at(head, 0, 4) == Some(b"XFSB") {
        out.push(Signature::Filesystem { kind: "xfs" });
    }
    if bytes_at(head, 65536 + 64, 8) == Some(b"_BHRfS_M") {
        out.push(Signature::Filesystem { kind: "btrfs" });
    }
    if bytes_at(head, 4086, 10) == Some(b"SWAPSPACE2") {
        out.push(Signature::Filesystem { kind: "swap" });
    }
    if out.is_empty() {
        let first = head
            .iter()
            .position(|b| *b != 0)
            .map(|i| i as u64)
            .or_else(|| {
                tail.iter()
                    .position(|b| *b != 0)
                    .map(|i| tail_start + i as u64)
            });
        if let Some(offset) = first {
            out.push(Signature::Data { offset });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIZE: u64 = 64 * 1024 * 1024;

    fn blank() -> (Vec<u8>, Vec<u8>) {
        (vec![0; PROBE_BYTES], vec![0; PROBE_BYTES])
    }

    #[test]
    fn zeros_are_blank() {
        let (h, t) = blank();
        assert!(signatures(&h, &t, SIZE).is_empty());
    }

    #[test]
    fn gpt_and_mbr_are_partition_tables() {
        let (mut h, t) = blank();
        h[510] = 0x55;
        h[511] = 0xaa;
        assert_eq!(signatures(&h, &t, SIZE), vec![Signature::MbrPartitionTable]);
        h[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(signatures(&h, &t, SIZE), vec![Signature::GptPartitionTable]);
    }

    #[test]
    fn md_superblocks_at_every_version_offset() {
        let (mut h, mut t) = blank();
        h[4096..4100].copy_from_slice(&MD_MAGIC.to_le_bytes());
        assert_eq!(
            signatures(&h, &t, SIZE),
            vec![Signature::MdSuperblock {
                version: "1.2",
                offset: 4096
            }]
        );
        let (h, _) = blank();
        // 1.0: size - 8 KiB, in the tail buffer.
        let at = PROBE_BYTES - 8192;
        t[at..at + 4].copy_from_slice(&MD_MAGIC.to_le_bytes());
        assert_eq!(
            signatures(&h, &t, SIZE),
            vec![Signature::MdSuperblock {
                version: "1.0",
                offset: SIZE - 8192
            }]
        );
    }

    #[test]
    fn filesystems_are_named() {
        let (mut h, t) = blank();
        h[1080] = 0x53;
        h[1081] = 0xef;
        assert_eq!(
            signatures(&h, &t, SIZE),
            vec![Signature::Filesystem { kind: "ext2/3/4" }]
        );
        let (mut h, t) = blank();
        h[54..57].copy_from_slice(b"FAT");
        h[510] = 0x55;
        h[511] = 0xaa;
        assert_eq!(
            signatures(&h, &t, SIZE),
            vec![Signature::Filesystem { kind: "vfat" }]
        );
    }

    #[test]
    fn unknown_bytes_are_data_with_their_offset() {
        let (h, mut t) = blank();
        t[10] = 1;
        assert_eq!(
            signatures(&h, &t, SIZE),
            vec![Signature::Data {
                offset: SIZE - PROBE_BYTES as u64 + 10
            }]
        );
    }

    proptest! {
        /// Any non-zero byte anywhere makes the disk non-blank, and the
        /// probe never panics on short buffers.
        #[test]
        fn any_byte_makes_it_not_blank(
            at in 0usize..8192, v in 1u8..=255, short in 0usize..8192, size in 0u64..1 << 30
        ) {
            let mut h = vec![0u8; 8192];
            h[at] = v;
            prop_assert!(!signatures(&h, &[], size.max(8192)).is_empty());
            let _ = signatures(&h[..short], &h[..short.min(100)], size);
        }
    }
}
