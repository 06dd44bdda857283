//! The proxy image of c5-50k (proxy1a, bay 7) boots under qemu (TCG) to
//! ready: its local MariaDB replica (initialised on first start, read-only,
//! replicating from db1a) and Redis come up, and once the node is master
//! (alone, its VRRP instance takes over) the active services sip-proxy,
//! media-relay and billing run and report ready; then a clean poweroff.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use flexvisor_image::qemu::{BootSpec, Vm};

#[test]
fn proxy_image_boots_to_ready_with_its_services() {
    let tmp = common::TempDir::new("proxy-boot");
    let bins = common::static_bins_with(&["sip-proxy", "media-relay", "billing", "db-failover"]);
    let mut opts = flexvisor_image::Options::new(bins.join("flexvisor"));
    opts.epoch = 1_700_000_000;
    opts.secrets = Some(common::secrets_file(tmp.path()));
    let built = common::build_bay("c5-50k.toml", 7, tmp.path(), &opts);
    assert_eq!(built.hostname, "proxy1a");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);

    let mut spec = BootSpec::for_image(&built.image).expect("boot spec");
    spec.memory_mib = 640;
    let start = Instant::now();
    let mut vm = Vm::start(spec).expect("start qemu (package qemu-system-x86)");
    vm.wait_for("flexvisor: ready", Duration::from_secs(300))
        .expect("flexvisor ready");
    eprintln!(
        "proxy1a: ready after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    // The report comes once every wanted service is ready, the active
    // ones included (the node is master by then).
    let console = vm
        .wait_for("flexvisor-report: mdstat end", Duration::from_secs(240))
        .expect("status report from inside the guest");
    eprintln!(
        "proxy1a: all services ready after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let states = common::reported_states(&console);
    for svc in [
        "mariadb",
        "redis",
        "sip-proxy",
        "media-relay",
        "billing",
        "acpid",
        "console-report",
    ] {
        assert!(
            states.iter().any(|(n, s)| n == svc && s == "ready"),
            "{svc} not ready: {states:?}"
        );
    }
    assert!(console.contains("flexvisor: now master"), "never master");
    // The pair's Redis was promoted before the active services started.
    let promoted = console
        .find("hook redis-promote succeeded")
        .expect("redis-promote succeeded");
    let released = console
        .find("flexvisor: master hook ended; starting active services")
        .expect("active services released after the master hook");
    assert!(promoted < released, "{console}");

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
