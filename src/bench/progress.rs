//! The progress line: once a second on stderr, from the flows' [`Live`]
//! counters, while a run goes on.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::loops::{Live, Run};
use crate::duration::human;

/// The once-a-second line on stderr.
pub(super) struct Progress {
    next: Instant,
    /// When the last line was shown, and the answers counted then.
    last: (Instant, u64),
}

impl Progress {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Progress { next: now + Duration::from_secs(1), last: (now, 0) }
    }

    pub(super) fn until_next(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    pub(super) fn show(&mut self, run: &Run<'_>, lives: &[Live]) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        let sum = |f: fn(&Live) -> u64| lives.iter().map(f).sum::<u64>();
        let sent = sum(|l| l.sent.load(Ordering::Relaxed));
        let answered = sum(|l| l.answered.load(Ordering::Relaxed));
        let overdue = sum(|l| l.overdue.load(Ordering::Relaxed));
        // The worst flow's: merging their histograms here would mean sharing them.
        let p99 = lives.iter().map(|l| l.p99_ns.load(Ordering::Relaxed)).max().unwrap_or(0);
        let (at, before) = self.last;
        // Answers are counted from the end of the warmup: so is the time.
        let since = at.max(run.start + run.config.warmup);
        let rate = answered.saturating_sub(before) as f64
            / now.duration_since(since).as_secs_f64().max(1e-3);
        self.last = (now, answered);
        let elapsed = run.now_ns();
        let secs = |ns: u64| ns as f64 / 1e9;
        let line = if elapsed < run.measure_from_ns {
            format!("warmup, {:.1} s left", secs(run.measure_from_ns - elapsed))
        } else {
            let pct = if sent > 0 { overdue as f64 * 100.0 / sent as f64 } else { 0.0 };
            let p99 =
                if p99 > 0 { human(Duration::from_nanos(p99)).to_string() } else { "-".into() };
            format!(
                "{:.1} s ({:.1} s left)  {rate:.0} answers/s  lost {overdue} ({pct:.2}%)  p99 {p99}",
                secs(elapsed - run.measure_from_ns),
                secs(run.end_ns.saturating_sub(elapsed)),
            )
        };
        let _ = write!(io::stderr().lock(), "\r{line}\x1b[K");
    }

    pub(super) fn clear(self) {
        let _ = write!(io::stderr().lock(), "\r\x1b[K");
    }
}
