//! What to measure and how: [`BenchConfig`], [`Load`], and the limits a
//! configuration is checked against before anything is sent.
//!
//! Every stage reads the configuration; it reads nothing of theirs.

use std::net::SocketAddr;
use std::time::Duration;

use super::probe::{self, Format};
use super::stamp::StampFormat;
use crate::stamp::{Sender, SenderConfig};
use crate::sys::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use crate::Expect;

/// STAMP's well-known port (RFC 8762), for `--stamp ADDR` without a port.
pub const STAMP_PORT: u16 = 862;

/// The smallest probe: sequence number and send time, no filler.
pub const MIN_SIZE: usize = probe::HEADER_LEN;
/// Most probes a closed-loop flow keeps in flight.
pub const MAX_WINDOW: usize = 1 << 15;
/// Most flows in one run.
pub const MAX_FLOWS: usize = 1024;
/// Longest run (warmup plus duration): 30 days.
pub const MAX_RUN: Duration = Duration::from_secs(30 * 24 * 3600);
/// Highest open-loop rate, probes per second over all flows. Above it the
/// gap between probes rounds to nothing and the schedule never reaches the end.
pub const MAX_RATE: f64 = 1e8;
/// Lowest open-loop rate: one probe in 1000 s.
pub const MIN_RATE: f64 = 1e-3;
/// Longest probe timeout: an hour, the longest round trip the histograms hold.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

// The header's clock outlasts any run, and its sequence numbers would too at
// 100 million probes a second per flow.
const _: () = assert!(MAX_RUN.as_secs() * 1_000_000_000 < probe::MAX_TIME_NS);
const _: () = assert!(MAX_RUN.as_secs() * 100_000_000 < probe::MAX_SEQ);

/// How the load is offered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Closed loop: this many probes in flight per flow.
    Window(usize),
    /// Open loop: this many probes per second over all flows.
    Rate(f64),
}

/// `--stamp`: measure a STAMP Session-Reflector (RFC 8762) instead of an
/// echo or uppercase server.
#[derive(Clone, Default)]
pub struct StampConfig {
    /// The test packets: mode and key, SSID, timestamp format, TLVs, size.
    /// Its `size` must give [`BenchConfig::size`] (0 for the smallest packet,
    /// whose size [`StampConfig::packet_len`] tells).
    pub sender: SenderConfig,
    /// The reflector is known to be stateful: split the loss by direction
    /// even when its sequence numbers never differ from ours (no probe lost
    /// on the way out). Without it, a split needs one that differs.
    pub stateful: bool,
}

impl StampConfig {
    /// The length of the test packets this configuration makes, or why none
    /// can be made.
    pub fn packet_len(&self) -> Result<usize, String> {
        Sender::new(self.sender.clone())
            .map(|s| s.packet_len())
            .map_err(|e| format!("--stamp: {e}"))
    }
}

impl std::fmt::Debug for StampConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        let c = &self.sender;
        f.debug_struct("StampConfig")
            .field("mode", &c.mode)
            .field("ssid", &c.ssid)
            .field("format", &c.format)
            .field("tlvs", &c.tlvs)
            .field("size", &c.size)
            .field("stateful", &self.stateful)
            .finish_non_exhaustive()
    }
}

/// What to measure and how.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The server.
    pub target: SocketAddr,
    /// Probe size in bytes, at least [`MIN_SIZE`].
    pub size: usize,
    /// Window or rate.
    pub load: Load,
    /// Flows: sockets, each with its own source port and thread.
    pub flows: usize,
    /// How long probes are sent and counted.
    pub duration: Duration,
    /// How long probes are sent, before `duration`, without being counted.
    pub warmup: Duration,
    /// A probe unanswered this long is given up (its window slot refilled);
    /// a reply after it is late.
    pub timeout: Duration,
    /// Which replies count. Probes have no lowercase letters, so `Upper` and
    /// `Echo` both want the probe back byte for byte; `Any` checks only the
    /// header, which must still name a probe sent and its send time.
    pub expect: Expect,
    /// Send probes as UDP GSO buffers and receive through UDP GRO (Linux).
    pub gso: bool,
    /// Show a progress line on stderr once a second.
    pub progress: bool,
    /// Keep counts and round-trip percentiles per interval, and the percentile
    /// curve, in [`Report::timeline`](crate::bench::Report::timeline) (for
    /// `--csv` and `--plot`). Costs two counters per interval and a few small
    /// histograms per flow; nothing per probe.
    pub timeline: bool,
    /// Never sleep or block waiting for replies: each thread spins on its
    /// socket (and an open-loop sender on its clock), for the least delay
    /// added to the measured round trips. Costs a core per thread, see
    /// [`threads`](BenchConfig::threads); with fewer cores, threads take turns
    /// and measure each other instead.
    pub busy_poll: bool,
    /// Mark the probes with this DSCP (0 to 63; [`crate::dscp`] reads names):
    /// the IPv4 TOS or IPv6 Traffic Class of the flows' sockets is `dscp << 2`.
    /// `None`: the system's default (0).
    pub dscp: Option<u8>,
    /// Send STAMP test packets to a STAMP reflector (`--stamp`); `None`:
    /// `SB` probes to an echo or uppercase server. `expect` does not apply.
    pub stamp: Option<StampConfig>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            target: SocketAddr::from(([127, 0, 0, 1], 8080)),
            size: 64,
            load: Load::Window(1),
            flows: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(1),
            expect: Expect::Upper,
            gso: false,
            progress: false,
            timeline: false,
            busy_poll: false,
            dscp: None,
            stamp: None,
        }
    }
}

impl BenchConfig {
    /// Threads the run uses: one per closed-loop flow, two per open-loop flow
    /// (a sender and a receiver).
    pub fn threads(&self) -> usize {
        match self.load {
            Load::Window(_) => self.flows,
            Load::Rate(_) => 2 * self.flows,
        }
    }

    /// How this run's probes are built and its replies read.
    pub(crate) fn format(&self) -> Result<Format, String> {
        let stamp = match &self.stamp {
            None => None,
            Some(s) => {
                let sender = Sender::new(s.sender.clone()).map_err(|e| format!("--stamp: {e}"))?;
                if sender.packet_len() != self.size {
                    return Err(format!(
                        "--stamp: the test packets are {} bytes, but the size is {}",
                        sender.packet_len(),
                        self.size
                    ));
                }
                Some(StampFormat { sender })
            }
        };
        // `SB` probes: both kinds of server return them unchanged (`--expect echo` works either way).
        Ok(Format { size: self.size, expect: self.expect, stamp, lower: false })
    }

    /// Why this configuration cannot run, in words for the person who wrote it.
    pub fn validate(&self) -> Result<(), String> {
        let (family, max) = if self.target.is_ipv4() {
            ("IPv4", MAX_DATAGRAM_V4)
        } else {
            ("IPv6", MAX_DATAGRAM_V6)
        };
        if self.target.port() == 0 {
            return Err(format!("{}: port 0 cannot be a server's port", self.target));
        }
        if self.size < MIN_SIZE {
            return Err(format!(
                "--size {} is too small: a probe needs {MIN_SIZE} bytes for its sequence number and send time",
                self.size
            ));
        }
        if self.size > max {
            return Err(format!(
                "--size {} is too large: a UDP datagram over {family} carries at most {max} bytes",
                self.size
            ));
        }
        if !(1..=MAX_FLOWS).contains(&self.flows) {
            return Err(format!("--flows must be 1 to {MAX_FLOWS}, not {}", self.flows));
        }
        match self.load {
            Load::Window(w) if !(1..=MAX_WINDOW).contains(&w) => {
                return Err(format!("--window must be 1 to {MAX_WINDOW}, not {w}"));
            }
            Load::Rate(r) if !(r.is_finite() && r > 0.0) => {
                return Err(format!(
                    "--rate must be a positive number of probes per second, not {r}"
                ));
            }
            Load::Rate(r) if !(MIN_RATE..=MAX_RATE).contains(&r) => {
                // 1e300 printed in full would be 300 digits.
                return Err(format!(
                    "--rate must be {MIN_RATE} to {MAX_RATE:e} probes per second, not {r:e}"
                ));
            }
            _ => {}
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        if self.warmup.saturating_add(self.duration) > MAX_RUN {
            return Err("--warmup plus --duration must stay within 30 days".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be longer than 0".into());
        }
        if self.timeout > MAX_TIMEOUT {
            return Err("--timeout must be at most 1 hour".into());
        }
        if let Some(d) = self.dscp.filter(|&d| d > crate::dscp::MAX_DSCP) {
            return Err(format!("--dscp must be 0 to 63, not {d}"));
        }
        self.format()?;
        Ok(())
    }
}
