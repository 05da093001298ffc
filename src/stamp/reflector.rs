//! The Session-Reflector (RFC 8762 §4.3 with RFC 8972): turns a test packet
//! into its reflected packet in place, the same length, with the reflector's
//! sequence number, timestamps and Error Estimate, the sender's fields copied
//! back, and each TLV answered. Pure: the caller does the I/O and passes in
//! what the kernel said about the datagram ([`Arrival`]).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::auth::{Key, KeyError};
use super::packet::{
    get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, AuthMode, Layout, HMAC_LEN,
    TWAMP_LIGHT_MIN, UNAUTHENTICATED,
};
use super::session::{SessionKey, SessionTable, DEFAULT_SESSIONS};
use super::timestamp::{ErrorEstimate, Timestamp, TimestampFormat};
use super::tlv::{self, kind, TlvFlags, HEADER_LEN};
use crate::limit::Prefix;

/// Timestamp Information "Sync Src" codes (RFC 8972 §5.4).
pub mod sync_source {
    /// NTP.
    pub const NTP: u8 = 1;
    /// PTP.
    pub const PTP: u8 = 2;
    /// SSU/BITS.
    pub const SSU_BITS: u8 = 3;
    /// GPS, GLONASS, LORAN-C, BDS or Galileo.
    pub const GNSS: u8 = 4;
    /// Local free-running clock.
    pub const LOCAL_FREE_RUNNING: u8 = 5;
}

/// Timestamping method codes (RFC 8972 §5.5).
pub mod timestamp_method {
    /// Hardware assist.
    pub const HW_ASSIST: u8 = 1;
    /// Software, local.
    pub const SW_LOCAL: u8 = 2;
    /// Control plane.
    pub const CONTROL_PLANE: u8 = 3;
}

/// How a reflector answers.
#[derive(Clone, Debug)]
pub struct ReflectorConfig {
    /// Unauthenticated (44-octet base) or authenticated (112-octet base) packets.
    pub mode: AuthMode,
    /// The HMAC key: required in authenticated mode; in unauthenticated mode it
    /// only checks and signs HMAC TLVs (RFC 8972 §4.8).
    pub auth_key: Option<Vec<u8>>,
    /// Stateful (per-session sequence numbers and counters) or stateless.
    pub stateful: bool,
    /// The format of the reflector's timestamps (its Z bit).
    pub format: TimestampFormat,
    /// Whether the clock is synchronised to an external source (the S bit).
    /// Off unless the operator says so.
    pub synchronized: bool,
    /// The clock's error bound, sent as Scale and Multiplier.
    pub error_bound: Duration,
    /// Sync Src reported in Timestamp Information ([`sync_source`]).
    pub sync_source: u8,
    /// Timestamping method reported in Timestamp Information and Follow-Up
    /// Telemetry ([`timestamp_method`]).
    pub timestamp_method: u8,
    /// Most sessions held at once (stateful mode); more are answered statelessly.
    pub session_capacity: usize,
    /// A session without packets for this long is forgotten.
    pub session_idle: Duration,
    /// DSCP values a Class of Service TLV may ask for the reply: bit `n` allows
    /// DSCP `n`. Refused values get the RP flag (RFC 8972 §4.4).
    pub allowed_dscp: u64,
    /// Senders whose short (TWAMP-Light, fewer than 44 octets) unauthenticated
    /// test packets are answered with a 44-octet reply
    /// ([`Reflector::reflect_unpadded`]); empty: none, the default, as a
    /// reply longer than its request amplifies.
    pub unpadded_from: Vec<Prefix>,
}

impl Default for ReflectorConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Unauthenticated,
            auth_key: None,
            stateful: false,
            format: TimestampFormat::Ntp,
            synchronized: false,
            error_bound: Duration::from_secs(1),
            sync_source: sync_source::LOCAL_FREE_RUNNING,
            timestamp_method: timestamp_method::SW_LOCAL,
            session_capacity: DEFAULT_SESSIONS,
            session_idle: Duration::from_secs(60),
            allowed_dscp: 0,
            unpadded_from: Vec::new(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Authenticated mode without a key.
    #[error("authenticated STAMP needs an HMAC key")]
    MissingKey,
    /// The key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What the kernel told the server about a received test packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The sender's address and port.
    pub src: SocketAddr,
    /// When the packet arrived (the Receive Timestamp).
    pub received: SystemTime,
    /// TTL or Hop Limit as received; `None` (unknown) is sent as 0.
    pub ttl: Option<u8>,
    /// The TOS / Traffic Class octet as received (DSCP and ECN), if known.
    pub tos: Option<u8>,
}

/// Why a test packet from a peer gets no reply (a caller's mistake is not
/// one: see [`Reflector::reflect`]). `Display` gives a snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StampDrop {
    /// Shorter than the base packet of the mode: a reply of the base size
    /// would be longer than the request.
    Short,
    /// The base packet's HMAC does not match (authenticated mode).
    Auth,
    /// An unauthenticated test packet of at least the TWAMP-Light minimum
    /// ([`TWAMP_LIGHT_MIN`], 14 octets) but shorter than the base packet: its
    /// reply would be longer than the request. Answered only out of place,
    /// from the senders the operator names ([`Reflector::reflect_unpadded`]).
    Unpadded,
}

impl StampDrop {
    /// Every reason, for registering counters.
    pub const ALL: [StampDrop; 3] = [Self::Short, Self::Auth, Self::Unpadded];

    /// The counter name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Short => "too_short",
            Self::Auth => "auth_failed",
            Self::Unpadded => "unpadded",
        }
    }
}

impl std::fmt::Display for StampDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for StampDrop {}

/// A Session-Reflector: one per worker thread (sessions are per sender address,
/// port and SSID, and the kernel keeps one sender on one `SO_REUSEPORT` socket).
#[derive(Debug)]
pub struct Reflector {
    cfg: ReflectorConfig,
    key: Option<Key>,
    error_estimate: ErrorEstimate,
    sessions: Option<SessionTable>,
    reply_dscp: Option<u8>,
}

/// Per-packet facts the TLV answers need.
struct TlvContext<'a> {
    key: Option<&'a Key>,
    mode: AuthMode,
    request_seq: [u8; 4],
    tos: Option<u8>,
    allowed_dscp: u64,
    sync_source: u8,
    method: u8,
    /// (R_RxC, R_TxC) of a stateful session.
    counters: Option<(u32, u32)>,
    /// The session's previous reflected packet (seq, transmit timestamp).
    previous: Option<(u32, u64)>,
}

impl Reflector {
    /// A reflector; fails on a missing or empty key.
    pub fn new(cfg: ReflectorConfig) -> Result<Self, ConfigError> {
        let key = match (&cfg.auth_key, cfg.mode) {
            (None, AuthMode::Authenticated) => return Err(ConfigError::MissingKey),
            (None, AuthMode::Unauthenticated) => None,
            (Some(k), _) => Some(Key::new(k)?),
        };
        let error_estimate = ErrorEstimate::new(cfg.synchronized, cfg.format, cfg.error_bound);
        let sessions = (cfg.stateful && cfg.session_capacity > 0)
            .then(|| SessionTable::new(cfg.session_capacity, cfg.session_idle));
        Ok(Self { cfg, key, error_estimate, sessions, reply_dscp: None })
    }

    /// The configuration.
    pub fn config(&self) -> &ReflectorConfig {
        &self.cfg
    }

    /// Sessions held now (0 when stateless).
    pub fn sessions(&self) -> usize {
        self.sessions.as_ref().map_or(0, SessionTable::len)
    }

    /// The DSCP the last reply should carry when its Class of Service TLV
    /// asked for one the policy allows; `None` means "as received".
    pub fn reply_dscp(&self) -> Option<u8> {
        self.reply_dscp
    }

    /// Rewrites the test packet in `buf[..len]` into the reflected packet, in
    /// place, and returns its length (always `len`), or why there is no reply.
    ///
    /// The transmit timestamp is read from the system clock inside this call,
    /// after everything else is filled in and just before the HMACs are
    /// computed over it, so it is as close to the send as a pure function gets.
    ///
    /// # Panics
    /// If `len` is longer than `buf`, as slicing `buf[..len]` would: that is
    /// the caller's bug, not the peer's, and is never counted as the peer's.
    pub fn reflect(
        &mut self,
        buf: &mut [u8],
        len: usize,
        rx: &Arrival,
    ) -> Result<usize, StampDrop> {
        self.reflect_with_clock(buf, len, rx, SystemTime::now)
    }

    /// [`reflect`](Self::reflect) with the transmit time taken from `clock`.
    pub fn reflect_with_clock(
        &mut self,
        buf: &mut [u8],
        len: usize,
        rx: &Arrival,
        clock: impl FnOnce() -> SystemTime,
    ) -> Result<usize, StampDrop> {
        self.reply_dscp = None;
        let pkt = &mut buf[..len];
        let l = self.cfg.mode.layout();
        self.check(pkt, l)?;
        let sender = SenderFields::read(pkt, l);
        // One lookup: the session stays borrowed until its last reflected
        // packet is noted below (only other fields of `self` are read meanwhile).
        let key = SessionKey { src: rx.src, ssid: sender.ssid };
        let mut session = self.sessions.as_mut().and_then(|t| t.touch(key, rx.received));
        let (seq, counters, previous) = match session.as_deref_mut() {
            Some(s) => {
                let seq = s.next_seq;
                s.next_seq = s.next_seq.wrapping_add(1);
                s.received = s.received.wrapping_add(1);
                s.transmitted = s.transmitted.wrapping_add(1);
                (seq, Some((s.received, s.transmitted)), s.last_reflected)
            }
            // Stateless, or a full table: the sender's number comes back.
            None => (sender.seq, None, None),
        };

        let (base, area) = pkt.split_at_mut(l.len);
        sender.write_base(base, l, seq, self.error_estimate, self.cfg.format, rx);
        let ctx = TlvContext {
            key: self.key.as_ref(),
            mode: self.cfg.mode,
            request_seq: sender.seq.to_be_bytes(),
            tos: rx.tos,
            allowed_dscp: self.cfg.allowed_dscp,
            sync_source: self.cfg.sync_source,
            method: self.cfg.timestamp_method,
            counters,
            previous,
        };
        let (sign_at, reply_dscp) = answer_tlvs(area, &ctx);
        self.reply_dscp = reply_dscp;

        let t3 = Timestamp::from_system_time(self.cfg.format, clock());
        put_u64(base, l.timestamp, t3.raw);
        if let Some(s) = session {
            s.last_reflected = Some((seq, t3.raw));
        }
        if let Some(k) = self.key.as_ref() {
            sign(k, l, seq, base, area, sign_at);
        }
        Ok(len)
    }

    /// Answers a short unauthenticated test packet (a TWAMP-Light sender's,
    /// 14 to 43 octets: [`StampDrop::Unpadded`]) from a sender in
    /// [`ReflectorConfig::unpadded_from`] with a full 44-octet reflected
    /// packet in `out`, as if the request had been zero-padded to 44 octets
    /// (so its SSID is 0 unless its padding says otherwise). The one reply
    /// longer than its request: the operator opts in per prefix. Returns the
    /// reply's length, or why there is none: `Unpadded` for a sender not
    /// named, `Short` for anything but a short unauthenticated test packet
    /// ([`reflect`](Self::reflect) is the road for full ones).
    pub fn reflect_unpadded(
        &mut self,
        request: &[u8],
        out: &mut [u8; UNAUTHENTICATED.len],
        rx: &Arrival,
    ) -> Result<usize, StampDrop> {
        if self.check(request, self.cfg.mode.layout()) != Err(StampDrop::Unpadded) {
            return Err(StampDrop::Short);
        }
        if !self.cfg.unpadded_from.iter().any(|p| p.contains(rx.src.ip())) {
            return Err(StampDrop::Unpadded);
        }
        out.fill(0);
        out[..request.len()].copy_from_slice(request);
        self.reflect(out, UNAUTHENTICATED.len, rx)
    }

    /// The checks made before anything is read, let alone state touched: the
    /// packet is at least the mode's base packet, and its HMAC holds.
    fn check(&self, pkt: &[u8], l: &Layout) -> Result<(), StampDrop> {
        if pkt.len() < l.len {
            let twamp_light =
                self.cfg.mode == AuthMode::Unauthenticated && pkt.len() >= TWAMP_LIGHT_MIN;
            return Err(if twamp_light { StampDrop::Unpadded } else { StampDrop::Short });
        }
        if let Some(at) = l.hmac {
            let key = self.key.as_ref().ok_or(StampDrop::Auth)?;
            if !key.verify(&[&pkt[..at]], &pkt[at..at + HMAC_LEN]) {
                return Err(StampDrop::Auth);
            }
        }
        Ok(())
    }
}

/// The Session-Sender's fields that come back in the reflected packet.
struct SenderFields {
    seq: u32,
    timestamp: u64,
    error_estimate: u16,
    ssid: u16,
}

impl SenderFields {
    fn read(pkt: &[u8], l: &Layout) -> SenderFields {
        SenderFields {
            seq: get_u32(pkt, l.seq),
            timestamp: get_u64(pkt, l.timestamp),
            error_estimate: get_u16(pkt, l.error_estimate),
            ssid: get_u16(pkt, l.ssid),
        }
    }

    /// Writes the reflected base packet over the test packet (RFC 8762
    /// §4.3): every MBZ octet zeroed, the transmit timestamp and HMAC left
    /// for later.
    fn write_base(
        &self,
        base: &mut [u8],
        l: &Layout,
        seq: u32,
        error_estimate: ErrorEstimate,
        format: TimestampFormat,
        rx: &Arrival,
    ) {
        base.fill(0);
        put_u32(base, l.seq, seq);
        put_u16(base, l.error_estimate, error_estimate.0);
        put_u16(base, l.ssid, self.ssid);
        let t2 = Timestamp::from_system_time(format, rx.received);
        put_u64(base, l.receive_timestamp, t2.raw);
        put_u32(base, l.sender_seq, self.seq);
        put_u64(base, l.sender_timestamp, self.timestamp);
        put_u16(base, l.sender_error_estimate, self.error_estimate);
        base[l.sender_ttl] = rx.ttl.unwrap_or(0);
    }
}

/// Signs the reply: the HMAC TLV at `sign_at` (RFC 8972 §4.8, over the
/// sequence number and the TLVs before it), then the base packet's HMAC in
/// authenticated mode (RFC 8762 §4.4), which covers the timestamps.
fn sign(key: &Key, l: &Layout, seq: u32, base: &mut [u8], area: &mut [u8], sign_at: Option<usize>) {
    if let Some(at) = sign_at {
        let tag = key.tag(&[&seq.to_be_bytes(), &area[..at]]);
        area[at + HEADER_LEN..at + HEADER_LEN + HMAC_LEN].copy_from_slice(&tag);
    }
    if let Some(at) = l.hmac {
        let tag = key.tag(&[&base[..at]]);
        base[at..at + HMAC_LEN].copy_from_slice(&tag);
    }
}

/// Where the TLV walk stopped and what it found, read-only.
struct Survey {
    /// Offset of the first malformed TLV (wrong length for its type, or running
    /// past the end); `has_header` says whether its flags octet exists.
    malformed: Option<(usize, bool)>,
    hmac_at: Option<usize>,
    /// A second HMAC TLV, or a TLV other than Extra Padding after the HMAC TLV.
    misplaced_hmac: bool,
    count: usize,
    only_padding: bool,
}

fn survey(area: &[u8]) -> Survey {
    let mut s = Survey {
        malformed: None,
        hmac_at: None,
        misplaced_hmac: false,
        count: 0,
        only_padding: true,
    };
    for item in tlv::Tlvs::new(area) {
        let t = match item {
            Ok(t) => t,
            Err(e) => {
                s.malformed = Some((e.offset, e.has_header));
                break;
            }
        };
        let wrong_len = matches!(tlv::known_len(t.kind), Some(Some(n)) if n != t.value.len());
        // RFC 8972 §4.6: any Access ID but 1 or 2 is invalid. The TLV cannot be
        // removed without shrinking the reply, so it is answered as malformed.
        let bad_access_id =
            t.kind == kind::ACCESS_REPORT && !wrong_len && !matches!(t.value[0] >> 4, 1 | 2);
        if wrong_len || bad_access_id {
            s.malformed = Some((t.offset, true));
            break;
        }
        s.count += 1;
        s.only_padding &= t.kind == kind::EXTRA_PADDING;
        if t.kind == kind::HMAC {
            if s.hmac_at.is_some() {
                s.misplaced_hmac = true;
            } else {
                s.hmac_at = Some(t.offset);
            }
        } else if s.hmac_at.is_some() && t.kind != kind::EXTRA_PADDING {
            s.misplaced_hmac = true;
        }
    }
    s
}

/// Answers the TLVs in `area` in place (RFC 8972 §4): known TLVs get U cleared
/// and their reflector fields filled, unknown ones come back with U set, the
/// first malformed one gets M and everything after it is copied untouched, and
/// if the HMAC TLV fails (or is missing where authenticated mode needs it)
/// every TLV comes back unprocessed with I set. Returns the offset of an HMAC
/// TLV to re-sign once the reply's Sequence Number is final, and the DSCP the
/// reply may use.
fn answer_tlvs(area: &mut [u8], ctx: &TlvContext<'_>) -> (Option<usize>, Option<u8>) {
    if area.is_empty() || tlv::is_zero_padding(area) {
        return (None, None);
    }
    let s = survey(area);
    let must_sign = ctx.mode == AuthMode::Authenticated && !(s.count == 1 && s.only_padding);
    let intact = !s.misplaced_hmac
        && match s.hmac_at {
            Some(at) => ctx.key.is_some_and(|k| {
                let tag = &area[at + HEADER_LEN..at + HEADER_LEN + HMAC_LEN];
                k.verify(&[&ctx.request_seq, &area[..at]], tag)
            }),
            None => !must_sign && s.malformed.is_none_or(|_| ctx.mode == AuthMode::Unauthenticated),
        };
    let end = s.malformed.map_or(area.len(), |(at, _)| at);
    let mut reply_dscp = None;
    let mut pos = 0;
    while pos < end {
        let len = usize::from(get_u16(area, pos + 2));
        let k = area[pos + 1];
        let value = &mut area[pos + HEADER_LEN..pos + HEADER_LEN + len];
        let flags = if !intact {
            area_flags(area[pos]) | TlvFlags::I
        } else if tlv::known_len(k).is_some() {
            reply_dscp = answer_value(k, value, ctx).or(reply_dscp);
            0
        } else {
            TlvFlags::U
        };
        area[pos] = flags;
        pos += HEADER_LEN + len;
    }
    if let Some((at, true)) = s.malformed {
        area[at] =
            if intact { TlvFlags::M } else { area_flags(area[at]) | TlvFlags::M | TlvFlags::I };
    }
    (if intact { s.hmac_at } else { None }, reply_dscp)
}

/// A received flags octet copied back: U, M and I kept, reserved bits zeroed.
fn area_flags(received: u8) -> u8 {
    received & (TlvFlags::U | TlvFlags::M | TlvFlags::I)
}

/// Fills one known TLV's reflector fields; returns the DSCP the reply may use.
fn answer_value(k: u8, v: &mut [u8], ctx: &TlvContext<'_>) -> Option<u8> {
    match k {
        kind::TIMESTAMP_INFO => {
            v.copy_from_slice(&[ctx.sync_source, ctx.method, ctx.sync_source, ctx.method]);
        }
        kind::CLASS_OF_SERVICE => {
            let dscp1 = v[0] >> 2;
            let tos = ctx.tos.unwrap_or(0);
            let allowed = ctx.allowed_dscp & (1u64 << dscp1) != 0;
            let rp = u8::from(!allowed);
            v[..2].copy_from_slice(&tlv::cos_octets(dscp1, tos >> 2, tos & 0x03, rp));
            v[2..].fill(0);
            return allowed.then_some(dscp1);
        }
        kind::DIRECT_MEASUREMENT => {
            let (rx, tx) = ctx.counters.unwrap_or((0, 0));
            put_u32(v, 4, rx);
            put_u32(v, 8, tx);
        }
        kind::ACCESS_REPORT => {
            v[0] &= 0xf0;
            v[2..].fill(0);
        }
        kind::FOLLOW_UP_TELEMETRY => {
            v.fill(0);
            // Stateless reflectors zero it (RFC 8972 §4.7); so does the first packet of a session.
            if let Some((seq, ts)) = ctx.previous {
                put_u32(v, 0, seq);
                put_u64(v, 4, ts);
                v[12] = ctx.method;
            }
        }
        // Extra Padding is returned as it came; HMAC is re-signed by the caller.
        _ => {}
    }
    None
}

#[cfg(test)]
#[path = "reflector_tests.rs"]
mod tests;
