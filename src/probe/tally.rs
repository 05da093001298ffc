//! What the agent counts per target, readable while it is being written: the
//! probing thread is the only writer, and the scrape, the table and the JSON
//! lines read the same atomics without ever stopping it.
//!
//! A single writer increments with a relaxed load and a store (no locked
//! instruction); readers see each value whole. Memory per target is fixed:
//! a few counters, bucket counters for each histogram (the configured
//! buckets), a log-linear array of round trips for the percentiles the table
//! shows, and a ring of the last [`RECENT`] round trips.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Round trips kept for the sparkline.
pub(crate) const RECENT: usize = 32;
/// Sub-buckets per power of two of the percentile array: quantiles within 1/16 (6%).
const SUB: usize = 16;
/// Powers of two above 1 µs the percentile array covers: up to 2^27 µs (134 s).
const OCTAVES: usize = 27;
/// `recent` entry of a lost probe.
const LOST: u32 = u32::MAX;
/// `recent` entry never written.
const EMPTY: u32 = u32::MAX - 1;

/// Increments a counter only this thread writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64, by: u64) {
    // Release: a reader that sees the new value sees what came before it
    // (the invariant sent >= answered + lost relies on it).
    c.store(c.load(Ordering::Relaxed) + by, Ordering::Release);
}

/// Reads a counter.
#[inline]
pub(crate) fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Acquire)
}

/// A Prometheus histogram: a counter per configured bucket (plus +Inf) and
/// the sum, in nanoseconds.
#[derive(Debug)]
pub(crate) struct Buckets {
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicI64,
}

impl Buckets {
    /// Counters for `bounds` (ascending upper bounds, in nanoseconds) and +Inf.
    pub(crate) fn new(bounds: usize) -> Buckets {
        Buckets {
            counts: (0..=bounds).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicI64::new(0),
        }
    }

    /// Records `ns` (negative for a one-way delay across unsynchronised clocks).
    #[inline]
    pub(crate) fn record(&self, bounds_ns: &[i64], ns: i64) {
        let i = bounds_ns.partition_point(|&b| b < ns);
        bump(&self.counts[i], 1);
        let sum = self.sum_ns.load(Ordering::Relaxed);
        self.sum_ns.store(sum.saturating_add(ns), Ordering::Relaxed);
    }

    /// The per-bucket counts (not cumulative), the total and the sum in nanoseconds.
    pub(crate) fn read(&self, out: &mut Vec<u64>) -> (u64, i64) {
        // The sum first: a reader may see a count the sum does not have yet,
        // never the reverse order's larger sum over fewer observations.
        let sum = self.sum_ns.load(Ordering::Relaxed);
        out.clear();
        out.extend(self.counts.iter().map(read));
        (out.iter().sum(), sum)
    }
}

/// Round trips in log-linear buckets of microseconds, for percentiles.
#[derive(Debug)]
pub(crate) struct Quantiles {
    counts: Box<[AtomicU32]>,
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles { counts: (0..(OCTAVES + 1) * SUB).map(|_| AtomicU32::new(0)).collect() }
    }
}

impl Quantiles {
    /// Bucket of `us`: linear below `SUB` µs, then `SUB` per power of two.
    fn index(us: u64) -> usize {
        if us < SUB as u64 {
            return us as usize;
        }
        let octave = 63 - us.leading_zeros() as usize; // >= log2(SUB)
        let shift = octave - SUB.trailing_zeros() as usize;
        let i = (shift + 1) * SUB + ((us >> shift) as usize - SUB);
        i.min((OCTAVES + 1) * SUB - 1)
    }

    /// The highest value of bucket `i`, in microseconds.
    fn upper(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = i / SUB - 1;
        (((SUB + i % SUB) as u64 + 1) << shift) - 1
    }

    #[inline]
    pub(crate) fn record(&self, ns: u64) {
        let c = &self.counts[Self::index(ns / 1_000)];
        c.store(c.load(Ordering::Relaxed).saturating_add(1), Ordering::Relaxed);
    }

    /// The round trips at quantiles `qs` (each 0..=1), or `None` when nothing is recorded.
    pub(crate) fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[Duration; N]> {
        let counts: Vec<u64> =
            self.counts.iter().map(|c| u64::from(c.load(Ordering::Relaxed))).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        Some(qs.map(|q| {
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            let i = counts
                .iter()
                .position(|&c| {
                    seen += c;
                    seen >= rank
                })
                .unwrap_or(counts.len() - 1);
            Duration::from_micros(Self::upper(i))
        }))
    }
}

/// The last [`RECENT`] probes' round trips, in microseconds, lost ones marked.
#[derive(Debug)]
pub(crate) struct Recent {
    ring: [AtomicU32; RECENT],
    next: AtomicU64,
}

impl Default for Recent {
    fn default() -> Self {
        Recent { ring: std::array::from_fn(|_| AtomicU32::new(EMPTY)), next: AtomicU64::new(0) }
    }
}

impl Recent {
    /// Notes a probe's fate: its round trip, or `None` when lost.
    #[inline]
    pub(crate) fn push(&self, rtt: Option<Duration>) {
        let n = self.next.load(Ordering::Relaxed);
        let v =
            rtt.map_or(LOST, |d| u32::try_from(d.as_micros()).unwrap_or(EMPTY - 1).min(EMPTY - 1));
        self.ring[(n % RECENT as u64) as usize].store(v, Ordering::Relaxed);
        self.next.store(n + 1, Ordering::Release);
    }

    /// Oldest first.
    pub(crate) fn read(&self) -> Vec<Option<Duration>> {
        let n = self.next.load(Ordering::Acquire);
        let start = n.saturating_sub(RECENT as u64);
        (start..n)
            .map(|i| self.ring[(i % RECENT as u64) as usize].load(Ordering::Relaxed))
            .filter(|&v| v != EMPTY)
            .map(|v| (v != LOST).then(|| Duration::from_micros(u64::from(v))))
            .collect()
    }
}

/// One target's counts: all the metrics of its series.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) sent: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) lost_forward: AtomicU64,
    pub(crate) lost_backward: AtomicU64,
    pub(crate) lost_unknown: AtomicU64,
    pub(crate) duplicated: AtomicU64,
    pub(crate) reordered: AtomicU64,
    pub(crate) late: AtomicU64,
    pub(crate) mismatched: AtomicU64,
    pub(crate) unreachable: AtomicU64,
    /// When the last answer came, in nanoseconds since the agent started; 0 for never.
    pub(crate) answered_at: AtomicU64,
    /// The last TTL the reflector reported for our probe, and the last TTL a
    /// reply came with; 0 when unknown.
    pub(crate) ttl_forward: AtomicU32,
    pub(crate) ttl_backward: AtomicU32,
    pub(crate) rtt: Buckets,
    pub(crate) forward: Buckets,
    pub(crate) backward: Buckets,
    pub(crate) turnaround: Buckets,
    pub(crate) quantiles: Quantiles,
    pub(crate) recent: Recent,
}

impl Stats {
    pub(crate) fn new(bounds: usize) -> Stats {
        Stats {
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            lost_forward: AtomicU64::new(0),
            lost_backward: AtomicU64::new(0),
            lost_unknown: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            late: AtomicU64::new(0),
            mismatched: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            answered_at: AtomicU64::new(0),
            ttl_forward: AtomicU32::new(0),
            ttl_backward: AtomicU32::new(0),
            rtt: Buckets::new(bounds),
            forward: Buckets::new(bounds),
            backward: Buckets::new(bounds),
            turnaround: Buckets::new(bounds),
            quantiles: Quantiles::default(),
            recent: Recent::default(),
        }
    }

    /// What became of the probes sent, consistent with each other: answered
    /// and lost are read before sent, and every probe is counted sent before
    /// it is counted answered or lost, so in flight is never negative and
    /// sent = answered + lost + in flight exactly.
    pub(crate) fn fates(&self) -> Fates {
        let answered = read(&self.answered);
        let lost = [read(&self.lost_forward), read(&self.lost_backward), read(&self.lost_unknown)];
        let sent = read(&self.sent);
        let in_flight = sent.saturating_sub(answered + lost.iter().sum::<u64>());
        Fates { sent, answered, lost, in_flight }
    }
}

/// One consistent reading of a target's probe counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fates {
    pub(crate) sent: u64,
    pub(crate) answered: u64,
    /// Forward, backward, unknown.
    pub(crate) lost: [u64; 3],
    pub(crate) in_flight: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_buckets_are_log_linear_and_contain_their_values() {
        let mut last = None;
        for us in [0u64, 1, 15, 16, 17, 31, 32, 33, 100, 1_000, 65_432, 1 << 26] {
            let i = Quantiles::index(us);
            assert!(Quantiles::upper(i) >= us, "{us} in bucket {i} up to {}", Quantiles::upper(i));
            assert!(us == 0 || Quantiles::upper(i) <= us + us / 16, "{us}: within 1/16");
            assert!(last.is_none_or(|l| l <= i));
            last = Some(i);
        }
        let q = Quantiles::default();
        assert_eq!(q.quantiles([0.5]), None);
        for us in 1..=100u64 {
            q.record(us * 1_000);
        }
        let [p50, p99] = q.quantiles([0.5, 0.99]).unwrap();
        assert!((50..=53).contains(&p50.as_micros()), "{p50:?}");
        assert!((99..=103).contains(&p99.as_micros()), "{p99:?}");
    }

    #[test]
    fn buckets_count_each_value_once_and_negatives_first() {
        let b = Buckets::new(2);
        let bounds = [1_000, 2_000];
        for v in [-5, 1_000, 1_001, 2_000, 9_999] {
            b.record(&bounds, v);
        }
        let mut out = Vec::new();
        assert_eq!(b.read(&mut out), (5, 13_995));
        assert_eq!(out, [2, 2, 1], "le is inclusive, the rest in +Inf");
    }

    #[test]
    fn recent_keeps_the_last_probes_oldest_first() {
        let r = Recent::default();
        assert!(r.read().is_empty());
        for i in 0..40u64 {
            r.push((i % 5 != 0).then(|| Duration::from_micros(i)));
        }
        let got = r.read();
        assert_eq!(got.len(), RECENT);
        assert_eq!(got[0], Some(Duration::from_micros(8)));
        assert_eq!(got[2], None, "10 was lost");
        assert_eq!(got[RECENT - 1], Some(Duration::from_micros(39)));
    }
}
