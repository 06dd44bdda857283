//! flexvisor node images: one bootable raw disk per chassis bay.
//!
//! - [`builder`]: the build itself (system parts cached per role, the bay's
//!   config partition, the image assembled and renamed into place).
//! - [`layout`]: partitions and their sizes; [`gpt`]: the table writer.
//! - [`stage`], [`cpio`], [`fs`]: what goes in, and the initramfs, ext4,
//!   FAT and UKI writers around the host tools.
//! - [`packages`]: the Debian package cache; [`kmod`]: module closure.
//! - [`services`]: service definitions per role, per-bay service configs.
//! - [`ids`]: identifiers derived from deployment, chassis and bay.
//! - [`bay`]: the bay as the node's BMC reports it (IPMI).
//! - [`slots`]: A/B system slots, try-once and rollback.
//! - [`qemu`]: booting an image under qemu (TCG) with a QMP socket.
//!
//! Design notes: `docs/image.md`.

pub mod bay;
pub mod builder;
pub mod cpio;
pub mod fs;
pub mod gpt;
pub mod ids;
pub mod kmod;
pub mod layout;
pub mod packages;
pub mod qemu;
pub mod services;
pub mod slots;
pub mod stage;

pub use builder::{build, summary, BuildError, Built, Options, Selection};
