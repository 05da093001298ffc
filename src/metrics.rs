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
//!   and one rendered response per connection being answered.
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

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `POST /-/reload` calls: `Ok(message)` answers 200, `Err(message)` 500.
/// It runs on the endpoint's thread, so scrapes wait while it does.
pub type Reload<'a> = &'a dyn Fn() -> Result<String, String>;

/// What a scrape asking for the Prometheus protobuf exposition gets: its
/// length-delimited `io.prometheus.client.MetricFamily` messages.
pub type Protobuf<'a> = &'a dyn Fn() -> Vec<u8>;

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
    pub fn serve(&self, stop: &AtomicBool, render: impl Fn() -> String) {
        self.serve_with_reload(stop, render, None);
    }

    /// [`serve`](MetricsEndpoint::serve), and `POST /-/reload` calls `reload`.
    pub fn serve_with_reload(
        &self,
        stop: &AtomicBool,
        render: impl Fn() -> String,
        reload: Option<Reload<'_>>,
    ) {
        self.serve_negotiated(stop, render, None, reload);
    }

    /// [`serve_with_reload`](MetricsEndpoint::serve_with_reload), and a
    /// scrape whose `Accept` header prefers the protobuf exposition (as
    /// Prometheus' with native histograms enabled does) gets `protobuf()`.
    pub fn serve_negotiated(
        &self,
        stop: &AtomicBool,
        render: impl Fn() -> String,
        protobuf: Option<Protobuf<'_>>,
        reload: Option<Reload<'_>>,
    ) {
        let handlers = Handlers { render: &render, protobuf, reload };
        let mut conns: Vec<Conn> = Vec::with_capacity(MAX_CONNECTIONS);
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
struct Handlers<'a> {
    render: &'a dyn Fn() -> String,
    protobuf: Option<Protobuf<'a>>,
    reload: Option<Reload<'a>>,
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// When it was accepted (or entered its current state).
    since: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Collecting the request head.
    Reading(Vec<u8>),
    /// Sending `out` from `at`.
    Writing { out: Vec<u8>, at: usize },
    /// Response sent: discarding what the client still sends, until EOF or `LINGER`.
    Draining,
}

impl Conn {
    /// Moves the connection on as far as it can go without blocking; `false`
    /// when it is finished and should be closed.
    fn step(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        handlers: &Handlers<'_>,
        busy: &mut bool,
    ) -> bool {
        if let State::Reading(head) = &mut self.state {
            let response = loop {
                match self.stream.read(buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        *busy = true;
                        head.extend_from_slice(&buf[..n]);
                        if let Some(end) = head_end(head) {
                            break respond(&head[..end], handlers);
                        }
                        if head.len() > MAX_HEAD {
                            break simple(431, "Request Header Fields Too Large", "", false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if now.duration_since(self.since) < HEAD_TIMEOUT {
                            return true;
                        }
                        break simple(408, "Request Timeout", "", false);
                    }
                    Err(_) => return false,
                }
            };
            self.since = now;
            self.state = State::Writing { out: response, at: 0 };
        }
        if let State::Writing { out, at } = &mut self.state {
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

/// The whole response to a complete request head.
fn respond(head: &[u8], handlers: &Handlers<'_>) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return simple(400, "Bad Request", "", false);
    };
    if !version.starts_with(b"HTTP/1.") {
        return simple(400, "Bad Request", "", false);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if let (b"/-/reload", Some(reload)) = (path, handlers.reload) {
        if !matches!(method, b"POST" | b"PUT") {
            return simple(405, "Method Not Allowed", "Allow: POST, PUT\r\n", false);
        }
        let (code, reason, body) = match reload() {
            Ok(message) => (200, "OK", message),
            Err(message) => (500, "Internal Server Error", message),
        };
        return response(
            code,
            reason,
            "text/plain; charset=utf-8",
            "",
            &format!("{body}\n"),
            false,
        );
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return simple(405, "Method Not Allowed", "Allow: GET, HEAD\r\n", false),
    };
    if path != b"/metrics" {
        return simple(404, "Not Found", "", head_only);
    }
    if let Some(protobuf) = handlers.protobuf.filter(|_| accept::prefers_protobuf(head)) {
        return protobuf_response(&protobuf(), head_only);
    }
    response(200, "OK", CONTENT_TYPE, "", &(handlers.render)(), head_only)
}

/// A plain-text error response whose body says what went wrong.
fn simple(code: u16, reason: &str, extra: &str, head_only: bool) -> Vec<u8> {
    let body =
        if code == 404 { "not found: try /metrics\n".to_string() } else { format!("{reason}\n") };
    response(code, reason, "text/plain; charset=utf-8", extra, &body, head_only)
}

fn response(
    code: u16,
    reason: &str,
    content_type: &str,
    extra: &str,
    body: &str,
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// A 200 carrying a protobuf exposition.
fn protobuf_response(body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        accept::PROTOBUF,
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
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_counters_by_worker_and_reason() {
        let counts = Counts {
            received: 7,
            answered: 4,
            rate_limited: 1,
            total_limited: 2,
            ..Counts::default()
        };
        let text = prometheus(&[("127.0.0.1:8080".parse().unwrap(), counts)], 12.5);
        assert!(
            text.contains(r#"shout_received_datagrams_total{worker="0",addr="127.0.0.1:8080"} 7"#),
            "{text}"
        );
        assert!(text.contains(r#"shout_dropped_datagrams_total{worker="0",addr="127.0.0.1:8080",reason="rate_limited"} 1"#), "{text}");
        assert!(text.contains(r#"shout_dropped_datagrams_total{worker="0",addr="127.0.0.1:8080",reason="total_limited"} 2"#), "{text}");
        assert!(text.contains("shout_answers_per_second 12.5"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn requests_get_the_status_their_head_deserves() {
        let render = || "# EOF\n".to_string();
        let handlers = Handlers { render: &render, protobuf: None, reload: None };
        let status = |head: &str| {
            let out = String::from_utf8(respond(head.as_bytes(), &handlers)).unwrap();
            out.split(' ').nth(1).unwrap().to_string()
        };
        assert_eq!(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), "200");
        assert_eq!(status("GET /metrics?x=1 HTTP/1.0\n\n"), "200");
        assert_eq!(status("GET /other HTTP/1.1\r\n\r\n"), "404");
        assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n"), "405");
        assert_eq!(status("DELETE /metrics HTTP/1.1\r\n\r\n"), "405");
        assert_eq!(status("GET /metrics\r\n\r\n"), "400");
        assert_eq!(status("GET /metrics SPDY/3\r\n\r\n"), "400");
        assert_eq!(status("\x00\x01\r\n\r\n"), "400");
        assert_eq!(
            status("POST /-/reload HTTP/1.1\r\n\r\n"),
            "405",
            "no reload hook: GET and HEAD only"
        );
        let head =
            String::from_utf8(respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &handlers)).unwrap();
        assert!(head.ends_with("Content-Length: 6\r\nConnection: close\r\n\r\n"), "{head:?}");
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nA: b\r\n"), None);
    }

    #[test]
    fn reload_is_a_post_to_its_own_path_when_a_hook_is_given() {
        let render = || "# EOF\n".to_string();
        let calls = std::cell::Cell::new(0);
        let ok = || {
            calls.set(calls.get() + 1);
            Ok("reloaded: 3 targets".to_string())
        };
        let handlers = Handlers { render: &render, protobuf: None, reload: Some(&ok) };
        let answer = |head: &str| String::from_utf8(respond(head.as_bytes(), &handlers)).unwrap();
        let out = answer("POST /-/reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.ends_with("reloaded: 3 targets\n"),
            "{out}"
        );
        assert!(answer("PUT /-/reload HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert_eq!(calls.get(), 2);
        let out = answer("GET /-/reload HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 405") && out.contains("Allow: POST, PUT"), "{out}");
        assert!(answer("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(answer("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert_eq!(calls.get(), 2, "only POST and PUT reload");
        let fail = || Err("p.yaml:3:5: targets[0]: unknown field `x`".to_string());
        let handlers = Handlers { render: &render, protobuf: None, reload: Some(&fail) };
        let out =
            String::from_utf8(respond(b"POST /-/reload HTTP/1.1\r\n\r\n", &handlers)).unwrap();
        assert!(out.starts_with("HTTP/1.1 500") && out.contains("unknown field"), "{out}");
    }

    #[test]
    fn a_scrape_preferring_protobuf_gets_it_when_there_is_a_renderer() {
        let render = || "# EOF\n".to_string();
        let protobuf = || vec![0u8, 1, 2];
        let with = Handlers { render: &render, protobuf: Some(&protobuf), reload: None };
        let without = Handlers { render: &render, protobuf: None, reload: None };
        let proto = "GET /metrics HTTP/1.1\r\nAccept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited\r\n\r\n";
        let out = respond(proto.as_bytes(), &with);
        let want = format!("Content-Type: {}\r\nContent-Length: 3\r\n", accept::PROTOBUF);
        assert!(out.ends_with(b"\r\n\r\n\x00\x01\x02"), "{out:?}");
        assert!(String::from_utf8_lossy(&out).contains(&want), "{out:?}");
        let head = respond(proto.replacen("GET", "HEAD", 1).as_bytes(), &with);
        assert!(head.ends_with(b"Connection: close\r\n\r\n"), "{head:?}");
        let text = respond(b"GET /metrics HTTP/1.1\r\n\r\n", &with);
        assert_eq!(text, respond(b"GET /metrics HTTP/1.1\r\n\r\n", &without));
        assert_eq!(respond(proto.as_bytes(), &without), text, "no renderer: the text");
    }
}
