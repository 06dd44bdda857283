//! The field procedure after a node disk was hot-swapped: partition the
//! replacement like the surviving disk, add its partitions to the degraded
//! md RAID-1 mirrors (md0 config, md1 data; see `image/data/init.sh`), and
//! follow the rebuild until every array is clean.
//!
//! - [`probe`]: what is on a disk (partition table, md superblock,
//!   filesystem), from its first and last bytes; pure.
//! - [`plan`]: which arrays are degraded, which disk survives, whether a
//!   candidate disk may be used and why not, the new disk's partition
//!   table; pure, from a [`flexvisor_health::raid::RaidSnapshot`] (the
//!   health monitor's own `/proc/mdstat` + sysfs reader) and [`plan::Disk`]
//!   facts.
//! - [`progress`]: the rebuild as the operator sees it, from snapshots.
//! - [`system`]: the reads and writes on a live node (sysfs, the block
//!   devices, `mdadm`); the only module doing I/O.
//!
//! The command line is `flexctl raid replace` (flexctl only dispatches).

pub mod plan;
pub mod probe;
pub mod progress;
pub mod system;

#[cfg(test)]
mod tests;
