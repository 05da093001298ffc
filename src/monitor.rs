//! What the server shows as datagrams arrive, kept off the reply path.
//!
//! Workers never write to stderr. They hand a fixed-size sample to a printer
//! thread through a bounded channel, and only when the printer has asked for one;
//! everything else is a counted "N more". Warnings take the same road. A slow or
//! unread stderr therefore stalls the printer, never a reply.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::escape;
use crate::logging::LogFormat;

/// Bytes of each shown message kept for display.
const PREVIEW: usize = 64;
/// At most this many datagram lines a second on average, after a first burst
/// of as many; the rest are summarised.
const LINES_PER_SEC: f64 = 20.0;
const BURST: u32 = 20;

/// A sampled datagram: fixed size, so taking one allocates nothing.
struct Sample {
    from: SocketAddr,
    len: usize,
    preview: [u8; PREVIEW],
}

enum Event {
    Sample(Sample),
    Warning(String),
}

/// The workers' side of the monitor. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Monitor {
    tx: SyncSender<Event>,
    /// Sample lines the printer has room for now: workers take one each.
    budget: AtomicU32,
    /// Datagrams not shown since the last summary line.
    unseen: Arc<AtomicU64>,
    /// Signalled by the printer when it is done.
    done: Mutex<Option<Receiver<()>>>,
    show_datagrams: bool,
}

impl Monitor {
    /// Starts the printer thread, writing to stderr. With `show_datagrams`
    /// false only warnings are printed (`--quiet`).
    pub fn start(show_datagrams: bool, format: LogFormat) -> Arc<Monitor> {
        let (tx, rx) = mpsc::sync_channel(64);
        let (done_tx, done_rx) = mpsc::channel();
        let unseen = Arc::new(AtomicU64::new(0));
        let monitor = Arc::new(Monitor {
            tx,
            budget: AtomicU32::new(if show_datagrams { BURST } else { 0 }),
            unseen: Arc::clone(&unseen),
            done: Mutex::new(Some(done_rx)),
            show_datagrams,
        });
        let weak = Arc::downgrade(&monitor);
        // Detached: it ends when the workers drop their handles, or with the
        // process if stderr is blocked for good.
        let spawned = thread::Builder::new().name("shout-monitor".into()).spawn(move || {
            print_loop(rx, weak, &unseen, format, std::io::stderr());
            let _ = done_tx.send(());
        });
        if spawned.is_err() {
            // No printer: `offer` then finds the channel closed and shows nothing.
            monitor.budget.store(0, Relaxed);
        }
        monitor
    }

    /// Drops this handle and waits (briefly: stderr may be stuck) for the printer
    /// to write what it holds, so its last lines come before a summary.
    pub fn finish(self: Arc<Self>, patience: Duration) {
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        drop(self);
        if let Some(done) = done {
            let _ = done.recv_timeout(patience);
        }
    }

    /// Offers one datagram for display. Costs one relaxed load unless the
    /// printer is waiting for a sample.
    #[inline]
    pub fn offer(&self, from: SocketAddr, payload: &[u8]) -> bool {
        let budget = self.budget.load(Relaxed);
        // Losing the race to another worker only means this one is not shown.
        if budget == 0
            || self.budget.compare_exchange(budget, budget - 1, Relaxed, Relaxed).is_err()
        {
            return false;
        }
        let mut preview = [0u8; PREVIEW];
        let n = payload.len().min(PREVIEW);
        preview[..n].copy_from_slice(&payload[..n]);
        let sample = Sample { from, len: payload.len(), preview };
        matches!(self.tx.try_send(Event::Sample(sample)), Ok(()))
    }

    /// Counts datagrams that were not shown.
    #[inline]
    pub fn add_unseen(&self, n: u64) {
        if n != 0 && self.show_datagrams {
            self.unseen.fetch_add(n, Relaxed);
        }
    }

    /// Queues a warning line; dropped (never blocking) if the printer is behind.
    pub fn warn(&self, text: String) {
        // Full means the printer is stuck; the counters in the summary still tell.
        let _ = self.tx.try_send(Event::Warning(text));
    }
}

/// One worker's warnings, at most one a second, with a count of those held back.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    warned_at: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// Passes `what` on to the monitor unless a warning went out less than a second ago.
    pub(crate) fn warn(&mut self, monitor: &Monitor, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.warned_at.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            self.held += 1;
            return;
        }
        let held = std::mem::take(&mut self.held);
        let suffix =
            if held > 0 { format!(" ({held} similar warnings held back)") } else { String::new() };
        monitor.warn(format!("{what}{suffix}"));
        self.warned_at = Some(now);
    }

    /// Says how many were held back since the last one, if any.
    pub(crate) fn finish(&mut self, monitor: &Monitor) {
        if self.held > 0 {
            monitor.warn(format!("{} similar warnings held back", std::mem::take(&mut self.held)));
        }
    }
}

fn print_loop(
    rx: Receiver<Event>,
    monitor: std::sync::Weak<Monitor>,
    unseen: &AtomicU64,
    format: LogFormat,
    mut out: impl Write,
) {
    // Refills the workers' budget at LINES_PER_SEC, never above BURST.
    let mut tokens = 0.0;
    let mut refilled = Instant::now();
    let mut next_summary = Instant::now() + Duration::from_secs(1);
    loop {
        let wait =
            next_summary.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok(Event::Sample(s)) => {
                let shown = &s.preview[..s.len.min(PREVIEW)];
                let more = if s.len > PREVIEW { "..." } else { "" };
                match format {
                    LogFormat::Text => {
                        let _ =
                            writeln!(out, "from {} ({} B): {}{more}", s.from, s.len, escape(shown));
                    }
                    LogFormat::Json => tracing::info!(
                        target: "shout",
                        event = "datagram",
                        from = %s.from,
                        len = s.len,
                        msg = %format_args!("{}{more}", escape(shown)),
                        "datagram"
                    ),
                }
            }
            Ok(Event::Warning(text)) => {
                tracing::warn!("{text}");
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        tokens = (tokens + now.duration_since(refilled).as_secs_f64() * LINES_PER_SEC)
            .min(f64::from(BURST));
        refilled = now;
        // Once the workers are gone the channel disconnects, after its last events.
        if let Some(m) = monitor.upgrade().filter(|m| m.show_datagrams) {
            let room = BURST.saturating_sub(m.budget.load(Relaxed));
            let grant = (tokens as u32).min(room);
            if grant > 0 {
                m.budget.fetch_add(grant, Relaxed);
                tokens -= f64::from(grant);
            }
        }
        if now >= next_summary {
            next_summary = now + Duration::from_secs(1);
            report_unseen(unseen, format, &mut out);
        }
    }
    report_unseen(unseen, format, &mut out);
}

fn report_unseen(unseen: &AtomicU64, format: LogFormat, out: &mut impl Write) {
    let n = unseen.swap(0, Relaxed);
    if n > 0 {
        match format {
            LogFormat::Text => {
                let _ = writeln!(out, "... {n} more datagrams not shown");
            }
            LogFormat::Json => {
                tracing::info!(target: "shout", event = "unseen", count = n, "datagrams not shown")
            }
        }
    }
}
