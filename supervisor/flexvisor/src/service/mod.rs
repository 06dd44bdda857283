//! Services: the definition schema ([`spec`]) and the lifecycle state
//! machine with its restart policy ([`lifecycle`]). Processes are started
//! by [`crate::process`], supervised by [`crate::supervisor`].

pub mod lifecycle;
pub mod spec;

pub use lifecycle::{Action, Event, Exit, Lifecycle, Phase, Policy};
pub use spec::{Kind, Readiness, ServiceSpec};
