//! The db image of c5-50k (db1a, bay 3) boots under qemu (TCG) to ready:
//! MariaDB initialises its datadir on the data mirror and reports ready
//! (sd_notify), Redis too, on disks larger than the image (fv-data
//! grows to their end before the data mirror is built), the base services run from boot, the VRRP
//! master hook (`/usr/libexec/flexvisor/db-promote` -> db-failover) runs,
//! and the node powers off cleanly.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use flexvisor_image::qemu::{BootSpec, Vm};

#[test]
fn db_image_boots_to_ready_with_mariadb_and_redis() {
    let tmp = common::TempDir::new("db-boot");
    let bins = common::static_bins_with(&["db-failover"]);
    let mut opts = flexvisor_image::Options::new(bins.join("flexvisor"));
    opts.epoch = 1_700_000_000;
    opts.secrets = Some(common::secrets_file(tmp.path()));
    let built = common::build_bay("c5-50k.toml", 3, tmp.path(), &opts);
    assert_eq!(built.hostname, "db1a");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);

    let mut spec = BootSpec::for_image(&built.image).expect("boot spec");
    // Disks larger than the image, as on a real node: fv-data grows to
    // the end of both before the data mirror is built.
    let len = std::fs::metadata(&built.image).unwrap().len();
    assert_eq!(spec.disk_bytes, Some(1 << 30), "db nodes get 1 GiB disks");
    let data_after = ((1u64 << 30) - len) / (1 << 20) + 16;
    spec.memory_mib = 512;
    let start = Instant::now();
    let mut vm = Vm::start(spec).expect("start qemu (package qemu-system-x86)");
    vm.wait_for("flexvisor: ready", Duration::from_secs(300))
        .expect("flexvisor ready");
    eprintln!("db1a: ready after {:.1} s", start.elapsed().as_secs_f64());
    let console = vm
        .wait_for("flexvisor-report: mdstat end", Duration::from_secs(180))
        .expect("status report from inside the guest");
    for disk in ["vda", "vdb"] {
        assert!(
            console.contains(&format!(
                "/dev/{disk}: fv-data grown from 16 to {data_after} MiB"
            )),
            "fv-data of {disk} not grown"
        );
    }
    let md1 = console
        .lines()
        .skip_while(|l| !l.starts_with("md1 :"))
        .nth(1)
        .unwrap_or_default();
    let blocks: u64 = md1
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    assert!(
        blocks > 300 * 1024,
        "md1 not on the grown partitions: {md1}"
    );
    let states = common::reported_states(&console);
    for svc in [
        "mariadb",
        "redis",
        "acpid",
        "console-report",
        "mdadm-monitor",
    ] {
        assert!(
            states.iter().any(|(n, s)| n == svc && s == "ready"),
            "{svc} not ready: {states:?}"
        );
    }
    // Alone, db1a becomes master and runs the promote hook through the
    // symlink to db-failover (a missing program would exit 127). On a
    // first boot it may run before MariaDB answers; see docs/image.md.
    let hook = vm
        .wait_for(
            "hook `/usr/libexec/flexvisor/db-promote` started",
            Duration::from_secs(120),
        )
        .expect("the master hook ran");
    let hook_lines: Vec<&str> = hook.lines().filter(|l| l.contains("db-promote")).collect();
    assert!(
        !hook_lines.iter().any(|l| l.contains("exit 127")
            || l.contains("exit code 127")
            || l.contains("not found")),
        "db-promote is not installed: {hook_lines:?}"
    );

    vm.qmp("system_powerdown").expect("QMP system_powerdown");
    let status = vm
        .wait_exit(Duration::from_secs(180))
        .expect("qemu exits after the orderly poweroff");
    assert!(status.success(), "qemu exit {status}");
    assert!(
        vm.console().contains("reboot: Power down"),
        "kernel powered off"
    );
}
