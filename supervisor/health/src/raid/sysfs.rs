//! Reader of the md sysfs tree `/sys/block/md*/md/` (kernel
//! `Documentation/admin-guide/md.rst`, "md devices in sysfs").
//!
//! Everything is read under a configurable system root, so tests point it at
//! fixture trees and production at `/`. Parsing of each attribute is a pure
//! function; only [`read_arrays`] and [`read_array`] touch the file system.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Error reading the md sysfs tree.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path that failed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file held something this reader does not understand.
    #[error("{path}: unexpected content {content:?}: {reason}")]
    Parse {
        /// File that held it.
        path: PathBuf,
        /// What it held (trimmed).
        content: String,
        /// What was expected.
        reason: String,
    },
}

/// `md/array_state`, see md.rst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrayState {
    /// No devices, no size, no level.
    Clear,
    /// Not running, but has devices or configuration.
    Inactive,
    /// All IO blocked.
    Suspended,
    /// No resync and no writes.
    Readonly,
    /// Read-only until the first write.
    ReadAuto,
    /// No pending writes, in sync.
    Clean,
    /// Fully active.
    Active,
    /// Clean, but writes are blocked waiting for metadata update.
    WritePending,
    /// Active, no writes for a while.
    ActiveIdle,
    /// RAID0/linear lost a member (kernel >= 5.3).
    Broken,
    /// A word this reader does not know.
    Other(String),
}

impl ArrayState {
    /// Parse the attribute text.
    pub fn parse(s: &str) -> ArrayState {
        match s.trim() {
            "clear" => ArrayState::Clear,
            "inactive" => ArrayState::Inactive,
            "suspended" => ArrayState::Suspended,
            "readonly" => ArrayState::Readonly,
            "read-auto" => ArrayState::ReadAuto,
            "clean" => ArrayState::Clean,
            "active" => ArrayState::Active,
            "write-pending" => ArrayState::WritePending,
            "active-idle" => ArrayState::ActiveIdle,
            "broken" => ArrayState::Broken,
            other => ArrayState::Other(other.to_string()),
        }
    }

    /// The array does IO.
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            ArrayState::Readonly
                | ArrayState::ReadAuto
                | ArrayState::Clean
                | ArrayState::Active
                | ArrayState::WritePending
                | ArrayState::ActiveIdle
        )
    }
}

/// `md/sync_completed`: `none`, or `done / total` in sectors.
pub fn parse_sync_completed(s: &str) -> Result<Option<(u64, u64)>, String> {
    let s = s.trim();
    if s == "none" || s == "delayed" {
        return Ok(None);
    }
    let (done, total) = s
        .split_once('/')
        .ok_or_else(|| "expected `none` or `done / total`".to_string())?;
    let done = done
        .trim()
        .parse()
        .map_err(|_| "bad sector count".to_string())?;
    let total = total
        .trim()
        .parse()
        .map_err(|_| "bad sector count".to_string())?;
    Ok(Some((done, total)))
}

/// `md/dev-*/state`: comma-separated flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// `faulty`
    pub faulty: bool,
    /// `in_sync`
    pub in_sync: bool,
    /// `spare`
    pub spare: bool,
    /// `writemostly`
    pub write_mostly: bool,
    /// `blocked`
    pub blocked: bool,
    /// `write_error`
    pub write_error: bool,
    /// `want_replacement`
    pub want_replacement: bool,
    /// `replacement`
    pub replacement: bool,
    /// `journal`
    pub journal: bool,
    /// Flags this reader does not know.
    pub other: Vec<String>,
}

impl MemberState {
    /// Parse the attribute text.
    pub fn parse(s: &str) -> MemberState {
        let mut st = MemberState::default();
        for flag in s.trim().split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match flag {
                "faulty" => st.faulty = true,
                "in_sync" => st.in_sync = true,
                "spare" => st.spare = true,
                "writemostly" => st.write_mostly = true,
                "blocked" => st.blocked = true,
                "write_error" => st.write_error = true,
                "want_replacement" => st.want_replacement = true,
                "replacement" => st.replacement = true,
                "journal" => st.journal = true,
                other => st.other.push(other.to_string()),
            }
        }
        st
    }
}

/// One `md/dev-<name>` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysfsMember {
    /// Device name (after `dev-`).
    pub device: String,
    /// Parsed `state`.
    pub state: MemberState,
    /// `slot`: role number, `None` for `none` (spare or faulty).
    pub slot: Option<u32>,
    /// Its block device no longer exists (`sys/class/block/<device>`
    /// absent): the disk was hot-removed. md fails such a member only at
    /// its next I/O to it (udev's `mdadm -If` does it sooner on distros;
    /// a node has no udev), so until then `state` still says `in_sync`.
    #[serde(default)]
    pub gone: bool,
}

/// What sysfs says about one array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysfsArray {
    /// `md0`.
    pub name: String,
    /// `array_state`.
    pub array_state: ArrayState,
    /// `level` (`raid1`), empty for inactive arrays.
    pub level: String,
    /// `raid_disks`, if readable.
    pub raid_disks: Option<u32>,
    /// `degraded`: number of missing devices (absent for raid0/linear).
    pub degraded: Option<u32>,
    /// `sync_action` (`idle`, `resync`, `recover`, `check`, `repair`,
    /// `reshape`, `frozen`), absent for raid0/linear.
    pub sync_action: Option<String>,
    /// `sync_completed` in sectors.
    pub sync_completed: Option<(u64, u64)>,
    /// `mismatch_cnt` sectors found by the last check/repair.
    pub mismatch_cnt: Option<u64>,
    /// Members.
    pub members: Vec<SysfsMember>,
}

fn read_trimmed(path: &Path) -> Result<String, SysfsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysfsError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Read an attribute that some levels lack: `Ok(None)` when absent.
fn read_optional(path: &Path) -> Result<Option<String>, SysfsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // raid0 exposes some attributes that return EINVAL/EBUSY on read.
        Err(e)
            if e.raw_os_error().is_some() && e.kind() != std::io::ErrorKind::PermissionDenied =>
        {
            Ok(None)
        }
        Err(source) => Err(SysfsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_num<T: std::str::FromStr>(path: &Path, s: &str) -> Result<T, SysfsError> {
    s.parse().map_err(|_| SysfsError::Parse {
        path: path.to_path_buf(),
        content: s.to_string(),
        reason: "expected a decimal number".to_string(),
    })
}

/// The directory holding `md*` block devices under `root`.
pub fn block_dir(root: &Path) -> PathBuf {
    root.join("sys/block")
}

/// Read every `md*` array under `<root>/sys/block`, sorted by name.
/// Block devices without an `md/` directory are skipped.
pub fn read_arrays(root: &Path) -> Result<Vec<SysfsArray>, SysfsError> {
    let dir = block_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(source) => return Err(SysfsError::Io { path: dir, source }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SysfsError::Io {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("md") && dir.join(&name).join("md").is_dir() {
            names.push(name);
        }
    }
    names.sort();
    names.iter().map(|n| read_array(root, n)).collect()
}

/// Read one array `<root>/sys/block/<name>/md`.
pub fn read_array(root: &Path, name: &str) -> Result<SysfsArray, SysfsError> {
    let md = block_dir(root).join(name).join("md");
    let state_path = md.join("array_state");
    let array_state = ArrayState::parse(&read_trimmed(&state_path)?);
    let level = read_optional(&md.join("level"))?.unwrap_or_default();
    let raid_disks = match read_optional(&md.join("raid_disks"))? {
        Some(s) if !s.is_empty() => {
            // Reshape shows "4 (3)": new count then old.
            let first = s.split_whitespace().next().unwrap_or_default();
            Some(parse_num(&md.join("raid_disks"), first)?)
        }
        _ => None,
    };
    let degraded = match read_optional(&md.join("degraded"))? {
        Some(s) => Some(parse_num(&md.join("degraded"), &s)?),
        None => None,
    };
    let sync_action = read_optional(&md.join("sync_action"))?;
    let sync_completed = match read_optional(&md.join("sync_completed"))? {
        Some(s) => parse_sync_completed(&s).map_err(|reason| SysfsError::Parse {
            path: md.join("sync_completed"),
            content: s.clone(),
            reason,
        })?,
        None => None,
    };
    let mismatch_cnt = match read_optional(&md.join("mismatch_cnt"))? {
        Some(s) => Some(parse_num(&md.join("mismatch_cnt"), &s)?),
        None => None,
    };
    let mut members = Vec::new();
    let entries = std::fs::read_dir(&md).map_err(|source| SysfsError::Io {
        path: md.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SysfsError::Io {
            path: md.clone(),
            source,
        })?;
        let fname = entry.file_name().to_string_lossy().into_owned();
        let Some(device) = fname.strip_prefix("dev-") else {
            continue;
        };
        let dev_dir = md.join(&fname);
        let state = MemberState::parse(&read_trimmed(&dev_dir.join("state"))?);
        let slot = match read_optional(&dev_dir.join("slot"))? {
            Some(s) if s != "none" => Some(parse_num(&dev_dir.join("slot"), &s)?),
            _ => None,
        };
        // Fixture trees without `sys/class/block` say nothing about it.
        let class = root.join("sys/class/block");
        let gone = class.is_dir() && !class.join(device).exists();
        members.push(SysfsMember {
            device: device.to_string(),
            state,
            slot,
            gone,
        });
    }
    members.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(SysfsArray {
        name: name.to_string(),
        array_state,
        level,
        raid_disks,
        degraded,
        sync_action,
        sync_completed,
        mismatch_cnt,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    #[test]
    fn reads_a_degraded_recovering_array_from_a_fixture_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "sys/block/md0/md/array_state", "clean\n");
        write(root, "sys/block/md0/md/level", "raid1\n");
        write(root, "sys/block/md0/md/raid_disks", "2\n");
        write(root, "sys/block/md0/md/degraded", "1\n");
        write(root, "sys/block/md0/md/sync_action", "recover\n");
        write(
            root,
            "sys/block/md0/md/sync_completed",
            "178944 / 2093056\n",
        );
        write(root, "sys/block/md0/md/mismatch_cnt", "0\n");
        write(root, "sys/block/md0/md/dev-sda1/state", "in_sync\n");
        write(root, "sys/block/md0/md/dev-sda1/slot", "0\n");
        write(root, "sys/block/md0/md/dev-sdb1/state", "spare\n");
        write(root, "sys/block/md0/md/dev-sdb1/slot", "1\n");
        write(root, "sys/block/sda/size", "1\n");
        let arrays = read_arrays(root).expect("read");
        assert_eq!(arrays.len(), 1);
        let a = &arrays[0];
        assert_eq!(a.array_state, ArrayState::Clean);
        assert_eq!(a.degraded, Some(1));
        assert_eq!(a.sync_action.as_deref(), Some("recover"));
        assert_eq!(a.sync_completed, Some((178944, 2093056)));
        assert_eq!(a.members.len(), 2);
        assert!(a.members[0].state.in_sync);
        assert!(a.members[1].state.spare);
    }

    #[test]
    fn member_whose_disk_was_removed_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "sys/block/md0/md/array_state", "clean\n");
        write(root, "sys/block/md0/md/degraded", "0\n");
        write(root, "sys/block/md0/md/dev-vda4/state", "in_sync\n");
        write(root, "sys/block/md0/md/dev-vda4/slot", "0\n");
        write(root, "sys/block/md0/md/dev-vdb4/state", "in_sync\n");
        write(root, "sys/block/md0/md/dev-vdb4/slot", "1\n");
        write(root, "sys/class/block/vda4/partition", "4\n");
        let a = read_array(root, "md0").expect("read");
        let gone: Vec<(&str, bool)> = a
            .members
            .iter()
            .map(|m| (m.device.as_str(), m.gone))
            .collect();
        assert_eq!(gone, [("vda4", false), ("vdb4", true)]);
    }

    #[test]
    fn bad_number_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "sys/block/md9/md/array_state", "active\n");
        write(dir.path(), "sys/block/md9/md/degraded", "lots\n");
        let err = read_array(dir.path(), "md9").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("md9/md/degraded"), "{msg}");
        assert!(msg.contains("lots"), "{msg}");
    }

    #[test]
    fn member_state_flags() {
        let st = MemberState::parse("faulty,write_error,writemostly\n");
        assert!(st.faulty && st.write_error && st.write_mostly && !st.in_sync);
        assert_eq!(parse_sync_completed("none"), Ok(None));
        assert!(parse_sync_completed("12 of 14").is_err());
    }
}
