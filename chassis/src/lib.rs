//! The chassis profile: the model of a flexvisor deployment, its validation
//! with located diagnostics, and the resolution of one node's configuration.
//!
//! - [`model`]: the profile file's shape (`chassis-profiles/*.toml`).
//! - [`load`]: reading a file, collecting syntax, unknown-key and semantic
//!   problems with `file:line:column`.
//! - [`validate`]: the semantic checks.
//! - [`diag`]: diagnostics and their rustc-style rendering.
//! - [`roles`]: the four node roles and their required services.
//! - [`node`]: [`node::NodeConfig`], what one node's image bakes in.
//! - [`inventory`]: the Ansible dynamic inventory.
//!
//! No I/O beyond reading the profile file.

pub mod diag;
pub mod inventory;
pub mod load;
pub mod model;
pub mod node;
pub mod roles;
pub mod secrets;
pub mod validate;

pub use load::{load_file, load_str, LoadError, Loaded, Rejected};
pub use node::NodeConfig;
pub use roles::RoleKind;
