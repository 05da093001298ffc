//! `shout probe`: the always-on agent that measures many targets into Prometheus,
//! on the same measurement core as `shout bench`.
//!
//! - [`target`]: one fully resolved target, the unit the agent schedules.
//! - [`config`]: the YAML file and the command line's addresses, checked, into targets.
//! - [`resolve`](mod@resolve): targets' host names to addresses, again and again; mesh self-skip.
//! - `schedule`: when each probe is due (phases spread over the interval, a heap of due times).
//! - `tally`: what is counted per target, in atomics the scrape reads while probing goes on.
//! - [`engine`]: [`Agent`]: the table of targets, reload, snapshots.
//! - `prober`: [`Agent::run`], the probing loop: batched sends and receives on a few
//!   sockets, kernel timestamps, matching each reply to its probe.
//! - `probing`: one target's recent probes and what each reply to it tells.
//! - `socks`: the probing thread's few sockets and what each routes.
//! - `export`: [`Agent::metrics_page`], the Prometheus text, written as the scrape reads it.
//! - `export_proto`: [`Agent::render_metrics_protobuf`], the same in Prometheus' protobuf
//!   exposition, with native histograms.
//! - `proto`: the protobuf `MetricFamily` messages, written by hand.
//! - [`output`]: the live table, JSON lines and the summary.

pub mod config;
pub mod engine;
mod export;
#[cfg(test)]
mod export_oracle;
mod export_proto;
pub mod output;
mod prober;
mod probing;
mod proto;
pub mod resolve;
mod schedule;
mod socks;
mod tally;
pub mod target;

pub use engine::{
    Agent, AgentConfig, Applied, TargetError, TargetSnapshot, DEFAULT_BUCKETS, MAX_TARGETS,
};
pub use export::MetricsPage;
pub use export_proto::{ProtobufPage, GROUP};
pub use target::{Protocol, TargetSpec};
