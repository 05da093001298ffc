//! `shout probe`: the always-on agent that measures many targets into Prometheus,
//! on the same measurement core as `shout bench`.
//!
//! - [`target`]: one fully resolved target, the unit the agent schedules.
//! - [`config`]: the YAML file and the command line's addresses, checked, into targets.
//! - [`resolve`](mod@resolve): targets' host names to addresses, again and again; mesh self-skip.

pub mod config;
pub mod resolve;
pub mod target;

pub use target::{Protocol, TargetSpec};
