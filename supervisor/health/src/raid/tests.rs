use super::*;
use crate::status::Status;

fn snap(text: &str) -> RaidSnapshot {
    merge(&mdstat::parse(text), &[])
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/mdstat/",
            $name
        ))
    };
}

fn expected(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn clean_arrays_are_ok() {
    let v = verdict(
        &snap(fixture!("clean_raid1.txt")),
        &expected(&["md0", "md1"]),
    );
    assert_eq!(v.status, Status::Ok, "{v:?}");
    assert_eq!(v.summary, "2 array(s) clean");
}

#[test]
fn expected_array_missing_is_critical() {
    let v = verdict(
        &snap(fixture!("clean_raid1.txt")),
        &expected(&["md0", "md1", "md2"]),
    );
    assert_eq!(v.status, Status::Critical);
    assert!(
        v.summary.contains("md2 expected by the profile"),
        "{}",
        v.summary
    );
}

#[test]
fn faulty_member_is_critical_naming_the_device() {
    let v = verdict(&snap(fixture!("degraded_faulty.txt")), &[]);
    assert_eq!(v.status, Status::Critical);
    assert!(v.summary.contains("faulty member sdb1"), "{}", v.summary);
}

#[test]
fn recovery_is_warning_with_percent_and_finish() {
    let v = verdict(&snap(fixture!("recovery.txt")), &[]);
    assert_eq!(v.status, Status::Warning);
    assert_eq!(
        v.summary,
        "md0 rebuilding 8.5%, finish in 42s (1 device(s) missing)"
    );
}

#[test]
fn check_is_warning() {
    let v = verdict(&snap(fixture!("check_in_progress.txt")), &[]);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary
            .starts_with("md127 checking 17.4%, finish in 33m36s"),
        "{}",
        v.summary
    );
}

#[test]
fn inactive_array_is_critical() {
    let v = verdict(&snap(fixture!("inactive_spares.txt")), &[]);
    assert_eq!(v.status, Status::Critical);
    assert!(v.summary.contains("md127 array inactive"), "{}", v.summary);
}

#[test]
fn raid0_without_counts_is_ok() {
    let v = verdict(&snap(fixture!("raid0_linear.txt")), &[]);
    assert_eq!(v.status, Status::Ok, "{v:?}");
}

#[test]
fn pending_resync_is_warning() {
    let v = verdict(&snap(fixture!("resync_pending_autoro.txt")), &[]);
    assert_eq!(v.status, Status::Warning);
    assert!(v.summary.contains("md126 resync PENDING"), "{}", v.summary);
}

#[test]
fn replacement_rebuilding_and_queued_is_warning_not_critical() {
    // After `flexctl raid replace`: md1 rebuilds onto the new disk, md0's
    // new member waits for it. The node is on one disk until both finish:
    // WARNING, not CRITICAL (nothing is failing any more).
    let v = verdict(&snap(fixture!("replacement_queued.txt")), &[]);
    assert_eq!(v.status, Status::Warning, "{}", v.summary);
    assert!(
        v.summary
            .contains("md0 rebuild queued (DELAYED), 1 device(s) missing"),
        "{}",
        v.summary
    );
    assert!(v.summary.contains("md1 rebuilding 23.4%"), "{}", v.summary);
    // The same array without an incoming member stays CRITICAL.
    let degraded = snap(
        "md0 : active raid1 vda4[0]\n      8128 blocks super 1.0 [2/1] [U_]\n      resync=DELAYED\n",
    );
    let v = verdict(&degraded, &[]);
    assert_eq!(v.status, Status::Critical, "{}", v.summary);
}

#[test]
fn unparsed_line_is_unknown_and_quoted() {
    let text =
        "md0 : active raid1 sda1[0] sdb1[1]\n      100 blocks [2/2] [UU]\n      wibble wobble\n";
    let v = verdict(&snap(text), &[]);
    assert_eq!(v.status, Status::Unknown);
    assert!(
        v.summary.contains("\"      wibble wobble\""),
        "{}",
        v.summary
    );
    assert!(v.summary.contains("line 3"), "{}", v.summary);
}

#[test]
fn mismatches_after_check_are_warning() {
    let stat = mdstat::parse(fixture!("clean_raid1.txt"));
    let sys = vec![sysfs::SysfsArray {
        name: "md0".into(),
        array_state: sysfs::ArrayState::Clean,
        level: "raid1".into(),
        raid_disks: Some(2),
        degraded: Some(0),
        sync_action: Some("idle".into()),
        sync_completed: None,
        mismatch_cnt: Some(128),
        members: vec![],
    }];
    let v = verdict(&merge(&stat, &sys), &[]);
    assert_eq!(v.status, Status::Warning);
    assert!(
        v.summary.contains("md0 128 mismatched sectors"),
        "{}",
        v.summary
    );
}

#[test]
fn sysfs_repair_overrides_mdstat_resync_word() {
    let stat = mdstat::parse(fixture!("old_090_resync.txt"));
    let sys = vec![sysfs::SysfsArray {
        name: "md0".into(),
        array_state: sysfs::ArrayState::Active,
        level: "raid1".into(),
        raid_disks: Some(2),
        degraded: Some(0),
        sync_action: Some("repair".into()),
        sync_completed: Some((1, 2)),
        mismatch_cnt: Some(0),
        members: vec![],
    }];
    let v = verdict(&merge(&stat, &sys), &[]);
    assert!(v.summary.contains("md0 repairing 12.0%"), "{}", v.summary);
}

#[test]
fn read_snapshot_from_fixture_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
    std::fs::write(dir.path().join("proc/mdstat"), fixture!("recovery.txt")).expect("w");
    let s = read_snapshot(dir.path()).expect("read");
    assert_eq!(s.arrays.len(), 1);
    // mdstat-only: the rebuilding member (highest index) is not in sync.
    let m: Vec<(&str, bool)> = s.arrays[0]
        .members
        .iter()
        .map(|m| (m.device.as_str(), m.in_sync))
        .collect();
    assert_eq!(m, vec![("loop0", true), ("loop1", false)]);
    let err = read_snapshot(&dir.path().join("nope")).expect_err("missing root");
    assert!(err.to_string().contains("nope/proc/mdstat"), "{err}");
}

#[test]
fn member_of_a_removed_disk_is_critical_before_md_notices() {
    // A disk pulled from a node: md0 did no I/O since, so md still lists
    // vdb4 in sync; its block device is gone from sysfs.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let w = |rel: &str, content: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    };
    w(
        "proc/mdstat",
        "Personalities : [raid1]\nmd0 : active raid1 vdb4[1] vda4[0]\n      8128 blocks super 1.0 [2/2] [UU]\n\nunused devices: <none>\n",
    );
    w("sys/block/md0/md/array_state", "clean\n");
    w("sys/block/md0/md/level", "raid1\n");
    w("sys/block/md0/md/degraded", "0\n");
    w("sys/block/md0/md/sync_action", "idle\n");
    w("sys/block/md0/md/dev-vda4/state", "in_sync\n");
    w("sys/block/md0/md/dev-vda4/slot", "0\n");
    w("sys/block/md0/md/dev-vdb4/state", "in_sync\n");
    w("sys/block/md0/md/dev-vdb4/slot", "1\n");
    w("sys/class/block/vda4/partition", "4\n");
    let snap = crate::raid::read_snapshot(root).expect("read");
    let v = verdict(&snap, &expected(&["md0"]));
    assert_eq!(v.status, Status::Critical, "{}", v.summary);
    assert!(
        v.summary.contains("md0 member vdb4 gone (disk removed"),
        "{}",
        v.summary
    );
    // The disk back (or md failed and removed it): no longer reported gone.
    w("sys/class/block/vdb4/partition", "4\n");
    let snap = crate::raid::read_snapshot(root).expect("read");
    assert_eq!(verdict(&snap, &expected(&["md0"])).status, Status::Ok);
}
