//! shout: a UDP server that answers every datagram with the same bytes, ASCII
//! letters uppercased; a client that talks to it without ever hanging; and the
//! pieces to embed either.
//!
//! # Layout
//! - [`transform`]: what is done to each datagram (uppercase or echo): pure.
//! - [`server`]: [`Server::bind`] / [`Server::run`]: the reply loop and its error policy.
//! - [`client`]: [`Client::connect`] / [`Client::request`]: one request at a time, with backoff.
//! - [`session`]: the client's one-shot, pipe and interactive modes.
//! - [`bench`](mod@bench): the load generator: numbered probes in a window or at a rate, every reply checked and timed.
//! - [`policy`]: who gets an answer (anti-reflection defences, rate limit) and the one place a reply is made.
//! - [`stats`]: the server's counters.
//! - [`logging`]: summary and interval lines on stderr (text or JSON).
//! - [`metrics`]: the Prometheus `/metrics` endpoint, bounded in threads, fds and time.
//! - [`monitor`]: what the server shows as datagrams arrive, off the reply path.
//! - [`escape`](mod@escape): untrusted bytes shown as one safe line.
//! - [`duration`]: `200ms`-style durations.
//! - `sys`: batched socket I/O, the only `unsafe` code.

pub mod bench;
pub mod client;
pub mod duration;
pub mod escape;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod policy;
pub mod server;
pub mod session;
pub mod stats;
pub mod sys;
pub mod transform;

pub use client::{Client, ClientConfig, Expect, Reply, RequestError};
pub use duration::parse_duration;
pub use escape::escape;
pub use policy::{PolicyConfig, Prefix, RateLimit};
pub use server::{Server, ServerConfig};
pub use stats::Counts;
pub use transform::Mode;
