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
//! batched through `sys` (`sendmmsg`/`recvmmsg`, optionally
//! GSO/GRO). Flows keep their books in a fixed ring per flow, allocate
//! nothing per probe, and meet only at the end to merge counts and histograms.
//!
//! # Pipeline
//!
//! Each file is one step and imports only files listed above it, so a
//! reader can go top to bottom:
//!
//! - `clock`, `stamp_tlvs`, `stamp`, `probe`: time in nanoseconds; the TLVs
//!   replies carried back, counted by type; STAMP test packets
//!   (`--stamp`) and what their reflections add up to; the probe payload,
//!   built for sequence number N and read back from a reply (the seam: a
//!   STAMP packet is the other format).
//! - `config`: [`BenchConfig`], [`Load`] and their limits.
//! - `socket`, `send`, `receive`: the flow's connected socket; pacing
//!   ([`Load::Rate`]'s schedule) and batched sends; batched receives.
//! - `record`: counts and round trips per interval of the run ([`Timeline`]).
//! - `inflight`: matching replies to the probes in flight: answered, lost,
//!   late, duplicated, reordered or mismatched; each answer is handed on to
//!   `record`.
//! - `loops`: one flow's closed or open loop, which drives the steps above.
//! - `report`: [`Report`], plain data made from what the flows counted
//!   (with `--stamp`, its [`StampReport`]).
//! - `render`: the text table, JSON, CSV and SVG, each reading only a [`Report`].
//! - `progress`: the once-a-second line on stderr while a run goes on.
//!
//! This file wires them: it starts a thread per flow and merges their results.
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

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub(crate) mod clock;
mod config;
mod inflight;
mod loops;
pub(crate) mod probe;
mod progress;
mod receive;
mod record;
mod render;
mod report;
mod send;
mod socket;
pub(crate) mod stamp;
mod stamp_tlvs;

pub use config::{
    BenchConfig, Load, StampConfig, MAX_FLOWS, MAX_RATE, MAX_RUN, MAX_TIMEOUT, MAX_WINDOW,
    MIN_RATE, MIN_SIZE, STAMP_PORT,
};
pub use record::{Interval, Percentile, Timeline, MAX_INTERVALS};
pub use render::{CSV_HEADER, JSON_FIELDS, STAMP_JSON_FIELDS};
pub use report::{
    CosReport, Delay, ReplySizes, Report, Rtt, StampReport, TlvResult, TlvResults, SCHEMA,
};

use inflight::Tally;
use loops::{FlowResult, Live, Run};
use progress::Progress;
use record::{Counts, Merger, Shape};
use stamp::StampTally;

/// Runs the bench to the end and reports. Returns an error if the
/// configuration is invalid (`InvalidInput`), nothing listens at the target
/// (`ConnectionRefused`, "no server at ADDR": "port unreachable" before any
/// reply), or a socket fails. A target that goes away after it answered is
/// no error: the run goes on, its probes lost, the reports counted in
/// [`Report::unreachable`].
pub fn run(config: &BenchConfig) -> io::Result<Report> {
    run_until(config, &AtomicBool::new(false))
}

/// [`run`], but setting `stop` (from a Ctrl-C handler, say) ends the sending
/// early; replies still in flight are collected and the report covers the
/// time until then.
pub fn run_until(config: &BenchConfig, stop: &AtomicBool) -> io::Result<Report> {
    let invalid = |why| io::Error::new(io::ErrorKind::InvalidInput, why);
    config.validate().map_err(invalid)?;
    let format = config.format().map_err(invalid)?;
    let measure_from_ns = clock::nanos(config.warmup);
    let run = Run {
        config,
        format,
        start: Instant::now(),
        measure_from_ns,
        end_ns: measure_from_ns + clock::nanos(config.duration),
        stop,
        abort: AtomicBool::new(false),
        heard: AtomicBool::new(false),
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
                        Load::Window(window) => loops::closed(run, window, live),
                        Load::Rate(rate) => loops::open(run, index, rate, live),
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
    let mut stamp: Option<StampTally> = None;
    for r in results {
        if let Some(mut st) = r.stamp {
            let lost = r.tally.sent.saturating_sub(r.tally.answered);
            st.split(lost, r.tally.answered);
            stamp.get_or_insert_with(StampTally::default).add(&st);
        }
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
    report.stamp = stamp.map(|st| StampReport::new(config, &st, report.answered));
    if let (Some(merger), Some(counts)) = (run.timeline.as_ref(), intervals) {
        report.timeline = Some(merger.timeline(&counts, clock::nanos(measured), &rtt));
    }
    Ok(report)
}
