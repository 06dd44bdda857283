//! `flexctl raid replace` as a technician runs it: refusals exit 2 naming
//! the device and the reason (also as JSON), usage errors are caught by
//! the argument parser. The node's view is a private root (`--root`):
//! sysfs-like tree, disk image files as devices, a `/proc/mdstat` with
//! both mirrors degraded. The replacement on real md is the qemu scenario
//! `disk-failure`; the library's own tests cover the partitioning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flexvisor_image::gpt::{types, Partition, Table, SECTOR};
use flexvisor_image::ids::Uuid;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

struct Root(PathBuf);

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn disk(root: &Path, name: &str, mib: u64) -> std::fs::File {
    let d = root.join("sys/block").join(name);
    std::fs::create_dir_all(d.join("holders")).unwrap();
    std::fs::write(d.join("size"), format!("{}\n", mib * MIB / SECTOR)).unwrap();
    std::fs::write(d.join("ro"), "0\n").unwrap();
    std::fs::write(d.join("removable"), "0\n").unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(root.join("dev").join(name))
        .unwrap();
    f.set_len(mib * MIB).unwrap();
    f
}

/// vda survives (partitions 3 and 4 in md0/md1), vdb was pulled, vdd is
/// a 64 MiB disk with an ext4 filesystem on it.
fn node(test: &str) -> Root {
    let root = std::env::temp_dir().join(format!("flexctl-raid-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["proc/self", "sys/block", "sys/class/block", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("proc/mdstat"),
        "Personalities : [raid1]\n\
         md1 : active raid1 vdb4[1](F) vda4[0]\n      100000 blocks super 1.2 [2/1] [U_]\n\n\
         md0 : active raid1 vdb3[1](F) vda3[0]\n      2000 blocks super 1.0 [2/1] [U_]\n\n\
         unused devices: <none>\n",
    )
    .unwrap();
    std::fs::write(root.join("proc/self/mounts"), "").unwrap();
    let mut f = disk(&root, "vda", 64);
    let p = |name: &str, t: &str, first: u64, last: u64, n: u8| Partition {
        name: name.into(),
        type_guid: Uuid::parse(t).unwrap(),
        guid: Uuid([n; 16]),
        first_lba: first * MIB / SECTOR,
        last_lba: last * MIB / SECTOR - 1,
    };
    let t = Table {
        disk_guid: Uuid([9; 16]),
        total_sectors: 64 * MIB / SECTOR,
        partitions: vec![
            p("fv-esp", types::ESP, 1, 3, 1),
            p("fv-system-a", types::ROOT_X86_64, 3, 7, 2),
            p("fv-config", types::LINUX_RAID, 7, 9, 3),
            p("fv-data", types::LINUX_RAID, 9, 63, 4),
        ],
    };
    f.write_all(&t.primary().unwrap()).unwrap();
    f.seek(SeekFrom::Start(t.backup_offset())).unwrap();
    f.write_all(&t.backup().unwrap()).unwrap();
    for n in 1..=4 {
        let name = format!("vda{n}");
        let d = root.join("sys/block/vda").join(&name);
        std::fs::create_dir_all(d.join("holders")).unwrap();
        std::fs::write(d.join("partition"), format!("{n}\n")).unwrap();
        std::os::unix::fs::symlink(
            format!("../../block/vda/{name}"),
            root.join("sys/class/block").join(&name),
        )
        .unwrap();
    }
    let mut used = disk(&root, "vdd", 64);
    used.seek(SeekFrom::Start(1080)).unwrap();
    used.write_all(&[0x53, 0xef]).unwrap();
    Root(root)
}

fn flexctl(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flexctl"))
        .args(["raid", "replace", "--root"])
        .arg(root)
        .args(args)
        .output()
        .expect("run flexctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refusals_exit_2_naming_the_disk_and_the_reason() {
    let node = node("refusals");
    let root = &node.0;
    let (rc, _, err) = flexctl(root, &["/dev/vda"]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("refusing /dev/vda: it is the surviving disk of the mirrors"),
        "{err}"
    );
    let (rc, out, err) = flexctl(root, &["/dev/vdd", "--wait", "--json"]);
    assert_eq!(rc, 2, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["error"],
        "refusing /dev/vdd: it carries a ext2/3/4 filesystem; use --force to overwrite it"
    );
    // Without a device: the only other disk is not blank, nothing is taken.
    let (rc, _, err) = flexctl(root, &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("no blank disk of at least 64 MiB")
            && err.contains("/dev/vdd: it carries a ext2/3/4 filesystem"),
        "{err}"
    );
    // The refused disk was not written.
    let head = std::fs::read(root.join("dev/vdd")).unwrap();
    assert!(head[..1080].iter().all(|b| *b == 0) && head[1080] == 0x53);
}

#[test]
fn force_needs_a_named_disk_and_help_explains() {
    let node = node("force");
    let (rc, _, err) = flexctl(&node.0, &["--force"]);
    assert_eq!(rc, 2, "clap usage error: {err}");
    assert!(err.contains("--force") && err.contains("DEVICE"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_flexctl"))
        .args(["raid", "replace", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        help.contains("--wait") && help.contains("--json") && help.contains("surviving disk"),
        "{help}"
    );
}
