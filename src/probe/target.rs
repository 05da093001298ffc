//! One fully resolved target: what the agent probes, how, and under which labels.
//! A target whose spec is unchanged across a reload keeps all its state.

use std::net::SocketAddr;
use std::time::Duration;

/// What a probe is and what a correct answer looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// STAMP test packets (RFC 8762/8972): RTT, one-way delays, loss by direction.
    Stamp,
    /// A numbered payload answered uppercased (`shout server`).
    Upper,
    /// A numbered payload answered unchanged (`shout server --mode echo`, any echo service).
    Echo,
}

/// One target, fully resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetSpec {
    /// The `target` label: the address as the user wrote it.
    pub name: String,
    /// The resolved address probes go to.
    pub addr: SocketAddr,
    /// The kind of probe.
    pub protocol: Protocol,
    /// Time between two probes.
    pub interval: Duration,
    /// How long a probe waits for its answer before it counts as lost.
    pub timeout: Duration,
    /// Bytes of UDP payload per probe.
    pub size: usize,
    /// DSCP (0..=63) the probes are marked with.
    pub dscp: Option<u8>,
    /// TTL or hop limit the probes leave with.
    pub ttl: Option<u8>,
    /// STAMP session identifier.
    pub ssid: u16,
    /// STAMP HMAC key: authenticated mode.
    pub key: Option<Vec<u8>>,
    /// Extra Prometheus labels, sorted by name.
    pub labels: Vec<(String, String)>,
}
