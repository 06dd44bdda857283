//! Slot B update under qemu: a node (lb1a) running slot A gets a new
//! system written to slot B (`slots::write_system`, what `flexctl image
//! update` does, here on the powered-off disks) and the try-once state on
//! both halves of the config mirror; the next boot tries slot B, reaches
//! ready and commits it. Then a broken system (PID 1 exits) goes to the
//! other slot: its boot panics, the machine reboots, and the shim rolls
//! back to the good slot, which reaches ready again.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flexvisor_image::gpt::Table;
use flexvisor_image::qemu::{BootSpec, Vm};
use flexvisor_image::slots::{self, Event, Slot, State};

/// Write `state` as `slot` into the config FAT of `disk` (at the start of
/// its fv-config partition; md 1.0 keeps its superblock at the end).
fn put_slot_file(disk: &Path, state: &State, dir: &Path) {
    let bytes = std::fs::read(disk).unwrap();
    let t = Table::parse(&bytes[..Table::PRIMARY_BYTES], bytes.len() as u64 / 512).unwrap();
    let cfg = t.partitions.iter().find(|p| p.name == "fv-config").unwrap();
    let f = dir.join("slot");
    std::fs::write(&f, state.render()).unwrap();
    let out = Command::new("mcopy")
        .arg("-o")
        .arg("-i")
        .arg(format!("{}@@{}", disk.display(), cfg.offset()))
        .arg(&f)
        .arg("::slot")
        .output()
        .expect("run mcopy (package mtools)");
    assert!(
        out.status.success(),
        "mcopy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn boot_until_report(image: &Path, what: &str) -> String {
    let spec = BootSpec::for_image(image).expect("boot spec");
    let mut vm = Vm::start(spec).expect("start qemu");
    let console = vm
        .wait_for("flexvisor-report: slot", Duration::from_secs(400))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    vm.qmp("system_powerdown").expect("QMP system_powerdown");
    vm.wait_exit(Duration::from_secs(120)).expect("poweroff");
    console
}

#[test]
fn slot_b_is_tried_committed_and_a_broken_update_rolls_back() {
    let tmp = common::TempDir::new("slots");
    let opts = common::options();
    let node = common::build_bay("c5-50k.toml", 5, &tmp.path().join("v1"), &opts);
    let disk2 = node.image.with_file_name("bay05.disk2.img");
    // A newer build: another epoch, other system bytes.
    let mut o2 = opts.clone();
    o2.epoch += 86_400;
    let v2 = common::build_bay("c5-50k.toml", 5, &tmp.path().join("v2"), &o2);

    // First boot: mirrors built, slot A.
    let c = boot_until_report(&node.image, "first boot");
    assert!(c.contains("slot a: nothing to commit"), "first boot");

    // Update: slot B on both disks, try once.
    for d in [&node.image, &disk2] {
        slots::write_system(&v2.image, d, Slot::B).unwrap();
    }
    let (st, _) = slots::next(&State::default(), Event::Updated { slot: Slot::B });
    for d in [&node.image, &disk2] {
        put_slot_file(d, &st, tmp.path());
    }
    let c = boot_until_report(&node.image, "boot of slot b");
    assert!(
        c.contains("trying the new system in slot b"),
        "slot b not tried"
    );
    assert!(c.contains("booting system slot b"));
    assert!(
        c.contains("slot b reached ready: it is the default now"),
        "slot b not committed"
    );

    // A broken system for slot A: PID 1 exits at once.
    let bad_fv = tmp.path().join("flexvisor");
    std::fs::write(&bad_fv, "#!/bin/sh\necho 'broken flexvisor'\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bad_fv, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut o3 = opts.clone();
    o3.flexvisor = bad_fv;
    o3.bin_dir = Some(common::static_bins());
    o3.epoch += 2 * 86_400;
    let v3 = common::build_bay("c5-50k.toml", 5, &tmp.path().join("v3"), &o3);
    for d in [&node.image, &disk2] {
        slots::write_system(&v3.image, d, Slot::A).unwrap();
    }
    let committed = State {
        default: Slot::B,
        trying: None,
        failed: None,
    };
    let (st, _) = slots::next(&committed, Event::Updated { slot: Slot::A });
    for d in [&node.image, &disk2] {
        put_slot_file(d, &st, tmp.path());
    }
    let c = boot_until_report(&node.image, "boot after the broken update");
    assert!(
        c.contains("trying the new system in slot a"),
        "slot a not tried"
    );
    assert!(
        c.contains("broken flexvisor"),
        "the broken system did not run"
    );
    assert!(
        c.contains("ROLLBACK: slot a did not reach ready; booting slot b"),
        "no rollback"
    );
    assert!(
        c.contains("slot b: nothing to commit"),
        "slot b not ready again"
    );
}
