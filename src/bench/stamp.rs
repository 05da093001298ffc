//! `--stamp`: STAMP test packets (RFC 8762, RFC 8972) as the bench's probes,
//! and what the reflected packets add up to beyond a round trip.
//!
//! [`StampFormat`] builds packet N with a [`Sender`] and reads a reflected
//! packet back to a [`StampEcho`]: our sequence number (the wire holds its low
//! 32 bits; the full one is recovered from the flow's next sequence number),
//! the reflector's own sequence number, the four timestamps, and the TTL our
//! packet arrived with. [`StampTally`] is one flow's sum of those: one-way
//! delays, turnaround, TTLs, and the first and last sequence numbers of both
//! ends, from which [`StampTally::split`] splits the loss by direction.
//!
//! With `--stamp-tlv`, [`TlvMarks`] notes which TLV types each reply carried
//! back and with which of the flags U, M, I (RFC 8972 §4), and [`TlvTally`]
//! counts them per type in fixed arrays: nothing is allocated per reply.
//!
//! Probes go out with TTL (hop limit) 255, as STAMP senders do, so the
//! reflector's report of the TTL it saw gives the forward hop count.

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::stamp::{AuthMode, ParseError, Sender, TlvFlags, TlvIntegrity};

#[cfg(test)]
use super::stamp_tlvs::TlvCount;
pub(crate) use super::stamp_tlvs::{TlvMarks, TlvTally};

/// The TTL (hop limit) probes are sent with: hops = 255 - TTL received.
pub(crate) const SEND_TTL: u8 = 255;
/// Longest delay the histograms tell apart, either sign (an hour).
const MAX_DELAY_NS: u64 = 3_600_000_000_000;

/// How STAMP probes are built and their reflections read.
#[derive(Clone, Debug)]
pub(crate) struct StampFormat {
    pub(crate) sender: Sender,
}

/// What a reflected packet says beyond the sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StampEcho {
    /// The reflector's Sequence Number.
    pub(crate) reflector_seq: u32,
    /// Our transmit time (T1), its receive time (T2), its transmit time (T3),
    /// in nanoseconds since the Unix epoch; `None` if a field cannot be read.
    pub(crate) t1_ns: Option<i64>,
    pub(crate) t2_ns: Option<i64>,
    pub(crate) t3_ns: Option<i64>,
    /// The TTL our packet arrived at the reflector with; 0 when it did not say.
    pub(crate) forward_ttl: u8,
    /// The TLV types it carried back and their flags (empty unless we sent TLVs).
    pub(crate) tlvs: TlvMarks,
    /// What its Class of Service TLV said, when we sent one and it came back processed.
    pub(crate) cos: Option<CosEcho>,
}

/// A processed Class of Service TLV in a reply (RFC 8972 §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CosEcho {
    /// DSCP2: the DSCP our packet reached the reflector with.
    pub(crate) dscp: u8,
    /// The ECN bits our packet reached the reflector with.
    pub(crate) ecn: u8,
    /// RP: nonzero when the reflector did not send the reply with the DSCP asked for.
    pub(crate) rp: u8,
}

/// The Class of Service each way, over the answered probes: the DSCPs and
/// ECN values seen (bit `n` for value `n`), and the refusals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CosTally {
    /// Replies with a processed Class of Service TLV.
    pub(crate) replies: u64,
    /// Of those, replies with RP set: the reflector kept its own class.
    pub(crate) refused: u64,
    /// DSCPs and ECN values our packets reached the reflector with.
    pub(crate) forward_dscp: u64,
    pub(crate) forward_ecn: u8,
    /// DSCPs and ECN values the replies reached us with.
    pub(crate) backward_dscp: u64,
    pub(crate) backward_ecn: u8,
}

impl CosTally {
    fn on_answer(&mut self, cos: Option<CosEcho>, reply_tos: Option<u8>) {
        if let Some(c) = cos {
            self.replies += 1;
            self.refused += u64::from(c.rp != 0);
            self.forward_dscp |= 1 << (c.dscp & 0x3f);
            self.forward_ecn |= 1 << (c.ecn & 0x03);
        }
        if let Some(tos) = reply_tos {
            self.backward_dscp |= 1 << (tos >> 2);
            self.backward_ecn |= 1 << (tos & 0x03);
        }
    }

    fn add(&mut self, o: &CosTally) {
        self.replies += o.replies;
        self.refused += o.refused;
        self.forward_dscp |= o.forward_dscp;
        self.forward_ecn |= o.forward_ecn;
        self.backward_dscp |= o.backward_dscp;
        self.backward_ecn |= o.backward_ecn;
    }
}

/// Why a datagram is no usable reflected packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Too short, or another session's (SSID).
    Mismatch,
    /// Its base packet's HMAC does not match our key.
    Auth,
    /// Its HMAC TLV does not match our key.
    TlvAuth,
    /// Its base packet's HMAC does not match our key, but it reads as an
    /// unauthenticated reflected packet carrying this sequence number of ours
    /// (widened): the reflector answers unauthenticated. The caller checks
    /// that the number is one it sent.
    Unauthenticated(u64),
}

/// Nanoseconds since the Unix epoch, saturating.
pub(crate) fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

impl StampFormat {
    /// Writes test packet `seq` (its low 32 bits: the field's width), stamped
    /// with the system clock now.
    #[inline]
    pub(crate) fn fill(&self, out: &mut [u8], seq: u64) {
        // `out` is one packet long: Outbox cuts its buffer by `size()`.
        let _ = self.sender.build_test_packet(seq as u32, SystemTime::now(), out);
    }

    /// Reads a reflected packet: our full sequence number (the one below
    /// `next_seq` with these low 32 bits) and the reflector's fields.
    #[inline]
    pub(crate) fn read(&self, reply: &[u8], next_seq: u64) -> Result<(u64, StampEcho), Unusable> {
        let r = self.sender.parse_reflected(reply).map_err(|e| match e {
            ParseError::Auth => unauthenticated(reply)
                .map_or(Unusable::Auth, |seq| Unusable::Unauthenticated(widen(seq, next_seq))),
            ParseError::Short { .. } => Unusable::Mismatch,
        })?;
        if r.tlv_integrity == TlvIntegrity::Invalid {
            return Err(Unusable::TlvAuth);
        }
        if r.ssid != self.sender.config().ssid {
            return Err(Unusable::Mismatch);
        }
        // A reflector copies our timestamp back (RFC 8762 §4.3): zeros there
        // are no reflection of ours. An echo or uppercasing server returns the
        // test packet itself, whose octets at those places are MBZ zeros; read
        // as a reflection it would claim to answer sequence number 0.
        let t1 = r.sender_timestamp;
        if t1.seconds() == 0 && t1.fraction() == 0 {
            return Err(Unusable::Mismatch);
        }
        let ns = |t: crate::stamp::Timestamp| t.to_system_time().map(unix_ns);
        let echo = StampEcho {
            reflector_seq: r.seq,
            t1_ns: ns(r.sender_timestamp),
            t2_ns: ns(r.receive_timestamp),
            t3_ns: ns(r.timestamp),
            forward_ttl: r.sender_ttl,
            tlvs: self.marks(&r),
            cos: self.cos(&r),
        };
        Ok((widen(r.sender_seq, next_seq), echo))
    }
}

impl StampFormat {
    /// The TLV types `r` carried back and their flags, when we sent TLVs. A
    /// truncated TLV ends the walk: what follows it cannot be read.
    #[inline]
    fn marks(&self, r: &crate::stamp::Reflected<'_>) -> TlvMarks {
        let mut m = TlvMarks::default();
        if !self.sender.config().tlvs.is_empty() {
            for t in r.tlvs().map_while(Result::ok) {
                m.note(t.kind, t.flags);
            }
        }
        m
    }
}

impl StampFormat {
    /// The reply's Class of Service TLV, when we asked for a class and the
    /// reflector processed it (no U, M or I flag).
    #[inline]
    fn cos(&self, r: &crate::stamp::Reflected<'_>) -> Option<CosEcho> {
        use crate::stamp::tlv::kind;
        use crate::stamp::{TlvRequest, TlvValue};
        let tlvs = &self.sender.config().tlvs;
        if !tlvs.iter().any(|t| matches!(t, TlvRequest::ClassOfService { .. })) {
            return None;
        }
        let flags = TlvFlags::U | TlvFlags::M | TlvFlags::I;
        r.tlvs()
            .map_while(Result::ok)
            .find(|t| t.kind == kind::CLASS_OF_SERVICE && t.flags.0 & flags == 0)
            .and_then(|t| match t.decode() {
                Ok(TlvValue::ClassOfService { dscp2, ecn, rp, .. }) => {
                    Some(CosEcho { dscp: dscp2, ecn, rp })
                }
                _ => None,
            })
    }
}

impl StampFormat {
    /// Our sequence number (widened below `next_seq`) that `reply` carries
    /// when it reads as an authenticated reflected packet while we send
    /// unauthenticated ones: the reflector has a key and we have none.
    /// Such a reply parses as ours only by chance (its fields are elsewhere),
    /// so it is a mismatch; this says why. Not on the hot path.
    pub(crate) fn authenticated_reply(&self, reply: &[u8], next_seq: u64) -> Option<u64> {
        if self.sender.config().mode != AuthMode::Unauthenticated {
            return None;
        }
        authenticated(reply).map(|seq| widen(seq, next_seq))
    }
}

/// The Session-Sender Sequence Number of `reply` read as an authenticated
/// reflected packet (RFC 8762 §4.3.2), when it looks like one: octets 4..16
/// are MBZ zeros there, where an unauthenticated packet has its Timestamp
/// (set); its own Timestamp and the copy of the sender's are set (a test
/// packet has zeros at the latter).
fn authenticated(reply: &[u8]) -> Option<u32> {
    let l = AuthMode::Authenticated.layout();
    let base = reply.get(..l.len)?;
    let zero = |at: usize| base[at..at + 8].iter().all(|&b| b == 0);
    if base[l.seq + 4..l.timestamp].iter().any(|&b| b != 0)
        || zero(l.timestamp)
        || zero(l.sender_timestamp)
    {
        return None;
    }
    let seq = &base[l.sender_seq..l.sender_seq + 4];
    Some(u32::from_be_bytes(seq.try_into().ok()?))
}

/// The Session-Sender Sequence Number of `reply` read as an unauthenticated
/// reflected packet (RFC 8762 §4.3.1), when it looks like one. Such a reply
/// to an authenticated packet comes from a reflector without a key, which read
/// our Sequence Number where both layouts have it. Its Timestamp (octets 4..12)
/// is set, where an authenticated reflected packet has zeros (MBZ): that tells
/// a wrong key's reply from it.
fn unauthenticated(reply: &[u8]) -> Option<u32> {
    let l = AuthMode::Unauthenticated.layout();
    let base = reply.get(..l.len)?;
    let timestamp = &base[l.timestamp..l.timestamp + 8];
    if timestamp.iter().all(|&b| b == 0) {
        return None;
    }
    let seq = &base[l.sender_seq..l.sender_seq + 4];
    Some(u32::from_be_bytes(seq.try_into().ok()?))
}

/// The sequence number below `next` whose low 32 bits are `low` (the most
/// recent one); `low` itself when none is (a reply to nothing sent).
fn widen(low: u32, next: u64) -> u64 {
    let Some(last) = next.checked_sub(1) else {
        return u64::from(low);
    };
    let candidate = (last & !0xFFFF_FFFF) | u64::from(low);
    if candidate <= last {
        candidate
    } else {
        candidate.checked_sub(1 << 32).unwrap_or(candidate)
    }
}

/// The delays one reflected packet gives, in nanoseconds (negative when the
/// clocks disagree); `None` where a timestamp cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delays {
    /// Reflector receive time minus our transmit time (T2 - T1).
    pub(crate) forward: Option<i64>,
    /// Our receive time minus the reflector's transmit time (T4 - T3).
    pub(crate) backward: Option<i64>,
    /// The reflector's turnaround (T3 - T2).
    pub(crate) turnaround: Option<i64>,
}

impl StampEcho {
    /// The delays this reply gives, received at `t4_ns` (since the Unix epoch).
    #[inline]
    pub(crate) fn delays(&self, t4_ns: i64) -> Delays {
        Delays {
            forward: self.t1_ns.zip(self.t2_ns).map(|(t1, t2)| t2.saturating_sub(t1)),
            backward: self.t3_ns.map(|t3| t4_ns.saturating_sub(t3)),
            turnaround: self.t2_ns.zip(self.t3_ns).map(|(t2, t3)| t3.saturating_sub(t2)),
        }
    }
}

/// Signed delays: with clocks not synchronised a one-way delay can be negative.
/// Two histograms, one per sign, of nanoseconds.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    pos: Histogram<u64>,
    neg: Histogram<u64>,
    sum: i128,
}

impl Default for Signed {
    fn default() -> Self {
        // Constant, valid bounds (low >= 1, high >= 2 * low, sigfig <= 5).
        let h = || Histogram::new_with_bounds(1, MAX_DELAY_NS, 3).expect("valid histogram bounds");
        Signed { pos: h(), neg: h(), sum: 0 }
    }
}

impl Signed {
    pub(crate) fn record(&mut self, ns: i64) {
        self.sum += i128::from(ns);
        if ns >= 0 {
            self.pos.saturating_record(ns as u64);
        } else {
            self.neg.saturating_record(ns.unsigned_abs());
        }
    }

    fn len(&self) -> u64 {
        self.pos.len() + self.neg.len()
    }

    fn add(&mut self, other: &Signed) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.pos.add(&other.pos);
        let _ = self.neg.add(&other.neg);
        self.sum += other.sum;
    }

    /// The value at quantile `q`, in nanoseconds.
    fn quantile(&self, q: f64) -> f64 {
        let (n_neg, n) = (self.neg.len() as f64, self.len() as f64);
        let rank = q * n;
        if rank < n_neg && n_neg > 0.0 {
            -(self.neg.value_at_quantile(1.0 - rank / n_neg) as f64)
        } else {
            let n_pos = n - n_neg;
            let q = if n_pos > 0.0 { ((rank - n_neg) / n_pos).clamp(0.0, 1.0) } else { 1.0 };
            self.pos.value_at_quantile(q) as f64
        }
    }

    /// Min, mean, p50, p99 and max in microseconds; `None` when empty.
    pub(crate) fn summary(&self) -> Option<[f64; 5]> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let min =
            if self.neg.is_empty() { self.pos.min() as f64 } else { -(self.neg.max() as f64) };
        let max =
            if self.pos.is_empty() { -(self.neg.min() as f64) } else { self.pos.max() as f64 };
        let us = |ns: f64| ns / 1e3;
        Some([
            us(min),
            us((self.sum as f64 / n as f64).round()),
            us(self.quantile(0.5)),
            us(self.quantile(0.99)),
            us(max),
        ])
    }
}

/// Lowest and highest of a small value, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Range(pub(crate) Option<(u8, u8)>);

impl Range {
    fn note(&mut self, v: u8) {
        self.0 = Some(self.0.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
    }

    fn add(&mut self, other: Range) {
        if let Some((lo, hi)) = other.0 {
            self.note(lo);
            self.note(hi);
        }
    }
}

/// Most distinct reply sizes [`OtherSizes`] lists.
pub(crate) const MAX_SIZES: usize = 16;

/// Answered replies whose size differed from the test packet's (a reflector
/// that pads differently): how many, the smallest and largest, and the first
/// [`MAX_SIZES`] distinct sizes, ascending. Fixed size: nothing allocated per reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OtherSizes {
    pub(crate) replies: u64,
    pub(crate) min: usize,
    pub(crate) max: usize,
    seen: [usize; MAX_SIZES],
    distinct: usize,
}

impl OtherSizes {
    /// Notes an answered reply of `len` octets to a packet of `sent`.
    pub(crate) fn note(&mut self, len: usize, sent: usize) {
        if len != sent {
            self.add_size(len, 1);
        }
    }

    fn add_size(&mut self, len: usize, replies: u64) {
        if self.replies == 0 {
            (self.min, self.max) = (len, len);
        }
        self.replies += replies;
        self.min = self.min.min(len);
        self.max = self.max.max(len);
        let seen = &mut self.seen[..self.distinct];
        if let Err(at) = seen.binary_search(&len) {
            if self.distinct < MAX_SIZES {
                self.seen.copy_within(at..self.distinct, at + 1);
                self.seen[at] = len;
                self.distinct += 1;
            }
        }
    }

    /// The distinct sizes kept, ascending.
    pub(crate) fn sizes(&self) -> &[usize] {
        &self.seen[..self.distinct]
    }

    fn add(&mut self, o: &OtherSizes) {
        if o.replies == 0 {
            return;
        }
        // The counts go with the extremes; the other sizes add no replies.
        self.add_size(o.min, o.replies);
        self.add_size(o.max, 0);
        for &len in o.sizes() {
            self.add_size(len, 0);
        }
    }
}

/// One flow's STAMP sums, then all flows' (measured probes only).
#[derive(Clone, Debug, Default)]
pub(crate) struct StampTally {
    /// Reflector receive time minus our transmit time (T2 - T1).
    pub(crate) forward: Signed,
    /// Our receive time minus the reflector's transmit time (T4 - T3).
    pub(crate) backward: Signed,
    /// The reflector's turnaround (T3 - T2).
    pub(crate) turnaround: Signed,
    /// Round trip minus turnaround.
    pub(crate) net_rtt: Signed,
    /// TTLs our packets arrived at the reflector with.
    pub(crate) forward_ttl: Range,
    /// TTLs the reflected packets arrived here with.
    pub(crate) backward_ttl: Range,
    /// Replies that failed the HMAC check (not in `answered`: mismatched).
    pub(crate) auth_failed: u64,
    /// Of those, replies that read as unauthenticated reflected packets
    /// carrying the number of a probe we sent: the reflector has no key.
    pub(crate) unauthenticated: u64,
    /// Answered replies of another size than the test packets.
    pub(crate) other_sizes: OtherSizes,
    /// What came back of the TLVs we sent.
    pub(crate) tlvs: Box<TlvTally>,
    /// The Class of Service each way (with `--stamp-cos`).
    pub(crate) cos: CosTally,
    /// Replies whose reflector sequence number differs from ours: the
    /// reflector keeps its own count (stateful).
    pub(crate) own_seq: u64,
    /// The lowest and highest answered sequence number with the reflector's
    /// number for it.
    first: Option<(u64, u32)>,
    last: Option<(u64, u32)>,
    /// Filled by [`split`](StampTally::split): lost on the way out, on the
    /// way back, and after the last answer (either way).
    pub(crate) forward_lost: u64,
    pub(crate) backward_lost: u64,
    pub(crate) unsplit_lost: u64,
}

impl StampTally {
    /// Counts one answered probe: our `seq`, the round trip, the reflector's
    /// fields, the TTL and traffic class the reply came with, and our receive
    /// time (T4).
    pub(crate) fn on_answer(
        &mut self,
        seq: u64,
        rtt_ns: u64,
        e: &StampEcho,
        (reply_ttl, reply_tos): (Option<u8>, Option<u8>),
        t4_ns: i64,
    ) {
        let d = e.delays(t4_ns);
        if let Some(forward) = d.forward {
            self.forward.record(forward);
        }
        if let Some(backward) = d.backward {
            self.backward.record(backward);
        }
        if let Some(turn) = d.turnaround {
            self.turnaround.record(turn);
            self.net_rtt.record((rtt_ns.min(i64::MAX as u64) as i64).saturating_sub(turn));
        }
        if e.forward_ttl != 0 {
            self.forward_ttl.note(e.forward_ttl);
        }
        if let Some(ttl) = reply_ttl {
            self.backward_ttl.note(ttl);
        }
        self.tlvs.on_answer(&e.tlvs);
        self.cos.on_answer(e.cos, reply_tos);
        if u64::from(e.reflector_seq) != seq & 0xFFFF_FFFF {
            self.own_seq += 1;
        }
        let r = e.reflector_seq;
        if self.first.is_none_or(|(s, _)| seq < s) {
            self.first = Some((seq, r));
        }
        if self.last.is_none_or(|(s, _)| seq > s) {
            self.last = Some((seq, r));
        }
    }

    /// Splits this flow's `lost` probes (of which `answered` were answered)
    /// by direction. A stateful reflector numbers what it received in this
    /// session: between the lowest and highest answered probe, ours advanced
    /// by `S`, its by `R`, so `S - R` probes never reached it and the rest of
    /// the unanswered ones there were lost on the way back. Probes after the
    /// last answer cannot be told apart.
    pub(crate) fn split(&mut self, lost: u64, answered: u64) {
        let (Some((s0, r0)), Some((s1, r1))) = (self.first, self.last) else {
            self.unsplit_lost = lost;
            return;
        };
        let ours = s1 - s0;
        let theirs = u64::from(r1.wrapping_sub(r0));
        let span_lost = (ours + 1).saturating_sub(answered).min(lost);
        self.forward_lost = ours.saturating_sub(theirs).min(span_lost);
        self.backward_lost = span_lost - self.forward_lost;
        self.unsplit_lost = lost - span_lost;
    }

    /// Adds another flow's sums (each already [`split`](StampTally::split)).
    pub(crate) fn add(&mut self, o: &StampTally) {
        self.forward.add(&o.forward);
        self.backward.add(&o.backward);
        self.turnaround.add(&o.turnaround);
        self.net_rtt.add(&o.net_rtt);
        self.forward_ttl.add(o.forward_ttl);
        self.backward_ttl.add(o.backward_ttl);
        self.auth_failed += o.auth_failed;
        self.unauthenticated += o.unauthenticated;
        self.other_sizes.add(&o.other_sizes);
        self.tlvs.add(&o.tlvs);
        self.cos.add(&o.cos);
        self.own_seq += o.own_seq;
        self.forward_lost += o.forward_lost;
        self.backward_lost += o.backward_lost;
        self.unsplit_lost += o.unsplit_lost;
    }
}

#[cfg(test)]
#[path = "stamp_tests.rs"]
mod tests;
