//! `shout probe`: the always-on agent that measures many targets into Prometheus,
//! on the same measurement core as `shout bench`.
//!
//! - [`target`]: one fully resolved target, the unit the agent schedules.

pub mod target;

pub use target::{Protocol, TargetSpec};
