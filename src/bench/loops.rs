//! One flow's loop, the step that drives the others: probes go out through
//! [`Outbox`], replies come in through [`Inbox`] and are matched by the
//! flow's [`Tracker`], which records them; at the end the flow hands back a
//! [`FlowResult`] for the report.
//!
//! Closed loop runs in one thread: refill the window, receive, repeat. Open
//! loop sends from a second thread on its [`Schedule`], so that waiting for
//! the next send time never delays reading a reply (a socket timeout is only
//! as fine as the kernel's tick; a sleep is finer).

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::clock::{self, nanos};
use super::config::{BenchConfig, MAX_WINDOW};
use super::inflight::{Rules, Tally, Tracker};
use super::probe::Format;
use super::receive::{Inbox, Wait};
use super::record::{Counts, Merger, Recorder, SentCounter};
use super::send::{Outbox, Schedule, MAX_GSO_SEGMENTS};
use super::socket::{connect, socket_error, Drops};
use super::stamp::StampTally;
use crate::sys::BATCH;

/// Closed loop's ring: a probe unanswered after this many newer ones on its
/// flow is given up even before its timeout. Four windows, at the largest.
const CLOSED_RING: usize = 4 * MAX_WINDOW;
/// Open loop's ring is sized to the probes sent within a timeout, up to this.
const MAX_OPEN_RING: usize = 1 << 21;
/// After the last probe, wait at least this long for replies.
const MIN_GRACE: Duration = Duration::from_millis(200);
/// How often counters are published for the progress line: often enough that
/// its once-a-second rate is off by 1% at most.
const PUBLISH_EVERY_NS: u64 = 10_000_000;
/// While replies are due, a flow polls this long before it sleeps.
const SPIN: Duration = Duration::from_micros(50);
/// An idle open-loop receiver starts polling this long before the next send.
const SEND_LEAD_NS: u64 = 100_000;
/// An open-loop sender sleeps until this close to a send time, then spins:
/// a sleep can overshoot by the timer slack and a wake-up, tens of µs.
const SLEEP_SLACK: Duration = Duration::from_micros(200);

/// What all flows of a run share.
pub(super) struct Run<'a> {
    pub(super) config: &'a BenchConfig,
    /// How probes are built and replies read: `config.format()`, made once.
    pub(super) format: Format,
    pub(super) start: Instant,
    /// Probes sent before this (the warmup) are not counted.
    pub(super) measure_from_ns: u64,
    /// No probe is sent at or after this.
    pub(super) end_ns: u64,
    /// Set from outside (Ctrl-C): stop sending, collect the replies, report.
    pub(super) stop: &'a AtomicBool,
    /// Set when a flow fails: every flow ends at once.
    pub(super) abort: AtomicBool,
    /// Set once any flow has received a datagram from the target. After
    /// that, "port unreachable" means it went away mid-run: counted, and the
    /// run goes on; before, that nothing listens there: the run fails.
    pub(super) heard: AtomicBool,
    /// Whether threads may poll instead of sleeping: only when each has a core
    /// of its own, or spinning threads would take turns for whole time slices.
    pub(super) spin: bool,
    /// `--busy-poll`: threads never sleep or block, whatever the cores.
    pub(super) busy: bool,
    /// Where the flows' per-interval round trips meet, when a timeline is kept.
    pub(super) timeline: Option<Merger>,
}

impl Run<'_> {
    pub(super) fn now_ns(&self) -> u64 {
        clock::since(self.start)
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Whether `err` is the target gone away after it answered: a "port
    /// unreachable" (ICMP) report, reported on the next send or receive.
    fn went_away(&self, err: &io::Error) -> bool {
        err.kind() == io::ErrorKind::ConnectionRefused && self.heard.load(Ordering::Relaxed)
    }

    fn tracker(&self, ring: usize, schedule: Option<Schedule>) -> Tracker {
        let mut tracker = Tracker::new(ring, self.rules(schedule));
        tracker.intervals =
            self.timeline.as_ref().map(|m| Recorder::new(m.shape(), self.config.timeout));
        tracker
    }

    /// How a flow waits for replies: `due` when some are.
    fn wait(&self, due: bool) -> Wait {
        if self.busy {
            Wait::Never
        } else if self.spin && due {
            Wait::SpinThenBlock(SPIN)
        } else {
            Wait::SpinThenBlock(Duration::ZERO)
        }
    }

    fn rules(&self, schedule: Option<Schedule>) -> Rules {
        Rules {
            format: self.format.clone(),
            timeout_ns: nanos(self.config.timeout),
            measure_from_ns: self.measure_from_ns,
            schedule,
        }
    }
}

/// A flow's counters as the progress line sees them.
#[derive(Debug, Default)]
pub(super) struct Live {
    pub(super) sent: AtomicU64,
    pub(super) answered: AtomicU64,
    pub(super) overdue: AtomicU64,
    pub(super) p99_ns: AtomicU64,
}

/// What a flow hands back.
pub(super) struct FlowResult {
    pub(super) tally: Tally,
    pub(super) rtt: Histogram<u64>,
    /// Replies the kernel dropped on this flow's socket (full receive queue).
    pub(super) drops: Option<u64>,
    /// When the flow stopped sending.
    pub(super) sent_until_ns: u64,
    /// Sent and answered by interval, when a timeline is kept.
    pub(super) intervals: Option<Counts>,
    /// What STAMP replies added, with `--stamp`.
    pub(super) stamp: Option<StampTally>,
}

/// Closed loop: keeps `window` probes in flight until the end, then collects.
pub(super) fn closed(run: &Run<'_>, window: usize, live: &Live) -> io::Result<FlowResult> {
    let config = run.config;
    let sock = connect(config)?;
    let mut outbox = Outbox::new(config, &run.format, window);
    let mut inbox = Inbox::new(config);
    let mut tracker = run.tracker(CLOSED_RING, None);
    let mut drops = Drops::default();
    let mut publisher = Publisher::new();
    let mut seq = 0u64;
    let mut sent_until = None;
    let mut drain_until = u64::MAX;
    while !run.aborted() {
        let now = run.now_ns();
        drops.note_start(&sock, now, run.measure_from_ns);
        if sent_until.is_none() && (now >= run.end_ns || run.stop.load(Ordering::Relaxed)) {
            sent_until = Some(now.min(run.end_ns));
            drain_until = now.saturating_add(grace_ns(config.timeout, tracker.max_rtt_ns()));
        }
        if sent_until.is_some() && (tracker.all_answered() || now >= drain_until) {
            break;
        }
        tracker.expire(now);
        tracker.close_intervals(now, run.timeline.as_ref());
        // Top the window up; more than one call's worth when it is large.
        while sent_until.is_none() {
            let room = window.saturating_sub(tracker.in_flight());
            if room == 0 {
                break;
            }
            let at = run.now_ns();
            let sent = match outbox.send(&sock, seq, room, |_| at) {
                Ok(sent) => sent,
                // The failed call sent nothing and cleared the error: the next can send.
                Err(err) if run.went_away(&err) => {
                    tracker.unreachable(at);
                    break;
                }
                Err(err) => return Err(err),
            };
            for s in seq..seq + sent as u64 {
                tracker.on_send(s, at);
            }
            seq += sent as u64;
            if sent < room.min(outbox.capacity()) {
                break; // short of buffers: receive first
            }
        }
        // Poll before sleeping while a reply is due: waking a sleeping thread
        // (an idle core, in a VM an idle vCPU) costs tens of microseconds,
        // which would be measured as round-trip time.
        let wait = run.wait(tracker.in_flight() > 0);
        // No more slots than replies due: at window 1 that is one recvmsg,
        // not a recvmmsg that looks for a second datagram.
        let slots = tracker.in_flight().clamp(1, BATCH);
        receive(&sock, &mut inbox, &mut tracker, run, wait, slots, None)?;
        publisher.publish(now, &tracker, live, true, config.progress);
    }
    tracker.finish_intervals(run.timeline.as_ref());
    Ok(FlowResult {
        tally: tracker.tally,
        drops: drops.since_start(&sock),
        rtt: tracker.rtt,
        sent_until_ns: sent_until.unwrap_or_else(|| run.now_ns().min(run.end_ns)),
        intervals: tracker.intervals.map(Recorder::into_counts),
        stamp: tracker.stamp,
    })
}

/// Open loop: flow `index` sends its share of `rate` probes per second on a
/// fixed schedule, answered or not, while this thread collects the replies.
pub(super) fn open(run: &Run<'_>, index: usize, rate: f64, live: &Live) -> io::Result<FlowResult> {
    let config = run.config;
    let sock = connect(config)?;
    let schedule = Schedule::new(rate, config.flows, index);
    let ring = open_ring(rate / config.flows as f64, config.timeout);
    let announced = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    thread::scope(|scope| {
        let sender = thread::Builder::new()
            .name(format!("shout-bench-send-{index}"))
            .spawn_scoped(scope, || {
                let result = send_on_schedule(run, &sock, schedule, &announced, live);
                if result.is_err() {
                    run.abort.store(true, Ordering::Relaxed);
                }
                finished.store(true, Ordering::Release);
                result
            })?;
        let mut tracker = run.tracker(ring, Some(schedule));
        let received = collect(run, &sock, &mut tracker, schedule, &announced, &finished, live);
        if received.is_err() {
            run.abort.store(true, Ordering::Relaxed);
        }
        let sent =
            sender.join().unwrap_or_else(|_| Err(io::Error::other("bench sender thread panicked")));
        let (drops, (sent, sent_until_ns, sent_by_interval, unreachable)) = (received?, sent?);
        tracker.finish_intervals(run.timeline.as_ref());
        let mut tally = tracker.tally;
        tally.sent = sent;
        tally.unreachable += unreachable;
        // The sender counted what went out; the receiver, what came back.
        let intervals = tracker.intervals.map(|rec| Counts {
            sent: sent_by_interval.map(|c| c.sent).unwrap_or_default(),
            ..rec.into_counts()
        });
        Ok(FlowResult {
            tally,
            rtt: tracker.rtt,
            drops,
            sent_until_ns,
            intervals,
            stamp: tracker.stamp,
        })
    })
}

/// Ring size for an open-loop flow: every probe sent within twice the timeout.
fn open_ring(rate_per_flow: f64, timeout: Duration) -> usize {
    let probes = rate_per_flow * timeout.as_secs_f64() * 2.0;
    let floor = 4 * BATCH * MAX_GSO_SEGMENTS;
    if probes >= MAX_OPEN_RING as f64 {
        MAX_OPEN_RING
    } else {
        (probes as usize).max(floor).next_power_of_two()
    }
}

/// Open loop's sending half: returns probes counted as sent, when it stopped,
/// (with a timeline) the probes sent by interval, and the "port unreachable"
/// reports its sends got.
fn send_on_schedule(
    run: &Run<'_>,
    sock: &UdpSocket,
    schedule: Schedule,
    announced: &AtomicU64,
    live: &Live,
) -> io::Result<(u64, u64, Option<SentCounter>, u64)> {
    let mut outbox = Outbox::new(run.config, &run.format, usize::MAX);
    let mut by_interval = run.timeline.as_ref().map(|m| SentCounter::new(m.shape()));
    let capacity = outbox.capacity() as u64;
    let mut seq = 0u64;
    let mut counted = 0u64;
    let mut unreachable = 0u64;
    let result = loop {
        if run.aborted() || run.stop.load(Ordering::Relaxed) {
            break Ok(run.now_ns().min(run.end_ns));
        }
        if schedule.at(seq) >= run.end_ns {
            break Ok(run.end_ns);
        }
        let now = run.now_ns();
        let mut due = 0;
        while due < capacity && {
            let at = schedule.at(seq + due);
            at <= now && at < run.end_ns
        } {
            due += 1;
        }
        if due == 0 {
            let wait = Duration::from_nanos(schedule.at(seq).saturating_sub(now));
            let slack = if run.spin { SLEEP_SLACK } else { Duration::ZERO };
            if wait > slack && !run.busy {
                // Short sleeps, so a stop is seen within 10 ms even at low rates.
                thread::sleep((wait - slack).min(Duration::from_millis(10)));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        // Announced before sending: the reply can beat the send call's return.
        announced.store(seq + due, Ordering::Release);
        let sent = match outbox.send(sock, seq, due as usize, |s| schedule.at(s)) {
            Ok(sent) => sent as u64,
            // Nothing went out; the error is cleared, so the retry below can send.
            Err(err) if run.went_away(&err) => {
                if now >= run.measure_from_ns {
                    unreachable += 1;
                }
                0
            }
            Err(err) => break Err(err),
        };
        for at in (seq..seq + sent).map(|s| schedule.at(s)) {
            if at >= run.measure_from_ns {
                counted += 1;
                if let Some(c) = by_interval.as_mut() {
                    c.on_send(at);
                }
            }
        }
        seq += sent;
        live.sent.store(counted, Ordering::Relaxed);
        if sent < due {
            // The kernel is short of buffers: let the receiver drain a little.
            thread::yield_now();
        }
    };
    // What was announced but never sent must not count as outstanding.
    announced.store(seq, Ordering::Release);
    result.map(|until| (counted, until, by_interval, unreachable))
}

/// Open loop's receiving half: returns the socket's drops since the warmup.
fn collect(
    run: &Run<'_>,
    sock: &UdpSocket,
    tracker: &mut Tracker,
    schedule: Schedule,
    announced: &AtomicU64,
    finished: &AtomicBool,
    live: &Live,
) -> io::Result<Option<u64>> {
    let config = run.config;
    let mut inbox = Inbox::new(config);
    let mut drops = Drops::default();
    let mut publisher = Publisher::new();
    let mut drain_until = None;
    while !run.aborted() {
        let now = run.now_ns();
        drops.note_start(sock, now, run.measure_from_ns);
        let done = finished.load(Ordering::Acquire);
        tracker.set_sent(announced.load(Ordering::Acquire));
        if done {
            let until = *drain_until.get_or_insert_with(|| {
                now.saturating_add(grace_ns(config.timeout, tracker.max_rtt_ns()))
            });
            if tracker.all_answered() || now >= until {
                break;
            }
        }
        tracker.expire(now);
        tracker.close_intervals(now, run.timeline.as_ref());
        // Nothing due back and the next probe a while off: sleep (precisely,
        // unlike a socket timeout) until just before it goes, then poll.
        let until_send = schedule.at(announced.load(Ordering::Acquire)).saturating_sub(now);
        let idle = tracker.all_answered() && !done;
        if run.busy {
            receive(sock, &mut inbox, tracker, run, Wait::Never, BATCH, Some(announced))?;
        } else if idle && until_send > 2 * SEND_LEAD_NS {
            // At most 10 ms, to see the end and a stop in time.
            let nap = (until_send - SEND_LEAD_NS).min(10_000_000);
            thread::sleep(Duration::from_nanos(nap));
        } else {
            let spin = match (run.spin, idle) {
                (false, _) => Duration::ZERO,
                (true, true) => Duration::from_nanos(until_send) + SPIN,
                (true, false) => SPIN,
            };
            receive(
                sock,
                &mut inbox,
                tracker,
                run,
                Wait::SpinThenBlock(spin),
                BATCH,
                Some(announced),
            )?;
        }
        publisher.publish(now, tracker, live, false, config.progress);
    }
    Ok(drops.since_start(sock))
}

/// How long to keep listening after the last probe: three of the longest
/// round trips seen, at least [`MIN_GRACE`], at most the timeout.
fn grace_ns(timeout: Duration, max_rtt_ns: u64) -> u64 {
    let floor = nanos(MIN_GRACE);
    let cap = nanos(timeout).max(floor);
    max_rtt_ns.saturating_mul(3).clamp(floor, cap)
}

/// Receives what is there (waiting up to the socket's tick) and classifies it.
/// Open loop passes the sender's `announced` count, read after the wait: the
/// replies may be to probes sent during it.
fn receive(
    sock: &UdpSocket,
    inbox: &mut Inbox,
    tracker: &mut Tracker,
    run: &Run<'_>,
    wait: Wait,
    slots: usize,
    announced: Option<&AtomicU64>,
) -> io::Result<()> {
    match inbox.recv(sock, wait, slots) {
        Ok(n) => {
            if n > 0 && !run.heard.load(Ordering::Relaxed) {
                run.heard.store(true, Ordering::Relaxed);
            }
            let now = run.now_ns();
            if let Some(announced) = announced {
                tracker.set_sent(announced.load(Ordering::Acquire));
            }
            inbox.each(n, |datagram, arrived| match datagram {
                Some(payload) => tracker.on_reply(payload, now, arrived),
                None => tracker.mismatch(now),
            });
            Ok(())
        }
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(())
        }
        Err(err) if run.went_away(&err) => {
            tracker.unreachable(run.now_ns());
            Ok(())
        }
        Err(err) => Err(socket_error(err, run.config.target, "receiving from")),
    }
}

/// Copies a tracker's counts to its [`Live`] now and then.
struct Publisher {
    next_ns: u64,
    next_p99_ns: u64,
}

impl Publisher {
    fn new() -> Self {
        // The progress line reads once a second from the start: p99 is
        // published half a second out of step with it, never racing it.
        Publisher { next_ns: 0, next_p99_ns: 500_000_000 }
    }

    fn publish(&mut self, now: u64, tracker: &Tracker, live: &Live, sent: bool, p99: bool) {
        if now < self.next_ns {
            return;
        }
        self.next_ns = now + PUBLISH_EVERY_NS;
        if sent {
            live.sent.store(tracker.tally.sent, Ordering::Relaxed);
        }
        live.answered.store(tracker.tally.answered, Ordering::Relaxed);
        live.overdue.store(tracker.tally.overdue, Ordering::Relaxed);
        // A quantile walks the whole histogram: once a second, and only for a viewer.
        if p99 && now >= self.next_p99_ns {
            self.next_p99_ns = now + 1_000_000_000;
            live.p99_ns.store(tracker.rtt.value_at_quantile(0.99), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_three_rtts_within_bounds() {
        let second = Duration::from_secs(1);
        assert_eq!(grace_ns(second, 10_000), 200_000_000);
        assert_eq!(grace_ns(second, 100_000_000), 300_000_000);
        assert_eq!(grace_ns(second, 900_000_000), 1_000_000_000);
        assert_eq!(grace_ns(Duration::from_millis(5), 0), 200_000_000);
    }

    #[test]
    fn open_ring_covers_two_timeouts() {
        let floor = 4 * BATCH * MAX_GSO_SEGMENTS;
        assert_eq!(open_ring(10.0, Duration::from_secs(1)), floor);
        assert_eq!(open_ring(100_000.0, Duration::from_secs(1)), 1 << 18);
        assert_eq!(open_ring(1e12, Duration::from_secs(1)), MAX_OPEN_RING);
    }
}
