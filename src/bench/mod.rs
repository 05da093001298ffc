//! The load generator: flows of numbered probes, in a window or at a rate,
//! every reply checked and timed.
//!
//! Each probe carries its sequence number and send time in bytes uppercasing
//! cannot change ([`MIN_SIZE`] of them, padded with `.`), so any echo or
//! uppercase server can be measured and every reply checked byte for byte.
//!
//! - Closed loop ([`Load::Window`]): each flow keeps `N` probes in flight and
//!   sends the next as one is answered or given up after the timeout.
//! - Open loop ([`Load::Rate`]): probes go out on a fixed schedule whether or
//!   not the server keeps up, and round trips count from the *intended* send
//!   time, so a stalled server shows in the latency instead of slowing the
//!   bench down (coordinated omission).
//!
//! Each flow is a socket of its own, so a distinct source port; its I/O is
//! batched through [`sys`](crate::sys) (`sendmmsg`/`recvmmsg`, optionally
//! GSO/GRO). Flows keep their books in a fixed ring per flow, allocate
//! nothing per probe, and meet only at the end to merge counts and histograms.
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//! use shout::bench::{self, BenchConfig, Load};
//! use shout::{Server, ServerConfig};
//!
//! let config = ServerConfig { binds: vec!["127.0.0.1:0".parse().unwrap()], ..Default::default() };
//! let server = Server::bind(config).unwrap();
//! let stop = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     s.spawn(|| server.run(&stop));
//!     let bench = BenchConfig {
//!         target: server.local_addr(),
//!         load: Load::Window(8),
//!         duration: Duration::from_millis(200),
//!         ..Default::default()
//!     };
//!     let report = bench::run(&bench).unwrap();
//!     assert!(report.answered > 0);
//!     assert_eq!(report.mismatched, 0);
//!     stop.store(true, std::sync::atomic::Ordering::Relaxed);
//! });
//! ```

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::duration::human;
use crate::server::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use crate::Expect;

mod flow;
mod plot;
mod probe;
mod report;
mod timeline;
mod tracker;

pub use report::{Report, Rtt, JSON_FIELDS, SCHEMA};
pub use timeline::{Interval, Percentile, Timeline, CSV_HEADER, MAX_INTERVALS};

use flow::{FlowResult, Live, Run};
use timeline::{Counts, Merger, Shape};
use tracker::Tally;

/// The smallest probe: sequence number and send time, no filler.
pub const MIN_SIZE: usize = probe::HEADER_LEN;
/// Most probes a closed-loop flow keeps in flight.
pub const MAX_WINDOW: usize = flow::CLOSED_RING / 4;
/// Most flows in one run.
pub const MAX_FLOWS: usize = 1024;
/// Longest run (warmup plus duration): 30 days.
pub const MAX_RUN: Duration = Duration::from_secs(30 * 24 * 3600);

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
    /// curve, in [`Report::timeline`] (for `--csv` and `--plot`). Costs two
    /// counters per interval and a few small histograms per flow; nothing per probe.
    pub timeline: bool,
    /// Never sleep or block waiting for replies: each thread spins on its
    /// socket (and an open-loop sender on its clock), for the least delay
    /// added to the measured round trips. Costs a core per thread, see
    /// [`threads`](BenchConfig::threads); with fewer cores, threads take turns
    /// and measure each other instead.
    pub busy_poll: bool,
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
        Ok(())
    }
}

/// Runs the bench to the end and reports. Returns an error if the
/// configuration is invalid (`InvalidInput`), nothing listens at the target
/// (`ConnectionRefused`, "no server at ADDR"), or a socket fails.
pub fn run(config: &BenchConfig) -> io::Result<Report> {
    run_until(config, &AtomicBool::new(false))
}

/// [`run`], but setting `stop` (from a Ctrl-C handler, say) ends the sending
/// early; replies still in flight are collected and the report covers the
/// time until then.
pub fn run_until(config: &BenchConfig, stop: &AtomicBool) -> io::Result<Report> {
    config.validate().map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    let measure_from_ns = flow::nanos(config.warmup);
    let run = Run {
        config,
        start: Instant::now(),
        measure_from_ns,
        end_ns: measure_from_ns + flow::nanos(config.duration),
        stop,
        abort: AtomicBool::new(false),
        spin: config.busy_poll
            || config.threads() <= thread::available_parallelism().map_or(1, |n| n.get()),
        busy: config.busy_poll,
        timeline: config.timeline.then(|| {
            Merger::new(Shape::new(measure_from_ns, config.duration), config.timeout, config.flows)
        }),
    };
    let lives: Vec<Live> = (0..config.flows).map(|_| Live::default()).collect();
    let results = thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut handles = Vec::with_capacity(config.flows);
        for (index, live) in lives.iter().enumerate() {
            let done = done_tx.clone();
            let run = &run;
            let spawned = thread::Builder::new().name(format!("shout-bench-{index}")).spawn_scoped(
                scope,
                move || {
                    let result = match config.load {
                        Load::Window(window) => flow::closed(run, window, live),
                        Load::Rate(rate) => flow::open(run, index, rate, live),
                    };
                    if result.is_err() {
                        run.abort.store(true, Ordering::Relaxed);
                    }
                    // The channel only wakes the progress loop; a closed one is fine.
                    let _ = done.send(());
                    result
                },
            );
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    run.abort.store(true, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        drop(done_tx);
        let mut progress = config.progress.then(Progress::new);
        loop {
            let wait = progress.as_ref().map_or(Duration::from_secs(3600), |p| p.until_next());
            match done_rx.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let Some(p) = progress.as_mut() {
                p.show(&run, &lives);
            }
        }
        if let Some(p) = progress {
            p.clear();
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("a bench flow panicked"))))
            .collect::<io::Result<Vec<FlowResult>>>()
    })?;
    merge(config, &run, results)
}

fn merge(config: &BenchConfig, run: &Run<'_>, results: Vec<FlowResult>) -> io::Result<Report> {
    let mut tally = Tally::default();
    let mut rtt: Option<Histogram<u64>> = None;
    let mut drops = Some(0u64);
    let mut sent_until_ns = 0;
    let mut intervals: Option<Counts> = None;
    for r in results {
        tally += r.tally;
        if let Some(c) = r.intervals {
            match intervals.as_mut() {
                None => intervals = Some(c),
                Some(total) => total.add(&c),
            }
        }
        match rtt.as_mut() {
            None => rtt = Some(r.rtt),
            Some(total) => total
                .add(&r.rtt)
                .map_err(|err| io::Error::other(format!("merging histograms: {err:?}")))?,
        }
        drops = drops.zip(r.drops).map(|(a, b)| a + b);
        sent_until_ns = sent_until_ns.max(r.sent_until_ns);
    }
    let rtt = rtt.ok_or_else(|| io::Error::other("no flow ran"))?;
    let measured = Duration::from_nanos(sent_until_ns.saturating_sub(run.measure_from_ns));
    let mut report = Report::new(config, tally, &rtt, drops, measured);
    if let (Some(merger), Some(counts)) = (run.timeline.as_ref(), intervals) {
        report.timeline = Some(merger.timeline(&counts, flow::nanos(measured), &rtt));
    }
    Ok(report)
}

/// The once-a-second line on stderr.
struct Progress {
    next: Instant,
    /// When the last line was shown, and the answers counted then.
    last: (Instant, u64),
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress { next: now + Duration::from_secs(1), last: (now, 0) }
    }

    fn until_next(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    fn show(&mut self, run: &Run<'_>, lives: &[Live]) {
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

    fn clear(self) {
        let _ = write!(io::stderr().lock(), "\r\x1b[K");
    }
}
