//! The Session-Sender's half (RFC 8762 §4.2, RFC 8972): builds the test packet
//! for sequence number N, with SSID, timestamp format, optional TLVs, optional
//! authentication and Extra Padding up to a requested size; and reads a
//! reflected packet back into all its fields, checking its HMACs.

use std::time::{Duration, SystemTime};

use super::auth::Key;
use super::packet::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, AuthMode, HMAC_LEN};
use super::reflector::ConfigError;
use super::timestamp::{ErrorEstimate, Timestamp, TimestampFormat};
use super::tlv::{kind, write_header, TlvFlags, TlvRequest, TlvValue, Tlvs, HEADER_LEN};

/// The largest UDP payload over IPv4; no test packet is built longer.
pub const MAX_PACKET: usize = 65_507;

/// What a Session-Sender sends.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Unauthenticated or authenticated base packets.
    pub mode: AuthMode,
    /// The HMAC key: required in authenticated mode; in unauthenticated mode it
    /// adds an HMAC TLV after the requested TLVs.
    pub auth_key: Option<Vec<u8>>,
    /// The SSID (RFC 8972 §3); 0 means none.
    pub ssid: u16,
    /// The format of the sender's timestamps (its Z bit).
    pub format: TimestampFormat,
    /// The S bit of the sender's Error Estimate.
    pub synchronized: bool,
    /// The sender clock's error bound, sent as Scale and Multiplier (default 1 s).
    pub error_bound: Duration,
    /// TLVs to send, in order.
    pub tlvs: Vec<TlvRequest>,
    /// Packet size in octets; 0 for the smallest the rest needs. Anything above
    /// that is an Extra Padding TLV, so it is at least 4 octets above it.
    pub size: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Unauthenticated,
            auth_key: None,
            ssid: 0,
            format: TimestampFormat::Ntp,
            synchronized: false,
            // An unsynchronised clock does not claim nanoseconds.
            error_bound: Duration::from_secs(1),
            tlvs: Vec::new(),
            size: 0,
        }
    }
}

/// Why a configuration cannot make packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// The key is missing or unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The size cannot be reached: smaller than the packet needs, 1-3 octets
    /// above it (too few for an Extra Padding TLV), or above [`MAX_PACKET`].
    #[error("a STAMP test packet of {size} octets cannot be built: it needs {min} octets, and padding comes in TLVs of at least 4, up to {MAX_PACKET} in all")]
    Size {
        /// The size asked for.
        size: usize,
        /// The smallest packet the configuration makes.
        min: usize,
    },
}

/// The output buffer is shorter than the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {need}-octet STAMP test packet does not fit in {have} octets")]
pub struct BufferTooSmall {
    /// The packet length.
    pub need: usize,
    /// The buffer length.
    pub have: usize,
}

/// Why a reflected packet cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the reflected base packet of the mode.
    #[error("reflected STAMP packet of {len} octets is shorter than the {min}-octet base packet")]
    Short {
        /// The length received.
        len: usize,
        /// The base packet length.
        min: usize,
    },
    /// The base packet's HMAC does not match.
    #[error("reflected STAMP packet fails its HMAC check")]
    Auth,
}

/// What the HMAC TLV of a reflected packet says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlvIntegrity {
    /// No HMAC TLV.
    Absent,
    /// An HMAC TLV that matches.
    Valid,
    /// An HMAC TLV that does not match: its TLVs must not be used (RFC 8972 §4.8).
    Invalid,
    /// An HMAC TLV, but no key to check it with.
    Unchecked,
}

/// A reflected packet, every field read out (RFC 8762 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reflected<'a> {
    /// The reflector's Sequence Number (its own count when stateful, ours when stateless).
    pub seq: u32,
    /// When the reflector sent it (T3), in the format its Z bit says.
    pub timestamp: Timestamp,
    /// The reflector's Error Estimate.
    pub error_estimate: ErrorEstimate,
    /// The SSID the reflector copied back.
    pub ssid: u16,
    /// When the reflector received the test packet (T2).
    pub receive_timestamp: Timestamp,
    /// Our Sequence Number, copied back.
    pub sender_seq: u32,
    /// Our Timestamp (T1), copied back.
    pub sender_timestamp: Timestamp,
    /// Our Error Estimate, copied back.
    pub sender_error_estimate: ErrorEstimate,
    /// The TTL or Hop Limit our packet arrived with (0: the reflector did not know).
    pub sender_ttl: u8,
    /// The reflected packet's length.
    pub len: usize,
    /// The HMAC TLV's verdict.
    pub tlv_integrity: TlvIntegrity,
    tlv_area: &'a [u8],
}

impl<'a> Reflected<'a> {
    /// The TLVs after the base packet, with the flags the reflector set.
    pub fn tlvs(&self) -> Tlvs<'a> {
        Tlvs::new(self.tlv_area)
    }

    /// The decoded TLVs a Session-Sender may act on, by RFC 8972 §4 and §4.8:
    /// none if the HMAC TLV fails or any TLV has the I flag; TLVs with the U
    /// flag skipped; nothing from the first M flag (or truncated TLV) on.
    pub fn usable_tlvs(&self) -> impl Iterator<Item = TlvValue<'a>> + 'a {
        let trusted = self.tlv_integrity != TlvIntegrity::Invalid
            && !self.tlvs().flatten().any(|t| t.flags.integrity_failed());
        self.tlvs()
            .take_while(move |t| trusted && t.is_ok_and(|t| !t.flags.malformed()))
            .filter_map(Result::ok)
            .filter(|t| !t.flags.unrecognized())
            .filter_map(|t| t.decode().ok())
    }
}

/// A Session-Sender: the configuration checked once, the key prepared once.
#[derive(Clone, Debug)]
pub struct Sender {
    cfg: SenderConfig,
    key: Option<Key>,
    error_estimate: ErrorEstimate,
    len: usize,
    /// Offset of the HMAC TLV, when one is sent.
    hmac_tlv: Option<usize>,
    /// Value length of the trailing Extra Padding TLV, when one is sent.
    padding: Option<usize>,
}

impl Sender {
    /// Checks the configuration: the key, and that the size can be reached.
    pub fn new(cfg: SenderConfig) -> Result<Self, SenderError> {
        let key = match (&cfg.auth_key, cfg.mode) {
            (None, AuthMode::Authenticated) => return Err(ConfigError::MissingKey.into()),
            (None, AuthMode::Unauthenticated) => None,
            (Some(k), _) => Some(Key::new(k).map_err(ConfigError::from)?),
        };
        let base = cfg.mode.layout().len;
        let requested: usize = cfg.tlvs.iter().map(|t| t.wire_len()).sum();
        // RFC 8972 §4.8: TLVs are signed with an HMAC TLV after them, except a lone Extra Padding.
        let hmac_tlv = (key.is_some() && !cfg.tlvs.is_empty()).then_some(base + requested);
        let min = base + requested + hmac_tlv.map_or(0, |_| HEADER_LEN + HMAC_LEN);
        let size = if cfg.size == 0 { min } else { cfg.size };
        let padding = match size.checked_sub(min) {
            Some(0) => None,
            Some(n) if n >= HEADER_LEN && size <= MAX_PACKET => Some(n - HEADER_LEN),
            _ => return Err(SenderError::Size { size, min }),
        };
        if min > MAX_PACKET {
            return Err(SenderError::Size { size, min });
        }
        let error_estimate = ErrorEstimate::new(cfg.synchronized, cfg.format, cfg.error_bound);
        Ok(Self { cfg, key, error_estimate, len: size, hmac_tlv, padding })
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }

    /// The length of every test packet this sender builds.
    pub fn packet_len(&self) -> usize {
        self.len
    }

    /// Writes test packet number `seq`, timestamped `now`, to the start of
    /// `out`, and returns its length. The TLVs and padding are rewritten each
    /// time; nothing is allocated.
    pub fn build_test_packet(
        &self,
        seq: u32,
        now: SystemTime,
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let have = out.len();
        let pkt = out.get_mut(..self.len).ok_or(BufferTooSmall { need: self.len, have })?;
        let l = self.cfg.mode.layout();
        let (base, area) = pkt.split_at_mut(l.len);
        base.fill(0);
        put_u32(base, l.seq, seq);
        put_u64(base, l.timestamp, Timestamp::from_system_time(self.cfg.format, now).raw);
        put_u16(base, l.error_estimate, self.error_estimate.0);
        put_u16(base, l.ssid, self.cfg.ssid);
        let mut pos = 0;
        for t in &self.cfg.tlvs {
            pos += t.write(&mut area[pos..], seq.wrapping_add(1));
        }
        if let (Some(at), Some(k)) = (self.hmac_tlv, self.key.as_ref()) {
            let at = at - l.len;
            let tag = k.tag(&[&seq.to_be_bytes(), &area[..at]]);
            write_header(&mut area[at..], TlvFlags::U, kind::HMAC, HMAC_LEN as u16);
            area[at + HEADER_LEN..at + HEADER_LEN + HMAC_LEN].copy_from_slice(&tag);
            pos = at + HEADER_LEN + HMAC_LEN;
        }
        if let Some(n) = self.padding {
            // The size check in `new` keeps n within a u16 and the packet.
            write_header(&mut area[pos..], TlvFlags::U, kind::EXTRA_PADDING, n as u16);
            area[pos + HEADER_LEN..pos + HEADER_LEN + n].fill(0);
        }
        if let (Some(at), Some(k)) = (l.hmac, self.key.as_ref()) {
            let tag = k.tag(&[&base[..at]]);
            base[at..at + HMAC_LEN].copy_from_slice(&tag);
        }
        Ok(self.len)
    }

    /// Reads a reflected packet. In authenticated mode the base HMAC must
    /// match; an HMAC TLV is checked whenever there is a key, and its verdict
    /// is in [`Reflected::tlv_integrity`].
    pub fn parse_reflected<'a>(&self, bytes: &'a [u8]) -> Result<Reflected<'a>, ParseError> {
        let l = self.cfg.mode.layout();
        if bytes.len() < l.len {
            return Err(ParseError::Short { len: bytes.len(), min: l.len });
        }
        if let (Some(at), Some(k)) = (l.hmac, self.key.as_ref()) {
            if !k.verify(&[&bytes[..at]], &bytes[at..at + HMAC_LEN]) {
                return Err(ParseError::Auth);
            }
        }
        let (base, area) = bytes.split_at(l.len);
        let error_estimate = ErrorEstimate(get_u16(base, l.error_estimate));
        let sender_error_estimate = ErrorEstimate(get_u16(base, l.sender_error_estimate));
        let stamp =
            |ee: ErrorEstimate, at| Timestamp { format: ee.format(), raw: get_u64(base, at) };
        let seq = get_u32(base, l.seq);
        Ok(Reflected {
            seq,
            timestamp: stamp(error_estimate, l.timestamp),
            error_estimate,
            ssid: get_u16(base, l.ssid),
            receive_timestamp: stamp(error_estimate, l.receive_timestamp),
            sender_seq: get_u32(base, l.sender_seq),
            sender_timestamp: stamp(sender_error_estimate, l.sender_timestamp),
            sender_error_estimate,
            sender_ttl: base[l.sender_ttl],
            len: bytes.len(),
            tlv_integrity: tlv_integrity(self.key.as_ref(), seq, area),
            tlv_area: area,
        })
    }
}

/// Checks the first HMAC TLV over the Sequence Number and the TLVs before it.
fn tlv_integrity(key: Option<&Key>, seq: u32, area: &[u8]) -> TlvIntegrity {
    let Some(t) = Tlvs::new(area).map_while(Result::ok).find(|t| t.kind == kind::HMAC) else {
        return TlvIntegrity::Absent;
    };
    match key {
        None => TlvIntegrity::Unchecked,
        Some(k)
            if t.value.len() == HMAC_LEN
                && k.verify(&[&seq.to_be_bytes(), &area[..t.offset]], t.value) =>
        {
            TlvIntegrity::Valid
        }
        Some(_) => TlvIntegrity::Invalid,
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
