//! The agent: the table of targets and their counts, shared by the probing
//! thread ([`Agent::run`]), the scrape ([`Agent::metrics_page`]) and the
//! table and JSON lines ([`Agent::snapshot`]); and reload ([`Agent::apply`]).
//!
//! The table is an `Arc` swapped under a mutex on reload; the probing thread
//! looks at a version counter at the top of each loop and takes the new table
//! only when it changed, so no lock is taken per probe or per datagram. A
//! target equal to one in the old table is the same `Arc`: its counts,
//! histograms and STAMP sequence numbers carry on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::tally::{Buckets, Quantiles, Stats};
use super::target::{Protocol, TargetSpec};
use crate::bench::probe::{Format, HEADER_LEN};
use crate::bench::stamp::StampFormat;
use crate::stamp::{AuthMode, Sender, SenderConfig};
use crate::Expect;

/// Most targets one agent takes: beyond this [`Agent::apply`] refuses the
/// table (each target costs about 3 KiB, so this bounds the agent near 300 MiB).
pub const MAX_TARGETS: usize = 100_000;
/// Shortest interval between two probes of a target.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval between two probes of a target.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Longest time a probe waits for its answer.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Most histogram buckets.
pub const MAX_BUCKETS: usize = 64;
/// The default buckets of the round-trip, one-way and turnaround histograms, in seconds.
pub const DEFAULT_BUCKETS: [f64; 10] =
    [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0];
/// Buckets of the agent's own scheduling lag, in seconds.
pub(crate) const LAG_BUCKETS: [f64; 12] =
    [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0];
/// A target is up when answered within this many of its intervals.
pub(crate) const UP_INTERVALS: u64 = 3;

/// How the agent records.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Upper bounds of the histogram buckets, in seconds, ascending (+Inf is added).
    pub buckets: Vec<f64>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { buckets: DEFAULT_BUCKETS.to_vec() }
    }
}

/// What a reload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Targets equal to one already probed: their state carries on.
    pub kept: usize,
    /// New targets, each starting at a random phase.
    pub added: usize,
    /// Targets no longer probed: their series are gone.
    pub removed: usize,
}

/// Why a table of targets is refused (the old one stays).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// More than [`MAX_TARGETS`].
    #[error("{count} targets are too many: one agent probes at most {max}")]
    TooMany {
        /// Targets given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One target cannot be probed as configured.
    #[error("target {target}: {why}")]
    Invalid {
        /// The target's name.
        target: String,
        /// What is wrong, in words.
        why: String,
    },
}

/// One target as the table, JSON lines and summary show it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSnapshot {
    /// The `target` label.
    pub name: String,
    /// The configured labels.
    pub labels: Vec<(String, String)>,
    /// Where probes go.
    pub addr: SocketAddr,
    /// Probes sent.
    pub sent: u64,
    /// Probes answered in time (first reply).
    pub answered: u64,
    /// Probes given up (all directions).
    pub lost: u64,
    /// Probes neither answered nor given up: `sent - answered - lost`.
    pub in_flight: u64,
    /// Replies beyond the first to a probe.
    pub duplicated: u64,
    /// First replies to a probe older than one already answered.
    pub reordered: u64,
    /// Replies to probes already counted lost.
    pub late: u64,
    /// Datagrams from the target that answer no probe of it.
    pub mismatched: u64,
    /// ICMP destination unreachable messages about its probes.
    pub unreachable: u64,
    /// Median round trip so far (within 4.4%).
    pub rtt_p50: Option<Duration>,
    /// 99th percentile round trip so far (within 4.4%).
    pub rtt_p99: Option<Duration>,
    /// The newest probe's round trip, if it was answered.
    pub last_rtt: Option<Duration>,
    /// The last 32 probes, oldest first: round trip, or `None` when lost.
    pub recent_rtts: Vec<Option<Duration>>,
    /// Answered within the last three intervals.
    pub up: bool,
}

/// One target of the table: its spec, how its probes are built and read, its counts.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) spec: TargetSpec,
    /// Unique among the targets of the agent's life (24 bits), carried in
    /// upper/echo probes so a reply from a stray address can be attributed.
    pub(crate) id: u32,
    pub(crate) format: Format,
    pub(crate) stats: Stats,
    /// Its labels as the metrics text writes them, made once.
    pub(crate) labels: Box<str>,
}

impl Target {
    pub(crate) fn interval_ns(&self) -> u64 {
        nanos(self.spec.interval)
    }

    /// Whether it was answered within the last [`UP_INTERVALS`] intervals at `now_ns`.
    pub(crate) fn up(&self, now_ns: u64) -> bool {
        let at = self.stats.answered_at.load(Ordering::Relaxed);
        at != 0 && now_ns.saturating_sub(at) <= UP_INTERVALS * self.interval_ns()
    }
}

/// The targets being probed, as one reload made them.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) targets: Vec<Arc<Target>>,
}

/// The agent's own health.
#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) probes_sent: AtomicU64,
    pub(crate) socket_drops: AtomicU64,
    /// Replies from addresses no target has, that no target's probe explains.
    pub(crate) unmatched: AtomicU64,
    pub(crate) lag: Buckets,
    pub(crate) lag_quantiles: Quantiles,
    pub(crate) reload_ok: AtomicBool,
    /// Seconds since the epoch of the last successful reload, as f64 bits.
    pub(crate) reload_at: AtomicU64,
    pub(crate) kernel_rx: AtomicBool,
    pub(crate) kernel_tx: AtomicBool,
}

/// The always-on prober: many targets, one thread, a few sockets. `Send +
/// Sync`: one thread runs it, others scrape, show and reload it.
#[derive(Debug)]
pub struct Agent {
    pub(crate) bounds_ns: Vec<i64>,
    pub(crate) buckets: Vec<f64>,
    pub(crate) lag_bounds_ns: Vec<i64>,
    table: Mutex<Arc<Table>>,
    /// Bumped by every [`apply`](Agent::apply) that changes the table.
    pub(crate) version: AtomicU64,
    /// Serialises reloads, so ids and the kept-or-new decision see one table.
    reload: Mutex<()>,
    next_id: AtomicU32,
    pub(crate) health: Health,
    /// Failures to resolve each target name, as the config's resolver reports them.
    pub(crate) resolve_failures: Mutex<HashMap<String, u64>>,
    /// Set while [`run`](Agent::run) runs: one probing thread at a time.
    pub(crate) running: AtomicBool,
    /// What "now" counts from, for due times and `up`.
    pub(crate) epoch: Instant,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn bounds_ns(buckets: &[f64]) -> Vec<i64> {
    buckets.iter().map(|s| (s * 1e9).round() as i64).collect()
}

impl Agent {
    /// An agent with no targets yet. Fails (`InvalidInput`) on unusable buckets:
    /// empty, more than [`MAX_BUCKETS`], not finite, under a nanosecond or
    /// over an hour, not ascending (to the nanosecond).
    pub fn new(config: AgentConfig) -> std::io::Result<Agent> {
        let b = &config.buckets;
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        if b.is_empty() || b.len() > MAX_BUCKETS {
            return Err(invalid(format!(
                "buckets: 1 to {MAX_BUCKETS} upper bounds are needed, not {}",
                b.len()
            )));
        }
        if let Some(v) = b.iter().find(|v| !v.is_finite() || **v < 1e-9 || **v > 3600.0) {
            return Err(invalid(format!(
                "buckets: {v} is no bound in seconds (1e-9, one nanosecond, to 3600)"
            )));
        }
        // Counted in whole nanoseconds: two bounds within one are one bucket.
        if bounds_ns(b).windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                "buckets: the bounds must be strictly ascending, to the nanosecond".into(),
            ));
        }
        let (rx, tx) = kernel_timestamps_here();
        Ok(Agent {
            bounds_ns: bounds_ns(b),
            buckets: b.clone(),
            lag_bounds_ns: bounds_ns(&LAG_BUCKETS),
            table: Mutex::new(Arc::new(Table::default())),
            version: AtomicU64::new(0),
            reload: Mutex::new(()),
            next_id: AtomicU32::new(1),
            health: Health {
                probes_sent: AtomicU64::new(0),
                socket_drops: AtomicU64::new(0),
                unmatched: AtomicU64::new(0),
                lag: Buckets::new(LAG_BUCKETS.len()),
                lag_quantiles: Quantiles::default(),
                reload_ok: AtomicBool::new(true),
                reload_at: AtomicU64::new(0f64.to_bits()),
                kernel_rx: AtomicBool::new(rx),
                kernel_tx: AtomicBool::new(tx),
            },
            resolve_failures: Mutex::new(HashMap::new()),
            running: AtomicBool::new(false),
            epoch: Instant::now(),
        })
    }

    pub(crate) fn now_ns(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// The current table.
    pub(crate) fn table(&self) -> Arc<Table> {
        Arc::clone(&self.table.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `targets` the table. Targets equal to a current one keep
    /// counters, histograms and STAMP session (sequence numbers); removed ones
    /// vanish with their series; new ones start at a random phase. Refuses the
    /// whole table, keeping the old one, when it has more than [`MAX_TARGETS`]
    /// or a target that cannot be probed (its size, interval, timeout or key).
    /// Duplicates (equal specs) are probed once.
    pub fn apply(&self, targets: Vec<TargetSpec>) -> Result<Applied, TargetError> {
        if targets.len() > MAX_TARGETS {
            return Err(TargetError::TooMany { count: targets.len(), max: MAX_TARGETS });
        }
        let _reload = self.reload.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.table();
        let mut by_spec: HashMap<&TargetSpec, &Arc<Target>> =
            old.targets.iter().map(|t| (&t.spec, t)).collect();
        let mut applied = Applied::default();
        let mut table = Table { targets: Vec::with_capacity(targets.len()) };
        let mut seen = std::collections::HashSet::with_capacity(targets.len());
        for spec in &targets {
            if !seen.insert(spec) {
                continue;
            }
            if let Some(t) = by_spec.remove(spec) {
                applied.kept += 1;
                table.targets.push(Arc::clone(t));
                continue;
            }
            let format = format(spec)
                .map_err(|why| TargetError::Invalid { target: spec.name.clone(), why })?;
            // 24 bits (the probe's tag field); wraps after 16 million reloads' worth.
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) & 0xFF_FFFF;
            applied.added += 1;
            table.targets.push(Arc::new(Target {
                spec: spec.clone(),
                id,
                format,
                stats: Stats::new(self.bounds_ns.len()),
                labels: spec.label_text(),
            }));
        }
        applied.removed = by_spec.len();
        *self.table.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        self.version.fetch_add(1, Ordering::Release);
        Ok(applied)
    }

    /// Feeds `shout_probe_config_last_reload_successful` and, when `ok`, its
    /// success timestamp.
    pub fn set_reload_status(&self, ok: bool) {
        self.health.reload_ok.store(ok, Ordering::Relaxed);
        if ok {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            self.health.reload_at.store(now.as_secs_f64().to_bits(), Ordering::Relaxed);
        }
    }

    /// Whether the kernel timestamps received replies and sent probes
    /// (`SO_TIMESTAMPING`); where not, the agent reads its own clock instead,
    /// which adds its own scheduling to the round trips.
    pub fn kernel_timestamps(&self) -> (bool, bool) {
        (
            self.health.kernel_rx.load(Ordering::Relaxed),
            self.health.kernel_tx.load(Ordering::Relaxed),
        )
    }

    /// Every target's counts now, in table order.
    pub fn snapshot(&self) -> Vec<TargetSnapshot> {
        let now = self.now_ns();
        self.table()
            .targets
            .iter()
            .map(|t| {
                let s = &t.stats;
                let f = s.fates();
                let q = s.quantiles.quantiles([0.5, 0.99]);
                let recent_rtts = s.recent.read();
                TargetSnapshot {
                    name: t.spec.name.clone(),
                    labels: t.spec.labels.clone(),
                    addr: t.spec.addr,
                    sent: f.sent,
                    answered: f.answered,
                    lost: f.lost.iter().sum(),
                    in_flight: f.in_flight,
                    duplicated: s.duplicated.load(Ordering::Relaxed),
                    reordered: s.reordered.load(Ordering::Relaxed),
                    late: s.late.load(Ordering::Relaxed),
                    mismatched: s.mismatched.load(Ordering::Relaxed),
                    unreachable: s.unreachable.load(Ordering::Relaxed),
                    rtt_p50: q.map(|[p50, _]| p50),
                    rtt_p99: q.map(|[_, p99]| p99),
                    last_rtt: recent_rtts.last().copied().flatten(),
                    recent_rtts,
                    up: t.up(now),
                }
            })
            .collect()
    }

    /// The agent's scheduling lag (|send time − due time|) at quantile `q`
    /// (0 to 1), within 4.4%: for benchmarks; the metric is the histogram.
    pub fn scheduling_lag(&self, q: f64) -> Option<Duration> {
        self.health.lag_quantiles.quantiles([q]).map(|[d]| d)
    }
}

/// Whether this kernel takes `SO_TIMESTAMPING` (both halves are asked for
/// together): tried on a throwaway socket, so the startup log can say so.
fn kernel_timestamps_here() -> (bool, bool) {
    let ok = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("[::1]:0"))
        .is_ok_and(|s| crate::sys::enable_timestamping(&s).is_ok());
    (ok, ok)
}

/// How `spec`'s probes are built and read: the bench's probe format, or its
/// STAMP format around a [`Sender`].
fn format(spec: &TargetSpec) -> Result<Format, String> {
    if spec.interval < MIN_INTERVAL || spec.interval > MAX_INTERVAL {
        return Err(format!(
            "interval {:?} is out of range ({MIN_INTERVAL:?} to {MAX_INTERVAL:?})",
            spec.interval
        ));
    }
    if spec.timeout.is_zero() || spec.timeout > MAX_TIMEOUT {
        return Err(format!(
            "timeout {:?} is out of range (above 0, at most {MAX_TIMEOUT:?})",
            spec.timeout
        ));
    }
    if spec.dscp.is_some_and(|d| d > 63) {
        return Err(format!("DSCP {} is out of range (0 to 63)", spec.dscp.unwrap_or(0)));
    }
    if spec.ttl == Some(0) {
        return Err("TTL 0 cannot leave the host (1 to 255)".into());
    }
    if spec.addr.port() == 0 || spec.addr.ip().is_unspecified() {
        return Err(format!("{} cannot be probed (no port, or no address)", spec.addr));
    }
    let max =
        if spec.addr.is_ipv4() { crate::sys::MAX_DATAGRAM_V4 } else { crate::sys::MAX_DATAGRAM_V6 };
    if spec.size > max {
        return Err(format!("size {} is above the {max} bytes of a UDP datagram", spec.size));
    }
    match spec.protocol {
        Protocol::Stamp => {
            let cfg = SenderConfig {
                mode: if spec.key.is_some() {
                    AuthMode::Authenticated
                } else {
                    AuthMode::Unauthenticated
                },
                auth_key: spec.key.clone(),
                ssid: spec.ssid,
                size: spec.size,
                ..SenderConfig::default()
            };
            let sender = Sender::new(cfg).map_err(|e| e.to_string())?;
            Ok(Format {
                size: sender.packet_len(),
                expect: Expect::Any,
                stamp: Some(StampFormat { sender }),
                lower: false,
            })
        }
        Protocol::Upper | Protocol::Echo => {
            if spec.size < HEADER_LEN {
                return Err(format!(
                    "size {} is too small: an upper/echo probe needs {HEADER_LEN} bytes",
                    spec.size
                ));
            }
            if spec.key.is_some() {
                return Err("a key is for STAMP targets only".into());
            }
            let expect =
                if spec.protocol == Protocol::Upper { Expect::Upper } else { Expect::Echo };
            // `Sb` probes: an uppercasing server's reply to an `echo` target,
            // or an echo server's to an `upper` one, is mismatched.
            Ok(Format { size: spec.size, expect, stamp: None, lower: true })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(name: &str, protocol: Protocol) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            addr: "127.0.0.1:862".parse().unwrap(),
            protocol,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            size: 44,
            dscp: None,
            ttl: None,
            ssid: 0,
            key: None,
            labels: Vec::new(),
        }
    }

    #[test]
    fn reload_keeps_equal_targets_and_refuses_bad_tables_whole() {
        let agent = Agent::new(AgentConfig::default()).unwrap();
        let a = spec("a", Protocol::Stamp);
        let b = TargetSpec { name: "b".into(), ..spec("b", Protocol::Upper) };
        let got = agent.apply(vec![a.clone(), b.clone(), a.clone()]).unwrap();
        assert_eq!(got, Applied { kept: 0, added: 2, removed: 0 }, "the duplicate probed once");
        let first = Arc::clone(&agent.table().targets[0]);
        super::super::tally::bump(&first.stats.sent, 5);
        let c = TargetSpec { interval: Duration::from_millis(500), ..b.clone() };
        assert_eq!(
            agent.apply(vec![a.clone(), c]).unwrap(),
            Applied { kept: 1, added: 1, removed: 1 }
        );
        let snap = agent.snapshot();
        assert_eq!((snap[0].name.as_str(), snap[0].sent, snap[0].in_flight), ("a", 5, 5));
        assert_eq!(snap[1].sent, 0, "a changed spec is a new target");

        let small = TargetSpec { size: 20, ..spec("small", Protocol::Stamp) };
        let err = agent.apply(vec![a.clone(), small]).unwrap_err();
        assert!(
            err.to_string().starts_with("target small: a STAMP test packet of 20 octets"),
            "{err}"
        );
        let fast =
            TargetSpec { interval: Duration::from_millis(1), ..spec("fast", Protocol::Echo) };
        assert!(agent.apply(vec![fast]).unwrap_err().to_string().contains("interval"));
        assert_eq!(agent.snapshot().len(), 2, "the old table stays");
        let many = vec![a; MAX_TARGETS + 1];
        assert_eq!(
            agent.apply(many).unwrap_err(),
            TargetError::TooMany { count: MAX_TARGETS + 1, max: MAX_TARGETS }
        );
    }

    #[test]
    fn buckets_are_checked() {
        let bad_ones = [
            vec![],
            vec![0.1, 0.1],
            vec![-1.0],
            vec![f64::NAN],
            vec![0.5, 0.1],
            vec![1e-10],
            vec![1e-9, 1.2e-9],
        ];
        for bad in bad_ones {
            assert!(Agent::new(AgentConfig { buckets: bad.clone() }).is_err(), "{bad:?}");
        }
    }
}
