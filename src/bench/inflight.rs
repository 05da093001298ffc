//! Matching replies to the probes in flight: which probes were answered,
//! when, and how (late, duplicated, reordered), which were lost, and which
//! datagrams were no reply at all. One [`Tracker`] per flow; its [`Tally`]
//! and round trips go on to the report, and each answer to the flow's
//! per-interval [`Recorder`] when the run keeps a timeline.
//!
//! A fixed ring of slots indexed by sequence number holds each recent probe's
//! send time and state, so classifying a reply is a header parse, one slot
//! lookup and one compare: nothing is allocated per probe. A probe is
//! *waiting* until answered or given up: given up when its `timeout` passes,
//! or earlier if its slot is needed for a probe `ring` sequence numbers later.
//!
//! Closed loop writes a slot as each probe goes out. Open loop sends from
//! another thread on a fixed [`Schedule`], so the send time of any sequence
//! number is known without being told, and a slot is written only when its
//! probe is answered or found overdue.

use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::probe::{Echo, Format};
use super::record::{Merger, Recorder};
use super::send::Schedule;
use super::stamp::{unix_ns, StampTally, Unusable};

/// Longest round trip the histogram tells apart; longer ones are recorded as this.
const MAX_RTT_NS: u64 = 3_600_000_000_000;

/// Counts of one flow, or of all of them summed. Only probes sent at or after
/// the end of the warmup are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Probes sent.
    pub(crate) sent: u64,
    /// Probes answered correctly, in time or late (first reply only).
    pub(crate) answered: u64,
    /// Replies that came after their probe's timeout. Includes replies to
    /// probes so old that their slot was reused: those are not in `answered`.
    pub(crate) late: u64,
    /// Replies beyond the first to an answered probe.
    pub(crate) duplicated: u64,
    /// First replies whose sequence number is below the highest answered so far.
    pub(crate) reordered: u64,
    /// Datagrams that are no correct reply to any probe sent.
    pub(crate) mismatched: u64,
    /// Probes past their timeout with no reply yet: the loss so far.
    pub(crate) overdue: u64,
    /// "Port unreachable" reports (ICMP) after the target had answered: it
    /// went away. The probes they stand for are in the loss.
    pub(crate) unreachable: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, rhs: Tally) {
        self.sent += rhs.sent;
        self.answered += rhs.answered;
        self.late += rhs.late;
        self.duplicated += rhs.duplicated;
        self.reordered += rhs.reordered;
        self.mismatched += rhs.mismatched;
        self.overdue += rhs.overdue;
        self.unreachable += rhs.unreachable;
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Free,
    Waiting,
    Answered,
    GaveUp,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u64,
    sent_ns: u64,
    state: State,
}

/// What to check and when counting starts.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    /// How probes were built, so how replies are read.
    pub(crate) format: Format,
    /// After this a waiting probe is given up, and its reply is late.
    pub(crate) timeout_ns: u64,
    /// Probes sent before this (the warmup) are not counted.
    pub(crate) measure_from_ns: u64,
    /// Open loop's send times; `None` for closed loop.
    pub(crate) schedule: Option<Schedule>,
}

/// One flow's bookkeeping.
pub(crate) struct Tracker {
    slots: Box<[Slot]>,
    mask: u64,
    rules: Rules,
    /// Every sequence number below this has been sent (or, open loop, is about to be).
    next_seq: u64,
    /// Every sequence number below this is answered or given up.
    scan: u64,
    highest: Option<u64>,
    waiting: usize,
    answered_all: u64,
    max_rtt_ns: u64,
    /// The counts so far.
    pub(crate) tally: Tally,
    /// Round-trip times of answered probes, in nanoseconds.
    pub(crate) rtt: Histogram<u64>,
    /// The same by interval, when the run keeps a timeline.
    pub(crate) intervals: Option<Recorder>,
    /// What STAMP replies add, with `--stamp`.
    pub(crate) stamp: Option<StampTally>,
}

impl Tracker {
    /// A tracker with `ring` slots, rounded up to a power of two.
    pub(crate) fn new(ring: usize, rules: Rules) -> Self {
        let ring = ring.max(2).next_power_of_two();
        let stamp = rules.format.stamp.as_ref().map(|_| StampTally::default());
        Tracker {
            slots: vec![Slot::default(); ring].into_boxed_slice(),
            mask: ring as u64 - 1,
            rules,
            next_seq: 0,
            scan: 0,
            highest: None,
            waiting: 0,
            answered_all: 0,
            max_rtt_ns: 0,
            tally: Tally::default(),
            // Constant, valid bounds (low >= 1, high >= 2 * low, sigfig <= 5).
            rtt: Histogram::new_with_bounds(1, MAX_RTT_NS, 3).expect("valid histogram bounds"),
            intervals: None,
            stamp,
        }
    }

    /// Hands the run's merger the intervals that can take no more replies in time.
    pub(crate) fn close_intervals(&mut self, now_ns: u64, merger: Option<&Merger>) {
        if let (Some(rec), Some(merger)) = (self.intervals.as_mut(), merger) {
            rec.close_until(now_ns, merger);
        }
    }

    /// Hands the run's merger every interval left: the flow is done.
    pub(crate) fn finish_intervals(&mut self, merger: Option<&Merger>) {
        if let (Some(rec), Some(merger)) = (self.intervals.as_mut(), merger) {
            rec.finish(merger);
        }
    }

    /// Probes out and neither answered nor given up (closed loop).
    pub(crate) fn in_flight(&self) -> usize {
        self.waiting
    }

    /// Whether every probe sent, warmup included, has its first reply.
    pub(crate) fn all_answered(&self) -> bool {
        self.answered_all >= self.next_seq
    }

    /// Longest round trip seen, warmup included.
    pub(crate) fn max_rtt_ns(&self) -> u64 {
        self.max_rtt_ns
    }

    fn slot(&mut self, seq: u64) -> &mut Slot {
        &mut self.slots[(seq & self.mask) as usize]
    }

    fn measured(&self, sent_ns: u64) -> bool {
        sent_ns >= self.rules.measure_from_ns
    }

    /// Closed loop: probe `seq` (the next in order) went out at `sent_ns`.
    pub(crate) fn on_send(&mut self, seq: u64, sent_ns: u64) {
        let measured = self.measured(sent_ns);
        let old = *self.slot(seq);
        if old.state == State::Waiting {
            // Its slot is needed before its timeout: give up on it now.
            self.waiting -= 1;
            if self.measured(old.sent_ns) {
                self.tally.overdue += 1;
            }
        }
        *self.slot(seq) = Slot { seq, sent_ns, state: State::Waiting };
        self.next_seq = self.next_seq.max(seq + 1);
        self.waiting += 1;
        if measured {
            self.tally.sent += 1;
            if let Some(rec) = self.intervals.as_mut() {
                rec.on_send(sent_ns);
            }
        }
    }

    /// Open loop: probes below `next_seq` are sent (or about to be). The
    /// sender's final count may be lower than it announced: what it never sent.
    pub(crate) fn set_sent(&mut self, next_seq: u64) {
        self.next_seq = next_seq;
    }

    /// Counts a "port unreachable" report, seen at `now_ns`, from a target
    /// that had answered before.
    pub(crate) fn unreachable(&mut self, now_ns: u64) {
        if self.measured(now_ns) {
            self.tally.unreachable += 1;
        }
    }

    /// Counts a datagram that cannot be a reply (truncated, or garbage).
    pub(crate) fn mismatch(&mut self, now_ns: u64) {
        if self.measured(now_ns) {
            self.tally.mismatched += 1;
        }
    }

    /// Classifies one received datagram, arrived at `now_ns` with `ttl` and
    /// traffic class `tos` (when the socket reports them).
    pub(crate) fn on_reply(
        &mut self,
        payload: &[u8],
        now_ns: u64,
        (ttl, tos): (Option<u8>, Option<u8>),
    ) {
        let Echo { seq, sent_ns: carried_ns, stamp } =
            match self.rules.format.read(payload, self.next_seq) {
                Ok(echo) => echo,
                Err(why) => {
                    let ours = match why {
                        Unusable::Unauthenticated(seq) => self.was_sent(seq),
                        _ => false,
                    };
                    if let (
                        Unusable::Auth | Unusable::TlvAuth | Unusable::Unauthenticated(_),
                        Some(st),
                    ) = (why, self.stamp.as_mut())
                    {
                        if now_ns >= self.rules.measure_from_ns {
                            st.auth_failed += 1;
                            if why == Unusable::TlvAuth {
                                st.tlvs.hmac_failed += 1;
                            }
                            if ours {
                                st.unauthenticated += 1;
                            }
                        }
                    }
                    return self.mismatch(now_ns);
                }
            };
        if seq >= self.next_seq {
            return self.mismatch(now_ns);
        }
        let slot = *self.slot(seq);
        let (state, expected_ns) = if slot.state != State::Free && slot.seq == seq {
            (slot.state, slot.sent_ns)
        } else if slot.state != State::Free && slot.seq > seq {
            // The slot went to a newer probe: this one's fate was settled then,
            // answered or given up, and a reply now is late either way.
            let sent_ns = match (self.rules.schedule, carried_ns) {
                (Some(s), Some(carried)) if s.at(seq) != carried => return self.mismatch(now_ns),
                (Some(s), None) => s.at(seq),
                (_, carried) => carried.unwrap_or(slot.sent_ns),
            };
            if self.measured(sent_ns) {
                self.tally.late += 1;
            }
            return;
        } else if let Some(schedule) = self.rules.schedule {
            // Open loop: first news of this probe.
            (State::Waiting, schedule.at(seq))
        } else {
            // Closed loop writes every slot it sends before any reply can come.
            return self.mismatch(now_ns);
        };
        if carried_ns.is_some_and(|carried| carried != expected_ns) {
            return self.mismatch(now_ns);
        }
        let sent_ns = expected_ns;
        let measured = self.measured(sent_ns);
        if state == State::Answered {
            if measured {
                self.tally.duplicated += 1;
            }
            return;
        }
        if state == State::Waiting && self.rules.schedule.is_none() {
            self.waiting -= 1;
        }
        *self.slot(seq) = Slot { seq, sent_ns, state: State::Answered };
        self.answered_all += 1;
        let rtt = now_ns.saturating_sub(sent_ns);
        self.max_rtt_ns = self.max_rtt_ns.max(rtt);
        if measured {
            self.tally.answered += 1;
            if state == State::GaveUp {
                self.tally.overdue -= 1;
            }
            if state == State::GaveUp || rtt > self.rules.timeout_ns {
                self.tally.late += 1;
            }
            if self.highest.is_some_and(|h| seq < h) {
                self.tally.reordered += 1;
            }
            self.rtt.saturating_record(rtt);
            if let Some(rec) = self.intervals.as_mut() {
                rec.on_answer(sent_ns, rtt);
            }
            if let (Some(st), Some(e)) = (self.stamp.as_mut(), stamp.as_ref()) {
                st.on_answer(seq, rtt, e, (ttl, tos), unix_ns(SystemTime::now()));
                st.other_sizes.note(payload.len(), self.rules.format.size);
            }
        }
        self.highest = self.highest.max(Some(seq));
    }

    /// Whether `seq` is a probe of this flow sent recently enough to be told
    /// apart: still in its ring slot, or (open loop, where slots are written
    /// only on news) within a ring's length of the next.
    fn was_sent(&self, seq: u64) -> bool {
        if seq >= self.next_seq {
            return false;
        }
        let slot = self.slots[(seq & self.mask) as usize];
        (slot.state != State::Free && slot.seq == seq)
            || (self.rules.schedule.is_some() && self.next_seq - seq <= self.mask + 1)
    }

    /// Gives up on probes whose timeout has passed by `now_ns`.
    pub(crate) fn expire(&mut self, now_ns: u64) {
        let timeout = self.rules.timeout_ns;
        while self.scan < self.next_seq {
            let seq = self.scan;
            let slot = *self.slot(seq);
            if slot.state != State::Free && slot.seq == seq {
                if slot.state == State::Waiting {
                    if now_ns < slot.sent_ns.saturating_add(timeout) {
                        break;
                    }
                    self.slot(seq).state = State::GaveUp;
                    self.waiting -= 1;
                    if self.measured(slot.sent_ns) {
                        self.tally.overdue += 1;
                    }
                }
            } else if let Some(schedule) = self.rules.schedule {
                // Open loop, no reply yet: unless a newer probe took the slot
                // (then this one's fate is unknown and stays uncounted here).
                if slot.state == State::Free || slot.seq < seq {
                    let sent_ns = schedule.at(seq);
                    if now_ns < sent_ns.saturating_add(timeout) {
                        break;
                    }
                    *self.slot(seq) = Slot { seq, sent_ns, state: State::GaveUp };
                    if self.measured(sent_ns) {
                        self.tally.overdue += 1;
                    }
                }
            }
            self.scan += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Expect;

    const SIZE: usize = 40;
    const FORMAT: Format = Format { size: SIZE, expect: Expect::Upper, stamp: None, lower: false };

    fn rules(timeout_ns: u64, measure_from_ns: u64, schedule: Option<Schedule>) -> Rules {
        Rules { format: FORMAT, timeout_ns, measure_from_ns, schedule }
    }

    fn closed() -> Tracker {
        Tracker::new(64, rules(1_000, 0, None))
    }

    fn probe(seq: u64, time: u64) -> Vec<u8> {
        let mut p = vec![0; SIZE];
        FORMAT.fill(&mut p, seq, time);
        p
    }

    #[test]
    fn answers_duplicates_and_reordering() {
        let mut t = closed();
        for seq in 0..3 {
            t.on_send(seq, 10);
        }
        assert_eq!(t.in_flight(), 3);
        t.on_reply(&probe(0, 10), 20, (None, None));
        t.on_reply(&probe(2, 10), 30, (None, None));
        t.on_reply(&probe(1, 10), 40, (None, None)); // below 2: reordered
        t.on_reply(&probe(0, 10), 50, (None, None)); // again: duplicated
        assert_eq!(t.in_flight(), 0);
        assert!(t.all_answered());
        let want = Tally { sent: 3, answered: 3, duplicated: 1, reordered: 1, ..Tally::default() };
        assert_eq!(t.tally, want);
        assert_eq!((t.rtt.len(), t.rtt.min(), t.rtt.max()), (3, 10, 30));
    }

    #[test]
    fn timeout_frees_the_window_and_the_reply_is_late() {
        let mut t = closed();
        t.on_send(0, 0);
        t.on_send(1, 0);
        t.expire(999);
        assert_eq!(t.in_flight(), 2);
        t.on_reply(&probe(1, 0), 500, (None, None));
        t.expire(1_000);
        assert_eq!(t.in_flight(), 0, "probe 0 given up at its timeout");
        assert_eq!(t.tally.overdue, 1);
        t.on_send(2, 1_000); // the refill
        t.on_reply(&probe(0, 0), 1_200, (None, None));
        assert_eq!(t.tally.answered, 2);
        assert_eq!(t.tally.late, 1);
        assert_eq!(t.tally.overdue, 0);
        assert_eq!(t.tally.reordered, 1);
        assert_eq!(t.in_flight(), 1, "a late reply does not free a slot twice");
        // Past its timeout but before the scan noticed: late all the same.
        t.on_reply(&probe(2, 1_000), 2_500, (None, None));
        assert_eq!(t.tally.late, 2);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn wrong_replies_are_mismatched() {
        let mut t = closed();
        t.on_send(0, 5);
        let good = probe(0, 5);
        let mut lower = good.clone();
        lower.make_ascii_lowercase();
        let mut body = good.clone();
        body[SIZE - 1] = b'x';
        for bad in [
            &b"hello"[..],
            &lower,
            &body,
            &good[..SIZE - 1],
            &probe(1, 5), // never sent
            &probe(0, 6), // wrong send time
        ] {
            t.on_reply(bad, 10, (None, None));
        }
        t.mismatch(10);
        assert_eq!(t.tally.mismatched, 7);
        assert_eq!(t.tally.answered, 0);
        t.on_reply(&good, 10, (None, None));
        assert_eq!(t.tally.answered, 1);
    }

    #[test]
    fn expect_any_checks_the_header_only() {
        let any = Format { expect: Expect::Any, ..FORMAT };
        let mut t = Tracker::new(64, Rules { format: any, ..rules(1_000, 0, None) });
        t.on_send(0, 5);
        let mut reply = probe(0, 5);
        reply.extend_from_slice(b"extra, lowercase");
        t.on_reply(&reply, 10, (None, None));
        assert_eq!((t.tally.answered, t.tally.mismatched), (1, 0));
    }

    #[test]
    fn warmup_probes_are_not_counted() {
        let mut t = Tracker::new(64, rules(1_000, 100, None));
        t.on_send(0, 50);
        t.on_send(1, 100);
        t.on_reply(&probe(0, 50), 120, (None, None));
        t.on_reply(&probe(0, 50), 130, (None, None));
        t.on_reply(&probe(1, 100), 140, (None, None));
        assert_eq!(t.tally, Tally { sent: 1, answered: 1, ..Tally::default() });
        assert_eq!(t.rtt.len(), 1);
        assert!(t.all_answered());
    }

    #[test]
    fn reused_slots_give_up_early_and_old_replies_are_late() {
        let mut t = Tracker::new(4, rules(1_000_000, 0, None));
        for seq in 0..4 {
            t.on_send(seq, seq);
        }
        for seq in 1..4 {
            t.on_reply(&probe(seq, seq), 10, (None, None));
        }
        t.on_send(4, 20); // takes probe 0's slot while it still waits
        assert_eq!(t.tally.overdue, 1);
        assert_eq!(t.in_flight(), 1);
        t.on_reply(&probe(0, 0), 30, (None, None));
        assert_eq!((t.tally.answered, t.tally.late), (3, 1));
        assert!(!t.all_answered());
    }

    #[test]
    fn open_loop_knows_send_times_from_the_schedule() {
        // 1000/s over 2 flows: this flow (index 1) sends at 1 ms, 3 ms, 5 ms...
        let schedule = Schedule::new(1_000.0, 2, 1);
        assert_eq!(
            [schedule.at(0), schedule.at(1), schedule.at(2)],
            [1_000_000, 3_000_000, 5_000_000]
        );
        let mut t = Tracker::new(64, rules(10_000_000, 0, Some(schedule)));
        t.set_sent(3);
        t.on_reply(&probe(1, 3_000_000), 3_100_000, (None, None));
        t.on_reply(&probe(2, 4_000_000), 4_100_000, (None, None)); // not its scheduled time
        assert_eq!((t.tally.answered, t.tally.mismatched), (1, 1));
        t.expire(11_000_000);
        assert_eq!(t.tally.overdue, 1, "probe 0 overdue; 2 not yet");
        t.expire(15_000_000);
        assert_eq!(t.tally.overdue, 2);
        t.on_reply(&probe(0, 1_000_000), 16_000_000, (None, None));
        assert_eq!((t.tally.answered, t.tally.late, t.tally.overdue), (2, 1, 1));
        assert_eq!(t.tally.reordered, 1);
        assert_eq!(t.rtt.max(), t.rtt.highest_equivalent(15_000_000));
        t.on_reply(&probe(3, 7_000_000), 16_000_000, (None, None)); // beyond what was sent
        assert_eq!(t.tally.mismatched, 2);
    }
}
