//! What the node VMs boot.
//!
//! - [`NodeImages`]: the real node images, built by the image builder
//!   (`flexctl image build PROFILE --all --out DIR`) into a cache under
//!   `target/`, reused while the profile and the flexvisor binary are
//!   unchanged. Each run boots private copies of them.
//! - [`ProbeGuest`]: the harness's own test guest: Debian's stock kernel
//!   (fetched with `apt-get download`, cached) and a busybox initramfs whose
//!   init reports on the console what the harness needs to check its own
//!   machinery: `/dev/ipmi0` present, the disk set, reachability of a peer
//!   over the fabric. It is not a node image and never stands in for one
//!   in a scenario.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::proc::{self, ProcError};

/// Errors preparing guests.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no Debian kernel in {dir} after extracting {deb}")]
    NoKernel { dir: PathBuf, deb: String },
    #[error(
        "cannot find the Debian kernel package: `apt-cache depends linux-image-amd64` said {0:?}"
    )]
    NoKernelPackage(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GuestError + '_ {
    move |source| GuestError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Modules the probe guest loads, in dependency order.
pub const PROBE_MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/char/ipmi/ipmi_msghandler.ko",
    "drivers/char/ipmi/ipmi_si.ko",
    "drivers/char/ipmi/ipmi_devintf.ko",
];

/// Console prefix of every probe report line.
pub const PROBE: &str = "FVQ-PROBE:";

/// The probe guest's `/init`. Kernel command line: `fvq.ip=ADDR/LEN` puts
/// the address on eth0, `fvq.ping=ADDR` reports reachability of ADDR
/// whenever it changes.
pub const PROBE_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
for m in $(cat /modules.order); do insmod /lib/modules/$(basename $m) 2>/dev/null; done
echo "FVQ-PROBE: booted"
n=0; while [ ! -e /dev/ipmi0 ] && [ $n -lt 20 ]; do sleep 0.5; n=$((n+1)); done
if [ -e /dev/ipmi0 ]; then echo "FVQ-PROBE: ipmi0=yes"; else echo "FVQ-PROBE: ipmi0=no"; fi
arg() { sed -n "s/.*fvq\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
ip=$(arg ip); peer=$(arg ping)
if [ -n "$ip" ]; then ip link set eth0 up; ip addr add "$ip" dev eth0; fi
disks=""; reach=""
while true; do
  d=$(ls /sys/block | grep '^vd' | tr '\n' ' ')
  if [ "$d" != "$disks" ]; then echo "FVQ-PROBE: disks=$d"; disks="$d"; fi
  if [ -n "$peer" ]; then
    if ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then r=ok; else r=fail; fi
    if [ "$r" != "$reach" ]; then echo "FVQ-PROBE: ping $peer $r"; reach="$r"; fi
  fi
  sleep 1
done
"#;

/// Kernel and initramfs of the probe guest.
#[derive(Debug, Clone)]
pub struct ProbeGuest {
    /// Debian's vmlinuz.
    pub kernel: PathBuf,
    /// The busybox initramfs.
    pub initrd: PathBuf,
}

impl ProbeGuest {
    /// Fetch (once) the Debian kernel into `cache/kernel`, and build the
    /// initramfs into `cache/probe-initrd.cpio`.
    pub fn prepare(cache: &Path) -> Result<ProbeGuest, GuestError> {
        let kdir = cache.join("kernel");
        let root = kdir.join("root");
        if find_kernel(&root).is_none() {
            fetch_kernel(&kdir)?;
        }
        let (kernel, moddir) = find_kernel(&root).ok_or_else(|| GuestError::NoKernel {
            dir: root.clone(),
            deb: "linux-image".into(),
        })?;
        let busybox = proc::require("busybox", "busybox-static")?;
        let stage = cache.join("probe-stage");
        let _ = std::fs::remove_dir_all(&stage);
        let lib = stage.join("lib/modules");
        std::fs::create_dir_all(&lib).map_err(io(&lib))?;
        std::fs::create_dir_all(stage.join("bin")).map_err(io(&stage))?;
        std::fs::copy(&busybox, stage.join("bin/busybox")).map_err(io(&busybox))?;
        let mut order = String::new();
        for m in PROBE_MODULES {
            let src = moddir.join("kernel").join(m);
            let name = Path::new(m)
                .file_name()
                .map(|f| f.to_owned())
                .unwrap_or_default();
            std::fs::copy(&src, lib.join(&name)).map_err(io(&src))?;
            order += &format!("{}\n", Path::new(&name).display());
        }
        std::fs::write(stage.join("modules.order"), order).map_err(io(&stage))?;
        let init = stage.join("init");
        std::fs::write(&init, PROBE_INIT).map_err(io(&init))?;
        proc::run(
            Command::new("chmod")
                .args(["0755"])
                .arg(&init)
                .arg(stage.join("bin/busybox")),
        )?;
        let initrd = cache.join("probe-initrd.cpio");
        proc::require("cpio", "cpio")?;
        proc::run(Command::new("sh").arg("-c").arg(format!(
            "cd '{}' && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible > '{}'",
            stage.display(),
            initrd.display()
        )))?;
        Ok(ProbeGuest { kernel, initrd })
    }

    /// Kernel command line for a probe guest.
    pub fn cmdline(ip: Option<&str>, ping: Option<&str>) -> String {
        let mut c = "console=ttyS0,115200 panic=-1 quiet loglevel=3".to_owned();
        if let Some(ip) = ip {
            c += &format!(" fvq.ip={ip}");
        }
        if let Some(p) = ping {
            c += &format!(" fvq.ping={p}");
        }
        c
    }
}

/// (vmlinuz, /lib/modules/<version>) under an extracted kernel package.
fn find_kernel(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let boot = std::fs::read_dir(root.join("boot")).ok()?;
    for e in boot.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(ver) = name.strip_prefix("vmlinuz-") {
            let m = root.join("lib/modules").join(ver);
            if m.is_dir() {
                return Some((e.path(), m));
            }
        }
    }
    None
}

/// `apt-get download` the kernel `linux-image-amd64` points at, and unpack it.
fn fetch_kernel(kdir: &Path) -> Result<(), GuestError> {
    std::fs::create_dir_all(kdir).map_err(io(kdir))?;
    proc::require("apt-get", "apt")?;
    let deps = proc::run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| GuestError::NoKernelPackage(deps.clone()))?
        .to_owned();
    proc::run(
        Command::new("apt-get")
            .args(["download", &pkg])
            .current_dir(kdir),
    )?;
    let deb = std::fs::read_dir(kdir)
        .map_err(io(kdir))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|f| {
                f.to_string_lossy().starts_with(&pkg) && f.to_string_lossy().ends_with(".deb")
            })
        })
        .ok_or_else(|| GuestError::NoKernel {
            dir: kdir.to_owned(),
            deb: pkg.clone(),
        })?;
    proc::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(kdir.join("root")),
    )?;
    Ok(())
}

/// Why node images cannot be had yet (a scenario reports `BLOCKED: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub String);

/// The Rust target of the static binaries an image carries.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// The service the harness adds to every node image it builds: a shell on
/// the second serial port (`ttyS1`), what a technician reaches through
/// the x240's serial-over-LAN console, and how the scenarios run field
/// procedures (`flexctl raid replace ...`) on a node
/// ([`crate::world::Node::exec`]). Protocol: the harness writes an id line
/// and a command line; the shell runs the command and prints
/// `@@<id> rc=<exit code>`. Raw mode, no echo: what comes back is only
/// the command's output. Not part of production images.
pub const TECH_CONSOLE_SERVICE: &str = r#"# qemu-tests only: the technician's shell on ttyS1 (see qemu-tests/src/guest.rs).
command = "/bin/sh"
args = ["-c", '''
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if ! stty -F /dev/ttyS1 raw -echo clocal; then
	echo "tech-console: no usable /dev/ttyS1" >/dev/console
	exec sleep 2147483647
fi
exec </dev/ttyS1 >/dev/ttyS1 2>&1
while :; do
	while IFS= read -r id && IFS= read -r line; do
		sh -c "$line" </dev/null
		echo "@@$id rc=$?"
	done
	sleep 1
done
''']
boot = true

[restart]
policy = "always"
initial_backoff_ms = 1000
max_backoff_ms = 5000
"#;

/// File name of [`TECH_CONSOLE_SERVICE`] in `/etc/flexvisor/services.d`.
pub const TECH_CONSOLE_FILE: &str = "tech-console.toml";

/// The project binaries every image carries (and the lb role's service).
pub const BASE_BINS: &[&str] = &["flexvisor", "flexctl", "sip-lb"];

/// The static project binaries the services and hooks of `nodes` need
/// beyond [`BASE_BINS`] (as the image builder computes them), sorted.
pub fn extra_bins(nodes: &[chassis::NodeConfig]) -> Result<Vec<String>, Missing> {
    let mut out: Vec<String> = Vec::new();
    for n in nodes {
        let needs = flexvisor_image::services::needs(n).map_err(|e| Missing(e.to_string()))?;
        for b in needs.binaries.keys() {
            if !BASE_BINS.contains(&b.as_str()) && !out.contains(b) {
                out.push(b.clone());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Directory of the static (musl) `flexvisor`, `flexctl`, `sip-lb` and the
/// `extra` service binaries (each a workspace package with a binary of the
/// same name) an image carries: `$FLEXVISOR_STATIC_BIN_DIR`, or the directory of
/// `$FLEXVISOR_BIN`, else built now by cargo into
/// `<workspace>/target/image-musl` exactly as the image crate's tests build
/// them (same target directory and profile overrides, so they are compiled
/// once for both). cargo's own progress goes to stderr.
pub fn static_bins(
    workspace: &Path,
    extra: &[String],
    say: &mut dyn FnMut(&str),
) -> Result<PathBuf, Missing> {
    if let Some(d) = std::env::var_os("FLEXVISOR_STATIC_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(f) = std::env::var_os("FLEXVISOR_BIN") {
        let f = PathBuf::from(f);
        return f
            .parent()
            .map(Path::to_owned)
            .ok_or_else(|| Missing(format!("FLEXVISOR_BIN={} has no directory", f.display())));
    }
    // Built once per process and set of binaries: a run of several
    // scenarios does not ask cargo again.
    static BUILT: std::sync::Mutex<Vec<Vec<String>>> = std::sync::Mutex::new(Vec::new());
    let dir = workspace.join("target/image-musl");
    let out = dir.join(STATIC_TARGET).join("debug");
    let built = |extra: &[String]| {
        BUILT
            .lock()
            .map(|b| b.iter().any(|e| extra.iter().all(|x| e.contains(x))))
            .unwrap_or(false)
    };
    if built(extra) {
        return Ok(out);
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(STATIC_TARGET))
        .unwrap_or(false);
    if !installed {
        say(&format!("adding the Rust target {STATIC_TARGET} (rustup)"));
        let ok = Command::new("rustup")
            .args(["target", "add", STATIC_TARGET])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(Missing(format!(
                "the {STATIC_TARGET} Rust target is needed for a static flexvisor: `rustup target add {STATIC_TARGET}` failed"
            )));
        }
    }
    let bins: Vec<&str> = BASE_BINS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect();
    say(&format!(
        "building static {} for {STATIC_TARGET} into {} (cargo output on stderr)",
        bins.join(", "),
        dir.display()
    ));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &dir)
        // Same overrides as image/tests/common: no debug info, optimised
        // enough for TCG, quick to build.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_PROFILE_DEV_OPT_LEVEL", "1")
        .args(["build", "--target", STATIC_TARGET])
        .args(bins.iter().flat_map(|p| ["-p", p, "--bin", p]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|e| Missing(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Missing(format!(
            "static build of {} for {STATIC_TARGET} failed ({status}); cargo's errors are above",
            bins.join(", ")
        )));
    }
    if let Ok(mut b) = BUILT.lock() {
        b.push(extra.to_vec());
    }
    Ok(out)
}

/// The secrets file of the virtual chassis: the credentials the CMM
/// simulator and the EN2092 agents accept, under the names the profile's
/// `credentials` fields give (what flexvisor's health monitor looks up),
/// and test values for the secrets the services' configurations name.
pub fn chassis_secrets(profile: &chassis::model::Profile) -> String {
    let mut s = String::from(
        "# Written by qemu-tests for its virtual chassis only.\n\
         db.replication_password = fvq-repl-secret\n\
         mariadb.user = failover\n\
         mariadb.password = fvq-failover-secret\n\
         sip-proxy.db_password = fvq-sipproxy-secret\n\
         sip-proxy.nonce_secret = fvq-nonce-secret\n\
         sip.domains = example.com\n\
         billing.db_password = fvq-billing-secret\n\
         web-api.db_password = fvq-webapi-secret\n",
    );
    for ch in profile.chassis.iter().take(1) {
        if let Some(i) = &ch.cmm.ipmi {
            s += &format!("{}.username = {}\n", i.credentials, crate::ipmi::USER);
            s += &format!("{}.password = {}\n", i.credentials, crate::ipmi::PASSWORD);
        }
        if let Some(sn) = &ch.cmm.snmp {
            s += &crate::cmm_snmp::secrets(&sn.credentials);
        }
        for sw in &ch.switches {
            // The agents answer the credentials name as their v2c community.
            s += &format!("{c}.community = {c}\n", c = sw.snmp.credentials);
        }
    }
    s
}

/// The node images of one profile, built and cached.
#[derive(Debug, Clone)]
pub struct NodeImages {
    /// Directory holding `bayNN.img`, `.vmlinuz`, `.initrd`, `.cmdline`.
    pub dir: PathBuf,
}

impl NodeImages {
    /// Build the images of `bays` of `profile` with the image builder
    /// (library `flexvisor-image`, the code behind `flexctl image build`)
    /// into `cache/images/<name>`, with the static binaries in `bins` and
    /// the chassis `secrets`; bays whose inputs are unchanged since the
    /// last build are reused. `say` gets the builder's progress.
    pub fn prepare(
        profile: &Path,
        name: &str,
        bays: &[u32],
        cache: &Path,
        bins: &Path,
        secrets: &str,
        say: &mut dyn FnMut(&str),
    ) -> Result<NodeImages, Missing> {
        let flexvisor = bins.join("flexvisor");
        if !flexvisor.is_file() {
            return Err(Missing(format!(
                "static flexvisor binary not found at {}",
                flexvisor.display()
            )));
        }
        let dir = cache.join("images").join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Missing(format!("creating {}: {e}", dir.display())))?;
        let secrets_file = dir.join("secrets.toml");
        std::fs::write(&secrets_file, secrets)
            .map_err(|e| Missing(format!("writing {}: {e}", secrets_file.display())))?;
        let stamp_of = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos())
        };
        // Every binary in the directory (files without an extension).
        let mut bin_stamps: Vec<String> = std::fs::read_dir(bins)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_none())
            .map(|p| format!("{} {}", p.display(), stamp_of(&p)))
            .collect();
        bin_stamps.sort();
        let inputs = format!(
            "profile {} {}\nbins {}\nsecrets {secrets}\nservice {TECH_CONSOLE_FILE} {TECH_CONSOLE_SERVICE}\n",
            profile.display(),
            stamp_of(profile),
            bin_stamps.join(" "),
        );
        let mut opts = flexvisor_image::Options::new(flexvisor);
        opts.services.insert(
            TECH_CONSOLE_FILE.to_owned(),
            TECH_CONSOLE_SERVICE.to_owned(),
        );
        opts.secrets = Some(secrets_file);
        opts.epoch = 1_700_000_000;
        for &bay in bays {
            let stamp = dir.join(format!("bay{bay:02}.inputs"));
            if std::fs::read_to_string(&stamp).is_ok_and(|s| s == inputs) {
                continue;
            }
            let _ = std::fs::remove_file(&stamp);
            let built = flexvisor_image::build(
                profile,
                &flexvisor_image::Selection::Bay(bay),
                None,
                &dir,
                &opts,
                &mut *say,
            )
            .map_err(|e| Missing(format!("image build of bay {bay}: {e}")))?;
            for b in &built {
                for w in &b.warnings {
                    say(&format!("bay {bay} ({}): {w}", b.hostname));
                }
            }
            let _ = std::fs::write(&stamp, &inputs);
        }
        Ok(NodeImages { dir })
    }
    /// The files of bay `bay`: (image, kernel, initrd, cmdline).
    pub fn bay(&self, bay: u32) -> Result<(PathBuf, PathBuf, PathBuf, String), Missing> {
        let stem = format!("bay{bay:02}");
        let f = |ext: &str| self.dir.join(format!("{stem}.{ext}"));
        for ext in ["img", "vmlinuz", "initrd"] {
            if !f(ext).is_file() {
                return Err(Missing(format!(
                    "image builder produced no {}",
                    f(ext).display()
                )));
            }
        }
        let cmdline = std::fs::read_to_string(f("cmdline"))
            .map(|s| s.trim().to_owned())
            .map_err(|_| {
                Missing(format!(
                    "image builder produced no {}",
                    f("cmdline").display()
                ))
            })?;
        Ok((f("img"), f("vmlinuz"), f("initrd"), cmdline))
    }
}
