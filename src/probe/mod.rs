//! `shout probe`: the always-on agent that measures many targets into Prometheus,
//! on the same measurement core as `shout bench`.
//!
//! - [`target`]: one fully resolved target, the unit the agent schedules.
//! - `schedule`: when each probe is due (phases spread over the interval, a heap of due times).
//! - `tally`: what is counted per target, in atomics the scrape reads while probing goes on.
//! - [`engine`]: [`Agent`]: the table of targets, reload, snapshots.
//! - `prober`: [`Agent::run`], the probing loop: batched sends and receives on a few
//!   sockets, kernel timestamps, matching each reply to its probe.
//! - `export`: [`Agent::render_metrics`], the Prometheus text.

pub mod engine;
mod export;
mod prober;
mod schedule;
mod tally;
pub mod target;

pub use engine::{
    Agent, AgentConfig, Applied, TargetError, TargetSnapshot, DEFAULT_BUCKETS, MAX_TARGETS,
};
pub use target::{Protocol, TargetSpec};
