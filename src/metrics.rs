//! The Prometheus `/metrics` endpoint: a small HTTP/1.x responder on one
//! thread, with fixed limits so no client can make it grow.
//!
//! A scraper needs one short request answered; anything else is refused
//! cheaply. The limits, whatever the clients do:
//! - **threads**: one (the thread that calls [`MetricsEndpoint::serve`]);
//! - **file descriptors**: at most [`MAX_FDS`]: the listener and
//!   [`MAX_CONNECTIONS`] connections, plus one just accepted while the oldest
//!   is evicted for it;
//! - **memory**: at most [`MAX_HEAD`] plus one read buffer per connection,
//!   and per connection being answered its [`Body`] and one piece of it
//!   (about [`PIECE`] bytes): a large page is rendered as the connection
//!   drains, never held whole, and sent chunked (HTTP/1.1) or delimited by
//!   the close (HTTP/1.0). A body done in one piece has a `Content-Length`.
//!
//! Connections are non-blocking and visited in turn. When all
//! [`MAX_CONNECTIONS`] slots are taken, a new connection evicts the oldest one
//! that has not finished sending its request head. A real scraper sends its
//! request at once, and a connection is read at least once before newer ones
//! can evict it, so slow or idle clients delay a scrape by a round or two
//! (milliseconds), never lock it out. (A client that opens new connections
//! faster than they are read can still crowd scrapes out: that is a
//! connection flood, for a firewall to stop.) A request
//! head must arrive within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`] bytes
//! (431 otherwise); only `GET` and `HEAD` are served (405 otherwise), only at
//! `/metrics` (404 otherwise); every response closes its connection. An
//! endpoint given a [`Reload`] hook ([`MetricsEndpoint::serve_with_reload`])
//! also answers `POST /-/reload` (or `PUT`, as Prometheus does) by calling it:
//! 200 with its message, or 500 with its error. An endpoint given a
//! [`Protobuf`] renderer ([`MetricsEndpoint::serve_negotiated`]) answers a
//! scrape whose `Accept` header prefers Prometheus' protobuf exposition with it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::counters::{Counts, Refusal};

mod accept;

/// Connections open at once; one more evicts the oldest still sending its head.
pub const MAX_CONNECTIONS: usize = 64;
/// File descriptors the endpoint ever holds at once (see the module docs).
pub const MAX_FDS: usize = 1 + MAX_CONNECTIONS + 1;
/// Time a client has from connecting to the end of its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers) accepted; larger gets 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time to deliver a response before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a response, how long unread request bytes are drained so that closing
/// does not reset the connection before the client has read the response.
const LINGER: Duration = Duration::from_secs(1);
/// Sleep between rounds when nothing happened: bounds how long a connection
/// waits to be accepted and read, and how long stopping takes.
const IDLE_TICK: Duration = Duration::from_millis(5);
/// Connections the kernel may hold completed but not yet accepted (capped by
/// `net.core.somaxconn`). A full queue drops handshakes, and a dropped
/// handshake costs a scraper a one-second retransmission, so it is deep: the
/// queue costs kernel memory, not our fds.
const BACKLOG: i32 = 1024;
/// Connections accepted per round: fewer than [`MAX_CONNECTIONS`], so a new
/// connection is read at least once before a flood of newer ones can evict it.
const ACCEPTS_PER_ROUND: usize = MAX_CONNECTIONS / 2;

/// Bytes read from a connection at a time.
const READ_BUF: usize = 4096;
/// Bytes of a response body asked of its [`Body`] at a time.
pub const PIECE: usize = 64 * 1024;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `POST /-/reload` calls: `Ok(message)` answers 200, `Err(message)` 500.
/// It runs on the endpoint's thread, so scrapes wait while it does.
pub type Reload<'a> = &'a dyn Fn() -> Result<String, String>;

/// What a scrape asking for the Prometheus protobuf exposition gets: its
/// length-delimited `io.prometheus.client.MetricFamily` messages, whole
/// (`Vec<u8>`) or a piece at a time (any [`Body`]).
pub type Protobuf<'a, P = Vec<u8>> = &'a dyn Fn() -> P;

/// A response body made a piece at a time, as the connection takes it, so a
/// large page is never held whole.
pub trait Body {
    /// Appends the next piece, about `want` bytes (more is fine), to `out`;
    /// `false` once the body is complete.
    fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> bool;
}

/// A body rendered whole beforehand: one piece.
impl Body for Vec<u8> {
    fn fill(&mut self, out: &mut Vec<u8>, _want: usize) -> bool {
        out.append(self);
        false
    }
}

/// Either page, as the scrape's `Accept` header chose.
enum Page<B, P> {
    Text(B),
    Protobuf(P),
}

impl<B: Body, P: Body> Body for Page<B, P> {
    fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> bool {
        match self {
            Page::Text(b) => b.fill(out, want),
            Page::Protobuf(p) => p.fill(out, want),
        }
    }
}

/// A body rendered whole beforehand: one piece.
impl Body for String {
    fn fill(&mut self, out: &mut Vec<u8>, _want: usize) -> bool {
        out.extend_from_slice(self.as_bytes());
        self.clear();
        false
    }
}

/// The `/metrics` endpoint (no TLS stack; put a proxy in front for that).
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsEndpoint {
    /// Binds the HTTP listener now, so a bad address fails before serving starts.
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsEndpoint> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        // As std's TcpListener::bind does: a restart can rebind at once.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener = TcpListener::from(socket);
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(MetricsEndpoint { listener, addr })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers scrapes with `render()` until `stop` is set.
    pub fn serve<B: Body>(&self, stop: &AtomicBool, render: impl Fn() -> B) {
        self.serve_with_reload(stop, render, None);
    }

    /// [`serve`](MetricsEndpoint::serve), and `POST /-/reload` calls `reload`.
    pub fn serve_with_reload<B: Body>(
        &self,
        stop: &AtomicBool,
        render: impl Fn() -> B,
        reload: Option<Reload<'_>>,
    ) {
        self.serve_negotiated(stop, render, None::<Protobuf<'_>>, reload);
    }

    /// [`serve_with_reload`](MetricsEndpoint::serve_with_reload), and a
    /// scrape whose `Accept` header prefers the protobuf exposition (as
    /// Prometheus' with native histograms enabled does) gets `protobuf()`.
    pub fn serve_negotiated<B: Body, P: Body>(
        &self,
        stop: &AtomicBool,
        render: impl Fn() -> B,
        protobuf: Option<Protobuf<'_, P>>,
        reload: Option<Reload<'_>>,
    ) {
        let handlers = Handlers { render: &render, protobuf, reload };
        let mut conns: Vec<Conn<Page<B, P>>> = Vec::with_capacity(MAX_CONNECTIONS);
        let mut buf = vec![0u8; READ_BUF];
        while !stop.load(Relaxed) {
            let now = Instant::now();
            let mut busy = false;
            for _ in 0..ACCEPTS_PER_ROUND {
                let Ok((stream, _)) = self.listener.accept() else {
                    // WouldBlock, or out of fds: either way, try again next round.
                    break;
                };
                busy = true;
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if conns.len() >= MAX_CONNECTIONS {
                    let oldest = conns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !matches!(c.state, State::Writing { .. }))
                        .min_by_key(|(_, c)| c.since)
                        .map(|(i, _)| i);
                    match oldest {
                        Some(i) => drop(conns.swap_remove(i)),
                        // Every slot is delivering a response: refuse this one.
                        None => continue,
                    }
                }
                conns.push(Conn { stream, since: now, state: State::Reading(Vec::new()) });
            }
            conns.retain_mut(|c| c.step(now, &mut buf, &handlers, &mut busy));
            if !busy {
                std::thread::sleep(IDLE_TICK);
            }
        }
    }
}

/// What the endpoint answers with.
struct Handlers<'a, B, P> {
    render: &'a dyn Fn() -> B,
    protobuf: Option<Protobuf<'a, P>>,
    reload: Option<Reload<'a>>,
}

/// One client connection.
struct Conn<B> {
    stream: TcpStream,
    /// When it was accepted (or entered its current state).
    since: Instant,
    state: State<B>,
}

enum State<B> {
    /// Collecting the request head.
    Reading(Vec<u8>),
    /// Sending `out` from `at`, then the rest of the body, if any.
    Writing { out: Vec<u8>, at: usize, rest: Option<Rest<B>> },
    /// Response sent: discarding what the client still sends, until EOF or `LINGER`.
    Draining,
}

/// The part of a response body not rendered yet.
struct Rest<B> {
    body: B,
    /// HTTP/1.1 chunked framing; otherwise the close ends the body.
    chunked: bool,
    piece: Vec<u8>,
}

impl<B: Body> Rest<B> {
    /// Replaces `out` with the next piece, framed; `false` after the last.
    fn next(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        self.piece.clear();
        let more = self.body.fill(&mut self.piece, PIECE);
        if self.chunked {
            frame(out, &self.piece);
            if !more {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        } else {
            out.extend_from_slice(&self.piece);
        }
        more
    }
}

/// Appends `piece` as one chunk of a chunked body (nothing for an empty
/// piece: a chunk of size 0 ends the body).
fn frame(out: &mut Vec<u8>, piece: &[u8]) {
    if !piece.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
}

/// A response: its head and first bytes, and the rest of a streamed body.
struct Reply<B> {
    out: Vec<u8>,
    rest: Option<Rest<B>>,
}

impl<B> From<Vec<u8>> for Reply<B> {
    fn from(out: Vec<u8>) -> Self {
        Reply { out, rest: None }
    }
}

impl<B: Body, P: Body> Conn<Page<B, P>> {
    /// Moves the connection on as far as it can go without blocking; `false`
    /// when it is finished and should be closed.
    fn step(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        handlers: &Handlers<'_, B, P>,
        busy: &mut bool,
    ) -> bool {
        if let State::Reading(head) = &mut self.state {
            let reply = loop {
                match self.stream.read(buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        *busy = true;
                        head.extend_from_slice(&buf[..n]);
                        if let Some(end) = head_end(head) {
                            break reply(&head[..end], handlers);
                        }
                        if head.len() > MAX_HEAD {
                            break simple(431, "Request Header Fields Too Large", "", false).into();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if now.duration_since(self.since) < HEAD_TIMEOUT {
                            return true;
                        }
                        break simple(408, "Request Timeout", "", false).into();
                    }
                    Err(_) => return false,
                }
            };
            self.since = now;
            self.state = State::Writing { out: reply.out, at: 0, rest: reply.rest };
        }
        if let State::Writing { out, at, rest } = &mut self.state {
            loop {
                while *at < out.len() {
                    match self.stream.write(&out[*at..]) {
                        Ok(0) => return false,
                        Ok(n) => {
                            *busy = true;
                            *at += n;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return now.duration_since(self.since) < WRITE_TIMEOUT;
                        }
                        Err(_) => return false,
                    }
                }
                // The next piece only once the last is with the kernel: one at a time.
                let Some(r) = rest else { break };
                *at = 0;
                if !r.next(out) {
                    *rest = None;
                }
            }
            let _ = self.stream.shutdown(Shutdown::Write);
            self.since = now;
            self.state = State::Draining;
        }
        loop {
            match self.stream.read(buf) {
                Ok(0) => return false,
                Ok(_) => *busy = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return now.duration_since(self.since) < LINGER;
                }
                Err(_) => return false,
            }
        }
    }
}

/// Where the request head ends (after its blank line), if it has.
fn head_end(head: &[u8]) -> Option<usize> {
    let crlf = head.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The response to a complete request head.
fn reply<B: Body, P: Body>(head: &[u8], handlers: &Handlers<'_, B, P>) -> Reply<Page<B, P>> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return simple(400, "Bad Request", "", false).into();
    };
    if !version.starts_with(b"HTTP/1.") {
        return simple(400, "Bad Request", "", false).into();
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if let (b"/-/reload", Some(reload)) = (path, handlers.reload) {
        if !matches!(method, b"POST" | b"PUT") {
            return simple(405, "Method Not Allowed", "Allow: POST, PUT\r\n", false).into();
        }
        let (code, reason, body) = match reload() {
            Ok(message) => (200, "OK", message),
            Err(message) => (500, "Internal Server Error", message),
        };
        let body = format!("{body}\n");
        return response(code, reason, "text/plain; charset=utf-8", "", body.as_bytes(), false)
            .into();
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return simple(405, "Method Not Allowed", "Allow: GET, HEAD\r\n", false).into(),
    };
    if path != b"/metrics" {
        return simple(404, "Not Found", "", head_only).into();
    }
    let (mut body, content_type) = match handlers.protobuf {
        Some(protobuf) if accept::prefers_protobuf(head) => {
            (Page::Protobuf(protobuf()), accept::PROTOBUF)
        }
        _ => (Page::Text((handlers.render)()), CONTENT_TYPE),
    };
    let mut piece = Vec::new();
    if !body.fill(&mut piece, PIECE) {
        return response(200, "OK", content_type, "", &piece, head_only).into();
    }
    // Longer than a piece: streamed, with no length known up front.
    let chunked = version != b"HTTP/1.0";
    let framing = if chunked { "Transfer-Encoding: chunked\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{framing}Connection: close\r\n\r\n"
    )
    .into_bytes();
    if head_only {
        return out.into();
    }
    if chunked {
        frame(&mut out, &piece);
    } else {
        out.extend_from_slice(&piece);
    }
    Reply { out, rest: Some(Rest { body, chunked, piece }) }
}

/// A plain-text error response whose body says what went wrong.
fn simple(code: u16, reason: &str, extra: &str, head_only: bool) -> Vec<u8> {
    let body =
        if code == 404 { "not found: try /metrics\n".to_string() } else { format!("{reason}\n") };
    response(code, reason, "text/plain; charset=utf-8", extra, body.as_bytes(), head_only)
}

fn response(
    code: u16,
    reason: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// Renders per-worker counters in the Prometheus/OpenMetrics text format.
pub fn prometheus(workers: &[(SocketAddr, Counts)], answers_per_sec: f64) -> String {
    let mut registry = Registry::with_prefix("shout");
    registry.register_collector(Box::new(Snapshot { workers: workers.to_vec(), answers_per_sec }));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

#[derive(Debug)]
struct Snapshot {
    workers: Vec<(SocketAddr, Counts)>,
    answers_per_sec: f64,
}

impl Snapshot {
    fn counter(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: impl Fn(&Counts) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(0u64);
        let mut metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        for (worker, (addr, counts)) in self.workers.iter().enumerate() {
            let labels = [("worker", worker.to_string()), ("addr", addr.to_string())];
            ConstCounter::new(value(counts)).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        self.counter(e, "received_datagrams", "Datagrams received", |c| c.received)?;
        self.counter(e, "answered_datagrams", "Replies sent", |c| c.answered)?;
        self.counter(e, "received_bytes", "Payload bytes received", |c| c.bytes_received)?;
        self.counter(e, "answered_bytes", "Payload bytes sent back", |c| c.bytes_answered)?;
        self.counter(e, "reply_failures", "Replies the kernel refused", |c| c.reply_failed)?;
        self.counter(e, "receive_errors", "Receive errors survived", |c| c.recv_errors)?;
        self.counter(
            e,
            "kernel_drops",
            "Datagrams dropped by the kernel: receive queue full",
            |c| c.kernel_drops,
        )?;
        // One family, a label per reason: `sum by (reason)` gives the policy's drops.
        let counter = ConstCounter::new(0u64);
        let mut metric = e.encode_descriptor(
            "dropped_datagrams",
            "Datagrams dropped unanswered, by reason",
            None,
            counter.metric_type(),
        )?;
        for &reason in Refusal::ALL {
            for (worker, (addr, counts)) in self.workers.iter().enumerate() {
                let labels = [
                    ("worker", worker.to_string()),
                    ("addr", addr.to_string()),
                    ("reason", reason.name().to_string()),
                ];
                ConstCounter::new(counts.drops(reason)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let gauge = ConstGauge::new(self.answers_per_sec);
        let metric = e.encode_descriptor(
            "answers_per_second",
            "Replies per second over the last second",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
