//! The hardware watchdog on a real (emulated) device: qemu's i6300esb with
//! action reset, the kernel timeout cut to 10 s through the command line.
//!
//! - `fed_while_healthy_and_disarmed_on_poweroff`: the lb image of c5-50k
//!   (bay 5) boots, flexvisor holds `/dev/watchdog` and the kernel reports it
//!   active; over more than three timeouts there is no `WATCHDOG` event and
//!   no second kernel boot; an ACPI power-down ends with qemu exiting 0, the
//!   kernel never saying the watchdog was left running (magic close).
//! - `bites_when_pid1_is_frozen`: the same image with a test service that,
//!   once everything is ready, freezes PID 1 (cgroup v2 freezer: PID 1 ignores
//!   SIGSTOP from user space): qemu reports `WATCHDOG` (action reset) and the
//!   console shows the kernel booting again.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use flexvisor_image::qemu::{BootSpec, Vm};

/// The i6300esb timeout the tests boot with.
const HEARTBEAT_S: u64 = 10;

/// Both tests build into the same package cache: one build at a time.
static BUILD: Mutex<()> = Mutex::new(());

/// Kernel messages of a watchdog closed without the magic character:
/// the watchdog core's, and the old i6300esb driver's.
const LEFT_RUNNING: &[&str] = &[
    "watchdog did not stop",
    "Unexpected close, not stopping watchdog",
];

fn boots(console: &str) -> usize {
    console.matches("Linux version").count()
}

fn spec_for(image: &std::path::Path) -> BootSpec {
    let mut spec = BootSpec::for_image(image).expect("boot spec");
    assert!(spec.watchdog, "images boot with the i6300esb watchdog");
    let (k, i, cmdline) = spec.direct.take().expect("direct kernel boot");
    spec.direct = Some((k, i, format!("{cmdline} i6300esb.heartbeat={HEARTBEAT_S}")));
    spec
}

#[test]
fn fed_while_healthy_and_disarmed_on_poweroff() {
    let tmp = common::TempDir::new("watchdog-fed");
    let built = {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        common::build_bay("c5-50k.toml", 5, tmp.path(), &common::options())
    };
    let mut vm = Vm::start(spec_for(&built.image)).expect("start qemu (package qemu-system-x86)");
    let events = vm.events().expect("QMP event socket");
    let console = vm
        .wait_for("flexvisor-report: watchdog end", Duration::from_secs(300))
        .expect("ready and the console report from inside the guest");
    assert!(
        console.contains("flexvisor-init: exec /sbin/flexvisor --watchdog /dev/watchdog"),
        "the shim did not hand flexvisor the watchdog:\n{console}"
    );
    let wd_line = console
        .lines()
        .find(|l| l.contains("flexvisor-report: watchdog watchdog0 "))
        .unwrap_or_else(|| panic!("no watchdog0 in the report:\n{console}"));
    assert!(wd_line.contains("identity=i6300ESB"), "{wd_line}");
    assert!(wd_line.contains("state=active"), "{wd_line}");
    assert!(
        wd_line.contains(&format!("timeout={HEARTBEAT_S}")),
        "heartbeat from the command line not applied: {wd_line}"
    );
    assert!(
        console.contains("flexvisor-report: watchdog held by pid 1: /dev/watchdog"),
        "PID 1 does not hold /dev/watchdog:\n{console}"
    );

    // More than three timeouts with flexvisor feeding: no bite.
    std::thread::sleep(Duration::from_secs(3 * HEARTBEAT_S + 5));
    let console = vm.console();
    assert!(
        events.named("WATCHDOG").is_empty(),
        "watchdog bit a healthy node: {:?}",
        events.all()
    );
    assert_eq!(boots(&console), 1, "the guest rebooted:\n{console}");

    vm.qmp("system_powerdown").expect("QMP system_powerdown");
    let status = vm
        .wait_exit(Duration::from_secs(120))
        .expect("qemu exits after the orderly poweroff");
    let console = vm.console();
    assert!(status.success(), "qemu exit {status}");
    assert!(console.contains("flexvisor: shutting down"), "{console}");
    assert!(console.contains("reboot: Power down"), "{console}");
    for m in LEFT_RUNNING {
        assert!(
            !console.contains(m),
            "watchdog closed without magic close ({m}):\n{console}"
        );
    }
    assert!(
        events.named("WATCHDOG").is_empty(),
        "watchdog bit during shutdown: {:?}",
        events.all()
    );
    assert_eq!(boots(&console), 1, "the guest rebooted:\n{console}");
}

/// Replaces the console report: once every service is ready, move PID 1
/// into its own cgroup and freeze it, so flexvisor stops feeding.
const FREEZER: &str = r#"boot = true
command = "/bin/sh"
args = ["-c", '''
until /usr/bin/flexctl status --json >/dev/null 2>&1; do sleep 1; done
c=/sys/fs/cgroup/fv-test-freeze
mkdir -p $c && echo 1 >$c/cgroup.procs && echo 1 >$c/cgroup.freeze &&
  echo "fv-test: pid 1 frozen ($(cat $c/cgroup.events | tr '\n' ' '))" >/dev/console ||
  echo "fv-test: cannot freeze pid 1" >/dev/console
exec sleep 2147483647
''']
"#;

#[test]
fn bites_when_pid1_is_frozen() {
    let tmp = common::TempDir::new("watchdog-bite");
    let mut opts = common::options();
    opts.services
        .insert("console-report.toml".into(), FREEZER.into());
    let built = {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        common::build_bay("c5-50k.toml", 5, tmp.path(), &opts)
    };
    let mut spec = spec_for(&built.image);
    // The other test's VM may run beside this one: other UDP ports.
    for n in &mut spec.nics {
        n.local_port += 1000;
        n.remote_port += 1000;
    }
    let mut vm = Vm::start(spec).expect("start qemu (package qemu-system-x86)");
    let events = vm.events().expect("QMP event socket");
    let console = vm
        .wait_for("fv-test: ", Duration::from_secs(300))
        .expect("the test service ran");
    assert!(
        console.contains("fv-test: pid 1 frozen"),
        "the test service could not freeze PID 1:\n{console}"
    );
    assert!(
        console.contains("flexvisor-init: exec /sbin/flexvisor --watchdog /dev/watchdog"),
        "{console}"
    );
    assert!(events.named("WATCHDOG").is_empty(), "{:?}", events.all());
    assert_eq!(boots(&console), 1, "{console}");

    let bite = events
        .wait_for("WATCHDOG", Duration::from_secs(120))
        .unwrap_or_else(|| {
            panic!(
                "no WATCHDOG event with PID 1 frozen; events {:?}\n{}",
                events.all(),
                vm.console()
            )
        });
    assert_eq!(bite["data"]["action"], "reset", "{bite}");
    // The kernel boots again: the console log goes on across the reset.
    let start = Instant::now();
    let mut console = vm.console();
    while boots(&console) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(500));
        console = vm.console();
    }
    let after = &console[console.find("fv-test: pid 1 frozen").unwrap_or(0)..];
    assert!(
        after.contains("Linux version"),
        "no second kernel boot after the bite:\n{console}"
    );
}
