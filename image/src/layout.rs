//! The disk layout of a node image: which partitions, how big, where.
//!
//! ```text
//! LBA 0..2047      protective MBR, GPT header and entries (+ alignment)
//! fv-esp           FAT32 ESP: systemd-boot and one UKI per system slot
//! fv-system-a      ext4, read-only system (flexvisor, tools, modules)
//! fv-system-b      same size; empty until an update writes it
//! fv-config        ext4 with node.toml; RAID-1 member (md0, metadata 1.0)
//! fv-data          empty; RAID-1 member (md1), formatted on first boot
//! last 1 MiB       backup GPT (+ alignment)
//! ```

use crate::gpt::{self, Partition, Table, SECTOR};
use crate::ids::{Seed, Uuid};

pub const MIB: u64 = 1024 * 1024;

/// Sizes of the variable partitions, in bytes (multiples of 1 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub esp: u64,
    pub system: u64,
    pub config: u64,
    pub data: u64,
}

/// Partition names, as the initramfs looks them up (`PARTNAME=`).
pub const ESP: &str = "fv-esp";
pub const SYSTEM_A: &str = "fv-system-a";
pub const SYSTEM_B: &str = "fv-system-b";
pub const CONFIG: &str = "fv-config";
pub const DATA: &str = "fv-data";

/// The partition table for a disk of this layout. `disk` tells the disk
/// apart ("disk1" for the image, "disk2" for the mirror disk's table).
pub fn table(sizes: Sizes, seed: &Seed, disk: &str) -> Table {
    let parts = [
        (ESP, gpt::types::ESP, sizes.esp),
        (SYSTEM_A, gpt::types::ROOT_X86_64, sizes.system),
        (SYSTEM_B, gpt::types::ROOT_X86_64, sizes.system),
        (CONFIG, gpt::types::LINUX_RAID, sizes.config),
        (DATA, gpt::types::LINUX_RAID, sizes.data),
    ];
    let total = MIB + parts.iter().map(|p| p.2).sum::<u64>() + MIB;
    let mut lba = MIB / SECTOR;
    let partitions = parts
        .iter()
        .map(|(name, ty, size)| {
            let first = lba;
            lba += size / SECTOR;
            Partition {
                name: (*name).to_owned(),
                // The type GUIDs are constants of this module.
                type_guid: Uuid::parse(ty).unwrap_or(Uuid([0; 16])),
                guid: seed.uuid(&format!("{disk}/{name}")),
                first_lba: first,
                last_lba: lba - 1,
            }
        })
        .collect();
    Table {
        disk_guid: seed.uuid(disk),
        total_sectors: total / SECTOR,
        partitions,
    }
}

/// Why a disk's data partition cannot grow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrowError {
    #[error("the last partition is `{0}`, not `{DATA}`")]
    DataNotLast(String),
    #[error("the disk ({disk} sectors) is smaller than its partitions need ({need})")]
    TooSmall { disk: u64, need: u64 },
}

/// The table `t` on a disk of `disk_sectors`: the backup structures at the
/// disk's end and `fv-data` (the last partition) extended to the last
/// whole MiB before them. The other partitions stay where they are.
/// Growing to the same size again changes nothing (idempotent).
pub fn grow(t: &Table, disk_sectors: u64) -> Result<Table, GrowError> {
    let last = t
        .partitions
        .iter()
        .max_by_key(|p| p.last_lba)
        .ok_or_else(|| GrowError::DataNotLast(String::new()))?;
    if last.name != DATA {
        return Err(GrowError::DataNotLast(last.name.clone()));
    }
    let align = MIB / SECTOR;
    let usable_end = Table::last_usable(disk_sectors.max(Table::first_usable() + 34)) + 1;
    let end = usable_end / align * align;
    if end <= last.first_lba {
        return Err(GrowError::TooSmall {
            disk: disk_sectors,
            need: last.first_lba + align + 34,
        });
    }
    let mut out = t.clone();
    out.total_sectors = disk_sectors;
    for p in &mut out.partitions {
        if p.name == DATA {
            p.last_lba = end - 1;
        }
    }
    Ok(out)
}

/// Why a disk could not be grown.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Gpt {
        path: String,
        #[source]
        source: crate::gpt::GptError,
    },
    #[error("{path}: {source}")]
    Grow {
        path: String,
        #[source]
        source: GrowError,
    },
}

/// What [`grow_disk`] did: the data partition's size before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grown {
    pub before: u64,
    pub after: u64,
}

/// Grow `fv-data` of the disk (or image file) at `path` to the disk's end
/// and move the backup table there. Nothing on the disk may be in use
/// (the kernel re-reads the table afterwards: `blockdev --rereadpt`).
pub fn grow_disk(path: &std::path::Path) -> Result<Grown, DiskError> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let p = path.display().to_string();
    let io = |source| DiskError::Io {
        path: p.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut primary = vec![0u8; Table::PRIMARY_BYTES];
    f.read_exact(&mut primary).map_err(io)?;
    let old_total = (len / SECTOR).min(
        // The table's own idea of the disk: its backup header's LBA + 1.
        u64::from_le_bytes(primary[512 + 32..512 + 40].try_into().unwrap_or([0; 8])) + 1,
    );
    let t = Table::parse(&primary, old_total).map_err(|source| DiskError::Gpt {
        path: p.clone(),
        source,
    })?;
    let size = |t: &Table| {
        t.partitions
            .iter()
            .find(|x| x.name == DATA)
            .map(|x| x.size())
            .unwrap_or(0)
    };
    let g = grow(&t, len / SECTOR).map_err(|source| DiskError::Grow {
        path: p.clone(),
        source,
    })?;
    let grown = Grown {
        before: size(&t),
        after: size(&g),
    };
    if g == t {
        return Ok(grown);
    }
    let gpt = |source| DiskError::Gpt {
        path: p.clone(),
        source,
    };
    // Backup first: until the primary changes, the old table stays valid.
    f.seek(SeekFrom::Start(g.backup_offset())).map_err(io)?;
    f.write_all(&g.backup().map_err(gpt)?).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.write_all(&g.primary().map_err(gpt)?).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(grown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let seed = Seed {
            deployment: "d".into(),
            chassis: "c".into(),
            bay: 3,
        };
        table(
            Sizes {
                esp: 40 * MIB,
                system: 32 * MIB,
                config: 8 * MIB,
                data: 16 * MIB,
            },
            &seed,
            "disk1",
        )
    }

    #[test]
    fn data_grows_to_the_last_whole_mib_and_nothing_else_moves() {
        let t = sample();
        let disk = t.total_sectors + 1000 * MIB / SECTOR + 77; // not MiB-aligned
        let g = grow(&t, disk).unwrap();
        g.validate().unwrap();
        assert_eq!(g.total_sectors, disk);
        for (a, b) in t.partitions.iter().zip(&g.partitions) {
            if a.name == DATA {
                assert_eq!(a.first_lba, b.first_lba);
                assert!(
                    b.size() >= a.size() + 999 * MIB,
                    "{} -> {}",
                    a.size(),
                    b.size()
                );
                assert_eq!((b.last_lba + 1) % (MIB / SECTOR), 0);
                assert!(b.last_lba <= Table::last_usable(disk));
            } else {
                assert_eq!(a, b);
            }
        }
        assert_eq!(grow(&g, disk).unwrap(), g, "growing twice changes nothing");
        // Written and read back: the same table.
        let mut bytes = g.primary().unwrap();
        bytes.truncate(Table::PRIMARY_BYTES);
        assert_eq!(Table::parse(&bytes, disk).unwrap(), g);
    }

    #[test]
    fn same_size_disk_keeps_the_layout_and_smaller_is_refused() {
        let t = sample();
        let g = grow(&t, t.total_sectors).unwrap();
        assert_eq!(g, t);
        let data = t.partitions.iter().find(|p| p.name == DATA).unwrap();
        let e = grow(&t, data.first_lba + 10).unwrap_err();
        assert!(matches!(e, GrowError::TooSmall { .. }), "{e}");
    }

    #[test]
    fn an_image_file_made_larger_grows_its_data_partition() {
        let t = sample();
        let dir = std::env::temp_dir().join(format!("fv-grow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("disk.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(t.total_sectors * SECTOR).unwrap();
        drop(f);
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
            f.write_all(&t.primary().unwrap()).unwrap();
            f.seek(SeekFrom::Start(t.backup_offset())).unwrap();
            f.write_all(&t.backup().unwrap()).unwrap();
        }
        let same = grow_disk(&img).unwrap();
        assert_eq!(same.before, same.after);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .unwrap()
            .set_len(t.total_sectors * SECTOR + 64 * MIB)
            .unwrap();
        let g = grow_disk(&img).unwrap();
        assert_eq!(g.after, g.before + 64 * MIB);
        let again = grow_disk(&img).unwrap();
        assert_eq!(again.before, again.after);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parse_rejects_damage() {
        let t = sample();
        let mut b = t.primary().unwrap();
        b.truncate(Table::PRIMARY_BYTES);
        assert!(Table::parse(&b, t.total_sectors).is_ok());
        let mut h = b.clone();
        h[512 + 30] ^= 1;
        assert!(Table::parse(&h, t.total_sectors)
            .unwrap_err()
            .to_string()
            .contains("header CRC"));
        let mut e = b.clone();
        e[1024 + 40] ^= 1;
        assert!(Table::parse(&e, t.total_sectors)
            .unwrap_err()
            .to_string()
            .contains("entry array CRC"));
        assert!(Table::parse(&b[..100], t.total_sectors).is_err());
    }

    #[test]
    fn layout_is_aligned_valid_and_per_disk() {
        let seed = Seed {
            deployment: "d".into(),
            chassis: "c".into(),
            bay: 1,
        };
        let s = Sizes {
            esp: 48 * MIB,
            system: 32 * MIB,
            config: 8 * MIB,
            data: 16 * MIB,
        };
        let t = table(s, &seed, "disk1");
        t.validate().unwrap();
        assert_eq!(t.total_sectors * SECTOR, (1 + 48 + 64 + 8 + 16 + 1) * MIB);
        for p in &t.partitions {
            assert_eq!(p.offset() % MIB, 0, "{} aligned", p.name);
        }
        let t2 = table(s, &seed, "disk2");
        assert_ne!(t.disk_guid, t2.disk_guid);
        assert_eq!(t.partitions[1].first_lba, t2.partitions[1].first_lba);
    }
}
