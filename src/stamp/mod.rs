//! STAMP, the Simple Two-way Active Measurement Protocol (RFC 8762) with its
//! optional extensions (RFC 8972): the packet formats and the pure logic of
//! both ends, with no I/O, so that the server and `shout bench` can wire it to
//! their sockets.
//!
//! - [`packet`]: where each field of the base packets sits, both modes.
//! - [`timestamp`]: NTP and PTPv2 timestamps, the Error Estimate.
//! - [`auth`]: HMAC-SHA-256 truncated to 16 octets.
//! - [`key`]: the key file of authenticated mode.
//! - [`tlv`]: TLV headers, flags, types, a reader and the sender's encoder.
//! - [`session`]: the stateful reflector's bounded session table.
//! - [`reflector`]: [`Reflector::reflect`] turns a test packet into its reply in place.
//! - [`sender`]: [`Sender::build_test_packet`] and [`Sender::parse_reflected`].
//!
//! ```
//! use std::time::SystemTime;
//! use shout::stamp::{Arrival, Reflector, ReflectorConfig, Sender, SenderConfig};
//!
//! let sender = Sender::new(SenderConfig { ssid: 7, ..Default::default() }).unwrap();
//! let mut reflector = Reflector::new(ReflectorConfig::default()).unwrap();
//! let mut buf = [0u8; 1500];
//! let len = sender.build_test_packet(42, SystemTime::now(), &mut buf).unwrap();
//! let rx = Arrival {
//!     src: "127.0.0.1:40000".parse().unwrap(),
//!     received: SystemTime::now(),
//!     ttl: Some(64),
//!     tos: None,
//! };
//! let reply_len = reflector.reflect(&mut buf, len, &rx).unwrap();
//! assert_eq!(reply_len, len);
//! let reply = sender.parse_reflected(&buf[..reply_len]).unwrap();
//! assert_eq!((reply.sender_seq, reply.ssid, reply.sender_ttl), (42, 7, 64));
//! ```

/// STAMP's registered port (RFC 8762 §4.1): where reflectors listen.
pub const STAMP_PORT: u16 = 862;

pub mod auth;
pub mod key;
pub mod packet;
pub mod reflector;
pub mod sender;
pub mod session;
pub mod timestamp;
pub mod tlv;

pub use auth::{Key, KeyError};
pub use packet::AuthMode;
pub use reflector::{Arrival, ConfigError, Reflector, ReflectorConfig, StampDrop};
pub use sender::{ParseError, Reflected, Sender, SenderConfig, SenderError, TlvIntegrity};
pub use timestamp::{ErrorEstimate, Timestamp, TimestampFormat};
pub use tlv::{TlvFlags, TlvRequest, TlvValue};
