//! What the TLVs of `--stamp-tlv` came back as: [`TlvMarks`], the types one
//! reply carried and with which of the flags U, M, I (RFC 8972 §4), and
//! [`TlvTally`], the counts per type over the answered replies, in fixed
//! arrays: nothing is allocated per reply.

use crate::stamp::TlvFlags;

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
    pub(crate) fn kinds(bits: [u64; 4]) -> impl Iterator<Item = u8> {
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
    pub(crate) fn on_answer(&mut self, m: &TlvMarks) {
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

    pub(crate) fn add(&mut self, o: &TlvTally) {
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind.iter()) {
            a.carried += b.carried;
            a.unrecognized += b.unrecognized;
            a.malformed += b.malformed;
            a.integrity_failed += b.integrity_failed;
        }
        self.hmac_failed += o.hmac_failed;
    }
}
