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

use crate::stamp::{ParseError, Sender, TlvFlags, TlvIntegrity};

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
}

/// Sets of TLV types (one bit per type octet) a reply carried back: all of
/// them, and those with the U, M and I flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlvMarks {
    carried: [u64; 4],
    unrecognized: [u64; 4],
    malformed: [u64; 4],
    integrity_failed: [u64; 4],
}

fn set(bits: &mut [u64; 4], kind: u8) {
    bits[usize::from(kind >> 6)] |= 1 << (kind & 63);
}

impl TlvMarks {
    /// Notes one TLV of type `kind` with `flags`.
    pub(crate) fn note(&mut self, kind: u8, flags: TlvFlags) {
        set(&mut self.carried, kind);
        if flags.unrecognized() {
            set(&mut self.unrecognized, kind);
        }
        if flags.malformed() {
            set(&mut self.malformed, kind);
        }
        if flags.integrity_failed() {
            set(&mut self.integrity_failed, kind);
        }
    }

    /// The types in a set, in ascending order (set bits only).
    fn kinds(bits: [u64; 4]) -> impl Iterator<Item = u8> {
        bits.into_iter().enumerate().flat_map(|(w, mut word)| {
            std::iter::from_fn(move || {
                let bit = word.trailing_zeros();
                (word != 0).then(|| {
                    word &= word - 1;
                    (w as u32 * 64 + bit) as u8
                })
            })
        })
    }
}

/// Per TLV type: how many replies carried it back, and how many of those had
/// each flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlvCount {
    pub(crate) carried: u64,
    pub(crate) unrecognized: u64,
    pub(crate) malformed: u64,
    pub(crate) integrity_failed: u64,
}

/// The TLVs of all answered replies, counted by type (a fixed array: no
/// allocation per reply), and the replies whose HMAC TLV failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlvTally {
    /// Indexed by the type octet.
    pub(crate) by_kind: [TlvCount; 256],
    /// Replies whose HMAC TLV did not match our key (not answered: their
    /// TLVs cannot be trusted, RFC 8972 §4.8).
    pub(crate) hmac_failed: u64,
}

impl Default for TlvTally {
    fn default() -> Self {
        TlvTally { by_kind: [TlvCount::default(); 256], hmac_failed: 0 }
    }
}

impl TlvTally {
    fn on_answer(&mut self, m: &TlvMarks) {
        if m.carried == [0; 4] {
            return;
        }
        for k in TlvMarks::kinds(m.carried) {
            self.by_kind[usize::from(k)].carried += 1;
        }
        for k in TlvMarks::kinds(m.unrecognized) {
            self.by_kind[usize::from(k)].unrecognized += 1;
        }
        for k in TlvMarks::kinds(m.malformed) {
            self.by_kind[usize::from(k)].malformed += 1;
        }
        for k in TlvMarks::kinds(m.integrity_failed) {
            self.by_kind[usize::from(k)].integrity_failed += 1;
        }
    }

    fn add(&mut self, o: &TlvTally) {
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind.iter()) {
            a.carried += b.carried;
            a.unrecognized += b.unrecognized;
            a.malformed += b.malformed;
            a.integrity_failed += b.integrity_failed;
        }
        self.hmac_failed += o.hmac_failed;
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
            ParseError::Auth => Unusable::Auth,
            ParseError::Short { .. } => Unusable::Mismatch,
        })?;
        if r.tlv_integrity == TlvIntegrity::Invalid {
            return Err(Unusable::TlvAuth);
        }
        if r.ssid != self.sender.config().ssid {
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
    /// What came back of the TLVs we sent.
    pub(crate) tlvs: Box<TlvTally>,
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
    /// fields, the TTL the reply came with, and our receive time (T4).
    pub(crate) fn on_answer(
        &mut self,
        seq: u64,
        rtt_ns: u64,
        e: &StampEcho,
        reply_ttl: Option<u8>,
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
        self.tlvs.add(&o.tlvs);
        self.own_seq += o.own_seq;
        self.forward_lost += o.forward_lost;
        self.backward_lost += o.backward_lost;
        self.unsplit_lost += o.unsplit_lost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_finds_the_latest_sent() {
        assert_eq!(widen(5, 0), 5);
        assert_eq!(widen(5, 10), 5);
        assert_eq!(widen(5, 5), 5, "none that low was sent: the caller finds it unsent");
        let next = (3 << 32) + 10;
        assert_eq!(widen(9, next), (3 << 32) + 9);
        assert_eq!(widen(0xFFFF_FFFF, next), (2 << 32) + 0xFFFF_FFFF);
    }

    #[test]
    fn signed_quantiles_cross_zero() {
        let mut s = Signed::default();
        for v in [-3_000, -1_000, 1_000, 2_000] {
            s.record(v);
        }
        let [min, mean, p50, _p99, max] = s.summary().unwrap();
        assert!((min + 3.0).abs() < 0.01 && (max - 2.0).abs() < 0.01, "{min} {max}");
        assert!((mean + 0.25).abs() < 0.01, "{mean}");
        assert!(p50.abs() <= 1.01, "{p50}");
        assert_eq!(Signed::default().summary(), None);
    }

    #[test]
    fn packets_read_back_through_a_reflector() {
        use crate::stamp::{Arrival, Reflector, ReflectorConfig, SenderConfig};
        let cfg = SenderConfig { ssid: 3, ..SenderConfig::default() };
        let format = StampFormat { sender: Sender::new(cfg).unwrap() };
        let mut reflector =
            Reflector::new(ReflectorConfig { stateful: true, ..ReflectorConfig::default() })
                .unwrap();
        let rx = Arrival {
            src: "127.0.0.1:4000".parse().unwrap(),
            received: SystemTime::now(),
            ttl: Some(250),
            tos: None,
        };
        let mut buf = [0u8; 44];
        let seq = (5 << 32) + 17;
        format.fill(&mut buf, seq);
        let len = reflector.reflect(&mut buf, 44, &rx).unwrap();
        let (got, e) = format.read(&buf[..len], seq + 3).unwrap();
        assert_eq!(got, seq, "the 32 bits on the wire widened to the probe sent");
        assert_eq!((e.reflector_seq, e.forward_ttl), (0, 250), "its own count, from 0");
        let (t1, t2, t3) = (e.t1_ns.unwrap(), e.t2_ns.unwrap(), e.t3_ns.unwrap());
        assert!(t1 > 1_600_000_000_000_000_000 && t2 >= t1 - 1_000_000 && t3 >= t2, "{e:?}");
        assert_eq!(format.read(&buf[..43], seq + 3), Err(Unusable::Mismatch), "short");
        let other = StampFormat { sender: Sender::new(SenderConfig::default()).unwrap() };
        assert_eq!(other.read(&buf[..len], seq + 3), Err(Unusable::Mismatch), "another SSID");
    }

    #[test]
    fn reflected_tlvs_are_marked_and_counted_by_type() {
        use crate::stamp::{Arrival, Reflector, ReflectorConfig, SenderConfig, TlvRequest};
        let key = b"0123456789abcdef".to_vec();
        let tlvs = vec![
            TlvRequest::TimestampInfo,
            TlvRequest::Raw { kind: 99, len: 4 },
            TlvRequest::Raw { kind: 200, len: 0 },
        ];
        let cfg = SenderConfig { auth_key: Some(key.clone()), tlvs, ..SenderConfig::default() };
        let format = StampFormat { sender: Sender::new(cfg).unwrap() };
        let rcfg = ReflectorConfig { auth_key: Some(key), ..ReflectorConfig::default() };
        let mut reflector = Reflector::new(rcfg).unwrap();
        let rx = Arrival {
            src: "127.0.0.1:4000".parse().unwrap(),
            received: SystemTime::now(),
            ttl: Some(64),
            tos: None,
        };
        let len = format.sender.packet_len();
        let mut buf = vec![0u8; len];
        format.fill(&mut buf, 0);
        let n = reflector.reflect(&mut buf, len, &rx).unwrap();
        let (_, e) = format.read(&buf[..n], 1).unwrap();
        let mut tally = StampTally::default();
        tally.on_answer(0, 1_000, &e, None, 0);
        tally.on_answer(1, 1_000, &e, None, 0);
        let c = |k: u8| count(&tally, k);
        assert_eq!(c(3), TlvCount { carried: 2, ..TlvCount::default() }, "processed");
        for k in [99, 200] {
            assert_eq!(c(k), TlvCount { carried: 2, unrecognized: 2, ..TlvCount::default() });
        }
        assert_eq!(c(8).carried, 2, "the HMAC TLV came back too");
        assert_eq!(c(4), TlvCount::default(), "not sent, not carried");
        // A flipped bit in a TLV breaks the reflector's HMAC TLV.
        buf[44 + 5] ^= 1;
        assert_eq!(format.read(&buf[..n], 1), Err(Unusable::TlvAuth));
        let mut marks = TlvMarks::default();
        marks.note(0, TlvFlags(TlvFlags::M | TlvFlags::I));
        marks.note(255, TlvFlags(TlvFlags::I));
        tally.on_answer(2, 1_000, &StampEcho { tlvs: marks, ..e }, None, 0);
        assert_eq!(
            count(&tally, 0),
            TlvCount { carried: 1, malformed: 1, integrity_failed: 1, ..TlvCount::default() }
        );
        assert_eq!(
            count(&tally, 255),
            TlvCount { carried: 1, integrity_failed: 1, ..TlvCount::default() }
        );
        let mut sum = StampTally::default();
        sum.add(&tally);
        sum.add(&tally);
        assert_eq!(count(&sum, 3).carried, 4, "flows add up");
    }

    fn count(t: &StampTally, k: u8) -> TlvCount {
        t.tlvs.by_kind[usize::from(k)]
    }

    fn echo(reflector_seq: u32) -> StampEcho {
        StampEcho {
            reflector_seq,
            t1_ns: None,
            t2_ns: None,
            t3_ns: None,
            forward_ttl: 0,
            tlvs: TlvMarks::default(),
        }
    }

    #[test]
    fn loss_splits_by_the_reflectors_count() {
        // 20 sent; 2 and 7 never reached the reflector, 11 was dropped on the
        // way back, 19 unanswered at the end.
        let mut t = StampTally::default();
        let mut r = 0;
        let mut answered = 0;
        for seq in 0..20u64 {
            if [2, 7].contains(&seq) {
                continue;
            }
            if seq != 11 && seq != 19 {
                t.on_answer(seq, 1_000, &echo(r), None, 0);
                answered += 1;
            }
            r += 1;
        }
        t.split(20 - answered, answered);
        assert_eq!((t.forward_lost, t.backward_lost, t.unsplit_lost), (2, 1, 1));
        assert_eq!(t.own_seq, 14, "numbers differ from the first gap on");
    }
}
