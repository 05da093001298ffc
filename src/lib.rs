//! shout: a UDP server that answers every datagram with the same bytes, ASCII
//! letters uppercased; a client that talks to it without ever hanging; and the
//! pieces to embed either.
//!
//! # Layout
//! - [`transform`]: what is done to each datagram (uppercase or echo): pure.
//! - [`server`]: [`Server::bind`] / [`Server::run`]: the reply loop and its error policy.
//! - [`client`]: [`Client::connect`] / [`Client::request`]: one request at a time, with backoff;
//!   its modes [`oneshot`](client::oneshot), [`pipe`](mod@client::pipe) and [`prompt`](client::prompt).
//! - [`bench`](mod@bench): the load generator: numbered probes in a window or at a rate, every reply checked and timed.
//! - [`policy`]: who gets an answer (anti-reflection defences, rate limit) and the one place a reply is made.
//! - [`counters`]: what the server counts, per worker, without locks.
//! - [`telemetry`]: summary and interval lines (text or JSON), Prometheus `/metrics`.
//! - [`arrivals`]: arriving datagrams shown on stderr, sampled, off the reply path.
//! - [`escape`](mod@escape): untrusted bytes shown as one safe line.
//! - [`duration`]: `200ms`-style durations.
//! - [`cli`]: the command line: arguments, their configs, the glue around each run.
//! - `sys`: batched socket I/O, the only `unsafe` code.

pub mod arrivals;
pub mod bench;
pub mod cli;
pub mod client;
pub mod counters;
pub mod duration;
pub mod escape;
pub mod policy;
pub mod server;
pub mod sys;
pub mod telemetry;
pub mod transform;

pub use client::{Client, ClientConfig, Expect, Reply, RequestError};
pub use counters::Counts;
pub use duration::parse_duration;
pub use escape::escape;
pub use policy::{PolicyConfig, RateLimit};
pub use server::{Server, ServerConfig};
pub use transform::Mode;
