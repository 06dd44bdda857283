#![allow(clippy::unwrap_used)]

use crate::plan::{self, Disk, PlanError, Refusal};
use crate::probe::Signature;
use crate::progress::{self, ArrayProgress};
use flexvisor_health::raid::{self, mdstat};
use flexvisor_image::gpt::{types, Partition, Table};
use flexvisor_image::ids::Uuid;

/// A node after disk vdb was pulled: md0 (1.0) and md1 (1.2) each with
/// vdb's member faulty.
const PULLED: &str = "Personalities : [raid1]
md1 : active raid1 vdb5[1](F) vda5[0]
      61376 blocks super 1.2 [2/1] [U_]

md0 : active raid1 vdb4[1](F) vda4[0]
      8128 blocks super 1.0 [2/1] [U_]

unused devices: <none>
";

/// The same after `flexctl raid replace`: faulty members removed, vdc's
/// partitions added, md1 recovering, md0 waiting for it.
const REBUILDING: &str = "Personalities : [raid1]
md1 : active raid1 vdc5[2] vda5[0]
      61376 blocks super 1.2 [2/1] [U_]
      [====>................]  recovery = 23.4% (14400/61376) finish=0.3min speed=2400K/sec

md0 : active raid1 vdc4[2] vda4[0]
      8128 blocks super 1.0 [2/1] [U_]
      \tresync=DELAYED

unused devices: <none>
";

const CLEAN: &str = "Personalities : [raid1]
md1 : active raid1 vdc5[2] vda5[0]
      61376 blocks super 1.2 [2/2] [UU]

md0 : active raid1 vdc4[2] vda4[0]
      8128 blocks super 1.0 [2/2] [UU]

unused devices: <none>
";

fn snap(text: &str) -> raid::RaidSnapshot {
    raid::merge(&mdstat::parse(text), &[])
}

fn parent(p: &str) -> Option<(String, u32)> {
    let disk = p.trim_end_matches(|c: char| c.is_ascii_digit());
    let n = p[disk.len()..].parse().ok()?;
    Some((disk.to_string(), n))
}

fn blank(name: &str, mib: u64) -> Disk {
    Disk {
        name: name.into(),
        sectors: mib * 2048,
        removable: false,
        read_only: false,
        partitions: vec![],
        holders: vec![],
        mounted: false,
        signatures: vec![],
    }
}

fn survivor_table() -> Table {
    let u = |s: &str| Uuid::parse(s).unwrap();
    let p = |name: &str, t: &str, first: u64, last: u64, g: &str| Partition {
        name: name.into(),
        type_guid: u(t),
        guid: u(g),
        first_lba: first,
        last_lba: last,
    };
    Table {
        disk_guid: u("00000000-0000-4000-8000-000000000000"),
        total_sectors: 128 * 2048,
        partitions: vec![
            p(
                "fv-esp",
                types::ESP,
                2048,
                4095,
                "00000000-0000-4000-8000-000000000001",
            ),
            p(
                "fv-system-a",
                types::ROOT_X86_64,
                4096,
                20479,
                "00000000-0000-4000-8000-000000000002",
            ),
            p(
                "fv-system-b",
                types::ROOT_X86_64,
                20480,
                36863,
                "00000000-0000-4000-8000-000000000003",
            ),
            p(
                "fv-config",
                types::LINUX_RAID,
                36864,
                53247,
                "00000000-0000-4000-8000-000000000004",
            ),
            p(
                "fv-data",
                types::LINUX_RAID,
                53248,
                128 * 2048 - 2049,
                "00000000-0000-4000-8000-000000000005",
            ),
        ],
    }
}

#[test]
fn pulled_disk_leaves_both_arrays_degraded_with_the_survivor_on_vda() {
    let d = plan::degraded(&snap(PULLED), &[]);
    let names: Vec<&str> = d.iter().map(|x| x.array.as_str()).collect();
    assert_eq!(names, ["md0", "md1"]);
    assert_eq!(d[0].in_sync, ["vda4"]);
    assert_eq!(d[0].faulty, ["vdb4"]);
    let (disk, members) = plan::survivor(&d, &parent).unwrap();
    assert_eq!(disk, "vda");
    assert_eq!(
        members
            .iter()
            .map(|m| (m.array.as_str(), m.number))
            .collect::<Vec<_>>(),
        [("md0", 4), ("md1", 5)]
    );
}

#[test]
fn arrays_already_rebuilding_or_clean_need_nothing() {
    assert!(plan::degraded(&snap(REBUILDING), &[]).is_empty());
    assert!(plan::degraded(&snap(CLEAN), &[]).is_empty());
    let only = plan::degraded(&snap(PULLED), &["md1".to_string()]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].array, "md1");
}

#[test]
fn members_on_two_disks_are_ambiguous_and_no_member_is_fatal() {
    let text = "md1 : active raid1 vdb5[1] vda5[0]\n      100 blocks super 1.2 [3/2] [UU_]\n";
    let d = plan::degraded(&snap(text), &[]);
    assert!(matches!(
        plan::survivor(&d, &parent),
        Err(PlanError::SurvivorAmbiguous(s)) if s == "vdb, vda" || s == "vda, vdb"
    ));
    let text = "md1 : active raid1 vdb5[1](F)\n      100 blocks super 1.2 [2/0] [__]\n";
    let d = plan::degraded(&snap(text), &[]);
    assert_eq!(
        plan::survivor(&d, &parent),
        Err(PlanError::NoSurvivor("md1".into()))
    );
}

#[test]
fn the_single_blank_disk_is_chosen_when_none_is_named() {
    let mut loop0 = blank("loop0", 512);
    loop0.partitions = vec![];
    let disks = vec![blank("vda", 128), blank("vdc", 128), loop0];
    let need = plan::need_sectors(&survivor_table());
    let d = plan::choose(&disks, "vda", None, need, false).unwrap();
    assert_eq!(d.name, "vdc");
}

#[test]
fn refusals_name_the_reason() {
    let need = plan::need_sectors(&survivor_table());
    let small = blank("vdc", 64);
    let err = plan::choose(
        std::slice::from_ref(&small),
        "vda",
        Some("/dev/vdc"),
        need,
        true,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing /dev/vdc: too small: 64 MiB, the partitions of the surviving disk need 128 MiB"
    );
    let disks = vec![blank("vda", 128)];
    assert!(matches!(
        plan::choose(&disks, "vda", Some("vda"), need, true),
        Err(PlanError::Refused {
            reason: Refusal::Survivor,
            ..
        })
    ));
    let mut used = blank("vdc", 128);
    used.signatures = vec![Signature::MdSuperblock {
        version: "1.2",
        offset: 4096,
    }];
    let err =
        plan::choose(std::slice::from_ref(&used), "vda", Some("vdc"), need, false).unwrap_err();
    assert!(
        err.to_string().contains("md superblock") && err.to_string().contains("--force"),
        "{err}"
    );
    assert_eq!(
        plan::choose(std::slice::from_ref(&used), "vda", Some("vdc"), need, true)
            .unwrap()
            .name,
        "vdc"
    );
    let mut parted = blank("vdc", 128);
    parted.partitions = vec!["vdc1".into()];
    assert!(matches!(
        plan::refusal(&parted, "vda", need, false),
        Some(Refusal::HasPartitions { .. })
    ));
    parted.holders = vec!["md127".into()];
    assert_eq!(
        plan::refusal(&parted, "vda", need, true),
        Some(Refusal::InUse {
            holders: "md127".into()
        })
    );
    assert!(matches!(
        plan::choose(&[parted], "vda", Some("vdc1"), need, true),
        Err(PlanError::Refused {
            reason: Refusal::Partition,
            ..
        })
    ));
}

#[test]
fn without_a_name_a_used_disk_is_not_taken_even_with_force() {
    let need = plan::need_sectors(&survivor_table());
    let mut used = blank("vdc", 128);
    used.signatures = vec![Signature::GptPartitionTable];
    let err = plan::choose(&[blank("vda", 128), used], "vda", None, need, true).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no blank disk of at least 128 MiB")
            && err
                .to_string()
                .contains("/dev/vdc: it carries a GPT partition table"),
        "{err}"
    );
    let err = plan::choose(
        &[blank("vda", 128), blank("vdc", 128), blank("vdd", 256)],
        "vda",
        None,
        need,
        false,
    )
    .unwrap_err();
    assert_eq!(err, PlanError::Ambiguous("/dev/vdc, /dev/vdd".into()));
}

#[test]
fn new_table_keeps_every_partition_in_place_with_fresh_guids_and_grows_data() {
    let s = survivor_table();
    let mut n = 0u8;
    let mut guid = || {
        n += 1;
        Uuid([n; 16])
    };
    let t = plan::new_table("vda", &s, 256 * 2048, &mut guid).unwrap();
    assert_eq!(t.partitions.len(), s.partitions.len());
    for (a, b) in s.partitions.iter().zip(&t.partitions) {
        assert_eq!(
            (&a.name, a.type_guid, a.first_lba),
            (&b.name, b.type_guid, b.first_lba)
        );
        assert_ne!(a.guid, b.guid);
        if a.name != "fv-data" {
            assert_eq!(a.last_lba, b.last_lba);
        } else {
            assert!(b.last_lba > a.last_lba);
        }
    }
    assert_ne!(t.disk_guid, s.disk_guid);
    // Same size: same layout.
    let same = plan::new_table("vda", &s, s.total_sectors, &mut guid).unwrap();
    assert_eq!(
        same.partitions.last().unwrap().last_lba,
        s.partitions.last().unwrap().last_lba
    );
    assert!(matches!(
        plan::new_table("vda", &s, 64 * 2048, &mut guid),
        Err(PlanError::Table { .. })
    ));
}

#[test]
fn progress_follows_the_rebuild_to_clean() {
    let p = |text: &str| -> Vec<(String, ArrayProgress)> {
        let s = snap(text);
        ["md0", "md1"]
            .iter()
            .map(|a| (a.to_string(), progress::of(&s, a, &[])))
            .collect()
    };
    let r = p(REBUILDING);
    assert_eq!(
        r[1].1,
        ArrayProgress::Rebuilding {
            per_mille: Some(234),
            finish_secs: Some(18)
        }
    );
    assert_eq!(r[0].1, ArrayProgress::Waiting { missing: 1 });
    assert_eq!(
        progress::line(&r),
        "md0 waiting to rebuild (1 device(s) missing), md1 rebuilding 23.4%, about 18 s left"
    );
    assert!(!progress::all_clean(&r));
    assert!(progress::all_clean(&p(CLEAN)));
    let failed = p(PULLED);
    assert!(progress::failure(&failed).unwrap().contains("faulty vdb4"));
    let s = snap(PULLED);
    assert_eq!(
        progress::of(&s, "md0", &["vdb4".to_string()]),
        ArrayProgress::Waiting { missing: 1 }
    );
    assert_eq!(progress::of(&s, "md9", &[]), ArrayProgress::Absent);
}

#[test]
fn members_whose_device_is_gone_are_detached() {
    // md0 did no I/O since the pull: vdb4 still listed as working.
    let text = "md0 : active raid1 vdb4[1] vda4[0]\n      8128 blocks super 1.0 [2/2] [UU]\n\nmd1 : active raid1 vdb5[1](F) vda5[0]\n      61376 blocks super 1.2 [2/1] [U_]\n";
    let s = snap(text);
    let gone = plan::detached(&s, &|d: &str| !d.starts_with("vdb"));
    assert_eq!(gone, [("md0".to_string(), "vdb4".to_string())]);
    assert!(plan::detached(&s, &|_: &str| true).is_empty());
}
