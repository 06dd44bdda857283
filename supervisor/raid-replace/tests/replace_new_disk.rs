//! The replacement disk gets the survivor's partition table (fresh GUIDs,
//! fv-data grown to its end) and byte copies of its boot partitions; the
//! new members go to `mdadm --add`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{pulled_mdstat, read_at, Node, MIB};
use flexvisor_image::gpt::{Table, SECTOR};
use flexvisor_raid_replace::system::{self, Options, ReplaceError};

#[test]
fn new_disk_gets_the_survivor_layout_and_boot_partitions() {
    let node = Node::new(&pulled_mdstat("vda"));
    let t = node.survivor("vda", 64);
    node.disk("vdc", 80);
    let opts = Options {
        root: node.root.clone(),
        ..Options::new()
    };
    // No device named: the single blank disk is taken.
    let prepared = system::prepare(&opts).expect("prepare");
    assert_eq!(
        (prepared.survivor.as_str(), prepared.disk.as_str()),
        ("vda", "vdc")
    );
    let arrays: Vec<(&str, u32)> = prepared
        .members
        .iter()
        .map(|m| (m.array.as_str(), m.number))
        .collect();
    assert_eq!(arrays, [("md0", 3), ("md1", 4)]);

    let mut lines = Vec::new();
    let done = system::partition(&prepared, &mut |l| lines.push(l.to_string())).expect("partition");
    let primary = read_at(&node.dev("vdc"), 0, Table::PRIMARY_BYTES as u64);
    let nt = Table::parse(&primary, 80 * MIB / SECTOR).expect("the new table parses");
    assert_eq!(nt.partitions.len(), t.partitions.len());
    for (old, new) in t.partitions.iter().zip(&nt.partitions) {
        assert_eq!(
            (&old.name, old.type_guid, old.first_lba),
            (&new.name, new.type_guid, new.first_lba)
        );
        assert_ne!(old.guid, new.guid, "{} kept the survivor's GUID", old.name);
    }
    assert_ne!(nt.disk_guid, t.disk_guid);
    let data = nt.partitions.last().unwrap();
    assert_eq!(
        (data.last_lba + 1) * SECTOR,
        79 * MIB,
        "fv-data grows to the last whole MiB of the bigger disk"
    );
    // The backup table is at the new disk's end.
    let backup = read_at(&node.dev("vdc"), 80 * MIB - 512, 8);
    assert_eq!(&backup, b"EFI PART");
    let names: Vec<&str> = done.copied.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fv-esp", "fv-system-a"], "{lines:?}");
    for part in t.partitions.iter().take(2) {
        let from = read_at(&node.dev("vda"), part.offset(), part.size());
        let to = read_at(&node.dev("vdc"), part.offset(), part.size());
        assert!(from == to, "{} differs after the copy", part.name);
    }
    // The RAID partitions are left to md's rebuild: not copied.
    let cfg = &nt.partitions[2];
    assert!(read_at(&node.dev("vdc"), cfg.offset(), cfg.size())
        .iter()
        .all(|b| *b == 0));

    // The kernel shows the partitions; without md arrays here, adding
    // fails naming mdadm (not a panic, not a pretended success).
    node.kernel_partitions("vdc", 4);
    let err = system::add(&prepared, done, &mut |_| {}).unwrap_err();
    match err {
        ReplaceError::Mdadm { args, .. } => {
            assert!(args.contains("md0 --add"), "{args}");
            assert!(args.contains("/dev/vdc3"), "{args}");
        }
        other => panic!("expected an mdadm failure, got {other}"),
    }
}

#[test]
fn partitions_that_never_appear_are_reported() {
    let node = Node::new(&pulled_mdstat("vda"));
    node.survivor("vda", 64);
    node.disk("vdc", 64);
    let prepared = system::prepare(&Options {
        root: node.root.clone(),
        device: Some("vdc".into()),
        ..Options::new()
    })
    .unwrap();
    let done = system::partition(&prepared, &mut |_| {}).unwrap();
    let err = system::add(&prepared, done, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the kernel shows no partition 3 on /dev/vdc 10 s after re-reading its table"
    );
}
