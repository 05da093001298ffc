//! What the agent counts per target, readable while it is being written: the
//! probing thread is the only writer, and the scrape, the table and the JSON
//! lines read the same atomics without ever stopping it.
//!
//! A single writer increments with a relaxed load and a store (no locked
//! instruction); readers see each value whole. Memory per target is fixed:
//! a few counters, bucket counters for each histogram (the configured
//! buckets), exponential buckets of round trips for the percentiles the table
//! shows and the native histogram, and a ring of the last [`RECENT`] round trips.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Round trips kept for the sparkline.
pub(crate) const RECENT: usize = 32;
/// Schema of the round-trip buckets, as Prometheus native histograms number
/// them: 2^SCHEMA buckets per power of two, each bound 2^(1/16) (4.4 %) above
/// the last, so quantiles are within 4.4 %.
pub(crate) const SCHEMA: i32 = 4;
/// Buckets per power of two.
const PER_OCTAVE: i32 = 1 << SCHEMA;
/// Index of the bucket just below the lowest one kept: values up to its upper
/// bound, 2^-20 s (0.95 µs), are counted in the zero bucket.
pub(crate) const ZERO_INDEX: i32 = -20 * PER_OCTAVE;
/// Index of the highest bucket, up to 2^7 s (128 s, above the longest
/// timeout); anything larger is counted there.
const TOP_INDEX: i32 = 7 * PER_OCTAVE;
/// The zero bucket's width, in seconds.
pub(crate) const ZERO_THRESHOLD: f64 = 1.0 / (1u64 << 20) as f64;
/// 2^(j/16) / 2 for j in 0..16: where in [0.5, 1) the mantissa of a value
/// crosses into the next bucket (as client_golang finds native buckets).
const MANTISSA_BOUNDS: [f64; PER_OCTAVE as usize] = [
    0.5,
    0.5221368912137069,
    0.5452538663326288,
    0.5693943173783458,
    0.5946035575013605,
    0.620928906036742,
    0.6484197773255048,
    0.6771277734684463,
    std::f64::consts::FRAC_1_SQRT_2,
    0.7384130729697497,
    0.7711054127039704,
    0.8052451659746271,
    0.8408964152537145,
    0.8781260801866497,
    0.9170040432046712,
    0.9576032806985737,
];
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

/// Round trips (or lags) in the exponential buckets of a Prometheus native
/// histogram of schema [`SCHEMA`]: bucket `i` holds values in
/// (2^((i-1)/16), 2^(i/16)] seconds, from [`ZERO_INDEX`] + 1 to [`TOP_INDEX`],
/// plus a zero bucket for values up to [`ZERO_THRESHOLD`]. The same counts
/// give the table's percentiles and, unchanged, the native histogram a
/// scrape in protobuf carries.
///
/// Not derived from the classic buckets or a log-linear array at scrape time:
/// native bounds are powers of 2^(1/16) *seconds*, which no array of whole
/// microseconds or configured bounds meets exactly, so values are counted
/// here as they come. 433 × 4 bytes per target.
#[derive(Debug)]
pub(crate) struct Quantiles {
    /// Index 0: the zero bucket; index `j`: native bucket `ZERO_INDEX + j`.
    /// Saturating, like every `u32` count here (4 billion answers per bucket).
    counts: Box<[AtomicU32]>,
}

impl Default for Quantiles {
    fn default() -> Self {
        let len = (TOP_INDEX - ZERO_INDEX + 1) as usize;
        Quantiles { counts: (0..len).map(|_| AtomicU32::new(0)).collect() }
    }
}

/// The native bucket of `seconds` (positive and normal): the `i` with
/// 2^((i-1)/16) < seconds <= 2^(i/16).
pub(crate) fn native_index(seconds: f64) -> i32 {
    // seconds = mantissa × 2^exp with mantissa in [0.5, 1) (C's frexp).
    let bits = seconds.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let mantissa = f64::from_bits((bits & ((1 << 52) - 1)) | (1022 << 52));
    let j = MANTISSA_BOUNDS.partition_point(|&b| b < mantissa) as i32;
    j + (exp - 1) * PER_OCTAVE
}

/// The upper bound of native bucket `i`, in seconds.
pub(crate) fn native_upper(i: i32) -> f64 {
    (f64::from(i) / f64::from(PER_OCTAVE)).exp2()
}

impl Quantiles {
    /// Slot of `ns`: 0 for the zero bucket.
    fn slot(ns: u64) -> usize {
        let seconds = ns as f64 / 1e9;
        if seconds <= ZERO_THRESHOLD {
            return 0;
        }
        (native_index(seconds).min(TOP_INDEX) - ZERO_INDEX) as usize
    }

    #[inline]
    pub(crate) fn record(&self, ns: u64) {
        let c = &self.counts[Self::slot(ns)];
        c.store(c.load(Ordering::Relaxed).saturating_add(1), Ordering::Release);
    }

    /// The zero bucket's count; `out` gets the counts of native buckets
    /// `ZERO_INDEX + 1` onwards.
    pub(crate) fn read(&self, out: &mut Vec<u64>) -> u64 {
        out.clear();
        out.extend(self.counts[1..].iter().map(|c| u64::from(c.load(Ordering::Acquire))));
        u64::from(self.counts[0].load(Ordering::Acquire))
    }

    /// The values at quantiles `qs` (each 0..=1), each the upper bound of its
    /// bucket (zero in the zero bucket), or `None` when nothing is recorded.
    pub(crate) fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[Duration; N]> {
        let mut counts = Vec::with_capacity(self.counts.len());
        let zero = self.read(&mut counts);
        counts.insert(0, zero);
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        Some(qs.map(|q| {
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            let slot = counts
                .iter()
                .position(|&c| {
                    seen += c;
                    seen >= rank
                })
                .unwrap_or(counts.len() - 1);
            if slot == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(native_upper(ZERO_INDEX + slot as i32))
            }
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
    fn native_buckets_are_powers_of_two_to_the_sixteenth() {
        for (j, b) in MANTISSA_BOUNDS.iter().enumerate() {
            assert_eq!(*b, (j as f64 / 16.0).exp2() / 2.0, "bound {j}");
        }
        // Upper bounds are inclusive: a bound is in its own bucket, the next float above is not.
        for i in [-319, -200, -17, -16, -1, 0, 1, 15, 16, 17, 100, 112] {
            let upper = native_upper(i);
            assert_eq!(native_index(upper), i, "2^({i}/16)");
            assert_eq!(native_index(f64::from_bits(upper.to_bits() + 1)), i + 1);
            assert_eq!(native_index(f64::from_bits(upper.to_bits() - 1)), i);
        }
        assert_eq!((native_index(1.0), native_index(2.0), native_index(0.5)), (0, 16, -16));
        let i = native_index(41e-6);
        assert!(native_upper(i - 1) < 41e-6 && 41e-6 <= native_upper(i), "{i}");
    }

    #[test]
    fn quantiles_count_into_native_buckets_zero_bucket_and_top() {
        let q = Quantiles::default();
        assert_eq!(q.quantiles([0.5]), None);
        for ns in [0, 500, 953, 1_000, 1_000_000_000, 1_000_000_000, 500_000_000_000] {
            q.record(ns);
        }
        let mut counts = Vec::new();
        assert_eq!(q.read(&mut counts), 3, "0, 500 and 953 ns are at most 2^-20 s (953.7 ns)");
        assert_eq!(counts.len(), (TOP_INDEX - ZERO_INDEX) as usize);
        let at = |i: i32| counts[(i - ZERO_INDEX - 1) as usize];
        assert_eq!(at(native_index(1e-6)), 1);
        assert_eq!(at(0), 2, "1 s is the upper bound of bucket 0");
        assert_eq!(at(TOP_INDEX), 1, "500 s is counted in the top bucket");
        assert_eq!(counts.iter().sum::<u64>(), 4);
        assert_eq!(
            q.quantiles([0.0, 0.4, 0.7]),
            Some([Duration::ZERO, Duration::ZERO, Duration::from_secs(1)])
        );
        let q = Quantiles::default();
        for us in 1..=100u64 {
            q.record(us * 1_000);
        }
        let [p50, p99] = q.quantiles([0.5, 0.99]).unwrap();
        assert!((50_000..=52_200).contains(&p50.as_nanos()), "{p50:?}");
        assert!((99_000..=103_400).contains(&p99.as_nanos()), "{p99:?}");
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
