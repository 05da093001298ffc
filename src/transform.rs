//! The payload transform: what the server does to each datagram it admits.
//!
//! [`Responder`] is the step of the reply path that turns a request into its
//! reply, in place: the byte modes here, and the seam where a stateful
//! reflector (with per-worker state) plugs in beside them.
//!
//! The original tutorial replies `msg.upper()` on Python `bytes`, which uppercases
//! ASCII `a`–`z` and leaves every other byte alone. [`Mode::Upper`] does exactly
//! that, so a UTF-8 `é` (`\xc3\xa9`) or a stray `\xff` comes back unchanged and the
//! reply always has the request's length. [`Mode::Echo`] is RFC 862.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::SystemTime;

use crate::counters::Refusal;
use crate::stamp::{self, Reflector, ReflectorConfig, StampDrop};

/// The length of a reply to a short TWAMP-Light test packet
/// ([`Responder::respond_unpadded`]): the STAMP unauthenticated base packet.
pub const UNPADDED_REPLY: usize = stamp::packet::UNAUTHENTICATED.len;

/// What the server does to a datagram before sending it back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// ASCII `a`–`z` become `A`–`Z`; every other byte is unchanged.
    #[default]
    Upper,
    /// The reply is the request, unchanged (RFC 862).
    Echo,
}

impl Mode {
    /// Applies the transform in place; the length never changes.
    ///
    /// ```
    /// let mut msg = *b"h\xc3\xa9llo\xff";
    /// shout::Mode::Upper.apply(&mut msg);
    /// assert_eq!(&msg, b"H\xc3\xa9LLO\xff");
    /// ```
    #[inline]
    pub fn apply(self, payload: &mut [u8]) {
        match self {
            Mode::Upper => uppercase_ascii(payload),
            Mode::Echo => {}
        }
    }

    /// Whether `reply` is what this transform makes of `request`.
    pub fn is_reply(self, request: &[u8], reply: &[u8]) -> bool {
        request.len() == reply.len()
            && match self {
                Mode::Upper => request.iter().zip(reply).all(|(q, r)| q.to_ascii_uppercase() == *r),
                Mode::Echo => request == reply,
            }
    }
}

/// What a worker knows of a datagram beside its bytes: who sent it, to
/// which address, and how it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Envelope {
    /// The sender.
    pub src: SocketAddr,
    /// The address it was sent to, where the socket reports it.
    pub dst: Option<IpAddr>,
    /// The TTL or hop limit it arrived with, where the socket reports it.
    pub ttl: Option<u8>,
    /// The traffic class byte (DSCP and ECN) it arrived with, where reported.
    pub tos: Option<u8>,
    /// When it arrived, for responders that say so ([`Responder::wants_clock`]);
    /// `None` when nobody asked.
    pub received: Option<SystemTime>,
}

impl Envelope {
    /// A datagram from `src` of which nothing else is known.
    pub fn from(src: SocketAddr) -> Envelope {
        Envelope { src, dst: None, ttl: None, tos: None, received: None }
    }
}

/// One worker's transform: rewrites each admitted request into its reply, in
/// place and at the same length, so a reply can never outgrow its request.
#[derive(Debug)]
pub enum Responder {
    /// A stateless byte transform ([`Mode`]).
    Bytes(Mode),
    /// A STAMP Session-Reflector (RFC 8762, RFC 8972), with this worker's sessions.
    Stamp(Box<Reflector>),
}

impl Responder {
    /// The responder of a server replying in `mode`.
    pub fn new(mode: Mode) -> Responder {
        Responder::Bytes(mode)
    }

    /// A STAMP reflector; fails on an unusable key.
    pub fn stamp(config: &ReflectorConfig) -> io::Result<Responder> {
        Reflector::new(config.clone())
            .map(|r| Responder::Stamp(Box::new(r)))
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))
    }

    /// Whether [`Envelope::received`] must hold the time of arrival.
    pub fn wants_clock(&self) -> bool {
        matches!(self, Responder::Stamp(_))
    }

    /// Turns `payload` into its reply in place, at the same length; on `Err`
    /// the datagram is not answered, and is counted under the reason.
    #[inline]
    pub fn respond(&mut self, payload: &mut [u8], envelope: &Envelope) -> Result<(), Refusal> {
        match self {
            Responder::Bytes(mode) => mode.apply(payload),
            Responder::Stamp(reflector) => {
                let rx = stamp_arrival(envelope);
                let len = payload.len();
                match reflector.reflect(payload, len, &rx) {
                    Ok(n) if n == len => {}
                    Ok(_) | Err(StampDrop::Short) => return Err(Refusal::StampMalformed),
                    Err(StampDrop::Auth) => return Err(Refusal::StampAuth),
                    Err(StampDrop::Unpadded) => return Err(Refusal::StampShort),
                }
            }
        }
        Ok(())
    }

    /// The traffic class the last reply must leave with, when it differs from
    /// the socket's: a STAMP Class of Service TLV asked for a DSCP that the
    /// operator allows (`--stamp-allow-dscp`; RFC 8972 §4.4). ECN is left 0.
    #[inline]
    pub fn reply_tos(&self) -> Option<u8> {
        match self {
            Responder::Bytes(_) => None,
            Responder::Stamp(reflector) => reflector.reply_dscp().map(|dscp| dscp << 2),
        }
    }

    /// The one reply longer than its request, opt-in: a request refused as
    /// [`Refusal::StampShort`] by [`respond`](Self::respond), answered into
    /// `out` with a full 44-octet STAMP reply if its sender is in a prefix
    /// the operator named (`--stamp-short-from`). Returns the reply's length.
    pub fn respond_unpadded(
        &mut self,
        request: &[u8],
        envelope: &Envelope,
        out: &mut [u8; UNPADDED_REPLY],
    ) -> Result<usize, Refusal> {
        let Responder::Stamp(reflector) = self else {
            return Err(Refusal::StampShort);
        };
        match reflector.reflect_unpadded(request, out, &stamp_arrival(envelope)) {
            Ok(n) => Ok(n),
            Err(StampDrop::Auth) => Err(Refusal::StampAuth),
            Err(StampDrop::Short) => Err(Refusal::StampMalformed),
            Err(StampDrop::Unpadded) => Err(Refusal::StampShort),
        }
    }
}

/// What the STAMP reflector is told of a datagram.
fn stamp_arrival(envelope: &Envelope) -> stamp::Arrival {
    stamp::Arrival {
        src: envelope.src,
        // The server reads the clock for a responder that wants it; a caller
        // that did not is answered as of now.
        received: envelope.received.unwrap_or_else(SystemTime::now),
        ttl: envelope.ttl,
        tos: envelope.tos,
    }
}

/// Uppercases ASCII letters in place, as Python's `bytes.upper()` does.
///
/// Branch-free per byte, so the compiler vectorises it (SIMD), which matters
/// for 8 KiB and 64 KiB datagrams.
#[inline]
pub fn uppercase_ascii(payload: &mut [u8]) {
    for b in payload.iter_mut() {
        // 0x20 is the case bit; set `is_lower` to 0x20 exactly for b'a'..=b'z'.
        let is_lower = (b.wrapping_sub(b'a') < 26) as u8;
        *b ^= is_lower << 5;
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Upper => "upper",
            Mode::Echo => "echo",
        })
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upper" => Ok(Mode::Upper),
            "echo" => Ok(Mode::Echo),
            other => Err(format!("unknown mode {other:?} (expected upper or echo)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_python_bytes_upper() {
        let mut msg = *b"h\xc3\xa9llo\xff world {az} `@[";
        Mode::Upper.apply(&mut msg);
        assert_eq!(&msg, b"H\xc3\xa9LLO\xff WORLD {AZ} `@[");
    }

    #[test]
    fn echo_leaves_bytes_alone() {
        let mut msg = *b"abc\x00\xff";
        Mode::Echo.apply(&mut msg);
        assert_eq!(&msg, b"abc\x00\xff");
    }

    #[test]
    fn is_reply_rejects_other_lengths_and_contents() {
        assert!(Mode::Upper.is_reply(b"abc", b"ABC"));
        assert!(!Mode::Upper.is_reply(b"abc", b"abc"));
        assert!(!Mode::Upper.is_reply(b"abc", b"ABCD"));
        assert!(Mode::Echo.is_reply(b"abc", b"abc"));
        assert!(!Mode::Echo.is_reply(b"abc", b"ABC"));
        assert!(Mode::Upper.is_reply(b"", b""));
    }

    proptest! {
        #[test]
        fn upper_keeps_length_and_uppercases_each_byte(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut reply = data.clone();
            Mode::Upper.apply(&mut reply);
            prop_assert_eq!(reply.len(), data.len());
            for (q, r) in data.iter().zip(&reply) {
                prop_assert_eq!(*r, q.to_ascii_uppercase());
            }
            prop_assert!(Mode::Upper.is_reply(&data, &reply));
        }
    }
}
