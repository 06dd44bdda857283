//! Deciding the replacement, without touching anything: the degraded
//! arrays, the surviving disk, whether a candidate disk may be used (and
//! the operator-facing reason when not), and the new disk's partition
//! table. The I/O that gathers the facts and carries the plan out is in
//! [`crate::system`].

use crate::probe::Signature;
use flexvisor_health::raid::RaidSnapshot;
use flexvisor_image::gpt::Table;
use flexvisor_image::ids::Uuid;
use serde::Serialize;

/// A whole block device as sysfs and a probe of its ends describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Kernel name (`vdb`, `sdb`, `loop3`).
    pub name: String,
    /// Size in 512-byte sectors (sysfs `size`).
    pub sectors: u64,
    /// sysfs `removable` (USB sticks, card readers).
    pub removable: bool,
    /// sysfs `ro`.
    pub read_only: bool,
    /// Partitions the kernel knows on it (`vdb1`...).
    pub partitions: Vec<String>,
    /// Devices stacked on it or its partitions (md arrays, dm), from
    /// sysfs `holders`.
    pub holders: Vec<String>,
    /// It or a partition of it appears in `/proc/self/mounts`.
    pub mounted: bool,
    /// What [`crate::probe::signatures`] found on it.
    pub signatures: Vec<Signature>,
}

/// A degraded array and what the replacement has to do for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degraded {
    /// `md0`.
    pub array: String,
    /// Members in sync (on the surviving disk).
    pub in_sync: Vec<String>,
    /// Faulty members still listed (the pulled disk's partitions): removed
    /// from the array before the new partition is added.
    pub faulty: Vec<String>,
}

/// One array's member on the surviving disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurvivorMember {
    /// `md1`.
    pub array: String,
    /// Partition device (`vda5`).
    pub partition: String,
    /// Partition number on the disk (sysfs `partition`), 1-based: the
    /// replacement's partition with the same number joins the array.
    pub number: u32,
}

/// Why the replacement cannot go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Nothing to replace.
    #[error("no degraded md array{}: every mirror has all its members", only_note(.0))]
    NothingDegraded(Vec<String>),
    /// An array has no in-sync member left: the data is gone, not a disk swap.
    #[error("{0} has no member in sync left: this is not a single-disk failure, restore the node instead")]
    NoSurvivor(String),
    /// The in-sync members sit on more than one disk.
    #[error("the in-sync members of the degraded arrays sit on several disks ({0}): cannot tell which disk survived")]
    SurvivorAmbiguous(String),
    /// A member's disk could not be found in sysfs.
    #[error("cannot find the disk holding {0} (sysfs /sys/class/block/{0})")]
    UnknownMember(String),
    /// The candidate disk is refused.
    #[error("refusing /dev/{disk}: {reason}")]
    Refused {
        /// The disk.
        disk: String,
        /// Why.
        reason: Refusal,
    },
    /// No disk given and no blank disk of sufficient size found.
    #[error("no blank disk of at least {need_mib} MiB to use as the replacement{}", considered_note(.considered))]
    NoCandidate {
        /// MiB the survivor's partitions need.
        need_mib: u64,
        /// Other disks and why each was not taken.
        considered: Vec<(String, Refusal)>,
    },
    /// No disk given and several blank disks fit.
    #[error("several blank disks could be the replacement ({0}): name one")]
    Ambiguous(String),
    /// The survivor's partition table cannot be copied.
    #[error("the partition table of /dev/{disk} cannot be laid onto the new disk: {reason}")]
    Table {
        /// The survivor.
        disk: String,
        /// Why.
        reason: String,
    },
}

fn only_note(only: &[String]) -> String {
    if only.is_empty() {
        String::new()
    } else {
        format!(" among {}", only.join(", "))
    }
}

fn considered_note(c: &[(String, Refusal)]) -> String {
    if c.is_empty() {
        " (no other disk present: is the new disk inserted?)".to_string()
    } else {
        let v: Vec<String> = c.iter().map(|(d, r)| format!("/dev/{d}: {r}")).collect();
        format!(" ({})", v.join("; "))
    }
}

/// Why a disk may not become the replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Refusal {
    /// No such block device.
    #[error("no such disk")]
    NotFound,
    /// The disk still in the mirrors.
    #[error("it is the surviving disk of the mirrors")]
    Survivor,
    /// A partition, not a whole disk.
    #[error("it is a partition, not a whole disk")]
    Partition,
    /// Smaller than the survivor's partitions.
    #[error("too small: {have_mib} MiB, the partitions of the surviving disk need {need_mib} MiB")]
    TooSmall {
        /// Its size.
        have_mib: u64,
        /// Needed.
        need_mib: u64,
    },
    /// Read-only.
    #[error("it is read-only")]
    ReadOnly,
    /// Mounted.
    #[error("it (or a partition of it) is mounted")]
    Mounted,
    /// In use by md/dm.
    #[error("it is in use by {holders}")]
    InUse {
        /// Holders.
        holders: String,
    },
    /// Removable media are not node disks.
    #[error("it is removable media")]
    Removable,
    /// Partitions exist (overridable with `--force`).
    #[error("it carries partitions ({partitions}); use --force to overwrite them")]
    HasPartitions {
        /// Partition names.
        partitions: String,
    },
    /// Not blank (overridable with `--force`).
    #[error("it carries {found}; use --force to overwrite it")]
    NotBlank {
        /// What was found.
        found: String,
    },
}

impl Refusal {
    /// Whether `--force` overrides it (existing content: yes; the
    /// survivor, size, being in use: never).
    pub fn forcible(&self) -> bool {
        matches!(
            self,
            Refusal::HasPartitions { .. } | Refusal::NotBlank { .. }
        )
    }
}

/// Arrays with fewer working members than slots and no incoming member
/// (recovering or spare) nor recovery queued, restricted to `only` when
/// not empty.
pub fn degraded(snapshot: &RaidSnapshot, only: &[String]) -> Vec<Degraded> {
    snapshot
        .arrays
        .iter()
        .filter(|a| only.is_empty() || only.contains(&a.name))
        .filter(|a| {
            let incoming = a.members.iter().filter(|m| !m.faulty && !m.in_sync).count();
            // A running or queued recovery means a member is on its way
            // (mdstat alone cannot tell a queued member from an in-sync one).
            a.running && a.missing as usize > incoming && a.sync.is_none()
        })
        .map(|a| Degraded {
            array: a.name.clone(),
            in_sync: a
                .members
                .iter()
                .filter(|m| m.in_sync && !m.faulty)
                .map(|m| m.device.clone())
                .collect(),
            faulty: a
                .members
                .iter()
                .filter(|m| m.faulty)
                .map(|m| m.device.clone())
                .collect(),
        })
        .collect()
}

/// Members (array, device) that md still lists as working but whose
/// device is gone (`exists` says no): a hot-pulled disk's partition in an
/// array that has not done I/O since, so md has not failed it yet.
pub fn detached(snapshot: &RaidSnapshot, exists: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
    snapshot
        .arrays
        .iter()
        .filter(|a| a.running)
        .flat_map(|a| {
            a.members
                .iter()
                .filter(|m| !m.faulty && !exists(&m.device))
                .map(|m| (a.name.clone(), m.device.clone()))
        })
        .collect()
}

/// The surviving disk and its member partition per degraded array.
/// `parent` maps a partition to (disk, partition number).
pub fn survivor(
    degraded: &[Degraded],
    parent: &dyn Fn(&str) -> Option<(String, u32)>,
) -> Result<(String, Vec<SurvivorMember>), PlanError> {
    let mut disks: Vec<String> = Vec::new();
    let mut members = Vec::new();
    for d in degraded {
        let first = d
            .in_sync
            .first()
            .ok_or_else(|| PlanError::NoSurvivor(d.array.clone()))?;
        for m in &d.in_sync {
            let (disk, _) = parent(m).ok_or_else(|| PlanError::UnknownMember(m.clone()))?;
            if !disks.contains(&disk) {
                disks.push(disk);
            }
        }
        let (_, number) = parent(first).ok_or_else(|| PlanError::UnknownMember(first.clone()))?;
        members.push(SurvivorMember {
            array: d.array.clone(),
            partition: first.clone(),
            number,
        });
    }
    match disks.as_slice() {
        [one] => Ok((one.clone(), members)),
        [] => Err(PlanError::NothingDegraded(Vec::new())),
        many => Err(PlanError::SurvivorAmbiguous(many.join(", "))),
    }
}

/// Sectors a disk needs to hold every partition of `t` where it is, plus
/// the backup table (32 sectors of entries and the header).
pub fn need_sectors(t: &Table) -> u64 {
    t.partitions
        .iter()
        .map(|p| p.last_lba + 1)
        .max()
        .unwrap_or(Table::first_usable())
        + 33
}

const MIB_SECTORS: u64 = 2048;

/// Why `disk` may not be the replacement, or `None` when it may. With
/// `force`, existing content is no reason.
pub fn refusal(disk: &Disk, survivor: &str, need: u64, force: bool) -> Option<Refusal> {
    let hard = if disk.name == survivor {
        Some(Refusal::Survivor)
    } else if disk.read_only {
        Some(Refusal::ReadOnly)
    } else if disk.removable {
        Some(Refusal::Removable)
    } else if disk.sectors < need {
        Some(Refusal::TooSmall {
            have_mib: disk.sectors / MIB_SECTORS,
            need_mib: need.div_ceil(MIB_SECTORS),
        })
    } else if disk.mounted {
        Some(Refusal::Mounted)
    } else if !disk.holders.is_empty() {
        Some(Refusal::InUse {
            holders: disk.holders.join(", "),
        })
    } else {
        None
    };
    if hard.is_some() || force {
        return hard;
    }
    if !disk.partitions.is_empty() {
        return Some(Refusal::HasPartitions {
            partitions: disk.partitions.join(", "),
        });
    }
    if !disk.signatures.is_empty() {
        let found: Vec<String> = disk.signatures.iter().map(|s| s.to_string()).collect();
        return Some(Refusal::NotBlank {
            found: found.join(", "),
        });
    }
    None
}

/// Kernel names that are never node disks.
fn virtual_device(name: &str) -> bool {
    ["loop", "ram", "md", "sr", "zram", "dm-", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The replacement: `requested` (a kernel name; `/dev/` stripped) if it
/// passes [`refusal`], else the single acceptable disk among `disks`.
pub fn choose<'a>(
    disks: &'a [Disk],
    survivor: &str,
    requested: Option<&str>,
    need: u64,
    force: bool,
) -> Result<&'a Disk, PlanError> {
    if let Some(name) = requested {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        let disk = disks.iter().find(|d| d.name == name).ok_or_else(|| {
            let partition = disks.iter().any(|d| d.partitions.iter().any(|p| p == name));
            PlanError::Refused {
                disk: name.to_string(),
                reason: if partition {
                    Refusal::Partition
                } else {
                    Refusal::NotFound
                },
            }
        })?;
        return match refusal(disk, survivor, need, force) {
            None => Ok(disk),
            Some(reason) => Err(PlanError::Refused {
                disk: disk.name.clone(),
                reason,
            }),
        };
    }
    let mut ok = Vec::new();
    let mut considered = Vec::new();
    for d in disks
        .iter()
        .filter(|d| d.name != survivor && !virtual_device(&d.name))
    {
        // Without a name, only a blank disk is taken: --force does not
        // make the choice for the operator.
        match refusal(d, survivor, need, false) {
            None => ok.push(d),
            Some(r) => considered.push((d.name.clone(), r)),
        }
    }
    match ok.as_slice() {
        [one] => Ok(one),
        [] => Err(PlanError::NoCandidate {
            need_mib: need.div_ceil(MIB_SECTORS),
            considered,
        }),
        many => Err(PlanError::Ambiguous(
            many.iter()
                .map(|d| format!("/dev/{}", d.name))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// The survivor's table laid onto a disk of `sectors`: every partition at
/// the same place with the same name and type (so each array's new member
/// has the survivor member's partition number and size), `fv-data` grown
/// to the disk's end as first boot does (`flexvisor_image::layout::grow`),
/// fresh GUIDs from `guid`.
pub fn new_table(
    survivor_disk: &str,
    survivor: &Table,
    sectors: u64,
    guid: &mut dyn FnMut() -> Uuid,
) -> Result<Table, PlanError> {
    let err = |reason: String| PlanError::Table {
        disk: survivor_disk.to_string(),
        reason,
    };
    if sectors < need_sectors(survivor) {
        return Err(err(format!(
            "the new disk has {sectors} sectors, the partitions need {}",
            need_sectors(survivor)
        )));
    }
    let mut t = match flexvisor_image::layout::grow(survivor, sectors) {
        Ok(t) => t,
        // Not the image's layout (fv-data not last): copy it as it is.
        Err(flexvisor_image::layout::GrowError::DataNotLast(_)) => {
            let mut t = survivor.clone();
            t.total_sectors = sectors;
            t
        }
        Err(e) => return Err(err(e.to_string())),
    };
    t.disk_guid = guid();
    for p in &mut t.partitions {
        p.guid = guid();
    }
    t.validate().map_err(|e| err(e.to_string()))?;
    Ok(t)
}
