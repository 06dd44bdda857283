//! Shared setup: the c5-50k profile, the probe guest, a run directory.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use chassis::NodeConfig;
use qemu_tests::guest::ProbeGuest;
use qemu_tests::world::{Chassis, NodeBoot, Options};

/// Generous bound for a probe guest to boot under TCG on a loaded machine
/// (only to avoid hanging; nothing is timed).
pub const BOOT: Duration = Duration::from_secs(300);

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn profile_path() -> PathBuf {
    workspace().join("chassis-profiles/c5-50k.toml")
}

pub fn profile() -> chassis::model::Profile {
    chassis::load_file(&profile_path())
        .expect("c5-50k loads")
        .profile
}

/// Resolved configs of the named nodes.
pub fn nodes(names: &[&str]) -> Vec<NodeConfig> {
    let p = profile();
    chassis::node::bays(&p)
        .into_iter()
        .map(|(c, b)| chassis::node::resolve(&p, b, Some(c)).expect("resolve"))
        .filter(|n| names.contains(&n.hostname.as_str()))
        .collect()
}

/// The probe guest, built into the shared cache under target/.
pub fn probe() -> ProbeGuest {
    let cache = workspace().join("target/qemu-tests-cache");
    ProbeGuest::prepare(&cache)
        .expect("probe guest (Debian kernel via apt-get download, busybox-static, cpio)")
}

/// Per node: (eth0 address/prefix, address to ping).
pub type Addressing = dyn Fn(&NodeConfig) -> (Option<String>, Option<String>);

/// A chassis and its run directory; the chassis is dropped (VMs stopped)
/// before the directory is removed.
pub struct ProbeRun {
    pub ch: Chassis,
    _run: tempfile::TempDir,
}

/// A chassis with `names` booting the probe guest; `ip` gives each node
/// its eth0 address and the address it pings.
pub fn probe_chassis(names: &[&str], ip: &Addressing) -> ProbeRun {
    let g = probe();
    let run = tempfile::Builder::new()
        .prefix("fvq-test")
        .tempdir()
        .expect("run dir");
    let boots = nodes(names)
        .into_iter()
        .map(|n| {
            let (addr, ping) = ip(&n);
            let boot = NodeBoot {
                kernel: g.kernel.clone(),
                initrd: g.initrd.clone(),
                cmdline: ProbeGuest::cmdline(addr.as_deref(), ping.as_deref()),
                disk0: None,
                disk_mib: 8,
            };
            (n, boot)
        })
        .collect::<Vec<_>>();
    let opts = Options {
        run_dir: run.path().to_owned(),
        helper: PathBuf::from(env!("CARGO_BIN_EXE_qemu-tests")),
        memory_mib: 192,
        accel: "tcg".into(),
    };
    let ch = Chassis::build(&profile(), &profile_path(), &boots, &opts).expect("build chassis");
    ProbeRun { ch, _run: run }
}

pub mod run;
