use super::*;
use proptest::prelude::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/mdstat/",
            $name
        ))
    };
}

fn only_clean(stat: &MdStat) {
    assert!(
        stat.unparsed.is_empty(),
        "file-level unparsed: {:?}",
        stat.unparsed
    );
    for a in &stat.arrays {
        assert!(
            a.unparsed.is_empty(),
            "{} unparsed: {:?}",
            a.name,
            a.unparsed
        );
    }
}

#[test]
fn clean_raid1_pair() {
    let stat = parse(fixture!("clean_raid1.txt"));
    only_clean(&stat);
    assert_eq!(stat.personalities[0], "raid1");
    assert_eq!(stat.arrays.len(), 2);
    let md1 = &stat.arrays[0];
    assert_eq!(md1.name, "md1");
    assert_eq!(md1.level.as_deref(), Some("raid1"));
    assert_eq!(md1.metadata.as_deref(), Some("1.2"));
    assert_eq!((md1.raid_disks, md1.working_disks), (Some(2), Some(2)));
    assert_eq!(md1.slots_up, Some(vec![true, true]));
    assert_eq!(md1.bitmap.as_ref().map(|b| b.chunk_kib), Some(Some(65536)));
    assert!(!md1.is_degraded());
    assert!(stat.unused_devices.is_empty());
}

#[test]
fn faulty_member_and_degraded_counts() {
    let stat = parse(fixture!("degraded_faulty.txt"));
    only_clean(&stat);
    let md0 = &stat.arrays[0];
    assert!(md0.is_degraded());
    assert_eq!(md0.members[0].device, "sdb1");
    assert!(md0.members[0].faulty);
    assert!(!md0.members[1].faulty);
    assert_eq!(md0.slots_up, Some(vec![true, false]));
}

#[test]
fn recovery_progress_with_finish_and_speed() {
    let stat = parse(fixture!("recovery.txt"));
    only_clean(&stat);
    let p = stat.arrays[0].progress.clone().expect("progress");
    assert_eq!(p.action, SyncAction::Recovery);
    assert_eq!(p.per_mille, 85);
    assert_eq!((p.done, p.total), (89472, 1046528));
    assert_eq!(p.finish_secs, Some(42));
    assert_eq!(p.speed_kib_s, Some(22368));
}

#[test]
fn bitmap_before_progress_is_accepted() {
    let stat = parse(fixture!("recovery_bitmap_first.txt"));
    only_clean(&stat);
    let a = &stat.arrays[0];
    assert_eq!(a.progress.as_ref().map(|p| p.per_mille), Some(623));
    assert_eq!(
        a.bitmap.as_ref().map(|b| (b.pages_used, b.pages_total)),
        Some((4, 4))
    );
    assert_eq!(a.slots_up, Some(vec![false, true]));
}

#[test]
fn check_action_is_recognised() {
    let stat = parse(fixture!("check_in_progress.txt"));
    only_clean(&stat);
    let p = stat.arrays[0].progress.clone().expect("progress");
    assert_eq!(p.action, SyncAction::Check);
    assert!((p.percent() - 17.4).abs() < 1e-9);
    assert_eq!(stat.arrays[0].members[0].device, "nvme1n1p2");
}

#[test]
fn pending_and_delayed_resync_with_auto_read_only() {
    let stat = parse(fixture!("resync_pending_autoro.txt"));
    only_clean(&stat);
    let a = &stat.arrays[0];
    assert_eq!(a.read_only, Some(ReadOnly::AutoReadOnly));
    assert_eq!(a.level.as_deref(), Some("raid1"));
    assert_eq!(
        a.pending,
        Some(PendingSync {
            action: SyncAction::Resync,
            reason: "PENDING".into()
        })
    );
    assert_eq!(
        stat.arrays[1].pending.as_ref().map(|p| p.reason.as_str()),
        Some("DELAYED")
    );
}

#[test]
fn inactive_array_with_spares_and_no_counts() {
    let stat = parse(fixture!("inactive_spares.txt"));
    only_clean(&stat);
    let a = &stat.arrays[0];
    assert_eq!(a.activity, Activity::Inactive);
    assert_eq!(a.level, None);
    assert!(a.members.iter().all(|m| m.spare));
    assert_eq!(a.raid_disks, None);
    assert!(stat.personalities.is_empty());
}

#[test]
fn raid0_and_linear_have_no_slot_map() {
    let stat = parse(fixture!("raid0_linear.txt"));
    only_clean(&stat);
    assert_eq!(stat.arrays.len(), 2);
    for a in &stat.arrays {
        assert_eq!(a.slots_up, None);
        assert!(!a.is_degraded());
    }
    assert_eq!(stat.arrays[1].level.as_deref(), Some("linear"));
}

#[test]
fn external_metadata_container_and_volume() {
    let stat = parse(fixture!("external_imsm.txt"));
    only_clean(&stat);
    assert_eq!(
        stat.arrays[0].metadata.as_deref(),
        Some("external:/md127/0")
    );
    assert_eq!(stat.arrays[1].metadata.as_deref(), Some("external:imsm"));
    assert_eq!(stat.arrays[1].activity, Activity::Inactive);
}

#[test]
fn member_flags_in_any_combination() {
    let stat = parse(fixture!("raid5_reshape_journal.txt"));
    only_clean(&stat);
    let md5 = &stat.arrays[0];
    assert!(md5.members[0].journal);
    assert!(md5.members[2].write_mostly);
    assert_eq!(
        md5.progress.as_ref().map(|p| p.action.clone()),
        Some(SyncAction::Reshape)
    );
    let md6 = &stat.arrays[1];
    assert!(md6.members[0].replacement);
    let both = &md6.members[2];
    assert!(both.write_mostly && both.faulty && !both.spare);
    assert!(md6.members[3].spare);
    assert_eq!(stat.unused_devices, vec!["sdk1", "sdl1"]);
}

#[test]
fn metadata_090_without_super() {
    let stat = parse(fixture!("old_090_resync.txt"));
    only_clean(&stat);
    let a = &stat.arrays[0];
    assert_eq!(a.metadata, None);
    assert_eq!(
        a.progress.as_ref().map(|p| p.action.clone()),
        Some(SyncAction::Resync)
    );
}

#[test]
fn read_only_raid10_with_bitmap_file() {
    let stat = parse(fixture!("readonly_raid10.txt"));
    only_clean(&stat);
    let a = &stat.arrays[0];
    assert_eq!(a.read_only, Some(ReadOnly::ReadOnly));
    assert_eq!((a.raid_disks, a.working_disks), (Some(4), Some(4)));
    assert_eq!(
        a.bitmap.as_ref().and_then(|b| b.file.clone()).as_deref(),
        Some("/var/lib/md10.bitmap")
    );
}

#[test]
fn unknown_shapes_are_kept_with_line_number() {
    let text = "Personalities : [raid1]\nmd0 : active raid1 sda1[0] sdb1[1](Q)\n      100 blocks [2/2] [UU]\n      frobnicate = yes\nmd1 : sleeping raid1\nwhat is this\n";
    let stat = parse(text);
    // Arrays whose header is unreadable are kept by name, flagged.
    assert_eq!(stat.arrays.len(), 2);
    let md0 = &stat.arrays[0];
    assert_eq!(md0.unparsed[0].line_no, 2);
    assert!(md0.unparsed[0].reason.contains("(Q)"));
    assert_eq!(md0.unparsed[1].line_no, 4);
    assert_eq!(stat.arrays[1].unparsed[0].line_no, 5);
    assert!(stat.arrays[1].unparsed[0].reason.contains("sleeping"));
    assert_eq!(stat.unparsed.len(), 1);
    assert_eq!(stat.unparsed[0].line_no, 6);
}

#[test]
fn unknown_detail_line_attaches_to_its_array() {
    let text = "md0 : active raid1 sda1[0] sdb1[1]\n      100 blocks [2/2] [UU]\n      [==>...]  resync = 1x.0% (1/2)\n";
    let stat = parse(text);
    assert_eq!(stat.arrays.len(), 1);
    assert_eq!(stat.arrays[0].unparsed.len(), 1);
    assert_eq!(stat.arrays[0].unparsed[0].line_no, 3);
}

const ALL: &[&str] = &[
    fixture!("clean_raid1.txt"),
    fixture!("degraded_faulty.txt"),
    fixture!("recovery.txt"),
    fixture!("recovery_bitmap_first.txt"),
    fixture!("check_in_progress.txt"),
    fixture!("resync_pending_autoro.txt"),
    fixture!("inactive_spares.txt"),
    fixture!("raid0_linear.txt"),
    fixture!("external_imsm.txt"),
    fixture!("raid5_reshape_journal.txt"),
    fixture!("old_090_resync.txt"),
    fixture!("readonly_raid10.txt"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Mutating real mdstat texts (byte flips, insertions, truncation) never
    /// panics, and every array name in the output comes from the input.
    #[test]
    fn parser_never_panics_on_mutated_input(
        which in 0..ALL.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..12),
        cut in any::<usize>(),
    ) {
        let mut bytes = ALL[which].as_bytes().to_vec();
        for (pos, byte, op) in edits {
            if bytes.is_empty() { break; }
            let at = pos % bytes.len();
            match op {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => { bytes.remove(at); }
            }
        }
        if !bytes.is_empty() {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let text = String::from_utf8_lossy(&bytes);
        let stat = parse(&text);
        for a in &stat.arrays {
            prop_assert!(text.contains(a.name.as_str()));
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }
}
