//! shout: a UDP server that answers every datagram with the same bytes, ASCII
//! letters uppercased; a client that talks to it without ever hanging; and the
//! pieces to embed either.
//!
//! # Layout
//! - [`server`]: [`Server::bind`] / [`Server::run`]: the sockets, their options, a worker
//!   thread on each, stop; its `worker` part is the per-datagram path read top to bottom:
//!   receive, admit, transform, send ([`server::reply_to`] is the one road to a reply), and
//!   its `gso` part the send step's UDP GSO fallback.
//! - [`policy`]: who gets an answer (anti-reflection defences, rate limit): admission only.
//! - [`transform`]: what is done to each admitted datagram (uppercase or echo), in place.
//! - [`client`]: [`Client::connect`] / [`Client::request`]: one request at a time, with backoff;
//!   its modes [`oneshot`](client::oneshot), [`pipe`](mod@client::pipe) and [`prompt`](client::prompt).
//! - [`bench`](mod@bench): the load generator: numbered probes in a window or at a rate, every reply checked and timed.
//! - [`probe`]: `shout probe`, the always-on agent: config, names, engine, metrics, table and JSON lines.
//! - [`counters`]: what the server counts, per worker, without locks.
//! - [`logging`]: summary and interval lines on stderr (text or JSON).
//! - [`metrics`]: the Prometheus `/metrics` endpoint, bounded in threads, fds and time.
//! - [`monitor`]: arriving datagrams and warnings shown on stderr, sampled, off the reply path.
//! - [`escape`](mod@escape): untrusted bytes shown as one safe line.
//! - [`stamp`]: STAMP (RFC 8762, RFC 8972) test packets: the reflector's and the sender's side.
//! - [`duration`]: `200ms`-style durations.
//! - [`dscp`]: DSCP names (`ef`, `af41`, `cs6`) and numbers, for the flags that mark packets.
//! - [`addr`]: `HOST:PORT`, `[IPv6%scope]:PORT` and default ports, as users write them.
//! - `sys`: batched socket I/O, the only `unsafe` code; private to the crate.
//!
//! # Example
//! A server on a free port, answering one datagram:
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use shout::{Server, ServerConfig};
//!
//! let config = ServerConfig { binds: vec!["127.0.0.1:0".parse().unwrap()], ..Default::default() };
//! let server = Server::bind(config).unwrap();
//! let addr = server.local_addr();
//! let stop = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     s.spawn(|| server.run(&stop));
//!     let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//!     client.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
//!     client.send_to(b"hello", addr).unwrap();
//!     let mut buf = [0; 16];
//!     let (n, _) = client.recv_from(&mut buf).unwrap();
//!     assert_eq!(&buf[..n], b"HELLO");
//!     stop.store(true, std::sync::atomic::Ordering::Relaxed);
//! });
//! ```

pub mod addr;
pub mod bench;
pub mod client;
pub mod counters;
pub mod dscp;
pub mod duration;
pub mod escape;
mod limit;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod policy;
pub mod probe;
pub mod server;
pub mod stamp;
// Its items are `pub` inside a private module, so crate-private; the few that this
// crate's own integration tests drive directly are re-exported by `test_seam`.
#[allow(unreachable_pub)]
mod sys;
pub mod transform;

pub use client::{Client, ClientConfig, Expect, Reply, RequestError};
pub use counters::Counts;
pub use duration::parse_duration;
pub use escape::escape;
pub use policy::{PolicyConfig, Prefix, RateLimit};
pub use server::{Server, ServerConfig};
pub use sys::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
pub use transform::Mode;

/// Not part of the API: the batched socket calls that this crate's own
/// integration tests drive directly (a GRO client, a reflector with TTLs).
#[doc(hidden)]
pub mod test_seam {
    pub use crate::sys::{enable_gro, enable_ttl_tos, recv_batch, RecvMeta, BATCH, MAX_BUF};
}
