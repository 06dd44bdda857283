//! Stable identifiers derived from what an image is for.
//!
//! Every id that tools would otherwise draw at random (disk and partition
//! GUIDs, filesystem UUIDs, the ext4 directory hash seed, the FAT volume
//! serial) is derived here from a [`Seed`]: the deployment, chassis and bay
//! the image is for, plus a purpose label. Same seed, same bytes.

use sha2::{Digest, Sha256};

/// What an image's identifiers are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub deployment: String,
    pub chassis: String,
    pub bay: u32,
}

impl Seed {
    fn digest(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        // Length-prefix each field so ("ab","c") and ("a","bc") differ.
        for part in [self.deployment.as_str(), self.chassis.as_str(), purpose] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(self.bay.to_le_bytes());
        h.finalize().into()
    }

    /// A version-4-shaped UUID (RFC 9562 §5.4 layout bits set) for `purpose`.
    pub fn uuid(&self, purpose: &str) -> Uuid {
        let d = self.digest(purpose);
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }

    /// A 32-bit id (FAT volume serial) for `purpose`.
    pub fn u32(&self, purpose: &str) -> u32 {
        let d = self.digest(purpose);
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

/// A UUID in its canonical (big-endian, RFC 9562) byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The mixed-endian encoding GPT stores on disk (UEFI spec, Appendix A).
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        let b = self.0;
        [
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        ]
    }

    /// Parse the canonical `8-4-4-4-12` text form.
    pub fn parse(s: &str) -> Option<Uuid> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Uuid(b))
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(bay: u32) -> Seed {
        Seed {
            deployment: "c5".into(),
            chassis: "chassis1".into(),
            bay,
        }
    }

    #[test]
    fn same_seed_same_ids_and_bays_differ() {
        assert_eq!(seed(5).uuid("disk"), seed(5).uuid("disk"));
        assert_ne!(seed(5).uuid("disk"), seed(6).uuid("disk"));
        assert_ne!(seed(5).uuid("disk"), seed(5).uuid("esp"));
    }

    #[test]
    fn uuid_text_roundtrip_and_version_bits() {
        let u = seed(3).uuid("x");
        let s = u.to_string();
        assert_eq!(s.as_bytes()[14], b'4');
        assert_eq!(Uuid::parse(&s), Some(u));
    }

    #[test]
    fn gpt_encoding_of_esp_type_guid() {
        // C12A7328-F81F-11D2-BA4B-00A0C93EC93B is stored as 28 73 2A C1 1F F8 D2 11 BA 4B ...
        let esp = Uuid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap();
        assert_eq!(
            esp.to_gpt_bytes()[..8],
            [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11]
        );
    }
}
