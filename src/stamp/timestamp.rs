//! STAMP timestamps and the Error Estimate: the two 64-bit formats (NTP and
//! truncated PTPv2) and the 16-bit S|Z|Scale|Multiplier word that says which
//! format a packet uses and how far its clock may be off.
//!
//! Error Estimate (RFC 8762 §4.2.1, fields as in RFC 4656 §4.1.2, Z as in
//! RFC 8186 §2.3):
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |S|Z|   Scale   |   Multiplier  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The error in seconds is `Multiplier * 2^(Scale - 32)`; a Multiplier of 0 is
//! invalid, so the encoder never produces one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Which 64-bit timestamp format a STAMP endpoint writes (the Z bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimestampFormat {
    /// NTPv4 64-bit: seconds since 1900 and a binary fraction (Z = 0, the default).
    #[default]
    Ntp,
    /// IEEE 1588v2 truncated: 32-bit seconds since 1970 and nanoseconds (Z = 1).
    ///
    /// The seconds come from the system clock (UTC); PTP's own timescale is TAI,
    /// so a peer comparing against a PTP-disciplined clock sees the UTC-TAI offset.
    Ptp,
}

impl TimestampFormat {
    /// The format a received Error Estimate announces through its Z bit.
    pub fn from_z(z: bool) -> Self {
        if z {
            Self::Ptp
        } else {
            Self::Ntp
        }
    }
}

/// A 64-bit STAMP timestamp as it is on the wire, with the format to read it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// How `raw` is to be read.
    pub format: TimestampFormat,
    /// The eight octets, big-endian, as one integer: seconds in the high half.
    pub raw: u64,
}

impl Timestamp {
    /// Encodes a wall-clock time. Times before 1970 encode as the epoch itself.
    pub fn from_system_time(format: TimestampFormat, time: SystemTime) -> Self {
        let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_unix.as_secs();
        let nanos = u64::from(since_unix.subsec_nanos());
        let raw = match format {
            TimestampFormat::Ntp => {
                // Seconds wrap every 2^32 s (era 1 starts in 2036): the low 32 bits are the field.
                let ntp_secs = secs.wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
                let fraction = (nanos << 32) / 1_000_000_000;
                (ntp_secs << 32) | fraction
            }
            TimestampFormat::Ptp => ((secs & 0xffff_ffff) << 32) | nanos,
        };
        Self { format, raw }
    }

    /// The seconds field (upper 32 bits).
    pub fn seconds(self) -> u32 {
        (self.raw >> 32) as u32
    }

    /// The lower 32 bits: an NTP binary fraction or PTP nanoseconds.
    pub fn fraction(self) -> u32 {
        self.raw as u32
    }

    /// Decodes to a wall-clock time; `None` for a PTP nanoseconds field of
    /// 10^9 or more, which no clock writes.
    ///
    /// NTP seconds with the top bit clear are read as era 1 (2036-2104), the
    /// rule of RFC 4330 §3, so the decoding stays right across the 2036 wrap.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let secs = u64::from(self.seconds());
        match self.format {
            TimestampFormat::Ntp => {
                let ntp_secs = if secs & 0x8000_0000 == 0 { secs + (1 << 32) } else { secs };
                let unix = ntp_secs.checked_sub(NTP_UNIX_OFFSET)?;
                let nanos = (u64::from(self.fraction()) * 1_000_000_000) >> 32;
                UNIX_EPOCH.checked_add(Duration::new(unix, nanos as u32))
            }
            TimestampFormat::Ptp => {
                let nanos = self.fraction();
                if nanos >= 1_000_000_000 {
                    return None;
                }
                UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
            }
        }
    }
}

/// The 16-bit Error Estimate word (RFC 8762 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorEstimate(pub u16);

impl ErrorEstimate {
    const S: u16 = 0x8000;
    const Z: u16 = 0x4000;

    /// Builds the word from its parts; `bound` is the largest error the clock
    /// may have. The bound is rounded up to what Scale and Multiplier can say,
    /// never down, and the Multiplier is never 0.
    pub fn new(synchronized: bool, format: TimestampFormat, bound: Duration) -> Self {
        // Error = Multiplier * 2^(Scale-32) s. Find the smallest Scale whose
        // Multiplier (rounded up) fits in 8 bits.
        let units = bound.as_nanos().saturating_mul(1 << 32).div_ceil(1_000_000_000);
        let mut scale = 0u16;
        let mut multiplier = units.max(1);
        while multiplier > 255 && scale < 63 {
            scale += 1;
            multiplier = units.div_ceil(1u128 << scale).max(1);
        }
        let multiplier = multiplier.min(255) as u16;
        let mut word = (scale << 8) | multiplier;
        if synchronized {
            word |= Self::S;
        }
        if format == TimestampFormat::Ptp {
            word |= Self::Z;
        }
        Self(word)
    }

    /// The S bit: the clock says it is synchronised to an external source.
    pub fn synchronized(self) -> bool {
        self.0 & Self::S != 0
    }

    /// The Z bit: 0 for NTP timestamps, 1 for PTPv2.
    pub fn format(self) -> TimestampFormat {
        TimestampFormat::from_z(self.0 & Self::Z != 0)
    }

    /// The 6-bit Scale.
    pub fn scale(self) -> u8 {
        ((self.0 >> 8) & 0x3f) as u8
    }

    /// The 8-bit Multiplier (0 is invalid on the wire).
    pub fn multiplier(self) -> u8 {
        self.0 as u8
    }

    /// The error bound the word states, `None` for a zero Multiplier.
    pub fn bound(self) -> Option<Duration> {
        if self.multiplier() == 0 {
            return None;
        }
        let units = u128::from(self.multiplier()) << self.scale();
        let nanos = (units * 1_000_000_000) >> 32;
        Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_encodes_seconds_since_1900_and_a_binary_fraction() {
        let t = UNIX_EPOCH + Duration::new(1, 500_000_000);
        let ts = Timestamp::from_system_time(TimestampFormat::Ntp, t);
        assert_eq!(ts.seconds(), 2_208_988_801);
        assert_eq!(ts.fraction(), 0x8000_0000);
        assert_eq!(ts.to_system_time(), Some(t));
    }

    #[test]
    fn ptp_encodes_unix_seconds_and_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let ts = Timestamp::from_system_time(TimestampFormat::Ptp, t);
        assert_eq!(ts.raw, (1_700_000_000u64 << 32) | 123_456_789);
        assert_eq!(ts.to_system_time(), Some(t));
        let bad = Timestamp { format: TimestampFormat::Ptp, raw: 1_000_000_000 };
        assert_eq!(bad.to_system_time(), None);
    }

    #[test]
    fn ntp_decodes_across_the_2036_wrap() {
        let t = UNIX_EPOCH + Duration::from_secs(4_294_967_296 - NTP_UNIX_OFFSET + 10);
        let ts = Timestamp::from_system_time(TimestampFormat::Ntp, t);
        assert_eq!(ts.seconds(), 10);
        assert_eq!(ts.to_system_time(), Some(t));
    }

    #[test]
    fn error_estimate_bits_are_where_rfc_4656_puts_them() {
        // One second unsynchronised, NTP: the smallest Scale that fits, 25, Multiplier 128.
        let e = ErrorEstimate::new(false, TimestampFormat::Ntp, Duration::from_secs(1));
        assert_eq!(e.0, 0x1980);
        assert_eq!(ErrorEstimate(0x2001).bound(), Some(Duration::from_secs(1)));
        assert_eq!(e.bound(), Some(Duration::from_secs(1)));
        let e = ErrorEstimate::new(true, TimestampFormat::Ptp, Duration::from_secs(1));
        assert_eq!(e.0, 0xc000 | 0x1980);
        assert!(e.synchronized());
        assert_eq!(e.format(), TimestampFormat::Ptp);
        // A zero bound still has a non-zero Multiplier.
        assert_eq!(ErrorEstimate::new(false, TimestampFormat::Ntp, Duration::ZERO).0, 0x0001);
        // Rounded up, never down: 1 ms needs more than one 2^-32 s unit.
        let ms = ErrorEstimate::new(false, TimestampFormat::Ntp, Duration::from_millis(1));
        assert!(ms.bound().unwrap() >= Duration::from_millis(1));
        assert!(ms.bound().unwrap() < Duration::from_millis(2));
    }
}
