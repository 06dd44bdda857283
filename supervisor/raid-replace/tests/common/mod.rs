//! A node's view of its disks under a private root: `ROOT/sys` laid out
//! like sysfs (`block/<disk>/{size,ro,removable,holders}`, partitions with
//! their `partition` number, `class/block` links), `ROOT/dev/<disk>` as
//! image files, `ROOT/proc/mdstat` from a fixture.
//!
//! Why not loop devices and real md: the kernels of the development
//! sandbox and CI have neither partition-table support
//! (`CONFIG_EFI_PARTITION`, `CONFIG_MSDOS_PARTITION` unset, so a loop
//! device never shows partitions) nor md (`CONFIG_MD` unset). The
//! replacement on real md and real partitions is the qemu scenario
//! `disk-failure` (`cargo run -p qemu-tests -- --scenario disk-failure`).

#![allow(clippy::unwrap_used, dead_code)]

use flexvisor_image::gpt::{types, Partition, Table, SECTOR};
use flexvisor_image::ids::Uuid;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MIB: u64 = 1 << 20;

pub struct Node {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Node {
    pub fn new(mdstat: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for d in ["proc/self", "sys/block", "sys/class/block", "dev"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("proc/mdstat"), mdstat).unwrap();
        std::fs::write(root.join("proc/self/mounts"), "").unwrap();
        Node { dir, root }
    }

    pub fn dev(&self, name: &str) -> PathBuf {
        self.root.join("dev").join(name)
    }

    /// A whole disk of `mib` MiB (zeros).
    pub fn disk(&self, name: &str, mib: u64) {
        let d = self.root.join("sys/block").join(name);
        std::fs::create_dir_all(d.join("holders")).unwrap();
        std::fs::write(d.join("size"), format!("{}\n", mib * MIB / SECTOR)).unwrap();
        std::fs::write(d.join("ro"), "0\n").unwrap();
        std::fs::write(d.join("removable"), "0\n").unwrap();
        std::fs::File::create(self.dev(name))
            .unwrap()
            .set_len(mib * MIB)
            .unwrap();
    }

    /// What the kernel does after reading a table: partition entries.
    pub fn kernel_partitions(&self, disk: &str, count: u32) {
        for n in 1..=count {
            let name = format!("{disk}{n}");
            let d = self.root.join("sys/block").join(disk).join(&name);
            std::fs::create_dir_all(d.join("holders")).unwrap();
            std::fs::write(d.join("partition"), format!("{n}\n")).unwrap();
            let link = self.root.join("sys/class/block").join(&name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("../../block/{disk}/{name}"), link).unwrap();
        }
    }

    /// The survivor: a node disk layout (ESP, system slot, config and data
    /// RAID members) with patterned boot partitions, partitions known to
    /// the kernel.
    pub fn survivor(&self, name: &str, mib: u64) -> Table {
        self.disk(name, mib);
        let p = |pname: &str, t: &str, first_mib: u64, last_mib: u64, n: u8| Partition {
            name: pname.into(),
            type_guid: Uuid::parse(t).unwrap(),
            guid: Uuid([n; 16]),
            first_lba: first_mib * MIB / SECTOR,
            last_lba: last_mib * MIB / SECTOR - 1,
        };
        let t = Table {
            disk_guid: Uuid([9; 16]),
            total_sectors: mib * MIB / SECTOR,
            partitions: vec![
                p("fv-esp", types::ESP, 1, 3, 1),
                p("fv-system-a", types::ROOT_X86_64, 3, 7, 2),
                p("fv-config", types::LINUX_RAID, 7, 9, 3),
                p("fv-data", types::LINUX_RAID, 9, mib - 1, 4),
            ],
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dev(name))
            .unwrap();
        f.write_all(&t.primary().unwrap()).unwrap();
        f.seek(SeekFrom::Start(t.backup_offset())).unwrap();
        f.write_all(&t.backup().unwrap()).unwrap();
        for (i, part) in t.partitions.iter().take(2).enumerate() {
            let pattern: Vec<u8> = (0..part.size())
                .map(|b| (b as u8) ^ (0x5a + i as u8))
                .collect();
            f.seek(SeekFrom::Start(part.offset())).unwrap();
            f.write_all(&pattern).unwrap();
        }
        self.kernel_partitions(name, 4);
        t
    }
}

/// Both arrays degraded: the pulled disk `vdb`'s members faulty, the
/// survivor's (`<survivor>3`, `<survivor>4`) in sync.
pub fn pulled_mdstat(survivor: &str) -> String {
    format!(
        "Personalities : [raid1]\n\
         md1 : active raid1 vdb4[1](F) {survivor}4[0]\n      \
         100000 blocks super 1.2 [2/1] [U_]\n\n\
         md0 : active raid1 vdb3[1](F) {survivor}3[0]\n      \
         2000 blocks super 1.0 [2/1] [U_]\n\n\
         unused devices: <none>\n"
    )
}

pub fn read_at(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = vec![0u8; len as usize];
    f.read_exact(&mut b).unwrap();
    b
}
