//! The probe: a sequence number and a send time in bytes that uppercasing cannot change.
//!
//! `SB`, 12 uppercase hex digits of sequence number, 14 of send time (nanoseconds
//! since the bench started), then `.` up to the probe size:
//!
//! ```text
//! SB00000000002A000000075BCD15....................................
//! ```
//!
//! No byte is an ASCII `a`–`z`, so an uppercase server and an echo server both
//! send back exactly the probe, and any other bytes are a wrong reply.
//!
//! The probe agent ([`Format::lower`]) needs the two told apart: its probes
//! start `Sb`, whose `b` an uppercasing server turns into `B` and an echo
//! server leaves alone, so `upper` takes only an `SB` reply and `echo` only an
//! `Sb` one (everything else as above).
//!
//! [`Format`] is the seam the other steps see: it builds the probe for
//! sequence number N and reads a reply back to the [`Echo`] of the probe it
//! answers, or to nothing (a mismatch). Another probe format (STAMP test
//! packets, say) is another `Format`, its extra per-reply fields more fields
//! of `Echo`; sending, matching and recording stay as they are. `--stamp`
//! is such a format ([`StampFormat`]).

use super::stamp::{StampEcho, StampFormat, Unusable};
use crate::Expect;

/// Marks a datagram as a shout bench probe.
const MAGIC: &[u8; 2] = b"SB";
/// Marks a probe whose reply tells an uppercasing server from an echo server:
/// uppercased it is [`MAGIC`], echoed it stays this.
const MAGIC_LOWER: &[u8; 2] = b"Sb";
const SEQ_DIGITS: usize = 12;
const TIME_DIGITS: usize = 14;

/// Bytes before the filler: the smallest probe.
pub(crate) const HEADER_LEN: usize = MAGIC.len() + SEQ_DIGITS + TIME_DIGITS;
/// What pads a probe to its size.
const FILLER: u8 = b'.';
/// Largest sequence number the header holds (2^48 − 1).
pub(crate) const MAX_SEQ: u64 = (1 << (4 * SEQ_DIGITS)) - 1;
/// Largest send time the header holds, in nanoseconds (2^56 − 1: over two years).
pub(crate) const MAX_TIME_NS: u64 = (1 << (4 * TIME_DIGITS)) - 1;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A whole datagram's worth of filler, to compare bodies with one `memcmp`.
static BODY: [u8; 65_536] = [FILLER; 65_536];

/// How a run's probes are built and its replies read: the probe size, and
/// which replies count.
#[derive(Clone, Debug)]
pub(crate) struct Format {
    /// Probe size in bytes, at least [`HEADER_LEN`].
    pub(crate) size: usize,
    /// Which replies count.
    pub(crate) expect: Expect,
    /// STAMP test packets instead of `SB` probes (then `size` is theirs).
    pub(crate) stamp: Option<StampFormat>,
    /// Probes start `Sb` (a lowercase letter) instead of `SB`: an uppercasing
    /// server answers `SB`, an echo server `Sb`, and `expect` takes only its
    /// own kind (`Any` both). The probe agent's; the bench's probes stay `SB`,
    /// which both kinds of server return unchanged.
    pub(crate) lower: bool,
}

/// What a correct reply says about the probe it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Echo {
    /// The probe's sequence number.
    pub(crate) seq: u64,
    /// The send time the probe carried, in nanoseconds since the start;
    /// `None` for STAMP, whose packets carry the wall clock instead (the
    /// flow's own record of the send time is used).
    pub(crate) sent_ns: Option<u64>,
    /// What a STAMP reflector added.
    pub(crate) stamp: Option<StampEcho>,
}

impl Format {
    /// Fills `out` (one probe's worth) with probe `seq`, sent at `time_ns`.
    pub(crate) fn fill(&self, out: &mut [u8], seq: u64, time_ns: u64) {
        match &self.stamp {
            Some(s) => s.fill(out, seq),
            None => fill(out, self.magic(), seq, time_ns),
        }
    }

    /// Turns a probe already [`fill`](Format::fill)ed into probe `seq`, sent at
    /// `time_ns`: only the bytes that differ are written.
    #[inline]
    pub(crate) fn stamp(&self, out: &mut [u8], seq: u64, time_ns: u64) {
        match &self.stamp {
            // Its timestamp, sequence number, TLVs and HMACs all change.
            Some(s) => s.fill(out, seq),
            None => write_header(out, self.magic(), seq, time_ns),
        }
    }

    /// The probe `reply` answers, or why it is no correct reply to a probe of
    /// this format (it may still name one never sent: the caller checks that).
    /// `next_seq` is the flow's next sequence number, for formats that carry
    /// only the low bits of theirs.
    #[inline]
    pub(crate) fn read(&self, reply: &[u8], next_seq: u64) -> Result<Echo, Unusable> {
        if let Some(s) = &self.stamp {
            let (seq, e) = s.read(reply, next_seq)?;
            return Ok(Echo { seq, sent_ns: None, stamp: Some(e) });
        }
        self.read_as(reply, self.expect).ok_or(Unusable::Mismatch)
    }

    /// What a probe of this format sent to a server of the other kind (echo
    /// for `upper`, uppercasing for `echo`) comes back as: the probe it
    /// answers, read as that kind's reply. `None` when it is none, or when
    /// the format cannot tell the kinds apart (not [`lower`](Format::lower)).
    /// For the wrong-server hint; not on the hot path.
    pub(crate) fn read_as_other_kind(&self, reply: &[u8]) -> Option<Echo> {
        let other = match self.expect {
            Expect::Upper => Expect::Echo,
            Expect::Echo => Expect::Upper,
            Expect::Any => return None,
        };
        (self.lower && self.stamp.is_none()).then(|| self.read_as(reply, other)).flatten()
    }

    /// The `SB` probe a reply answers, if it is a correct reply from a server
    /// of kind `expect`.
    #[inline]
    fn read_as(&self, reply: &[u8], expect: Expect) -> Option<Echo> {
        let (magic, seq, sent_ns) = read_header(reply)?;
        let ok = match expect {
            Expect::Any => self.lower || magic == MAGIC,
            // The probe's only a-z is its magic's `b`, if any: the rest is as sent.
            Expect::Upper => magic == MAGIC && body_intact(reply, self.size),
            Expect::Echo => magic == self.magic() && body_intact(reply, self.size),
        };
        ok.then_some(Echo { seq, sent_ns: Some(sent_ns), stamp: None })
    }

    /// The magic its probes start with.
    #[inline]
    fn magic(&self) -> &'static [u8; 2] {
        if self.lower {
            MAGIC_LOWER
        } else {
            MAGIC
        }
    }
}

/// Fills `out` with a probe: header, then filler to the end.
fn fill(out: &mut [u8], magic: &[u8; 2], seq: u64, time_ns: u64) {
    write_header(out, magic, seq, time_ns);
    out[HEADER_LEN..].fill(FILLER);
}

/// Writes the header into the first [`HEADER_LEN`] bytes of `out`, leaving the
/// rest alone (the filler is written once per buffer, not per probe).
///
/// Values wider than the header are cut to its digits; callers keep within
/// [`MAX_SEQ`] and [`MAX_TIME_NS`].
#[inline]
fn write_header(out: &mut [u8], magic: &[u8; 2], seq: u64, time_ns: u64) {
    let (head, rest) = out[..HEADER_LEN].split_at_mut(MAGIC.len());
    head.copy_from_slice(magic);
    let (seq_digits, time_digits) = rest.split_at_mut(SEQ_DIGITS);
    put_hex(seq_digits, seq);
    put_hex(time_digits, time_ns);
}

#[inline]
fn put_hex(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = HEX[(value & 0xF) as usize];
        value >>= 4;
    }
}

/// The magic (`SB` or `Sb`), sequence number and send time in a probe's
/// header, if it has a valid one.
#[inline]
fn read_header(payload: &[u8]) -> Option<(&'static [u8; 2], u64, u64)> {
    let header = payload.get(..HEADER_LEN)?;
    let (magic, rest) = header.split_at(MAGIC.len());
    let magic = if magic == MAGIC {
        MAGIC
    } else if magic == MAGIC_LOWER {
        MAGIC_LOWER
    } else {
        return None;
    };
    let (seq, time) = rest.split_at(SEQ_DIGITS);
    Some((magic, hex_value(seq)?, hex_value(time)?))
}

/// Parses uppercase hex only: a lowercased digit is a changed probe.
#[inline]
fn hex_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(v))
    })
}

/// Whether `payload` has a probe's length and an untouched filler.
#[inline]
fn body_intact(payload: &[u8], size: usize) -> bool {
    payload.len() == size
        && size >= HEADER_LEN
        && BODY.get(..size - HEADER_LEN).is_some_and(|body| payload[HEADER_LEN..] == *body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use proptest::prelude::*;

    #[test]
    fn header_is_readable_hex() {
        let mut p = [0u8; 40];
        fill(&mut p, MAGIC, 42, 123_456_789);
        assert_eq!(&p, b"SB00000000002A000000075BCD15............");
        assert_eq!(read_header(&p), Some((MAGIC, 42, 123_456_789)));
        assert!(body_intact(&p, 40));
        assert!(!body_intact(&p, 41));
    }

    #[test]
    fn changed_probes_are_rejected() {
        let mut p = [0u8; 32];
        fill(&mut p, MAGIC, 0xAB, 7);
        let mut lower = p;
        lower.make_ascii_lowercase();
        assert_eq!(read_header(&lower), None, "lowercased magic and digits");
        let mut digit = p;
        digit[12] = b'b'; // within the seq digits
        assert_eq!(read_header(&digit), None);
        let mut body = p;
        body[31] = b',';
        assert!(read_header(&body).is_some());
        assert!(!body_intact(&body, 32));
        assert_eq!(read_header(&p[..HEADER_LEN - 1]), None);
        assert!(!body_intact(&p[..HEADER_LEN - 1], HEADER_LEN - 1));
        assert!(!body_intact(b"", 0));
    }

    #[test]
    fn format_reads_back_what_it_built() {
        let upper = Format { size: 40, expect: Expect::Upper, stamp: None, lower: false };
        let mut p = [0u8; 40];
        upper.fill(&mut p, 0, 0);
        upper.stamp(&mut p, 7, 99);
        let want = Echo { seq: 7, sent_ns: Some(99), stamp: None };
        assert_eq!(upper.read(&p, 8), Ok(want));
        assert_eq!(upper.read(&p[..39], 8), Err(Unusable::Mismatch), "short");
        let mut extra = p.to_vec();
        extra.extend_from_slice(b"tail");
        assert_eq!(upper.read(&extra, 8), Err(Unusable::Mismatch), "long");
        let any = Format { expect: Expect::Any, ..upper.clone() };
        assert_eq!(any.read(&extra, 8), Ok(want));
        assert_eq!(any.read(b"sb00", 8), Err(Unusable::Mismatch));
        let echo = Format { expect: Expect::Echo, ..upper.clone() };
        assert_eq!(echo.read(&p, 8), Ok(want), "SB probes: an echo reply is an upper one");
        assert_eq!(upper.read_as_other_kind(&p), None, "the bench's probes cannot tell");
    }

    #[test]
    fn lower_probes_tell_an_uppercasing_server_from_an_echo_server() {
        let upper = Format { size: 40, expect: Expect::Upper, stamp: None, lower: true };
        let echo = Format { expect: Expect::Echo, ..upper.clone() };
        let mut p = [0u8; 40];
        upper.fill(&mut p, 0, 0);
        upper.stamp(&mut p, 7, 99);
        assert_eq!(&p[..2], b"Sb");
        assert!(p.iter().any(u8::is_ascii_lowercase), "uppercasing changes it");
        let mut uppercased = p;
        Mode::Upper.apply(&mut uppercased);
        assert_ne!(uppercased, p);
        let want = Echo { seq: 7, sent_ns: Some(99), stamp: None };
        assert_eq!(upper.read(&uppercased, 8), Ok(want));
        assert_eq!(upper.read(&p, 8), Err(Unusable::Mismatch), "an echo server's reply");
        assert_eq!(echo.read(&p, 8), Ok(want));
        assert_eq!(echo.read(&uppercased, 8), Err(Unusable::Mismatch), "an upper server's");
        assert_eq!(upper.read_as_other_kind(&p), Some(want));
        assert_eq!(echo.read_as_other_kind(&uppercased), Some(want));
        assert_eq!(upper.read_as_other_kind(&uppercased), None, "its own kind");
        let any = Format { expect: Expect::Any, ..upper };
        assert_eq!(any.read(&p, 8), Ok(want));
        assert_eq!(any.read(&uppercased, 8), Ok(want));
        assert_eq!(any.read_as_other_kind(&p), None);
    }

    #[test]
    fn extremes_fit() {
        let mut p = [0u8; HEADER_LEN];
        fill(&mut p, MAGIC, MAX_SEQ, MAX_TIME_NS);
        assert_eq!(read_header(&p), Some((MAGIC, MAX_SEQ, MAX_TIME_NS)));
        assert!(body_intact(&p, HEADER_LEN));
    }

    proptest! {
        #[test]
        fn uppercasing_never_changes_a_probe(
            seq in 0..=MAX_SEQ,
            time in 0..=MAX_TIME_NS,
            size in HEADER_LEN..3000usize,
        ) {
            let mut p = vec![0u8; size];
            fill(&mut p, MAGIC, seq, time);
            prop_assert!(!p.iter().any(u8::is_ascii_lowercase));
            let mut upper = p.clone();
            Mode::Upper.apply(&mut upper);
            prop_assert_eq!(&upper, &p);
            prop_assert!(Mode::Upper.is_reply(&p, &p));
            prop_assert_eq!(read_header(&p), Some((MAGIC, seq, time)));
            prop_assert!(body_intact(&p, size));
        }
    }
}
