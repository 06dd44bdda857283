//! The raw image boots by UEFI: OVMF finds systemd-boot on the ESP, which
//! starts slot A's unified kernel image; its embedded initramfs and command
//! line reach the initramfs shim.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use flexvisor_image::qemu::{BootSpec, Vm};

#[test]
fn image_boots_through_ovmf_systemd_boot_and_the_uki() {
    let tmp = common::TempDir::new("uefi");
    let opts = common::options();
    let built = common::build_bay("c5-50k.toml", 5, tmp.path(), &opts);
    // Only the raw disk: the kernel files beside it must not be needed.
    std::fs::remove_file(&built.kernel).unwrap();
    std::fs::remove_file(&built.initrd).unwrap();

    let mut spec = BootSpec::for_image(&built.image).expect("boot spec");
    spec.direct = None;
    let mut vm = Vm::start(spec).expect("start qemu with OVMF (packages qemu-system-x86, ovmf)");
    let console = vm
        .wait_for(
            "flexvisor-init: loading boot modules",
            Duration::from_secs(240),
        )
        .expect("the UKI's kernel ran the initramfs shim");
    assert!(
        console.contains("Linux version"),
        "kernel banner on the console"
    );
    assert!(
        console.contains("flexvisor.slot=a"),
        "the UKI's embedded command line was used"
    );
    // The rest of the boot is the same as direct boot (boot_smoke.rs);
    // stopping here keeps the CI run short.
}
