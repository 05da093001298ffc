//! Recording the run over time: counts and round-trip percentiles per
//! interval, and the percentile curve of the whole run, as a [`Timeline`]
//! (which `--csv` and `--plot` render).
//!
//! Every row counts the probes *sent* in its interval: how many, how many were
//! answered by the end of the run, and the percentiles of their round trips.
//! So the rows add up to the report's totals, and open loop charges a stall to
//! the probes it delayed, as the report does.
//!
//! Memory is fixed before the run and nothing is allocated per probe:
//!
//! - Each flow has two counters per interval (sent, answered): at most
//!   [`MAX_INTERVALS`] intervals, the interval growing for longer runs.
//! - A round trip goes into a small histogram of its probe's interval (two
//!   significant digits). A flow keeps only the intervals that can still get
//!   replies in time, a ring of `timeout / interval + 2`; once an interval's
//!   last probe has timed out, the flow adds its histogram to the run's
//!   [`Merger`] (one lock per interval, not per probe) and reuses it. When
//!   every flow has added its share, the merger keeps the p50 and p99 and
//!   recycles the histogram. A reply after its interval closed (a late one)
//!   counts in `answered` but not in that interval's percentiles.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::clock::nanos;

/// Most intervals in a run; longer runs get longer intervals.
pub const MAX_INTERVALS: u64 = 86_400;
/// Runs shorter than this get 100 ms intervals, longer ones 1 s.
const SHORT_RUN: Duration = Duration::from_secs(5);
/// Points per halving of the distance to 100% on the percentile curve, as
/// HdrHistogram's `outputPercentileDistribution` does by default.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The run over time, kept when [`BenchConfig::timeline`](super::BenchConfig::timeline)
/// is set. Not part of the JSON report.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// Length of each interval: 100 ms for runs under 5 s, 1 s for longer
    /// ones, more for runs of more than [`MAX_INTERVALS`] seconds.
    pub interval: Duration,
    /// One row per interval of the measured time, the last one possibly shorter.
    pub rows: Vec<Interval>,
    /// Round-trip time by percentile over the whole run, as HdrHistogram's
    /// percentile distribution lists it; empty if nothing was answered. The
    /// last point is the maximum, at quantile 1.
    pub percentiles: Vec<Percentile>,
}

/// The probes sent in one interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// End of the interval, in seconds since counting began.
    pub elapsed_s: f64,
    /// Probes sent in the interval.
    pub sent: u64,
    /// Of those, how many were answered (by the end of the run).
    pub answered: u64,
    /// `sent - answered`.
    pub lost: u64,
    /// `answered` per second of the interval.
    pub answers_per_s: f64,
    /// Median round trip of the answers that came within the timeout, in
    /// microseconds (two significant digits); `None` if there were none.
    pub p50_us: Option<f64>,
    /// 99th percentile, likewise.
    pub p99_us: Option<f64>,
}

/// One point of the percentile curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentile {
    /// The fraction of round trips at or below `rtt_us`, 0 to 1.
    pub quantile: f64,
    /// Round-trip time in microseconds.
    pub rtt_us: f64,
}

/// How the measured time is cut: `count` intervals of `interval_ns` from `start_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    start_ns: u64,
    interval_ns: u64,
    count: usize,
}

impl Shape {
    /// Intervals for `duration` of counting that begins at `start_ns`.
    pub(crate) fn new(start_ns: u64, duration: Duration) -> Shape {
        let base =
            if duration < SHORT_RUN { Duration::from_millis(100) } else { Duration::from_secs(1) };
        let interval = if duration.as_nanos().div_ceil(base.as_nanos()) <= MAX_INTERVALS.into() {
            base
        } else {
            Duration::from_secs(duration.as_secs().div_ceil(MAX_INTERVALS))
        };
        let interval_ns = nanos(interval);
        let count = nanos(duration).div_ceil(interval_ns).max(1);
        // At most MAX_INTERVALS (+1 from rounding), so it fits.
        Shape { start_ns, interval_ns, count: count as usize }
    }

    /// The interval of a probe sent at `sent_ns`; `None` in the warmup. A probe
    /// sent just after the end (the last send call of a flow) goes in the last.
    #[inline]
    fn index(&self, sent_ns: u64) -> Option<usize> {
        let since = sent_ns.checked_sub(self.start_ns)?;
        Some(((since / self.interval_ns) as usize).min(self.count - 1))
    }

    /// When interval `index` can take no more replies in time.
    fn closes_at(&self, index: usize, timeout_ns: u64) -> u64 {
        self.start_ns
            .saturating_add((index as u64 + 1).saturating_mul(self.interval_ns))
            .saturating_add(timeout_ns)
    }

    /// A histogram for one interval's round trips: the longest that can go in
    /// while the interval is open is a timeout plus an interval.
    fn histogram(&self, timeout_ns: u64) -> Histogram<u64> {
        let high = timeout_ns.saturating_add(self.interval_ns).max(2);
        // Valid bounds: low 1, high >= 2, two significant digits.
        Histogram::new_with_bounds(1, high, 2).expect("valid histogram bounds")
    }
}

/// A flow's per-interval counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) sent: Vec<u64>,
    pub(crate) answered: Vec<u64>,
}

impl Counts {
    pub(crate) fn new(shape: Shape) -> Counts {
        Counts { sent: vec![0; shape.count], answered: vec![0; shape.count] }
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        for (a, b) in self.sent.iter_mut().zip(&other.sent) {
            *a += b;
        }
        for (a, b) in self.answered.iter_mut().zip(&other.answered) {
            *a += b;
        }
    }
}

/// Counts a flow's probes by interval: for an open-loop sender, which has
/// no tracker.
pub(crate) struct SentCounter {
    shape: Shape,
    pub(crate) sent: Vec<u64>,
}

impl SentCounter {
    pub(crate) fn new(shape: Shape) -> Self {
        SentCounter { shape, sent: vec![0; shape.count] }
    }

    /// A measured probe went out at `sent_ns`.
    #[inline]
    pub(crate) fn on_send(&mut self, sent_ns: u64) {
        if let Some(i) = self.shape.index(sent_ns) {
            self.sent[i] += 1;
        }
    }
}

/// One flow's intervals: counts for all, histograms for those still open.
pub(crate) struct Recorder {
    shape: Shape,
    timeout_ns: u64,
    counts: Counts,
    /// Interval `i` uses `open[i % open.len()]` while `closed <= i`.
    open: Box<[Histogram<u64>]>,
    /// Every interval below this has been handed to the merger.
    closed: usize,
}

impl Recorder {
    pub(crate) fn new(shape: Shape, timeout: Duration) -> Self {
        let timeout_ns = nanos(timeout);
        let ring =
            (timeout_ns.div_ceil(shape.interval_ns).saturating_add(2) as usize).min(shape.count);
        Recorder {
            shape,
            timeout_ns,
            counts: Counts::new(shape),
            open: (0..ring).map(|_| shape.histogram(timeout_ns)).collect(),
            closed: 0,
        }
    }

    /// A measured probe went out at `sent_ns`.
    #[inline]
    pub(crate) fn on_send(&mut self, sent_ns: u64) {
        if let Some(i) = self.shape.index(sent_ns) {
            self.counts.sent[i] += 1;
        }
    }

    /// A measured probe sent at `sent_ns` got its first reply after `rtt_ns`.
    #[inline]
    pub(crate) fn on_answer(&mut self, sent_ns: u64, rtt_ns: u64) {
        let Some(i) = self.shape.index(sent_ns) else { return };
        self.counts.answered[i] += 1;
        if (self.closed..self.closed + self.open.len()).contains(&i) {
            let slot = i % self.open.len();
            self.open[slot].saturating_record(rtt_ns);
        }
    }

    /// Hands the merger every interval whose probes have all timed out by `now_ns`.
    pub(crate) fn close_until(&mut self, now_ns: u64, merger: &Merger) {
        while self.closed < self.shape.count
            && now_ns >= self.shape.closes_at(self.closed, self.timeout_ns)
        {
            self.close_next(merger);
        }
    }

    /// Hands the merger every interval not yet closed: the flow is done.
    pub(crate) fn finish(&mut self, merger: &Merger) {
        while self.closed < self.shape.count {
            self.close_next(merger);
        }
    }

    fn close_next(&mut self, merger: &Merger) {
        let slot = self.closed % self.open.len();
        merger.add(self.closed, &self.open[slot]);
        self.open[slot].reset();
        self.closed += 1;
    }

    pub(crate) fn into_counts(self) -> Counts {
        self.counts
    }
}

/// Where the flows' interval histograms meet, shared by the run.
pub(crate) struct Merger {
    shape: Shape,
    timeout_ns: u64,
    flows: usize,
    state: Mutex<MergeState>,
}

struct MergeState {
    /// Intervals some flows have added and others not yet: a few at a time,
    /// since flows close intervals by the same clock.
    pending: VecDeque<Pending>,
    spare: Vec<Histogram<u64>>,
    /// p50 and p99 in nanoseconds of each interval every flow has added.
    quantiles: Vec<Option<(u64, u64)>>,
}

struct Pending {
    index: usize,
    hist: Histogram<u64>,
    added: usize,
}

impl Merger {
    pub(crate) fn new(shape: Shape, timeout: Duration, flows: usize) -> Self {
        Merger {
            shape,
            timeout_ns: nanos(timeout),
            flows,
            state: Mutex::new(MergeState {
                pending: VecDeque::new(),
                spare: Vec::new(),
                quantiles: vec![None; shape.count],
            }),
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    /// One flow's round trips for interval `index`; each flow adds each interval once.
    fn add(&self, index: usize, hist: &Histogram<u64>) {
        // A panicking flow fails the run; its half-merged state is never read.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let MergeState { pending, spare, quantiles } = &mut *state;
        let at = match pending.iter().position(|p| p.index == index) {
            Some(at) => at,
            None => {
                let hist = spare.pop().unwrap_or_else(|| self.shape.histogram(self.timeout_ns));
                pending.push_back(Pending { index, hist, added: 0 });
                pending.len() - 1
            }
        };
        let p = &mut pending[at];
        if !hist.is_empty() {
            // Both made by `Shape::histogram` with the same bounds: every value fits.
            p.hist.add(hist).expect("same histogram bounds");
        }
        p.added += 1;
        if p.added == self.flows {
            let mut done = pending.remove(at).expect("index from position");
            if !done.hist.is_empty() {
                quantiles[index] =
                    Some((done.hist.value_at_quantile(0.5), done.hist.value_at_quantile(0.99)));
            }
            done.hist.reset();
            spare.push(done.hist);
        }
    }

    /// The run's timeline from the flows' summed counts, over `measured_ns` of
    /// counting, with the percentile curve of the merged histogram `rtt`.
    pub(crate) fn timeline(
        &self,
        counts: &Counts,
        measured_ns: u64,
        rtt: &Histogram<u64>,
    ) -> Timeline {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let shape = self.shape;
        let rows_n = (measured_ns.div_ceil(shape.interval_ns) as usize).min(shape.count);
        let us = |ns: u64| ns as f64 / 1e3;
        let mut rows: Vec<Interval> = Vec::with_capacity(rows_n);
        for i in 0..shape.count {
            let (sent, answered) = (counts.sent[i], counts.answered[i]);
            if i >= rows_n {
                // Stopped early: anything sent after the stop joins the last row.
                if let Some(last) = rows.last_mut() {
                    last.sent += sent;
                    last.answered += answered;
                }
                continue;
            }
            let begin = i as u64 * shape.interval_ns;
            let end = (begin + shape.interval_ns).min(measured_ns);
            let q = state.quantiles[i];
            rows.push(Interval {
                elapsed_s: end as f64 / 1e9,
                sent,
                answered,
                lost: 0,
                answers_per_s: 0.0,
                p50_us: q.map(|(p50, _)| us(p50)),
                p99_us: q.map(|(_, p99)| us(p99)),
            });
        }
        let mut begin = 0.0;
        for r in &mut rows {
            r.lost = r.sent.saturating_sub(r.answered);
            let secs = r.elapsed_s - begin;
            r.answers_per_s = if secs > 0.0 { r.answered as f64 / secs } else { 0.0 };
            begin = r.elapsed_s;
        }
        let percentiles = if rtt.is_empty() {
            Vec::new()
        } else {
            rtt.iter_quantiles(TICKS_PER_HALF_DISTANCE)
                .map(|v| Percentile {
                    quantile: v.quantile_iterated_to(),
                    rtt_us: us(v.value_iterated_to()),
                })
                .collect()
        };
        Timeline { interval: Duration::from_nanos(shape.interval_ns), rows, percentiles }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn intervals_by_run_length() {
        let shape = |d| Shape::new(0, d);
        assert_eq!(shape(Duration::from_millis(1500)).interval_ns, 100 * MS);
        assert_eq!(shape(Duration::from_millis(1550)).count, 16);
        assert_eq!(shape(Duration::from_secs(5)).interval_ns, 1000 * MS);
        let month = shape(crate::bench::config::MAX_RUN);
        assert_eq!(month.interval_ns, 30 * 1000 * MS);
        assert!(month.count as u64 <= MAX_INTERVALS);
        let s = Shape::new(50, Duration::from_millis(300));
        assert_eq!(
            [s.index(49), s.index(50), s.index(150), s.index(10_000 * MS)],
            [None, Some(0), Some(0), Some(2)]
        );
    }

    #[test]
    fn flows_merge_by_interval() {
        let shape = Shape::new(0, Duration::from_millis(300));
        let timeout = Duration::from_millis(100);
        let merger = Merger::new(shape, timeout, 2);
        let mut a = Recorder::new(shape, timeout);
        let mut b = Recorder::new(shape, timeout);
        assert_eq!(a.open.len(), 3);
        for (r, rtt) in [(&mut a, 1_000), (&mut b, 3_000)] {
            for _ in 0..50 {
                r.on_send(10 * MS);
                r.on_answer(10 * MS, rtt);
            }
            r.on_send(150 * MS); // lost
        }
        a.on_send(20 * MS); // answered late, below
        a.close_until(199 * MS, &merger);
        assert_eq!(a.closed, 0);
        a.close_until(200 * MS, &merger);
        assert_eq!(a.closed, 1);
        // A late reply: counted, but interval 0 is closed for percentiles.
        a.on_answer(20 * MS, 500 * MS);
        a.finish(&merger);
        b.finish(&merger);
        let mut counts = Counts::new(shape);
        counts.add(&a.into_counts());
        counts.add(&b.into_counts());
        let empty = Histogram::new(2).unwrap();
        let t = merger.timeline(&counts, 250 * MS, &empty);
        assert_eq!(t.rows.len(), 3);
        let r0 = t.rows[0];
        assert_eq!((r0.sent, r0.answered, r0.lost), (101, 101, 0));
        assert!((r0.answers_per_s - 1010.0).abs() < 1e-6, "{r0:?}");
        assert!((r0.p50_us.unwrap() - 1.0).abs() < 0.01, "{r0:?}");
        assert!((r0.p99_us.unwrap() - 3.0).abs() < 0.03, "{r0:?}");
        let r1 = t.rows[1];
        assert_eq!((r1.sent, r1.answered, r1.lost, r1.p99_us), (2, 0, 2, None));
        assert!((t.rows[2].elapsed_s - 0.25).abs() < 1e-9, "last row is partial");
        assert!(t.percentiles.is_empty());
        assert!(merger.state.lock().unwrap().pending.is_empty());
        // The CSV of the merger's own output, not of a hand-built timeline.
        let mut csv = Vec::new();
        t.write_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], crate::bench::CSV_HEADER);
        assert_eq!(lines[2], "0.200,2,0,2,0.0,,");
    }

    #[test]
    fn percentile_curve_ends_at_the_maximum() {
        let shape = Shape::new(0, Duration::from_secs(1));
        let merger = Merger::new(shape, Duration::from_secs(1), 1);
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 1_000).unwrap();
        }
        let t = merger.timeline(&Counts::new(shape), 1_000 * MS, &h);
        let p = &t.percentiles;
        assert!(p.len() > 50, "{}", p.len());
        assert!(p.windows(2).all(|w| w[0].quantile <= w[1].quantile && w[0].rtt_us <= w[1].rtt_us));
        let last = p.last().unwrap();
        assert_eq!(last.quantile, 1.0);
        assert!((last.rtt_us - 10_000.0).abs() < 10.0, "{last:?}");
    }
}
