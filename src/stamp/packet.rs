//! Where every field of the four STAMP base packets sits: the Session-Sender
//! and Session-Reflector packets of RFC 8762 §4.2 and §4.3, in unauthenticated
//! and authenticated mode, with the SSID of RFC 8972 §3 in the two octets after
//! the Error Estimate. Only offsets and big-endian field access live here.
//!
//! Unauthenticated (44 octets each way), offsets in octets:
//!
//! ```text
//! sender                          reflector
//!  0 Sequence Number (4)           0 Sequence Number (4)
//!  4 Timestamp (8)                 4 Timestamp (8)
//! 12 Error Estimate (2)           12 Error Estimate (2)
//! 14 SSID (2)                     14 SSID (2)
//! 16 MBZ (28)                     16 Receive Timestamp (8)
//!                                 24 Session-Sender Sequence Number (4)
//!                                 28 Session-Sender Timestamp (8)
//!                                 36 Session-Sender Error Estimate (2), MBZ (2)
//!                                 40 Ses-Sender TTL (1), MBZ (3)
//! ```
//!
//! Authenticated (112 octets each way; MBZ pads to 16-octet blocks):
//!
//! ```text
//! sender                          reflector
//!  0 Sequence Number (4)           0 Sequence Number (4)
//!  4 MBZ (12)                      4 MBZ (12)
//! 16 Timestamp (8)                16 Timestamp (8)
//! 24 Error Estimate (2)           24 Error Estimate (2)
//! 26 SSID (2)                     26 SSID (2), MBZ (4)
//! 28 MBZ (68)                     32 Receive Timestamp (8), MBZ (8)
//!                                 48 Session-Sender Sequence Number (4), MBZ (12)
//!                                 64 Session-Sender Timestamp (8)
//!                                 72 Session-Sender Error Estimate (2), MBZ (6)
//!                                 80 Ses-Sender TTL (1), MBZ (15)
//! 96 HMAC (16)                    96 HMAC (16)
//! ```
//!
//! The HMAC covers the first six 16-octet blocks, octets 0..96 (RFC 8762 §4.4).
//! TLVs (RFC 8972 §4) start right after the base packet.

/// Authentication mode of a STAMP test session (RFC 8762 §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// No HMAC: 44-octet base packets.
    #[default]
    Unauthenticated,
    /// HMAC-SHA-256 over the first 96 octets: 112-octet base packets.
    Authenticated,
}

impl AuthMode {
    /// The layout of this mode's base packets.
    pub fn layout(self) -> &'static Layout {
        match self {
            Self::Unauthenticated => &UNAUTHENTICATED,
            Self::Authenticated => &AUTHENTICATED,
        }
    }
}

/// Field offsets of one mode's base packets, sender and reflector alike (the
/// first four fields are at the same place in both directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Length of the base packet; TLVs start here.
    pub len: usize,
    /// Sequence Number (4).
    pub seq: usize,
    /// Timestamp (8): the sender's transmit time, or the reflector's.
    pub timestamp: usize,
    /// Error Estimate (2).
    pub error_estimate: usize,
    /// SSID (2), RFC 8972 §3.
    pub ssid: usize,
    /// Receive Timestamp (8), reflector only.
    pub receive_timestamp: usize,
    /// Session-Sender Sequence Number (4), reflector only.
    pub sender_seq: usize,
    /// Session-Sender Timestamp (8), reflector only.
    pub sender_timestamp: usize,
    /// Session-Sender Error Estimate (2), reflector only.
    pub sender_error_estimate: usize,
    /// Ses-Sender TTL (1), reflector only.
    pub sender_ttl: usize,
    /// HMAC (16), authenticated mode only: it covers `..hmac`.
    pub hmac: Option<usize>,
}

/// The shortest unauthenticated test packet a TWAMP-Light sender may send
/// (RFC 5357 §4.1.2, after OWAMP's RFC 4656 §4.1.2): Sequence Number,
/// Timestamp and Error Estimate, no padding. Its reply, a STAMP base packet
/// of [`UNAUTHENTICATED`]`.len` octets, is longer.
pub const TWAMP_LIGHT_MIN: usize = 14;

/// Unauthenticated base packets (RFC 8762 §4.2.1, §4.3.1).
pub const UNAUTHENTICATED: Layout = Layout {
    len: 44,
    seq: 0,
    timestamp: 4,
    error_estimate: 12,
    ssid: 14,
    receive_timestamp: 16,
    sender_seq: 24,
    sender_timestamp: 28,
    sender_error_estimate: 36,
    sender_ttl: 40,
    hmac: None,
};

/// Authenticated base packets (RFC 8762 §4.2.2, §4.3.2).
pub const AUTHENTICATED: Layout = Layout {
    len: 112,
    seq: 0,
    timestamp: 16,
    error_estimate: 24,
    ssid: 26,
    receive_timestamp: 32,
    sender_seq: 48,
    sender_timestamp: 64,
    sender_error_estimate: 72,
    sender_ttl: 80,
    hmac: Some(96),
};

/// Length of the HMAC field and of the HMAC TLV's value.
pub const HMAC_LEN: usize = 16;

/// Reads a big-endian u16 at `at`; the caller has checked the length.
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian u32 at `at`; the caller has checked the length.
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Reads a big-endian u64 at `at`; the caller has checked the length.
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Writes a big-endian u16 at `at`.
pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `at`.
pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u64 at `at`.
pub(crate) fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that a layout's fields tile the packet the way the RFC figures do:
    /// each field where the drawing puts it, nothing overlapping, MBZ in between.
    fn field_map(l: &Layout) -> Vec<(usize, usize)> {
        let mut f = vec![
            (l.seq, 4),
            (l.timestamp, 8),
            (l.error_estimate, 2),
            (l.ssid, 2),
            (l.receive_timestamp, 8),
            (l.sender_seq, 4),
            (l.sender_timestamp, 8),
            (l.sender_error_estimate, 2),
            (l.sender_ttl, 1),
        ];
        if let Some(h) = l.hmac {
            f.push((h, HMAC_LEN));
        }
        f.sort();
        f
    }

    #[test]
    fn fields_do_not_overlap_and_fit() {
        for l in [&UNAUTHENTICATED, &AUTHENTICATED] {
            let f = field_map(l);
            for w in f.windows(2) {
                assert!(w[0].0 + w[0].1 <= w[1].0, "{w:?} overlap");
            }
            let last = f.last().unwrap();
            assert!(last.0 + last.1 <= l.len);
        }
        assert_eq!(AUTHENTICATED.len % 16, 0, "authenticated packets are whole 16-octet blocks");
        assert_eq!(AUTHENTICATED.hmac.unwrap() + HMAC_LEN, AUTHENTICATED.len);
    }

    #[test]
    fn big_endian_access() {
        let mut b = [0u8; 16];
        put_u32(&mut b, 0, 0x0102_0304);
        put_u64(&mut b, 4, 0x0506_0708_090a_0b0c);
        put_u16(&mut b, 12, 0x0d0e);
        assert_eq!(b[..14], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(get_u32(&b, 0), 0x0102_0304);
        assert_eq!(get_u64(&b, 4), 0x0506_0708_090a_0b0c);
        assert_eq!(get_u16(&b, 12), 0x0d0e);
    }
}
