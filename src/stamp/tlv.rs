//! STAMP TLVs (RFC 8972 §4): the 4-octet header, the flags, the types this
//! crate understands, a borrowing iterator over the TLVs after a base packet,
//! the decoded form of each known TLV, and the Session-Sender's encoder.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |U|M|I|R|R|R|R|R|     Type      |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                  Value (Length octets)                        ~
//! ```
//!
//! A trailer of nothing but zero octets is read as plain padding, not as TLVs:
//! that is what a TWAMP-Light sender pads with (RFC 8762 §4.6), and reading it
//! as a row of empty type-0 TLVs would make a reflector flip bits in it.

use super::packet::{get_u16, get_u32, get_u64, put_u16, put_u32, HMAC_LEN};

/// Length of a TLV header (flags, type, length).
pub const HEADER_LEN: usize = 4;

/// TLV type codes (IANA "STAMP TLV Types", RFC 8972 §5.1).
pub mod kind {
    /// Extra Padding (RFC 8972 §4.1): any length.
    pub const EXTRA_PADDING: u8 = 1;
    /// Location (RFC 8972 §4.2): not implemented here, answered with the U flag.
    pub const LOCATION: u8 = 2;
    /// Timestamp Information (RFC 8972 §4.3): 4 octets.
    pub const TIMESTAMP_INFO: u8 = 3;
    /// Class of Service (RFC 8972 §4.4): 4 octets.
    pub const CLASS_OF_SERVICE: u8 = 4;
    /// Direct Measurement (RFC 8972 §4.5): 12 octets.
    pub const DIRECT_MEASUREMENT: u8 = 5;
    /// Access Report (RFC 8972 §4.6): 4 octets.
    pub const ACCESS_REPORT: u8 = 6;
    /// Follow-Up Telemetry (RFC 8972 §4.7): 16 octets.
    pub const FOLLOW_UP_TELEMETRY: u8 = 7;
    /// HMAC (RFC 8972 §4.8): 16 octets.
    pub const HMAC: u8 = 8;
}

/// The value length a known type must have: `Some(None)` for "any",
/// `Some(Some(n))` for exactly `n`, `None` for a type this crate does not know.
pub fn known_len(kind: u8) -> Option<Option<usize>> {
    match kind {
        kind::EXTRA_PADDING => Some(None),
        kind::TIMESTAMP_INFO | kind::CLASS_OF_SERVICE | kind::ACCESS_REPORT => Some(Some(4)),
        kind::DIRECT_MEASUREMENT => Some(Some(12)),
        kind::FOLLOW_UP_TELEMETRY => Some(Some(16)),
        kind::HMAC => Some(Some(HMAC_LEN)),
        _ => None,
    }
}

/// The STAMP TLV Flags octet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlvFlags(pub u8);

impl TlvFlags {
    /// U: the reflector did not understand the type (a sender sets it before sending).
    pub const U: u8 = 0x80;
    /// M: the reflector found the TLV malformed.
    pub const M: u8 = 0x40;
    /// I: the TLVs failed HMAC verification at the reflector.
    pub const I: u8 = 0x20;

    /// The U flag.
    pub fn unrecognized(self) -> bool {
        self.0 & Self::U != 0
    }
    /// The M flag.
    pub fn malformed(self) -> bool {
        self.0 & Self::M != 0
    }
    /// The I flag.
    pub fn integrity_failed(self) -> bool {
        self.0 & Self::I != 0
    }
}

/// One TLV as found on the wire, borrowed from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Offset of the header from the start of the TLV area.
    pub offset: usize,
    /// The flags octet.
    pub flags: TlvFlags,
    /// The type octet.
    pub kind: u8,
    /// The value, exactly Length octets.
    pub value: &'a [u8],
}

/// The TLV area ends in bytes that are not a whole TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TLV at offset {offset} runs past the end of the packet")]
pub struct Truncated {
    /// Offset from the start of the TLV area of the first byte not read.
    pub offset: usize,
    /// Whether a whole header is there (its Length overruns) or not even that.
    pub has_header: bool,
}

/// Iterator over the TLVs of a TLV area; a [`Truncated`] item ends it.
#[derive(Clone, Debug)]
pub struct Tlvs<'a> {
    area: &'a [u8],
    pos: usize,
}

impl<'a> Tlvs<'a> {
    /// The TLVs in `area` (the bytes after the base packet). An all-zero area
    /// is padding and yields nothing.
    pub fn new(area: &'a [u8]) -> Self {
        let pos = if is_zero_padding(area) { area.len() } else { 0 };
        Self { area, pos }
    }
}

/// True when the area is non-empty zero fill, not TLVs (see the module doc).
pub(crate) fn is_zero_padding(area: &[u8]) -> bool {
    area.iter().all(|&b| b == 0)
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<Tlv<'a>, Truncated>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.area.len().checked_sub(self.pos)?;
        if rest == 0 {
            return None;
        }
        let offset = self.pos;
        if rest < HEADER_LEN {
            self.pos = self.area.len();
            return Some(Err(Truncated { offset, has_header: false }));
        }
        let len = usize::from(get_u16(self.area, offset + 2));
        if rest - HEADER_LEN < len {
            self.pos = self.area.len();
            return Some(Err(Truncated { offset, has_header: true }));
        }
        self.pos = offset + HEADER_LEN + len;
        Some(Ok(Tlv {
            offset,
            flags: TlvFlags(self.area[offset]),
            kind: self.area[offset + 1],
            value: &self.area[offset + HEADER_LEN..self.pos],
        }))
    }
}

/// A known TLV's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlvValue<'a> {
    /// Extra Padding: the fill.
    ExtraPadding(&'a [u8]),
    /// Timestamp Information: the reflector's sync sources and timestamping methods.
    TimestampInfo {
        /// Sync Src In (1 NTP, 2 PTP, 3 SSU/BITS, 4 GNSS, 5 local free-running).
        sync_src_in: u8,
        /// Timestamp In (1 HW assist, 2 SW local, 3 control plane).
        timestamp_in: u8,
        /// Sync Src Out.
        sync_src_out: u8,
        /// Timestamp Out.
        timestamp_out: u8,
    },
    /// Class of Service.
    ClassOfService {
        /// DSCP1: what the sender asks the reply to carry.
        dscp1: u8,
        /// DSCP2: the DSCP the reflector received.
        dscp2: u8,
        /// ECN: the ECN the reflector received.
        ecn: u8,
        /// RP: 1 when the reflector did not use DSCP1 for the reply.
        rp: u8,
    },
    /// Direct Measurement counters.
    DirectMeasurement {
        /// S_TxC: test packets the sender has sent.
        sender_tx: u32,
        /// R_RxC: test packets the reflector has received in this session.
        reflector_rx: u32,
        /// R_TxC: reflected packets the reflector has sent in this session.
        reflector_tx: u32,
    },
    /// Access Report.
    AccessReport {
        /// Access ID (1: 3GPP, 2: non-3GPP).
        id: u8,
        /// Return Code (1: network available, 2: unavailable).
        return_code: u8,
    },
    /// Follow-Up Telemetry: when the previous reflected packet really left.
    FollowUpTelemetry {
        /// Reflector Sequence Number of the previous reflected packet.
        seq: u32,
        /// Its transmit timestamp, in the reflector's format.
        timestamp: u64,
        /// Timestamping method (1 HW assist, 2 SW local, 3 control plane).
        mode: u8,
    },
    /// HMAC.
    Hmac([u8; HMAC_LEN]),
    /// A type this crate does not decode.
    Unknown(&'a [u8]),
}

/// A known type carries a value of the wrong length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TLV type {kind} has a value of {len} octets, not {expected}")]
pub struct BadLength {
    /// The type.
    pub kind: u8,
    /// The length found.
    pub len: usize,
    /// The length the type has.
    pub expected: usize,
}

impl<'a> Tlv<'a> {
    /// The decoded value; an error when a known type has the wrong length.
    pub fn decode(&self) -> Result<TlvValue<'a>, BadLength> {
        let v = self.value;
        match known_len(self.kind) {
            Some(Some(expected)) if v.len() != expected => {
                return Err(BadLength { kind: self.kind, len: v.len(), expected })
            }
            None => return Ok(TlvValue::Unknown(v)),
            _ => {}
        }
        Ok(match self.kind {
            kind::EXTRA_PADDING => TlvValue::ExtraPadding(v),
            kind::TIMESTAMP_INFO => TlvValue::TimestampInfo {
                sync_src_in: v[0],
                timestamp_in: v[1],
                sync_src_out: v[2],
                timestamp_out: v[3],
            },
            kind::CLASS_OF_SERVICE => TlvValue::ClassOfService {
                dscp1: v[0] >> 2,
                dscp2: ((v[0] & 0x03) << 4) | (v[1] >> 4),
                ecn: (v[1] >> 2) & 0x03,
                rp: v[1] & 0x03,
            },
            kind::DIRECT_MEASUREMENT => TlvValue::DirectMeasurement {
                sender_tx: get_u32(v, 0),
                reflector_rx: get_u32(v, 4),
                reflector_tx: get_u32(v, 8),
            },
            kind::ACCESS_REPORT => TlvValue::AccessReport { id: v[0] >> 4, return_code: v[1] },
            kind::FOLLOW_UP_TELEMETRY => TlvValue::FollowUpTelemetry {
                seq: get_u32(v, 0),
                timestamp: get_u64(v, 4),
                mode: v[12],
            },
            _ => {
                // Only HMAC is left among the known types; its length was checked above.
                let mut h = [0u8; HMAC_LEN];
                h.copy_from_slice(v);
                TlvValue::Hmac(h)
            }
        })
    }
}

/// Packs the first two octets of a Class of Service value.
pub(crate) fn cos_octets(dscp1: u8, dscp2: u8, ecn: u8, rp: u8) -> [u8; 2] {
    [
        ((dscp1 & 0x3f) << 2) | ((dscp2 >> 4) & 0x03),
        ((dscp2 & 0x0f) << 4) | ((ecn & 0x03) << 2) | (rp & 0x03),
    ]
}

/// A TLV a Session-Sender asks for. The sender fills only what RFC 8972 lets
/// it fill; everything the reflector reports goes out zeroed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlvRequest {
    /// Timestamp Information.
    TimestampInfo,
    /// Class of Service, asking for `dscp` (6 bits) on the reply.
    ClassOfService {
        /// DSCP1.
        dscp: u8,
    },
    /// Direct Measurement; S_TxC is filled with the packets sent so far.
    DirectMeasurement,
    /// Access Report with Access ID `id` (1 or 2) and a Return Code.
    AccessReport {
        /// Access ID (4 bits).
        id: u8,
        /// Return Code.
        return_code: u8,
    },
    /// Follow-Up Telemetry.
    FollowUpTelemetry,
    /// Any type with a zeroed value of `len` octets (for testing reflectors).
    Raw {
        /// The type octet.
        kind: u8,
        /// The value length.
        len: u16,
    },
}

impl TlvRequest {
    /// Octets this TLV takes, header included.
    pub fn wire_len(self) -> usize {
        HEADER_LEN
            + match self {
                Self::TimestampInfo | Self::ClassOfService { .. } | Self::AccessReport { .. } => 4,
                Self::DirectMeasurement => 12,
                Self::FollowUpTelemetry => 16,
                Self::Raw { len, .. } => usize::from(len),
            }
    }

    /// Writes the TLV at the start of `out` (at least [`wire_len`](Self::wire_len)
    /// long) with the U flag set as RFC 8972 §4 asks of a sender;
    /// `sent` is the count of packets sent including this one.
    pub(crate) fn write(self, out: &mut [u8], sent: u32) -> usize {
        let n = self.wire_len();
        let (kind, value_len) = match self {
            Self::TimestampInfo => (kind::TIMESTAMP_INFO, 4),
            Self::ClassOfService { .. } => (kind::CLASS_OF_SERVICE, 4),
            Self::DirectMeasurement => (kind::DIRECT_MEASUREMENT, 12),
            Self::AccessReport { .. } => (kind::ACCESS_REPORT, 4),
            Self::FollowUpTelemetry => (kind::FOLLOW_UP_TELEMETRY, 16),
            Self::Raw { kind, len } => (kind, len),
        };
        write_header(out, TlvFlags::U, kind, value_len);
        out[HEADER_LEN..n].fill(0);
        let v = &mut out[HEADER_LEN..n];
        match self {
            Self::ClassOfService { dscp } => v[..2].copy_from_slice(&cos_octets(dscp, 0, 0, 0)),
            Self::DirectMeasurement => put_u32(v, 0, sent),
            Self::AccessReport { id, return_code } => {
                v[0] = (id & 0x0f) << 4;
                v[1] = return_code;
            }
            _ => {}
        }
        n
    }
}

/// Writes a TLV header.
pub(crate) fn write_header(out: &mut [u8], flags: u8, kind: u8, len: u16) {
    out[0] = flags;
    out[1] = kind;
    put_u16(out, 2, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_and_stops_at_a_truncated_tlv() {
        let area = [
            0x80, 1, 0, 2, 0xaa, 0xbb, // Extra Padding, 2 octets
            0x80, 200, 0, 0, // unknown type, zero length
            0x80, 3, 0, 9, 1, // claims 9 octets, has 1
        ];
        let items: Vec<_> = Tlvs::new(&area).collect();
        assert_eq!(items.len(), 3);
        let pad = items[0].unwrap();
        assert_eq!((pad.offset, pad.kind, pad.value), (0, 1, &[0xaa, 0xbb][..]));
        assert!(pad.flags.unrecognized());
        assert_eq!(items[1].unwrap().decode(), Ok(TlvValue::Unknown(&[])));
        assert_eq!(items[2], Err(Truncated { offset: 10, has_header: true }));
        let stub: Vec<_> = Tlvs::new(&[0x80, 1, 0]).collect();
        assert_eq!(stub, [Err(Truncated { offset: 0, has_header: false })]);
    }

    #[test]
    fn zero_fill_is_padding_not_tlvs() {
        assert_eq!(Tlvs::new(&[0; 64]).count(), 0);
        assert_eq!(Tlvs::new(&[]).count(), 0);
    }

    #[test]
    fn known_types_decode_from_the_rfc_bit_positions() {
        // Class of Service: DSCP1 46 (EF), DSCP2 10 (AF11), ECN 3, RP 1.
        let cos = Tlv { offset: 0, flags: TlvFlags(0), kind: 4, value: &[0xb8, 0xad, 0, 0] };
        assert_eq!(
            cos.decode(),
            Ok(TlvValue::ClassOfService { dscp1: 46, dscp2: 10, ecn: 3, rp: 1 })
        );
        assert_eq!(cos_octets(46, 10, 3, 1), [0xb8, 0xad]);
        let ar = Tlv { offset: 0, flags: TlvFlags(0), kind: 6, value: &[0x20, 0x01, 0, 0] };
        assert_eq!(ar.decode(), Ok(TlvValue::AccessReport { id: 2, return_code: 1 }));
        let dm_bytes = [0, 0, 0, 7, 0, 0, 0, 6, 0, 0, 0, 5];
        let dm = Tlv { offset: 0, flags: TlvFlags(0), kind: 5, value: &dm_bytes };
        assert_eq!(
            dm.decode(),
            Ok(TlvValue::DirectMeasurement { sender_tx: 7, reflector_rx: 6, reflector_tx: 5 })
        );
        let short = Tlv { offset: 0, flags: TlvFlags(0), kind: 5, value: &[0; 8] };
        assert_eq!(short.decode(), Err(BadLength { kind: 5, len: 8, expected: 12 }));
    }

    #[test]
    fn sender_requests_are_written_with_the_u_flag_and_zeroed_reports() {
        let mut out = [0xffu8; 32];
        let n = TlvRequest::DirectMeasurement.write(&mut out, 9);
        assert_eq!(&out[..n], &[0x80, 5, 0, 12, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
        let n = TlvRequest::ClassOfService { dscp: 46 }.write(&mut out, 0);
        assert_eq!(&out[..n], &[0x80, 4, 0, 4, 0xb8, 0, 0, 0]);
        let n = TlvRequest::AccessReport { id: 1, return_code: 2 }.write(&mut out, 0);
        assert_eq!(&out[..n], &[0x80, 6, 0, 4, 0x10, 2, 0, 0]);
        let n = TlvRequest::FollowUpTelemetry.write(&mut out, 0);
        assert_eq!(n, 20);
        assert_eq!(&out[..4], &[0x80, 7, 0, 16]);
        assert!(out[4..20].iter().all(|&b| b == 0));
    }
}
