//! A node booted in another bay than its image is for says so loudly on the
//! console, records the mismatch for flexvisor (`/run/flexvisor/bay-check`,
//! `FLEXVISOR_BAY_CHECK=mismatch`), and flexvisor refuses the pair's shared
//! addresses. The bay comes from the node's BMC over IPMI when one answers
//! (here `ipmi_sim` with a FRU saying `bay=N`), before SMBIOS.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use flexvisor_image::qemu::{BootSpec, Vm};

#[test]
fn image_for_bay_5_booted_in_bay_7_shouts() {
    let tmp = common::TempDir::new("wrong-bay");
    let opts = common::options();
    let built = common::build_bay("c5-50k.toml", 5, tmp.path(), &opts);
    let mut spec = BootSpec::for_image(&built.image).expect("boot spec");
    spec.bay = Some(7);
    let mut vm = Vm::start(spec).expect("start qemu");
    let console = vm
        .wait_for(
            "flexvisor-report: bay-check detected",
            Duration::from_secs(300),
        )
        .expect("boot report");
    assert!(
        console.contains("WRONG BAY: this image is for bay 5, the node is in bay 7 (smbios)"),
        "no loud mismatch on the console"
    );
    assert!(console.contains("flexvisor-report: bay-check status=mismatch"));
}

#[test]
fn bmc_saying_another_bay_wins_over_smbios_and_no_shared_ip_is_taken() {
    let tmp = common::TempDir::new("wrong-bay-bmc");
    let opts = common::options();
    let built = common::build_bay("c5-50k.toml", 5, tmp.path(), &opts);
    // The chassis (BMC) says bay 7; SMBIOS agrees with the image.
    let bmc = common::bmc::Bmc::start(&tmp.path().join("bmc"), 7);
    let mut spec = BootSpec::for_image(&built.image).expect("boot spec");
    spec.bay = Some(5);
    spec.bmc_port = Some(bmc.port);
    let mut vm = Vm::start(spec).expect("start qemu");
    let console = vm
        .wait_for(
            "flexvisor-report: bay-check source",
            Duration::from_secs(300),
        )
        .expect("boot report");
    assert!(
        console.contains("the BMC reports bay 7 (ipmi-fru)"),
        "IPMI bay not read:\n{console}"
    );
    assert!(
        console.contains("WRONG BAY: this image is for bay 5, the node is in bay 7 (ipmi-fru)"),
        "no loud mismatch on the console"
    );
    assert!(console.contains("flexvisor-report: bay-check status=mismatch"));
    assert!(console.contains("flexvisor-report: bay-check source=ipmi-fru"));
    assert!(
        console.contains("WRONG BAY (bay-check: mismatch): shared addresses NOT taken"),
        "flexvisor did not refuse the shared addresses"
    );
    assert!(!console.contains("now master"), "took the VIPs anyway");
    drop(vm);
    drop(bmc);
}
