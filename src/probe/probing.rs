//! One target as the probing thread keeps it ([`Probing`]): the ring of its
//! recent probes, what each reply to it tells (answered, duplicated, late,
//! reordered, mismatched: a [`Verdict`]), and loss split by direction against
//! a stateful STAMP reflector ([`Split`]). The probing loop (`prober`) sends,
//! receives and routes; this decides and counts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::engine::{Target, UP_INTERVALS};
use super::schedule::Rng;
use super::tally::bump;
use super::target::Protocol;
use crate::bench::stamp::{StampEcho, Unusable};

/// Largest ring of probes per target: a probe this many sends old is given
/// up even before its timeout.
const MAX_RING: usize = 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum State {
    #[default]
    Free,
    Waiting,
    Answered,
    Lost,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Slot {
    pub(super) seq: u64,
    /// What an `SB` probe carried in its time field: the target's id and the send time.
    pub(super) tag: u64,
    /// Transmit time since the epoch: the kernel's once its timestamp came, the clock's until then.
    pub(super) tx_ns: i64,
    /// When it was sent, on the agent's monotonic clock.
    pub(super) sent_ns: u64,
    pub(super) state: State,
}

/// Splitting losses by direction with a stateful STAMP reflector (its own
/// sequence numbers, counting what it received). Between two answers, ours
/// advanced by S and its by R: S - R probes never reached it. Those add up
/// to `forward_seen`, a budget each loss inside the answered span draws from:
/// forward while the budget lasts, backward after. A loss after the newest
/// answer waits (in flight still) for the next answer; without one within
/// [`UP_INTERVALS`] intervals, or with a reflector that echoes our numbers,
/// it is lost "unknown".
#[derive(Debug, Default)]
pub(super) struct Split {
    /// The newest probe answered in time and the reflector's number for it.
    pub(super) last: Option<(u64, u32)>,
    /// Probes that never reached the reflector, as the answers so far tell.
    pub(super) forward_seen: u64,
    /// Of those, how many were counted lost forward.
    pub(super) forward_counted: u64,
    /// Lost probes after `last`, their direction not yet known.
    pub(super) pending: u64,
    pub(super) since_ns: u64,
    /// Learned from the first answer: the reflector numbers on its own.
    pub(super) stateful: Option<bool>,
}

impl Split {
    /// Counts `n` losses inside the answered span: forward while the budget lasts.
    pub(super) fn count(&mut self, n: u64, st: &super::tally::Stats) {
        let forward = self.forward_seen.saturating_sub(self.forward_counted).min(n);
        self.forward_counted += forward;
        bump(&st.lost_forward, forward);
        bump(&st.lost_backward, n - forward);
    }
}

/// One target as the probing thread keeps it.
pub(super) struct Probing {
    pub(super) target: Arc<Target>,
    pub(super) sock: usize,
    pub(super) interval_ns: u64,
    pub(super) timeout_ns: u64,
    pub(super) next_due: u64,
    pub(super) next_seq: u64,
    pub(super) slots: Box<[Slot]>,
    pub(super) mask: u64,
    pub(super) highest: Option<u64>,
    pub(super) split: Split,
    /// The [`Hint`]s already logged for it (bits): each once in its life.
    pub(super) hinted: u8,
}

impl Probing {
    pub(super) fn new(target: Arc<Target>, sock: usize, rng: &mut Rng) -> Probing {
        let interval_ns = target.interval_ns();
        let timeout_ns = u64::try_from(target.spec.timeout.as_nanos()).unwrap_or(u64::MAX);
        let ring =
            (timeout_ns / interval_ns.max(1) + 2).clamp(4, MAX_RING as u64).next_power_of_two();
        // STAMP starts at a random number: a stateful reflector's own count
        // (from 0) then differs from ours at once, which is how it is recognised.
        let next_seq =
            if target.spec.protocol == Protocol::Stamp { 1 + rng.below(1 << 31) } else { 0 };
        Probing {
            target,
            sock,
            interval_ns,
            timeout_ns,
            next_due: 0,
            next_seq,
            slots: vec![Slot::default(); ring as usize].into_boxed_slice(),
            mask: ring - 1,
            highest: None,
            split: Split::default(),
            hinted: 0,
        }
    }

    pub(super) fn slot(&mut self, seq: u64) -> &mut Slot {
        &mut self.slots[(seq & self.mask) as usize]
    }

    /// Gives up on probe `seq` (waiting in its slot) at `now_ns`.
    pub(super) fn lose(&mut self, seq: u64, now_ns: u64) {
        self.slot(seq).state = State::Lost;
        let st = &self.target.stats;
        st.recent.push(None);
        let split = &mut self.split;
        if self.target.spec.protocol != Protocol::Stamp || split.stateful == Some(false) {
            bump(&st.lost_unknown, 1);
        } else if split.stateful == Some(true) && split.last.is_some_and(|(j, _)| seq < j) {
            split.count(1, st);
        } else {
            if split.pending == 0 {
                split.since_ns = now_ns;
            }
            split.pending += 1;
        }
    }

    /// Settles losses whose direction will not be learned in time.
    pub(super) fn settle(&mut self, now_ns: u64) {
        let s = &mut self.split;
        if s.pending > 0 && now_ns.saturating_sub(s.since_ns) > UP_INTERVALS * self.interval_ns {
            bump(&self.target.stats.lost_unknown, s.pending);
            s.pending = 0;
        }
    }

    /// Reads one datagram from this target's address. With `exact`, only a
    /// reply to a probe still in its slot counts: a number whose slot went to a
    /// newer probe could as well be another target's (several at one address
    /// and STAMP session), so it is not taken as late here.
    pub(super) fn on_reply(&mut self, data: &[u8], rx: Rx, bounds: &[i64], exact: bool) -> Verdict {
        let verdict = self.verdict(data, rx, bounds, exact);
        if verdict == Verdict::Mismatch && self.hinted != Hint::ALL {
            self.explain(data);
        }
        verdict
    }

    #[inline]
    fn verdict(&mut self, data: &[u8], rx: Rx, bounds: &[i64], exact: bool) -> Verdict {
        let echo = match self.target.format.read(data, self.next_seq) {
            Ok(echo) => echo,
            Err(_) => return Verdict::Mismatch,
        };
        let seq = echo.seq;
        if seq >= self.next_seq {
            return Verdict::Mismatch;
        }
        let slot = *self.slot(seq);
        if slot.state == State::Free || slot.seq != seq {
            if !exact && slot.state != State::Free && slot.seq > seq {
                // Its slot went to a newer probe: settled long ago, answered or lost.
                bump(&self.target.stats.late, 1);
                return Verdict::Done;
            }
            return Verdict::Mismatch;
        }
        if echo.sent_ns.is_some_and(|tag| tag != slot.tag) {
            return Verdict::Mismatch;
        }
        let st = &self.target.stats;
        match slot.state {
            State::Answered => bump(&st.duplicated, 1),
            State::Lost => bump(&st.late, 1),
            State::Free => return Verdict::Mismatch,
            State::Waiting => self.answer(seq, slot.tx_ns, echo.stamp, rx, bounds),
        }
        Verdict::Done
    }

    /// Why a mismatched reply is one, when it is a probe of ours that a
    /// server of another kind answered: logged once per target (a warning),
    /// as the replies go on being counted mismatched.
    #[cold]
    fn explain(&mut self, data: &[u8]) {
        let format = &self.target.format;
        let found = match &format.stamp {
            Some(s) => match s.read(data, self.next_seq) {
                Err(Unusable::Unauthenticated(seq)) => Some((Hint::Unauthenticated, seq, None)),
                _ => s
                    .authenticated_reply(data, self.next_seq)
                    .map(|seq| (Hint::Authenticated, seq, None)),
            },
            None => format.read_as_other_kind(data).map(|e| {
                let hint = if self.target.spec.protocol == Protocol::Upper {
                    Hint::Echoed
                } else {
                    Hint::Uppercased
                };
                (hint, e.seq, e.sent_ns)
            }),
        };
        let Some((hint, seq, tag)) = found else { return };
        if self.hinted & hint as u8 != 0 || seq >= self.next_seq {
            return;
        }
        let slot = *self.slot(seq);
        if slot.state == State::Free || slot.seq != seq || tag.is_some_and(|t| t != slot.tag) {
            return;
        }
        self.hinted |= hint as u8;
        let name = crate::escape(self.target.spec.name.as_bytes());
        tracing::warn!(target_name = %name, "target {name}: {}", hint.text());
    }

    pub(super) fn answer(
        &mut self,
        seq: u64,
        tx_ns: i64,
        stamp: Option<StampEcho>,
        rx: Rx,
        bounds: &[i64],
    ) {
        self.slot(seq).state = State::Answered;
        let target = Arc::clone(&self.target);
        let st = &target.stats;
        let rtt = rx.at_ns.saturating_sub(tx_ns).max(0);
        // Native buckets before the classic ones: a scrape reads the classic
        // ones first, so the native count it sends is never below theirs.
        st.quantiles.record(rtt as u64);
        st.rtt.record(bounds, rtt);
        st.recent.push(Some(Duration::from_nanos(rtt as u64)));
        if self.highest.is_some_and(|h| seq < h) {
            bump(&st.reordered, 1);
        }
        self.highest = self.highest.max(Some(seq));
        if let Some(ttl) = rx.ttl {
            st.ttl_backward.store(u32::from(ttl), Ordering::Relaxed);
        }
        if let Some(e) = stamp {
            // Our transmit time is the kernel's, not the clock read into the packet.
            let d = StampEcho { t1_ns: Some(tx_ns), ..e }.delays(rx.at_ns);
            if let Some(v) = d.forward {
                st.forward.record(bounds, v);
            }
            if let Some(v) = d.backward {
                st.backward.record(bounds, v);
            }
            if let Some(v) = d.turnaround {
                st.turnaround.record(bounds, v);
            }
            if e.forward_ttl != 0 {
                st.ttl_forward.store(u32::from(e.forward_ttl), Ordering::Relaxed);
            }
            self.split_on_answer(seq, e.reflector_seq);
        }
        // Answered last: a reader that sees it sees the rest.
        st.answered_at.store(rx.mono_ns.max(1), Ordering::Relaxed);
        bump(&st.answered, 1);
    }

    /// An answer in time tells the direction of the losses before it.
    pub(super) fn split_on_answer(&mut self, seq: u64, theirs: u32) {
        let st = &self.target.stats;
        let s = &mut self.split;
        let own = u64::from(theirs) != seq & 0xFFFF_FFFF;
        if s.stateful.is_none() || own {
            s.stateful = Some(own);
        }
        let had_span = match s.last {
            Some((j, _)) if seq <= j => return, // reordered: no newer news
            Some((j, rj)) => {
                s.forward_seen += (seq - j).saturating_sub(u64::from(theirs.wrapping_sub(rj)));
                true
            }
            None => false,
        };
        s.last = Some((seq, theirs));
        let pending = std::mem::take(&mut s.pending);
        if had_span && s.stateful == Some(true) {
            s.count(pending, st);
        } else {
            bump(&st.lost_unknown, pending);
        }
    }
}

/// A probe of ours answered by a server of another kind than the target's
/// protocol says: the reply is mismatched, and this says why (bits of
/// [`Probing::hinted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hint {
    /// An `echo` target's probe came back uppercased.
    Uppercased = 1,
    /// An `upper` target's probe came back unchanged.
    Echoed = 2,
    /// An authenticated STAMP target's packet came back unauthenticated.
    Unauthenticated = 4,
    /// An unauthenticated STAMP target's packet came back authenticated.
    Authenticated = 8,
}

impl Hint {
    const ALL: u8 = 15;

    fn text(self) -> &'static str {
        match self {
            Hint::Uppercased => {
                "the server answers the probes uppercased, not unchanged: it looks like an \
                 uppercasing server (shout server's default mode), so its replies are counted \
                 mismatched, never answered: protocol upper probes it"
            }
            Hint::Echoed => {
                "the server answers the probes unchanged, not uppercased: it looks like an echo \
                 server (shout server --mode echo), so its replies are counted mismatched, never \
                 answered: protocol echo probes it"
            }
            Hint::Unauthenticated => {
                "the reflector answers unauthenticated (it has no key), so its replies are counted \
                 mismatched, never answered: give it the key, or probe it without key_file"
            }
            Hint::Authenticated => {
                "the reflector answers authenticated (it has a key), so its replies are counted \
                 mismatched, never answered: probe it with its key in key_file"
            }
        }
    }
}

/// What a reply tells about the target whose address it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Counted (answered, duplicated, late).
    Done,
    /// Answers no probe of this target.
    Mismatch,
}

/// How a datagram arrived.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rx {
    /// Receive time since the epoch: the kernel's, or the clock's.
    pub(super) at_ns: i64,
    /// Now on the agent's monotonic clock.
    pub(super) mono_ns: u64,
    pub(super) ttl: Option<u8>,
}
