//! Building node images: the shared system parts of a role (kernel,
//! initramfs, UKI, system tree), cached by a key over every input, and the
//! per-bay image assembled from them plus the bay's config partition.
//!
//! Files appear under their final names only when complete: each output is
//! written to a `.tmp` name and renamed at the end; a failed build removes
//! its temporaries.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chassis::node::{self, NodeConfig};
use chassis::RoleKind;
use sha2::{Digest, Sha256};

use crate::fs;
use crate::ids::Seed;
use crate::kmod;
use crate::layout::{self, Sizes, MIB};
use crate::packages::{self, Cache};
use crate::services;
use crate::stage::{self, Entry, Tree};

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Profile(#[from] chassis::LoadError),
    #[error("{profile}: {source}")]
    Bay {
        profile: PathBuf,
        #[source]
        source: node::ResolveError,
    },
    #[error(transparent)]
    Package(#[from] packages::PackageError),
    #[error(transparent)]
    Kmod(#[from] kmod::KmodError),
    #[error(transparent)]
    Stage(#[from] stage::StageError),
    #[error(transparent)]
    Fs(#[from] fs::FsError),
    #[error(transparent)]
    Gpt(#[from] crate::gpt::GptError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the flexvisor binary {0} is missing: build it with `cargo build --release -p flexvisor --target x86_64-unknown-linux-musl`")]
    NoFlexvisor(PathBuf),
    #[error("kernel package {0} holds no boot/vmlinuz-*")]
    NoKernel(PathBuf),
    #[error("cannot serialize the node configuration: {0}")]
    Toml(#[from] toml::ser::Error),
    #[error(transparent)]
    Services(#[from] services::NeedError),
    #[error("{hostname} (role {role}): {what} needs the static binary `{binary}`, which is not in {dir}: build it with `cargo build --release --target x86_64-unknown-linux-musl -p {binary}` (no image was written)")]
    MissingBinary {
        hostname: String,
        role: String,
        what: String,
        binary: String,
        dir: PathBuf,
    },
    #[error("secrets file {path}: {detail}")]
    Secrets { path: PathBuf, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Modules the initramfs loads to find its disks and assemble the mirrors:
/// virtio for qemu, AHCI/SAS/NVMe for the x240, md RAID-1, ext4.
pub const BOOT_MODULES: &[&str] = &[
    // First: libcrc32c (ext4, erofs) needs a crc32c through the crypto
    // API, a soft dependency that `depends=` does not name.
    "crc32c_generic",
    "crc32c_intel",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "sd_mod",
    "mpt3sas",
    "nvme",
    "md_mod",
    "raid1",
    "ext4",
    "erofs",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
];

/// Modules every role's system carries for flexvisor to load
/// (`/etc/flexvisor/modules.load`): bonding and VLANs, the NICs (virtio,
/// Emulex be2net on the x240 LOM, Intel), the ACPI power button and input
/// events, IPMI and watchdogs.
pub const ROLE_MODULES: &[&str] = &[
    "bonding",
    "8021q",
    "virtio_net",
    "e1000e",
    "igb",
    "be2net",
    "button",
    "evdev",
    "ipmi_si",
    "ipmi_devintf",
    "i6300esb",
    "iTCO_wdt",
    "softdog",
];

/// Debian packages every image needs: the kernel comes separately.
const BASE_PACKAGES: &[&str] = &[
    "busybox-static",
    "mdadm",
    "libudev1",
    "libc6",
    "e2fsprogs",
    "libext2fs2",
    "libcom-err2",
    "libblkid1",
    "libuuid1",
];

const BUILDER_SOURCES: &[&str] = &[
    include_str!("builder.rs"),
    include_str!("stage.rs"),
    include_str!("fs.rs"),
    include_str!("cpio.rs"),
    include_str!("kmod.rs"),
    include_str!("services.rs"),
];
const INIT_SH: &str = include_str!("../data/init.sh");
const MDADM_CONF: &str = include_str!("../data/mdadm.conf");
const CONSOLE_REPORT: &str = include_str!("../data/console-report.sh");
const ACPI_POWER: &str = include_str!("../data/acpi-power.sh");
/// The kernel command line of both boot paths (UKI and direct).
pub const CMDLINE: &str = "console=tty0 console=ttyS0,115200 panic=10 flexvisor.slot=a";

/// What goes into the images besides the profile.
#[derive(Debug, Clone)]
pub struct Options {
    pub cache: Cache,
    /// The static flexvisor binary (PID 1).
    pub flexvisor: PathBuf,
    /// More static binaries for `/usr/bin`.
    pub extra_bins: Vec<PathBuf>,
    /// Where `flexctl` and the role's service binaries (static builds) are
    /// taken from; by default the directory of `flexvisor`.
    pub bin_dir: Option<PathBuf>,
    /// Extra service definitions for `/etc/flexvisor/services.d`, by file name.
    pub services: BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH`: every timestamp in the image.
    pub epoch: u64,
    pub data_mib: u64,
    /// The deployment's secrets file (`name = value` lines), copied to
    /// the config partition (`/config/secrets.toml`); without it the image
    /// builds with a warning and the services needing secrets refuse to
    /// start until one is installed there.
    pub secrets: Option<PathBuf>,
}

impl Options {
    /// Defaults: cache from [`Cache::default_root`], epoch from
    /// `SOURCE_DATE_EPOCH` (else 0), 16 MiB data partition.
    pub fn new(flexvisor: PathBuf) -> Options {
        Options {
            cache: Cache::new(Cache::default_root()),
            flexvisor,
            extra_bins: Vec::new(),
            bin_dir: None,
            services: BTreeMap::new(),
            epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            data_mib: 16,
            secrets: None,
        }
    }
}

/// Which bays to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Bay(u32),
    All,
}

/// One image that was built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub chassis: String,
    pub bay: u32,
    pub hostname: String,
    pub role: String,
    pub image: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Apparent size of the raw image.
    pub size: u64,
    /// The system parts came from the cache.
    pub system_cached: bool,
    /// Only the config partition of the image already in the output
    /// directory was rewritten (same system, layout and bay; the image
    /// untouched since its build).
    pub config_only: bool,
    pub seconds: f64,
    /// What the image lacks (service definitions or binaries).
    pub warnings: Vec<String>,
}

/// The shared, cached parts for one role.
#[derive(Debug, Clone)]
struct System {
    dir: PathBuf,
    warnings: Vec<String>,
    cached: bool,
    rootfs_bytes: u64,
    esp_bytes: u64,
}

fn sha_file(h: &mut Sha256, p: &Path) -> Result<(), BuildError> {
    let mut f = std::fs::File::open(p).map_err(io(p))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Of each third-party package, the files a node runs: the server and
/// what it reads at run time (no docs, test suites, other languages,
/// upgrade/install tools or benchmarks). A path is kept if it equals an
/// entry or lies below one. Libraries come from every package of the
/// closure and are pruned to what the programs need.
pub const PACKAGE_FILES: &[(&str, &[&str])] = &[
    (
        "mariadb-server-core",
        &[
            "usr/sbin/mariadbd",
            "usr/share/mysql/english",
            "usr/share/mysql/charsets",
            "usr/share/mysql/mysql_system_tables.sql",
            "usr/share/mysql/mysql_performance_tables.sql",
            "usr/share/mysql/mysql_system_tables_data.sql",
            "usr/share/mysql/maria_add_gis_sp_bootstrap.sql",
        ],
    ),
    ("redis-server", &["usr/bin/redis-server"]),
    (
        "redis-tools",
        &["usr/bin/redis-check-rdb", "usr/bin/redis-cli"],
    ),
];

/// Users of the third-party servers (they drop root themselves, or
/// flexvisor starts them as these).
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
mysql:x:100:100:MariaDB:/data/mysql:/bin/false\n\
redis:x:101:101:Redis:/data/redis:/bin/false\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nmysql:x:100:\nredis:x:101:\nnogroup:x:65534:\n";
const RUN_SERVICE: &str = include_str!("../data/libexec/run-service.sh");
const MD_EVENT: &str = include_str!("../data/libexec/md-event.sh");
/// The subscriber schema sip-proxy reads, created with the datadir.
const PROVISIONING_SCHEMA: &str =
    include_str!("../../services/sip-proxy/migrations/0001_subscribers.sql");

/// Progress reports, one line per step.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

struct Inputs {
    kernel: packages::Package,
    kver: String,
    /// Base packages, then the libraries third-party programs need.
    pkgs: Vec<packages::Package>,
    /// Third-party packages whose programs and data are installed.
    third: Vec<packages::Package>,
}

fn inputs(opts: &Options, primary: &[String]) -> Result<Inputs, BuildError> {
    let kname = opts
        .cache
        .resolve_meta("linux-image-amd64", "linux-image-")?;
    let kernel = opts.cache.get(&kname)?;
    let kver = std::fs::read_dir(kernel.tree.join("lib/modules"))
        .map_err(io(&kernel.tree))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| BuildError::NoKernel(kernel.tree.clone()))?;
    let mut names: Vec<String> = BASE_PACKAGES.iter().map(|s| (*s).to_owned()).collect();
    if !primary.is_empty() {
        // Of the dependencies only shared libraries are taken (then pruned
        // to what the programs need).
        let refs: Vec<&str> = primary.iter().map(String::as_str).collect();
        for n in opts.cache.closure(&refs)? {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let pkgs = names
        .iter()
        .map(|p| opts.cache.get(p))
        .collect::<Result<Vec<_>, _>>()?;
    let third = primary
        .iter()
        .map(|p| opts.cache.get(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Inputs {
        kernel,
        kver,
        pkgs,
        third,
    })
}

fn pkg<'a>(inp: &'a Inputs, name: &str) -> &'a Path {
    inp.pkgs
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.tree.as_path())
        .unwrap_or(Path::new("/nonexistent"))
}

/// Tools and libraries both the initramfs and the system carry.
fn tools(t: &mut Tree, inp: &Inputs) -> Result<(), BuildError> {
    t.busybox(&pkg(inp, "busybox-static").join("bin/busybox"))?;
    t.host(
        "sbin/mdadm",
        &pkg(inp, "mdadm").join("sbin/mdadm"),
        "mdadm (package mdadm)",
    )?;
    t.host(
        "sbin/mke2fs",
        &pkg(inp, "e2fsprogs").join("sbin/mke2fs"),
        "mke2fs (package e2fsprogs)",
    )?;
    // Every package's shared objects; `prune_libs` keeps what is needed.
    for p in &inp.pkgs {
        for d in ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"] {
            t.libs(&p.tree.join(d), "lib/x86_64-linux-gnu")?;
        }
    }
    t.symlink(
        "lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    );
    t.data("etc/mdadm.conf", MDADM_CONF, false);
    Ok(())
}

/// Whether `rel` is one of `keep` or lies below one.
fn kept(rel: &str, keep: &[&str]) -> bool {
    keep.iter()
        .any(|k| rel == *k || rel.strip_prefix(k).is_some_and(|r| r.starts_with('/')))
}

/// Copy a third-party package's selected files ([`PACKAGE_FILES`]) into
/// the tree.
fn copy_tree(
    t: &mut Tree,
    root: &Path,
    dir: &Path,
    what: &str,
    keep: &[&str],
) -> Result<(), BuildError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        // Descend only towards something kept.
        let below = keep.iter().any(|k| k.starts_with(&format!("{rel}/")));
        if !kept(&rel, keep) && !below {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        if meta.file_type().is_symlink() {
            let to = std::fs::read_link(&p).map_err(io(&p))?;
            t.symlink(&rel, &to.to_string_lossy());
        } else if meta.is_dir() {
            copy_tree(t, root, &p, what, keep)?;
        } else if meta.is_file() {
            t.host(&rel, &p, what)?;
        }
    }
    Ok(())
}

fn third_party(t: &mut Tree, inp: &Inputs) -> Result<(), BuildError> {
    for p in &inp.third {
        let keep = PACKAGE_FILES
            .iter()
            .find(|(n, _)| *n == p.name)
            .map(|(_, k)| *k)
            .unwrap_or(&[]);
        copy_tree(t, &p.tree, &p.tree, &p.name, keep)?;
    }
    Ok(())
}

fn os_release(kver: &str) -> String {
    format!(
        "ID=flexvisor\nNAME=flexvisor\nPRETTY_NAME=\"flexvisor (kernel {kver})\"\nVERSION_ID={}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The static binaries `n` needs (flexctl and its services' and hooks'
/// programs), each of which must exist in the bin dir.
fn binaries(
    opts: &Options,
    n: &NodeConfig,
    needs: &services::Needs,
) -> Result<Vec<PathBuf>, BuildError> {
    let bin_dir = opts
        .bin_dir
        .clone()
        .or_else(|| opts.flexvisor.parent().map(Path::to_owned))
        .unwrap_or_default();
    let wanted = std::iter::once(("flexctl".to_owned(), "the console report".to_owned()))
        .chain(needs.binaries.clone());
    let mut out = Vec::new();
    for (b, what) in wanted {
        let p = bin_dir.join(&b);
        if !p.is_file() {
            return Err(BuildError::MissingBinary {
                hostname: n.hostname.clone(),
                role: n.role.as_str().to_owned(),
                what,
                binary: b,
                dir: bin_dir,
            });
        }
        out.push(p);
    }
    Ok(out)
}

/// Build (or find in the cache) the system parts shared by every bay of
/// `role`.
fn system(opts: &Options, n: &NodeConfig, say: Progress) -> Result<System, BuildError> {
    let role = n.role;
    if !opts.flexvisor.is_file() {
        return Err(BuildError::NoFlexvisor(opts.flexvisor.clone()));
    }
    // Everything the role's services and hooks need, or a clear error
    // before anything is written.
    let needs = services::needs(n)?;
    let mut bins = opts.extra_bins.clone();
    bins.extend(binaries(opts, n, &needs)?);
    let inp = inputs(opts, &needs.packages)?;
    let warnings = Vec::new();
    let mut defs = needs.definitions.clone();
    defs.extend(opts.services.clone());
    let mut h = Sha256::new();
    h.update(format!(
        "flexvisor-image {} role={} epoch={} kernel={} packages={:?} links={:?}\n",
        env!("CARGO_PKG_VERSION"),
        role.as_str(),
        opts.epoch,
        inp.kernel.deb,
        needs.packages,
        needs.symlinks,
    ));
    for p in &inp.pkgs {
        h.update(format!("pkg {}\n", p.deb));
    }
    // The code that stages and writes the system is an input too.
    for src in BUILDER_SOURCES {
        h.update(src);
    }
    h.update(INIT_SH);
    h.update(MDADM_CONF);
    h.update(CMDLINE);
    h.update(format!("{BOOT_MODULES:?}{ROLE_MODULES:?}"));
    sha_file(&mut h, &opts.flexvisor)?;
    for b in &bins {
        h.update(
            b.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        sha_file(&mut h, b)?;
    }
    h.update(CONSOLE_REPORT);
    h.update(ACPI_POWER);
    h.update(RUN_SERVICE);
    h.update(MD_EVENT);
    h.update(PROVISIONING_SCHEMA);
    h.update(PASSWD);
    h.update(GROUP);
    h.update(format!("{PACKAGE_FILES:?}"));
    for (name, body) in &defs {
        h.update(format!("svc {name}\n{body}\n"));
    }
    let key = hex(&h.finalize()[..12]);
    let dir = opts
        .cache
        .root()
        .join("systems")
        .join(format!("{}-{key}", role.as_str()));
    if dir.join("meta.toml").is_file() {
        let meta: BTreeMap<String, u64> = std::fs::read_to_string(dir.join("meta.toml"))
            .ok()
            .and_then(|s| toml::from_str(&s).ok())
            .unwrap_or_default();
        if let (Some(r), Some(e)) = (meta.get("rootfs_bytes"), meta.get("esp_bytes")) {
            return Ok(System {
                dir,
                warnings,
                cached: true,
                rootfs_bytes: *r,
                esp_bytes: *e,
            });
        }
    }
    say(&format!("building the {} system ({key})", role.as_str()));
    let tmp = dir.with_extension(format!("tmp-{}", unique()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let system_uuid = Seed {
        deployment: String::new(),
        chassis: String::new(),
        bay: 0,
    }
    .uuid(&format!("system/{key}"));
    let result = build_system(opts, &inp, &bins, &defs, &needs.symlinks, system_uuid, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let (rootfs_bytes, esp_bytes) = result?;
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another build finished the same system first: use that one.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(System {
        dir,
        warnings,
        cached: false,
        rootfs_bytes,
        esp_bytes,
    })
}

fn build_system(
    opts: &Options,
    inp: &Inputs,
    bins: &[PathBuf],
    defs: &BTreeMap<String, String>,
    links: &[(String, String)],
    system_uuid: crate::ids::Uuid,
    tmp: &Path,
) -> Result<(u64, u64), BuildError> {
    let kdir = inp.kernel.tree.join("lib/modules").join(&inp.kver);
    let ktree = kmod::Tree::open(&kdir)?;
    let boot_mods = ktree.closure(BOOT_MODULES)?;
    let mut all: Vec<&str> = BOOT_MODULES.to_vec();
    all.extend(ROLE_MODULES);
    // The boot modules are loaded (from the initramfs) before the system
    // is mounted: the system carries only the others.
    let role_mods: Vec<_> = ktree
        .closure(&all)?
        .into_iter()
        .filter(|m| !boot_mods.contains(m))
        .collect();
    let vmlinuz = inp
        .kernel
        .tree
        .join("boot")
        .join(format!("vmlinuz-{}", inp.kver));
    if !vmlinuz.is_file() {
        return Err(BuildError::NoKernel(inp.kernel.tree.clone()));
    }

    // initramfs
    let mut init = Tree::new();
    tools(&mut init, inp)?;
    init.data("init", INIT_SH, true);
    init.insert("dev/console", Entry::CharDev { major: 5, minor: 1 });
    for d in ["proc", "sys", "run", "tmp", "newroot", "cfg", "etc"] {
        init.dir(d);
    }
    let mut list = String::new();
    for m in &boot_mods {
        let rel = m.to_string_lossy();
        init.host(
            &format!("lib/modules/{rel}"),
            &kdir.join(m),
            "kernel module",
        )?;
        list.push_str(&rel);
        list.push('\n');
    }
    init.data("lib/modules/boot.list", list, false);
    init.prune_libs("lib/x86_64-linux-gnu")?;
    let initrd = tmp.join("initrd");
    let cpio = tmp.join("initrd.cpio");
    std::fs::write(&cpio, init.to_cpio(opts.epoch)?).map_err(io(&cpio))?;
    fs::gzip(&cpio, &initrd)?;
    let _ = std::fs::remove_file(&cpio);
    std::fs::copy(&vmlinuz, tmp.join("vmlinuz")).map_err(io(&vmlinuz))?;

    // ESP: systemd-boot choosing slot A's UKI (slot B's appears on update).
    let esp = tmp.join("esp");
    let uki = esp.join("EFI/Linux/flexvisor-a.efi");
    std::fs::create_dir_all(uki.parent().unwrap_or(&esp)).map_err(io(&esp))?;
    fs::uki(
        opts.epoch,
        &vmlinuz,
        &initrd,
        CMDLINE,
        &os_release(&inp.kver),
        tmp,
        &uki,
    )?;
    let boot = esp.join("EFI/BOOT");
    std::fs::create_dir_all(&boot).map_err(io(&boot))?;
    std::fs::copy(fs::SYSTEMD_BOOT, boot.join("BOOTX64.EFI"))
        .map_err(io(Path::new(fs::SYSTEMD_BOOT)))?;
    let loader = esp.join("loader");
    std::fs::create_dir_all(&loader).map_err(io(&loader))?;
    std::fs::write(
        loader.join("loader.conf"),
        "default flexvisor-a.efi\ntimeout 0\n",
    )
    .map_err(io(&loader))?;
    fs::pin_mtimes(&esp, opts.epoch)?;
    let uki_len = std::fs::metadata(&uki).map_err(io(&uki))?.len();
    // Room for a second UKI (slot B) and the boot manager.
    let esp_bytes = (2 * uki_len + 8 * MIB).div_ceil(MIB).max(40) * MIB;

    // system slot
    let mut sys = Tree::new();
    tools(&mut sys, inp)?;
    third_party(&mut sys, inp)?;
    // The project's binaries without symbol tables (`strip
    // --strip-unneeded`, deterministic): a fifth of their size.
    let stripped = tmp.join("stripped");
    std::fs::create_dir_all(&stripped).map_err(io(&stripped))?;
    let strip = |src: &Path, name: &str| -> Result<PathBuf, BuildError> {
        let out = stripped.join(name);
        let ok = std::process::Command::new("strip")
            .arg("--strip-unneeded")
            .arg("-o")
            .arg(&out)
            .arg(src)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Ok(out)
        } else {
            // Not an ELF file (a stand-in script): as it is.
            Ok(src.to_owned())
        }
    };
    sys.host(
        "sbin/flexvisor",
        &strip(&opts.flexvisor, "flexvisor")?,
        "flexvisor binary",
    )?;
    for b in bins {
        let name = b
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        sys.host(
            &format!("usr/bin/{name}"),
            &strip(b, &name)?,
            "service binary",
        )?;
    }
    let mut load = String::new();
    for m in &role_mods {
        let rel = m.to_string_lossy();
        sys.host(
            &format!("lib/modules/{}/{rel}", inp.kver),
            &kdir.join(m),
            "kernel module",
        )?;
        load.push_str(&format!("/lib/modules/{}/{rel}\n", inp.kver));
    }
    sys.data("etc/flexvisor/modules.load", load, false);
    sys.symlink("etc/flexvisor/node.toml", "/config/node.toml");
    sys.symlink("etc/hostname", "/config/hostname");
    sys.dir("etc/flexvisor/services.d");
    for (name, body) in defs {
        sys.data(
            &format!("etc/flexvisor/services.d/{name}"),
            body.as_str(),
            false,
        );
    }
    sys.data("etc/os-release", os_release(&inp.kver), false);
    sys.data("etc/passwd", PASSWD, false);
    sys.data("etc/group", GROUP, false);
    sys.symlink("etc/flexvisor/secrets.toml", "/config/secrets.toml");
    sys.data("usr/libexec/flexvisor/run-service", RUN_SERVICE, true);
    sys.data("usr/libexec/flexvisor/md-event", MD_EVENT, true);
    sys.data(
        "usr/share/flexvisor/provisioning-schema.sql",
        PROVISIONING_SCHEMA,
        false,
    );
    for (path, target) in links {
        sys.symlink(path, target);
    }
    sys.data("etc/flexvisor/console-report.sh", CONSOLE_REPORT, true);
    sys.data("etc/acpi/PWRF/00000080", ACPI_POWER, true);
    for d in [
        "config", "data", "proc", "sys", "dev", "run", "tmp", "var", "root", "mnt",
    ] {
        sys.dir(d);
    }
    sys.prune_libs("lib/x86_64-linux-gnu")?;
    let rootfs = tmp.join("rootfs");
    sys.write_dir(&rootfs)?;
    fs::pin_mtimes(&rootfs, opts.epoch)?;
    // One read-only system image per role and inputs, the same bytes in
    // every bay: its UUID derives from the system key, not the bay.
    let erofs = tmp.join("system.erofs");
    fs::erofs_from_dir(&rootfs, &erofs, system_uuid, opts.epoch)?;
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_dir_all(tmp.join("stripped"));
    let len = std::fs::metadata(&erofs).map_err(io(&erofs))?.len();
    // An eighth (at least 2 MiB) of room for a later, larger update of
    // this slot, rounded up to 4 MiB: the slot size is fixed when the disk
    // is flashed.
    let rootfs_bytes = (len + (len / 8).max(2 * MIB)).div_ceil(4 * MIB) * 4 * MIB;

    let meta = format!("rootfs_bytes = {rootfs_bytes}\nesp_bytes = {esp_bytes}\n");
    std::fs::write(tmp.join("meta.toml"), meta).map_err(io(tmp))?;
    Ok((rootfs_bytes, esp_bytes))
}

/// `PID-N`: temporary names unique per process and per call, so builds
/// running in parallel threads (tests) never share a temporary.
fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// A file under construction: removed on drop unless [`Pending::commit`]ted.
struct Pending {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Pending {
    fn new(dest: PathBuf) -> Pending {
        let name = dest
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{name}.tmp-{}", unique()));
        Pending {
            tmp,
            dest,
            done: false,
        }
    }

    fn commit(mut self) -> Result<PathBuf, BuildError> {
        std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Copy `src` into `dst` at `offset`, leaving holes where `src` is zero.
fn splice(
    dst: &mut std::fs::File,
    dst_path: &Path,
    src: &Path,
    offset: u64,
) -> Result<(), BuildError> {
    let mut f = std::fs::File::open(src).map_err(io(src))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = offset;
    loop {
        let mut n = 0;
        while n < buf.len() {
            let r = f.read(&mut buf[n..]).map_err(io(src))?;
            if r == 0 {
                break;
            }
            n += r;
        }
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            dst.seek(SeekFrom::Start(pos)).map_err(io(dst_path))?;
            dst.write_all(&buf[..n]).map_err(io(dst_path))?;
        }
        pos += n as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok(())
}

fn write_at(
    dst: &mut std::fs::File,
    p: &Path,
    offset: u64,
    bytes: &[u8],
) -> Result<(), BuildError> {
    dst.seek(SeekFrom::Start(offset)).map_err(io(p))?;
    dst.write_all(bytes).map_err(io(p))
}

/// Where the stamp of `image` lives: `.bayNN.img.stamp` beside it.
fn stamp_path(image: &Path) -> PathBuf {
    let name = image
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    image.with_file_name(format!(".{name}.stamp"))
}

/// The key over everything of an image outside its config partition: the
/// role's system (its cache key names every input), the layout, the bay's
/// seed (GPT and ESP ids), the epoch and the code writing them.
fn base_key(sys: &System, sizes: Sizes, seed: &Seed, epoch: u64) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{} {:?} {sizes:?} {:?} {:?} {} {epoch}\n",
        env!("CARGO_PKG_VERSION"),
        sys.dir.file_name().unwrap_or_default(),
        seed.deployment,
        seed.chassis,
        seed.bay
    ));
    for src in [
        include_str!("layout.rs"),
        include_str!("gpt.rs"),
        include_str!("ids.rs"),
    ] {
        h.update(src);
    }
    hex(&h.finalize()[..16])
}

/// The stamp of `image` built from `base`: the key and the file's identity
/// (inode, size, modification time). Any later write to the image (a
/// boot, an update) changes the time, and the stamp no longer matches.
/// None for a file with other hard links (patching it would change them).
fn stamp(base: &str, image: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(image).ok()?;
    if m.nlink() != 1 {
        return None;
    }
    Some(format!(
        "base = {base:?}\ninode = {}\nlen = {}\nmtime = \"{}.{:09}\"\n",
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Rewrite the config partition (`len` bytes at `offset`) of the image at
/// `dest` from `cfg`, zero past its end. The stamp goes first and the
/// image is patched under a temporary name: an interrupted rebuild leaves
/// no image (and no stamp) that looks finished.
fn patch_config(
    dest: &Path,
    side: &Path,
    cfg: &Path,
    offset: u64,
    len: u64,
) -> Result<PathBuf, BuildError> {
    std::fs::remove_file(side).map_err(io(side))?;
    let p = Pending::new(dest.to_owned());
    std::fs::rename(dest, &p.tmp).map_err(io(dest))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p.tmp)
        .map_err(io(&p.tmp))?;
    let mut src = std::fs::File::open(cfg).map_err(io(cfg))?;
    let chunk = MIB as usize;
    let mut buf = vec![0u8; chunk];
    let mut done = 0u64;
    while done < len {
        let want = chunk.min((len - done) as usize);
        let mut n = 0;
        while n < want {
            let r = src.read(&mut buf[n..want]).map_err(io(cfg))?;
            if r == 0 {
                break;
            }
            n += r;
        }
        buf[n..want].fill(0);
        if buf[..want].iter().any(|b| *b != 0) {
            write_at(&mut f, &p.tmp, offset + done, &buf[..want])?;
        } else {
            zero_range(&mut f, &p.tmp, offset + done, &buf[..want])?;
        }
        done += want as u64;
    }
    drop(f);
    p.commit()
}

/// Zero `zeros.len()` bytes at `offset`: a hole where the file system can
/// punch one (as a full build leaves it), else written zeros.
fn zero_range(
    f: &mut std::fs::File,
    p: &Path,
    offset: u64,
    zeros: &[u8],
) -> Result<(), BuildError> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (
        libc::off_t::try_from(offset),
        libc::off_t::try_from(zeros.len()),
    ) else {
        return write_at(f, p, offset, zeros);
    };
    // SAFETY: `f` owns an open descriptor for the call's duration; no
    // memory is passed, and KEEP_SIZE leaves the file's length alone.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        write_at(f, p, offset, zeros)
    }
}

/// Per-bay cached part: built by `make` unless present.
fn cached_part(
    path: &Path,
    make: impl FnOnce(&Path) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    if path.is_file() {
        return Ok(());
    }
    let p = Pending::new(path.to_owned());
    make(&p.tmp)?;
    p.commit()?;
    Ok(())
}

/// File name stem of a bay's outputs: `bay05`, or `chassis2-bay05` when the
/// profile has several chassis.
pub fn stem(n: &NodeConfig, multi_chassis: bool) -> String {
    if multi_chassis {
        format!("{}-bay{:02}", n.chassis, n.bay)
    } else {
        format!("bay{:02}", n.bay)
    }
}

fn copy_out(src: &Path, dest: PathBuf) -> Result<PathBuf, BuildError> {
    use std::os::unix::fs::MetadataExt;
    // Already a link to `src` (a rebuild): renaming a link over the same
    // file would do nothing and leave the temporary behind.
    if let (Ok(a), Ok(b)) = (std::fs::metadata(src), std::fs::metadata(&dest)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return Ok(dest);
        }
    }
    let p = Pending::new(dest);
    if std::fs::hard_link(src, &p.tmp).is_err() {
        std::fs::copy(src, &p.tmp).map_err(io(src))?;
    }
    p.commit()
}

/// Build the image of one resolved node into `out`.
pub fn build_node(
    n: &NodeConfig,
    site: &services::Site,
    multi_chassis: bool,
    out: &Path,
    opts: &Options,
    say: Progress,
) -> Result<Built, BuildError> {
    let start = Instant::now();
    let secrets = secrets(opts)?;
    let sys = system(opts, n, say)?;
    assemble(
        n,
        site,
        &sys,
        secrets.as_deref(),
        multi_chassis,
        out,
        opts,
        start,
    )
}

/// Minimum data partition for nodes running MariaDB (its datadir grows
/// past 16 MiB on first start): the image stays small and `fv-data` grows
/// to the disk's end on first boot, so the disk must be larger than the
/// image by this much (any real disk is; `qemu::BootSpec::for_image` gives
/// such nodes 1 GiB disks).
pub const MARIADB_DISK_SLACK_MIB: u64 = 64;

/// The secrets file's text, checked for syntax (`name = value` lines).
fn secrets(opts: &Options) -> Result<Option<String>, BuildError> {
    let Some(path) = &opts.secrets else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| BuildError::Secrets {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if let Err(line) = chassis::secrets::entries(&text) {
        return Err(BuildError::Secrets {
            path: path.clone(),
            detail: format!("line {line}: expected `name = value`"),
        });
    }
    Ok(Some(text))
}

/// Whether the secrets file sets every secret the generated files of `n`
/// name: an error naming the missing ones, or a warning without a file.
fn check_secrets(
    n: &NodeConfig,
    files: &BTreeMap<String, String>,
    secrets: Option<&str>,
    opts: &Options,
) -> Result<Option<String>, BuildError> {
    let named = services::secrets_named(files);
    match secrets {
        Some(text) => {
            let missing: Vec<&str> = named
                .iter()
                .map(String::as_str)
                .filter(|k| secret_value(text, k).is_none())
                .collect();
            if missing.is_empty() {
                Ok(None)
            } else {
                Err(BuildError::Secrets {
                    path: opts.secrets.clone().unwrap_or_default(),
                    detail: format!(
                        "{} ({}) needs {}, which it does not set",
                        n.hostname,
                        n.role.as_str(),
                        missing.join(", ")
                    ),
                })
            }
        }
        None if !named.is_empty() => Ok(Some(format!(
            "no secrets file given: {} stay down until /config/secrets.toml sets {}",
            n.services.join(", "),
            named.join(", ")
        ))),
        None => Ok(None),
    }
}

/// The value of `name` in a secrets text (already checked by [`secrets`]);
/// the last entry wins.
fn secret_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    chassis::secrets::entries(text)
        .ok()?
        .into_iter()
        .rev()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The bay's config partition and image around the role's system.
#[allow(clippy::too_many_arguments)]
fn assemble(
    n: &NodeConfig,
    site: &services::Site,
    sys: &System,
    secrets: Option<&str>,
    multi_chassis: bool,
    out: &Path,
    opts: &Options,
    start: Instant,
) -> Result<Built, BuildError> {
    let files = services::node_files(n, site);
    let mut warnings = sys.warnings.clone();
    warnings.extend(check_secrets(n, &files, secrets, opts)?);
    let data_mib = opts.data_mib;
    let seed = Seed {
        deployment: n.deployment.clone(),
        chassis: n.chassis.clone(),
        bay: n.bay,
    };
    let sizes = Sizes {
        esp: sys.esp_bytes,
        system: sys.rootfs_bytes,
        config: 8 * MIB,
        data: data_mib * MIB,
    };
    let bays = sys.dir.join("bays");
    std::fs::create_dir_all(&bays).map_err(io(&bays))?;
    let tag = hex(&Sha256::digest(format!(
        "{}\0{}\0{}",
        seed.deployment, seed.chassis, seed.bay
    ))[..8]);
    let rootfs = sys.dir.join("system.erofs");
    let esp = bays.join(format!("{tag}-esp.fat"));
    cached_part(&esp, |tmp| {
        fs::fat_from_dir(
            &sys.dir.join("esp"),
            tmp,
            "FV-ESP",
            seed.u32("fs/esp"),
            sizes.esp,
            opts.epoch,
            true,
        )
        .map_err(BuildError::from)
    })?;

    std::fs::create_dir_all(out).map_err(io(out))?;
    let stem = stem(n, multi_chassis);
    // Config partition: node.toml and what the first boot needs.
    let cfg_dir = out.join(format!(".{stem}.config.tmp-{}", unique()));
    let _ = std::fs::remove_dir_all(&cfg_dir);
    let result = (|| {
        let mut c = Tree::new();
        c.data("node.toml", toml::to_string(n)?, false);
        c.data("bay", format!("{}\n", n.bay), false);
        c.data("hostname", format!("{}\n", n.hostname), false);
        for (name, body) in &files {
            c.data(&format!("services/{name}"), body.as_str(), false);
        }
        if let Some(text) = secrets {
            c.data("secrets.toml", text, false);
        }
        c.data(
            "image.toml",
            format!(
                "deployment = {:?}\nchassis = {:?}\nbay = {}\nhostname = {:?}\nrole = {:?}\nsystem = {:?}\nsource_date_epoch = {}\n",
                n.deployment,
                n.chassis,
                n.bay,
                n.hostname,
                n.role.as_str(),
                sys.dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                opts.epoch
            ),
            false,
        );
        let t2 = layout::table(sizes, &seed, "disk2");
        c.data("disk2-primary.gpt", t2.primary()?, false);
        c.data("disk2-backup.gpt", t2.backup()?, false);
        c.data(
            "disk2.env",
            format!("BACKUP_LBA={}\n", t2.backup_offset() / 512),
            false,
        );
        c.write_dir(&cfg_dir)?;
        fs::pin_mtimes(&cfg_dir, opts.epoch)?;
        let cfg_img = cfg_dir.with_extension("fat");
        // FAT: written deterministically by mtools, readable everywhere.
        // The last MiB stays free for the md 1.0 superblock.
        fs::fat_from_dir(
            &cfg_dir,
            &cfg_img,
            "FV-CONFIG",
            seed.u32("fs/config"),
            sizes.config - MIB,
            opts.epoch,
            false,
        )?;

        // The files beside the image first: the image appears last.
        let kernel = copy_out(
            &sys.dir.join("vmlinuz"),
            out.join(format!("{stem}.vmlinuz")),
        )?;
        let initrd = copy_out(&sys.dir.join("initrd"), out.join(format!("{stem}.initrd")))?;
        let side = Pending::new(out.join(format!("{stem}.node.toml")));
        std::fs::write(&side.tmp, toml::to_string(n)?).map_err(io(&side.tmp))?;
        side.commit()?;
        let cmd = Pending::new(out.join(format!("{stem}.cmdline")));
        std::fs::write(&cmd.tmp, format!("{CMDLINE}\n")).map_err(io(&cmd.tmp))?;
        cmd.commit()?;
        let table = layout::table(sizes, &seed, "disk1");
        let total = table.total_sectors * 512;
        let at = |name: &str| {
            table
                .partitions
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.offset())
                .unwrap_or(0)
        };
        let dest = out.join(format!("{stem}.img"));
        let stamp_file = stamp_path(&dest);
        let base = base_key(sys, sizes, &seed, opts.epoch);
        // Configuration-only: the image there was built from the same
        // system, layout and bay and is untouched since, so everything but
        // the config partition already has the bytes a full build writes.
        let config_only = std::fs::metadata(&dest).is_ok_and(|m| m.len() == total)
            && stamp(&base, &dest)
                .is_some_and(|s| std::fs::read_to_string(&stamp_file).is_ok_and(|old| old == s));
        let image = if config_only {
            patch_config(
                &dest,
                &stamp_file,
                &cfg_img,
                at(layout::CONFIG),
                sizes.config,
            )?
        } else {
            let img = Pending::new(dest.clone());
            let mut f = std::fs::File::create(&img.tmp).map_err(io(&img.tmp))?;
            f.set_len(total).map_err(io(&img.tmp))?;
            write_at(&mut f, &img.tmp, 0, &table.primary()?)?;
            write_at(&mut f, &img.tmp, table.backup_offset(), &table.backup()?)?;
            splice(&mut f, &img.tmp, &esp, at(layout::ESP))?;
            splice(&mut f, &img.tmp, &rootfs, at(layout::SYSTEM_A))?;
            splice(&mut f, &img.tmp, &cfg_img, at(layout::CONFIG))?;
            // No fsync: a build output, and 14 of them must rebuild in seconds.
            drop(f);
            img.commit()?
        };
        let _ = std::fs::remove_file(&cfg_img);
        if let Some(s) = stamp(&base, &image) {
            let st = Pending::new(stamp_file.clone());
            std::fs::write(&st.tmp, s).map_err(io(&st.tmp))?;
            st.commit()?;
        }
        Ok::<_, BuildError>(Built {
            chassis: n.chassis.clone(),
            bay: n.bay,
            hostname: n.hostname.clone(),
            role: n.role.as_str().to_owned(),
            image,
            kernel,
            initrd,
            size: total,
            system_cached: sys.cached,
            config_only,
            seconds: start.elapsed().as_secs_f64(),
            warnings,
        })
    })();
    let _ = std::fs::remove_dir_all(&cfg_dir);
    result
}

/// Build the images of `sel` from the profile at `profile` into `out`.
pub fn build(
    profile: &Path,
    sel: &Selection,
    chassis_name: Option<&str>,
    out: &Path,
    opts: &Options,
    say: Progress,
) -> Result<Vec<Built>, BuildError> {
    let loaded = chassis::load_file(profile)?;
    let p = &loaded.profile;
    let multi = p.chassis.len() > 1;
    let nodes: Vec<NodeConfig> = match sel {
        Selection::Bay(b) => {
            vec![
                node::resolve(p, *b, chassis_name).map_err(|source| BuildError::Bay {
                    profile: profile.to_owned(),
                    source,
                })?,
            ]
        }
        Selection::All => {
            if let Some(c) = chassis_name {
                if !p.chassis.iter().any(|x| x.name == c) {
                    return Err(BuildError::Bay {
                        profile: profile.to_owned(),
                        source: node::ResolveError::NoSuchChassis(c.to_owned()),
                    });
                }
            }
            node::bays(p)
                .into_iter()
                .filter(|(c, _)| chassis_name.is_none_or(|n| n == *c))
                .map(|(c, b)| {
                    node::resolve(p, b, Some(c)).map_err(|source| BuildError::Bay {
                        profile: profile.to_owned(),
                        source,
                    })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let total = nodes.len();
    let secrets = secrets(opts)?;
    // Everything every node needs is checked before anything is built.
    if !opts.flexvisor.is_file() {
        return Err(BuildError::NoFlexvisor(opts.flexvisor.clone()));
    }
    for n in &nodes {
        binaries(opts, n, &services::needs(n)?)?;
        let files = services::node_files(n, &services::Site::of(p, n));
        check_secrets(n, &files, secrets.as_deref(), opts)?;
    }
    let mut built = Vec::with_capacity(total);
    let mut systems: BTreeMap<RoleKind, System> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        say(&format!(
            "{} [{}/{total}] {} bay {:02} {} ({})",
            bar(i, total),
            i + 1,
            n.chassis,
            n.bay,
            n.hostname,
            n.role.as_str()
        ));
        let start = Instant::now();
        // One system per role and run: its key hashes every binary.
        let sys = match systems.get(&n.role) {
            Some(s) => s,
            None => {
                let s = system(opts, n, say)?;
                systems.entry(n.role).or_insert(s)
            }
        };
        let site = services::Site::of(p, n);
        built.push(assemble(
            n,
            &site,
            sys,
            secrets.as_deref(),
            multi,
            out,
            opts,
            start,
        )?);
    }
    Ok(built)
}

/// `[#####.....]`: `done` of `total` steps.
fn bar(done: usize, total: usize) -> String {
    let width = 20;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// The summary table printed after a build.
pub fn summary(built: &[Built]) -> String {
    let mut s = format!(
        "{:<10} {:>3}  {:<10} {:<6} {:>9}  {:<7} {}\n",
        "CHASSIS", "BAY", "HOSTNAME", "ROLE", "SIZE", "SYSTEM", "IMAGE"
    );
    for b in built {
        s.push_str(&format!(
            "{:<10} {:>3}  {:<10} {:<6} {:>6} MiB  {:<7} {}\n",
            b.chassis,
            b.bay,
            b.hostname,
            b.role,
            b.size / MIB,
            if b.config_only {
                "kept"
            } else if b.system_cached {
                "cached"
            } else {
                "built"
            },
            b.image.display()
        ));
    }
    for b in built {
        for w in &b.warnings {
            s.push_str(&format!("warning: bay {} ({}): {w}\n", b.bay, b.hostname));
        }
    }
    s
}
