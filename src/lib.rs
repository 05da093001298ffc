//! shout: a UDP server that answers every datagram with the same bytes, ASCII
//! letters uppercased; a client that talks to it without ever hanging; and the
//! pieces to embed either.
//!
//! # Layout
//! - [`server`]: [`Server::bind`] / [`Server::run`], and the reply path read top to bottom:
//!   receive, admit, transform, coalesce, send ([`server::reply_to`] is the one road to a reply).
//! - [`policy`]: who gets an answer (anti-reflection defences, rate limit): admission only.
//! - [`transform`]: what is done to each admitted datagram (uppercase or echo), in place.
//! - `sockets`: the server's sockets and the worker thread on each: bind, options, run, stop.
//! - [`client`]: [`Client::connect`] / [`Client::request`]: one request at a time, with backoff;
//!   its modes [`oneshot`](client::oneshot), [`pipe`](mod@client::pipe) and [`prompt`](client::prompt).
//! - [`bench`](mod@bench): the load generator: numbered probes in a window or at a rate, every reply checked and timed.
//! - [`probe`]: `shout probe`, the always-on agent: config, names, engine, metrics, table and JSON lines.
//! - [`counters`]: what the server counts, per worker, without locks.
//! - [`logging`]: summary and interval lines on stderr (text or JSON).
//! - [`metrics`]: the Prometheus `/metrics` endpoint, bounded in threads, fds and time.
//! - [`arrivals`]: arriving datagrams shown on stderr, sampled, off the reply path.
//! - [`escape`](mod@escape): untrusted bytes shown as one safe line.
//! - [`stamp`]: STAMP (RFC 8762, RFC 8972) test packets: the reflector's and the sender's side.
//! - [`duration`]: `200ms`-style durations.
//! - [`cli`]: the command line: arguments, their configs, the glue around each run.
//! - `sys`: batched socket I/O, the only `unsafe` code.
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

pub mod arrivals;
pub mod bench;
pub mod cli;
pub mod client;
pub mod counters;
pub mod duration;
pub mod escape;
mod limit;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod server;
mod sockets;
pub mod stamp;
pub mod sys;
pub mod transform;

pub use client::{Client, ClientConfig, Expect, Reply, RequestError};
pub use counters::Counts;
pub use duration::parse_duration;
pub use escape::escape;
pub use policy::{PolicyConfig, Prefix, RateLimit};
pub use server::{Server, ServerConfig};
pub use transform::Mode;
