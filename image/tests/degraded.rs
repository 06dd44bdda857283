//! A second disk that is not empty (foreign data) is left alone: the
//! mirrors start degraded on the first disk and the node still gets ready.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use flexvisor_image::qemu::{BootSpec, Vm};

#[test]
fn foreign_second_disk_is_untouched_and_mirrors_run_degraded() {
    let tmp = common::TempDir::new("degraded");
    let opts = common::options();
    let built = common::build_bay("c5-50k.toml", 5, tmp.path(), &opts);
    let spec = BootSpec::for_image(&built.image).expect("boot spec");
    let len = std::fs::metadata(&built.image).unwrap().len();
    let mut foreign = b"foreign data, not ours".to_vec();
    foreign.resize(len as usize, 0);
    std::fs::write(&spec.second_disk, &foreign).unwrap();
    let disk2 = spec.second_disk.clone();

    let mut vm = Vm::start(spec).expect("start qemu");
    let console = vm
        .wait_for("flexvisor: ready", Duration::from_secs(240))
        .expect("ready on one disk");
    assert!(console.contains("no empty second disk: the mirrors start degraded"));
    let md0 = console
        .lines()
        .find(|l| l.starts_with("md0 :"))
        .expect("md0 in /proc/mdstat");
    assert_eq!(
        md0.trim_end(),
        "md0 : active raid1 vda4[0]",
        "md0 on vda4 only"
    );
    assert!(console.contains("[2/1] [U_]"), "degraded mirror shown");
    vm.qmp("system_powerdown").unwrap();
    vm.wait_exit(Duration::from_secs(120)).unwrap();
    let after = std::fs::read(&disk2).unwrap();
    assert!(after == foreign, "the foreign disk was written to");
}
