//! The replacement on a live node: gather the facts for [`crate::plan`]
//! from sysfs, `/proc` and the disks, then carry the plan out (partition
//! table, raw copy of the boot partitions, `mdadm --add`) and follow the
//! rebuild. Paths are taken under a root (`/` on a node) so the reads can
//! be pointed elsewhere; device nodes are `ROOT/dev/NAME`.

use crate::plan::{self, Degraded, Disk, PlanError, SurvivorMember};
use crate::probe::{self, PROBE_BYTES};
use crate::progress::{self, ArrayProgress};
use flexvisor_health::raid::{self, RaidError, RaidSnapshot};
use flexvisor_image::gpt::{self, Table};
use flexvisor_image::ids::Uuid;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Errors of the replacement.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// The plan says no (refused disk, nothing degraded...).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// md state unreadable.
    #[error(transparent)]
    Raid(#[from] RaidError),
    /// A file or device.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The survivor's table unreadable.
    #[error("{path}: {source}")]
    Gpt {
        /// Device.
        path: PathBuf,
        /// Cause.
        #[source]
        source: gpt::GptError,
    },
    /// mdadm failed.
    #[error("`mdadm {args}` failed: {stderr}")]
    Mdadm {
        /// Arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// The kernel did not show the new partitions.
    #[error(
        "the kernel shows no partition {number} on /dev/{disk} {secs} s after re-reading its table"
    )]
    PartitionMissing {
        /// Disk.
        disk: String,
        /// Partition number.
        number: u32,
        /// Waited.
        secs: u64,
    },
    /// The rebuild failed.
    #[error("rebuild failed: {0}")]
    RebuildFailed(String),
    /// `--timeout` ran out.
    #[error("rebuild not finished after {secs} s: {state}")]
    Timeout {
        /// Waited.
        secs: u64,
        /// Last state.
        state: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReplaceError + '_ {
    move |source| ReplaceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/` on a node.
    pub root: PathBuf,
    /// The replacement (`vdb`, `/dev/sdb`); `None`: the single blank disk.
    pub device: Option<String>,
    /// Overwrite existing partitions / signatures on the named disk.
    pub force: bool,
    /// Only these arrays (empty: every degraded array).
    pub arrays: Vec<String>,
}

impl Options {
    /// Defaults for a node: root `/`, every array, no device, no force.
    pub fn new() -> Options {
        Options {
            root: PathBuf::from("/"),
            device: None,
            force: false,
            arrays: Vec::new(),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// The decided replacement, before anything is written.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    /// Surviving disk.
    pub survivor: String,
    /// The new disk.
    pub disk: String,
    /// Arrays to complete.
    pub degraded: Vec<Degraded>,
    /// The survivor's member per array.
    pub members: Vec<SurvivorMember>,
    #[serde(skip)]
    survivor_table: Table,
    #[serde(skip)]
    table: Table,
    #[serde(skip)]
    force: bool,
    #[serde(skip)]
    root: PathBuf,
}

/// One step done, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// Array.
    pub array: String,
    /// New member.
    pub partition: String,
}

/// A raw partition copy.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    /// GPT name (`fv-esp`).
    pub name: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// Bytes.
    pub bytes: u64,
}

/// What was done.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Surviving disk.
    pub survivor: String,
    /// New disk.
    pub disk: String,
    /// Non-RAID partitions copied (ESP, system slots): the new disk boots.
    pub copied: Vec<Copied>,
    /// New members.
    pub added: Vec<Added>,
    /// State per array at the end.
    pub arrays: Vec<(String, ArrayProgress)>,
    /// All clean.
    pub clean: bool,
    /// Seconds from the first `mdadm --add` to clean (with --wait).
    pub rebuild_secs: Option<f64>,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// The disk and partition number of partition `part` (sysfs).
pub fn parent(root: &Path, part: &str) -> Option<(String, u32)> {
    let link = root.join("sys/class/block").join(part);
    let number = read_trim(&link.join("partition"))?.parse().ok()?;
    let real = std::fs::canonicalize(&link).ok()?;
    let disk = real.parent()?.file_name()?.to_str()?.to_string();
    Some((disk, number))
}

fn partitions_of(root: &Path, disk: &str) -> Vec<(String, u32)> {
    let dir = root.join("sys/block").join(disk);
    dir_names(&dir)
        .into_iter()
        .filter(|n| n.starts_with(disk))
        .filter_map(|n| {
            let num = read_trim(&dir.join(&n).join("partition"))?.parse().ok()?;
            Some((n, num))
        })
        .collect()
}

/// First and last [`PROBE_BYTES`] of a device.
fn ends(path: &Path, size: u64) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut f = File::open(path)?;
    let n = (PROBE_BYTES as u64).min(size) as usize;
    let mut head = vec![0u8; n];
    f.read_exact(&mut head)?;
    let mut tail = vec![0u8; n];
    f.seek(SeekFrom::Start(size - n as u64))?;
    f.read_exact(&mut tail)?;
    Ok((head, tail))
}

/// Every whole block device under `ROOT/sys/block`, with the facts
/// [`plan::refusal`] looks at. Devices whose ends cannot be read (empty
/// card readers) are listed as not blank.
pub fn disks(root: &Path) -> Result<Vec<Disk>, ReplaceError> {
    let block = root.join("sys/block");
    let mounts = std::fs::read_to_string(root.join("proc/self/mounts")).unwrap_or_default();
    let mounted_devs: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|d| d.strip_prefix("/dev/"))
        .collect();
    let mut out = Vec::new();
    for name in dir_names(&block) {
        let d = block.join(&name);
        let sectors: u64 = read_trim(&d.join("size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let partitions: Vec<String> = partitions_of(root, &name)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut holders: Vec<String> = dir_names(&d.join("holders"));
        for p in &partitions {
            holders.extend(dir_names(&d.join(p).join("holders")));
        }
        let mounted = std::iter::once(&name)
            .chain(&partitions)
            .any(|n| mounted_devs.contains(&n.as_str()));
        let dev = root.join("dev").join(&name);
        let size = sectors * gpt::SECTOR;
        let signatures = if sectors == 0 {
            Vec::new()
        } else {
            match ends(&dev, size) {
                Ok((h, t)) => probe::signatures(&h, &t, size),
                Err(_) => vec![probe::Signature::Data { offset: 0 }],
            }
        };
        out.push(Disk {
            name: name.clone(),
            sectors,
            removable: read_trim(&d.join("removable")).as_deref() == Some("1"),
            read_only: read_trim(&d.join("ro")).as_deref() == Some("1"),
            partitions,
            holders,
            mounted,
            signatures,
        });
    }
    Ok(out)
}

fn read_table(dev: &Path, sectors: u64) -> Result<Table, ReplaceError> {
    let mut f = File::open(dev).map_err(io(dev))?;
    let mut primary = vec![0u8; Table::PRIMARY_BYTES];
    f.read_exact(&mut primary).map_err(io(dev))?;
    Table::parse(&primary, sectors).map_err(|source| ReplaceError::Gpt {
        path: dev.to_owned(),
        source,
    })
}

/// A random (version 4) UUID from the kernel's generator.
fn random_uuid() -> Uuid {
    let mut b = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No urandom (never on a node): time and pid still make the GUIDs
        // differ from the survivor's, which is what matters here.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid(b)
}

/// Decide: the degraded arrays, the survivor, the new disk and its table.
/// Nothing is written to any disk; the only change is md's: members whose
/// device is gone are failed and removed (sysfs `md/dev-*/state`), which
/// md would do itself at the array's next write.
pub fn prepare(opts: &Options) -> Result<Prepared, ReplaceError> {
    let root = opts.root.as_path();
    let mut snap = raid::read_snapshot(root)?;
    // A pulled disk's partition in an array without I/O since (md0, the
    // config, is rarely written) still counts as working: fail and remove
    // it first, so the array shows what it is, degraded.
    let gone = plan::detached(&snap, &|d| root.join("sys/class/block").join(d).exists());
    let gone: Vec<&(String, String)> = gone
        .iter()
        .filter(|(a, _)| opts.arrays.is_empty() || opts.arrays.contains(a))
        .collect();
    if !gone.is_empty() {
        // md's own interface (Documentation/admin-guide/md.rst, md/dev-*/
        // state): `faulty` fails the member, `remove` unbinds it once the
        // personality has let go of it (asynchronously: retried).
        // `mdadm --fail detached` did nothing here on the node (it decides
        // "detached" by opening the device number, which still opened).
        let states: Vec<PathBuf> = gone
            .iter()
            .map(|(a, m)| {
                root.join("sys/block")
                    .join(a)
                    .join("md")
                    .join(format!("dev-{m}"))
                    .join("state")
            })
            .collect();
        for st in &states {
            std::fs::write(st, "faulty").map_err(io(st))?;
        }
        for st in &states {
            for _ in 0..50 {
                if !st.exists() || std::fs::write(st, "remove").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        snap = raid::read_snapshot(root)?;
    }
    let degraded = plan::degraded(&snap, &opts.arrays);
    if degraded.is_empty() {
        return Err(PlanError::NothingDegraded(opts.arrays.clone()).into());
    }
    let (survivor, members) = plan::survivor(&degraded, &|p| parent(root, p))?;
    let all = disks(root)?;
    let surv = all
        .iter()
        .find(|d| d.name == survivor)
        .ok_or_else(|| PlanError::UnknownMember(survivor.clone()))?;
    let survivor_table = read_table(&root.join("dev").join(&survivor), surv.sectors)?;
    let need = plan::need_sectors(&survivor_table);
    let disk = plan::choose(&all, &survivor, opts.device.as_deref(), need, opts.force)?;
    let table = plan::new_table(&survivor, &survivor_table, disk.sectors, &mut random_uuid)?;
    Ok(Prepared {
        survivor,
        disk: disk.name.clone(),
        degraded,
        members,
        survivor_table,
        table,
        force: opts.force,
        root: opts.root.clone(),
    })
}

fn ioctl_rereadpt(dev: &Path) -> Result<(), ReplaceError> {
    use std::os::fd::AsRawFd;
    let f = File::open(dev).map_err(io(dev))?;
    // BLKRRPART = _IO(0x12, 95) (include/uapi/linux/fs.h).
    const BLKRRPART: libc::c_ulong = 0x125f;
    // SAFETY: BLKRRPART takes no argument; the fd is open for the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKRRPART as _, 0) };
    if rc != 0 {
        return Err(io(dev)(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn mdadm(args: &[&str]) -> Result<String, ReplaceError> {
    let bin = if Path::new("/sbin/mdadm").exists() {
        "/sbin/mdadm"
    } else {
        "mdadm"
    };
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| ReplaceError::Mdadm {
            args: args.join(" "),
            stderr: format!("cannot run {bin}: {e}"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ReplaceError::Mdadm {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Carry the plan out: [`partition`], then [`add`]. `say` gets a line per
/// step.
pub fn execute(p: &Prepared, say: &mut dyn FnMut(&str)) -> Result<Report, ReplaceError> {
    let done = partition(p, say)?;
    add(p, done, say)
}

/// The new disk partitioned and its boot partitions copied.
#[derive(Debug, Clone, Serialize)]
pub struct Partitioned {
    /// Raw copies made.
    pub copied: Vec<Copied>,
}

/// Write the new table, copy the non-RAID partitions (ESP, system slots)
/// so the new disk boots too, and have the kernel re-read the table (for
/// block devices; an image file has no kernel partitions). The copies go
/// disk to disk at the table's offsets, which are the same on both.
pub fn partition(p: &Prepared, say: &mut dyn FnMut(&str)) -> Result<Partitioned, ReplaceError> {
    let root = p.root.as_path();
    let dev = root.join("dev").join(&p.disk);
    let from = root.join("dev").join(&p.survivor);
    say(&format!(
        "partitioning /dev/{} like /dev/{} ({} partitions)",
        p.disk,
        p.survivor,
        p.table.partitions.len()
    ));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .map_err(io(&dev))?;
    let gpt_err = |source| ReplaceError::Gpt {
        path: dev.clone(),
        source,
    };
    let backup = p.table.backup().map_err(gpt_err)?;
    let gpt_err = |source| ReplaceError::Gpt {
        path: dev.clone(),
        source,
    };
    let primary = p.table.primary().map_err(gpt_err)?;
    // Backup first: a table with a valid primary never points at garbage.
    f.seek(SeekFrom::Start(p.table.backup_offset()))
        .map_err(io(&dev))?;
    f.write_all(&backup).map_err(io(&dev))?;
    f.seek(SeekFrom::Start(0)).map_err(io(&dev))?;
    f.write_all(&primary).map_err(io(&dev))?;
    let mut src = File::open(&from).map_err(io(&from))?;
    let raid_type = Uuid::parse(gpt::types::LINUX_RAID);
    let mut copied = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for part in &p.survivor_table.partitions {
        if Some(part.type_guid) == raid_type {
            continue;
        }
        say(&format!(
            "copying {} ({} MiB) from /dev/{} to /dev/{}",
            part.name,
            part.size() >> 20,
            p.survivor,
            p.disk
        ));
        src.seek(SeekFrom::Start(part.offset()))
            .map_err(io(&from))?;
        f.seek(SeekFrom::Start(part.offset())).map_err(io(&dev))?;
        let mut left = part.size();
        while left > 0 {
            let n = (buf.len() as u64).min(left) as usize;
            src.read_exact(&mut buf[..n]).map_err(io(&from))?;
            f.write_all(&buf[..n]).map_err(io(&dev))?;
            left -= n as u64;
        }
        copied.push(Copied {
            name: part.name.clone(),
            from: p.survivor.clone(),
            to: p.disk.clone(),
            bytes: part.size(),
        });
    }
    f.sync_all().map_err(io(&dev))?;
    drop(f);
    let is_block = std::fs::metadata(&dev)
        .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
        .unwrap_or(false);
    if is_block {
        ioctl_rereadpt(&dev)?;
    }
    Ok(Partitioned { copied })
}

/// Wait (up to `wait`) until the kernel shows partitions `numbers` of
/// `disk` in sysfs; their kernel names by number.
fn wait_partitions(
    root: &Path,
    disk: &str,
    numbers: &[u32],
    wait: Duration,
) -> Result<Vec<(String, u32)>, ReplaceError> {
    let t0 = Instant::now();
    loop {
        let parts = partitions_of(root, disk);
        let missing = numbers.iter().find(|n| !parts.iter().any(|(_, x)| x == *n));
        match missing {
            None => return Ok(parts),
            Some(n) if t0.elapsed() > wait => {
                return Err(ReplaceError::PartitionMissing {
                    disk: disk.to_string(),
                    number: *n,
                    secs: wait.as_secs(),
                })
            }
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Once the kernel shows the new partitions: remove each degraded array's
/// faulty members and `mdadm --add` the new disk's partition of the same
/// number as the survivor's member.
pub fn add(
    p: &Prepared,
    done: Partitioned,
    say: &mut dyn FnMut(&str),
) -> Result<Report, ReplaceError> {
    let root = p.root.as_path();
    let numbers: Vec<u32> = p.members.iter().map(|m| m.number).collect();
    let new_parts = wait_partitions(root, &p.disk, &numbers, Duration::from_secs(10))?;
    let mut added = Vec::new();
    for m in &p.members {
        let Some(part) = new_parts
            .iter()
            .find(|(_, x)| *x == m.number)
            .map(|(name, _)| name.clone())
        else {
            return Err(ReplaceError::PartitionMissing {
                disk: p.disk.clone(),
                number: m.number,
                secs: 0,
            });
        };
        let md = root.join("dev").join(&m.array).display().to_string();
        let new = root.join("dev").join(&part).display().to_string();
        if p.force {
            // A leftover superblock from another array would make mdadm
            // re-add it as that array's member; none is expected.
            let _ = mdadm(&["--zero-superblock", &new]);
        }
        // Members of the pulled disk still listed as faulty (or detached)
        // would keep the array's health CRITICAL after the rebuild.
        for what in ["failed", "detached"] {
            let _ = mdadm(&[&md, "--remove", what]);
        }
        mdadm(&[&md, "--add", &new])?;
        say(&format!("added /dev/{part} to {}", m.array));
        added.push(Added {
            array: m.array.clone(),
            partition: part,
        });
    }
    let arrays = states(root, &p.members)?;
    Ok(Report {
        survivor: p.survivor.clone(),
        disk: p.disk.clone(),
        copied: done.copied,
        added,
        clean: progress::all_clean(&arrays),
        arrays,
        rebuild_secs: None,
    })
}

fn states(
    root: &Path,
    members: &[SurvivorMember],
) -> Result<Vec<(String, ArrayProgress)>, ReplaceError> {
    let snap: RaidSnapshot = raid::read_snapshot(root)?;
    Ok(members
        .iter()
        .map(|m| (m.array.clone(), progress::of(&snap, &m.array, &[])))
        .collect())
}

/// Follow the rebuild of the report's arrays until all are clean (polling
/// `/proc/mdstat` and sysfs every `poll`); `say` gets a line whenever the
/// state changes by a whole percent. Fails when a member turns faulty, an
/// array disappears, or `timeout` runs out.
pub fn wait(
    root: &Path,
    report: &mut Report,
    poll: Duration,
    timeout: Option<Duration>,
    say: &mut dyn FnMut(&str),
) -> Result<(), ReplaceError> {
    let t0 = Instant::now();
    let members: Vec<SurvivorMember> = report
        .added
        .iter()
        .map(|a| SurvivorMember {
            array: a.array.clone(),
            partition: a.partition.clone(),
            number: 0,
        })
        .collect();
    let mut last = String::new();
    loop {
        let now = states(root, &members)?;
        // Print whole percents only: the line changes a few hundred times.
        let coarse: Vec<(String, ArrayProgress)> = now
            .iter()
            .map(|(a, s)| {
                let s = match s {
                    ArrayProgress::Rebuilding { per_mille, .. } => ArrayProgress::Rebuilding {
                        per_mille: per_mille.map(|p| p / 10 * 10),
                        finish_secs: None,
                    },
                    other => other.clone(),
                };
                (a.clone(), s)
            })
            .collect();
        let line = progress::line(&coarse);
        if line != last {
            say(&progress::line(&now));
            last = line;
        }
        report.arrays = now.clone();
        if let Some(f) = progress::failure(&now) {
            return Err(ReplaceError::RebuildFailed(f));
        }
        if progress::all_clean(&now) {
            report.clean = true;
            report.rebuild_secs = Some(t0.elapsed().as_secs_f64());
            return Ok(());
        }
        if let Some(t) = timeout.filter(|t| t0.elapsed() > *t) {
            return Err(ReplaceError::Timeout {
                secs: t.as_secs(),
                state: progress::line(&now),
            });
        }
        std::thread::sleep(poll);
    }
}
