//! Disks that must not become the replacement are refused with the reason,
//! and left untouched: the survivor, a partition, a too-small disk, a disk
//! carrying data (unless named with --force).

#![allow(clippy::unwrap_used)]

mod common;

use common::{pulled_mdstat, read_at, Node};
use flexvisor_raid_replace::plan::{PlanError, Refusal};
use flexvisor_raid_replace::system::{self, Options, ReplaceError};
use std::io::{Seek, SeekFrom, Write};

fn refused(node: &Node, device: &str, force: bool) -> Refusal {
    let opts = Options {
        root: node.root.clone(),
        device: Some(device.to_string()),
        force,
        ..Options::new()
    };
    match system::prepare(&opts) {
        Err(ReplaceError::Plan(PlanError::Refused { disk, reason })) => {
            assert_eq!(disk, device.trim_start_matches("/dev/"));
            reason
        }
        other => panic!("{device}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn survivor_small_and_used_disks_are_refused_untouched() {
    let node = Node::new(&pulled_mdstat("vda"));
    node.survivor("vda", 64);
    node.disk("vdc", 32);
    node.disk("vdd", 64);
    // An ext4 superblock magic at byte 1080: a disk with a filesystem.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(node.dev("vdd"))
            .unwrap();
        f.seek(SeekFrom::Start(1080)).unwrap();
        f.write_all(&[0x53, 0xef]).unwrap();
    }
    assert_eq!(refused(&node, "vda", true), Refusal::Survivor);
    assert_eq!(refused(&node, "vda4", true), Refusal::Partition);
    assert_eq!(refused(&node, "/dev/vdx", false), Refusal::NotFound);
    assert_eq!(
        refused(&node, "/dev/vdc", true),
        Refusal::TooSmall {
            have_mib: 32,
            need_mib: 64
        }
    );
    let r = refused(&node, "/dev/vdd", false);
    assert_eq!(
        r.to_string(),
        "it carries a ext2/3/4 filesystem; use --force to overwrite it"
    );
    for d in ["vda", "vdc", "vdd"] {
        let before = read_at(&node.dev(d), 0, 2048);
        let _ = refused(&node, d, false);
        assert_eq!(read_at(&node.dev(d), 0, 2048), before, "{d} was written");
    }
    // Without a name, the used disk is not taken even though it is the
    // only one big enough.
    let err = system::prepare(&Options {
        root: node.root.clone(),
        ..Options::new()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no blank disk of at least 64 MiB"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("/dev/vdd: it carries a ext2/3/4 filesystem"),
        "{err}"
    );
    // Named and forced, it is accepted.
    let p = system::prepare(&Options {
        root: node.root.clone(),
        device: Some("vdd".into()),
        force: true,
        ..Options::new()
    })
    .unwrap();
    assert_eq!(p.disk, "vdd");
}

#[test]
fn disks_in_use_are_refused_even_with_force() {
    let node = Node::new(&pulled_mdstat("vda"));
    node.survivor("vda", 64);
    node.disk("vdc", 64);
    std::fs::create_dir_all(node.root.join("sys/block/vdc/holders/md5")).unwrap();
    assert_eq!(
        refused(&node, "vdc", true),
        Refusal::InUse {
            holders: "md5".into()
        }
    );
    std::fs::remove_dir(node.root.join("sys/block/vdc/holders/md5")).unwrap();
    std::fs::write(
        node.root.join("proc/self/mounts"),
        "/dev/vdc /mnt ext4 rw 0 0\n",
    )
    .unwrap();
    assert_eq!(refused(&node, "vdc", true), Refusal::Mounted);
}

#[test]
fn nothing_degraded_is_a_clear_error() {
    let node = Node::new(
        "Personalities : [raid1]\nmd0 : active raid1 vdb3[1] vda3[0]\n      2000 blocks super 1.0 [2/2] [UU]\n\nunused devices: <none>\n",
    );
    node.survivor("vda", 64);
    node.disk("vdb", 64);
    node.kernel_partitions("vdb", 4);
    let err = system::prepare(&Options {
        root: node.root.clone(),
        ..Options::new()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no degraded md array: every mirror has all its members"
    );
}
