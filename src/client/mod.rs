//! A client that never hangs and never mistakes a stray datagram for the answer.
//!
//! One request is outstanding at a time (RFC 8085 §3.1.3): each attempt waits
//! `timeout`, then the request is sent again with the wait doubled, up to
//! `retries` more times. The socket is connected, so the kernel only hands us
//! datagrams from the server, and reports "port unreachable" as
//! `ECONNREFUSED` at once (on a retransmission it only counts that attempt as
//! lost: the server may be restarting); anything that is not the expected transform of the
//! request in hand (a late reply to an earlier one, a corrupt copy) is discarded
//! and counted.
//!
//! The command line's three ways of talking to a server are built on
//! [`Client::request`]: [`oneshot`] (messages as arguments), [`pipe`](mod@pipe) (lines
//! of input) and [`prompt`] (the interactive prompt).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

mod exchange;
pub mod oneshot;
pub mod pipe;
pub mod prompt;

pub use exchange::{Output, Tally};
pub use oneshot::one_shot;
pub use pipe::pipe;
pub use prompt::{interactive, LineSource};

use crate::sys::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use crate::Mode;

/// Above this many bytes a datagram may be fragmented on real networks
/// (RFC 8085 §3.2; the size DNS Flag Day 2020 settled on).
pub const SAFE_DATAGRAM: usize = 1232;

/// Backoff stops doubling the wait here.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How long a wait may last before looking at the interrupt flag.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// Which replies count as the answer to a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expect {
    /// The request with ASCII letters uppercased (shout's default mode).
    #[default]
    Upper,
    /// The request unchanged (an RFC 862 echo server).
    Echo,
    /// Any datagram from the server.
    Any,
}

impl Expect {
    /// Whether `reply` answers `request`.
    pub fn matches(self, request: &[u8], reply: &[u8]) -> bool {
        match self {
            Expect::Upper => Mode::Upper.is_reply(request, reply),
            Expect::Echo => Mode::Echo.is_reply(request, reply),
            Expect::Any => true,
        }
    }
}

impl std::str::FromStr for Expect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upper" => Ok(Expect::Upper),
            "echo" => Ok(Expect::Echo),
            "any" => Ok(Expect::Any),
            other => Err(format!("unknown reply kind {other:?} (expected upper, echo or any)")),
        }
    }
}

/// How a client waits and what it accepts.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Wait for the first attempt; doubles with each retransmission.
    pub timeout: Duration,
    /// Retransmissions after the first attempt.
    pub retries: u32,
    /// Which replies count.
    pub expect: Expect,
    /// Set the don't-fragment bit (`IP_PMTUDISC_DO`), so a message above the
    /// path MTU fails with `EMSGSIZE` instead of travelling as fragments.
    pub dont_fragment: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(1),
            retries: 2,
            expect: Expect::Upper,
            dont_fragment: false,
        }
    }
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The reply's bytes.
    pub data: Vec<u8>,
    /// Where it came from (the server: the socket is connected).
    pub from: SocketAddr,
    /// Time from the last transmission to the reply.
    pub rtt: Duration,
    /// Transmissions it took (1 = no retransmission).
    pub attempts: u32,
    /// Datagrams discarded while waiting, as not being this reply.
    pub discarded: u64,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The message cannot fit in one UDP datagram to this server.
    #[error("message is {len} bytes; a UDP datagram over {family} carries at most {limit}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The protocol maximum.
        limit: usize,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The path cannot carry a datagram this big without fragmenting (`EMSGSIZE`).
    #[error("message is {len} bytes, more than the path to {server} carries unfragmented (EMSGSIZE); keep it at or under {SAFE_DATAGRAM} bytes")]
    PathTooSmall {
        /// The message's length.
        len: usize,
        /// The server.
        server: SocketAddr,
    },
    /// Nothing listens at the address (ICMP port unreachable).
    #[error("no server at {0} (port unreachable)")]
    NoServer(SocketAddr),
    /// Every attempt timed out.
    #[error("no reply from {server} after {attempts} attempt{} over {waited:.1?}", if *attempts == 1 { "" } else { "s" })]
    NoReply {
        /// The server.
        server: SocketAddr,
        /// Transmissions made.
        attempts: u32,
        /// Total time waited.
        waited: Duration,
        /// Datagrams discarded while waiting, as not being the reply.
        discarded: u64,
    },
    /// An uppercased reply was expected and the server sent the request back
    /// unchanged: it is an echo server, and waiting longer will not change that.
    #[error("the reply from {server} is the request unchanged, not uppercased: the server looks like an echo server (reply discarded; --expect echo accepts its replies)")]
    EchoServer {
        /// The server.
        server: SocketAddr,
        /// Datagrams discarded, the echo included.
        discarded: u64,
    },
    /// The request unchanged was expected and the server sent it back
    /// uppercased: it is an uppercasing server (shout's default mode), and
    /// waiting longer will not change that.
    #[error("the reply from {server} is the request uppercased, not unchanged: the server looks like an uppercasing server (reply discarded; --expect upper accepts its replies)")]
    UpperServer {
        /// The server.
        server: SocketAddr,
        /// Datagrams discarded, the uppercased copy included.
        discarded: u64,
    },
    /// The interrupt flag was raised while waiting.
    #[error("interrupted")]
    Interrupted,
    /// Any other socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A UDP client connected to one server.
///
/// ```no_run
/// let mut client = shout::Client::connect("127.0.0.1:8080".parse().unwrap(), Default::default())?;
/// let reply = client.request(b"hello")?;
/// assert_eq!(reply.data, b"HELLO");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    config: ClientConfig,
    buf: Vec<u8>,
    interrupt: Option<Arc<AtomicBool>>,
    /// Further addresses of the same name, tried if this one has no server (last first).
    alternates: Vec<SocketAddr>,
}

impl Client {
    /// Binds an ephemeral port of the server's family and connects to `server`.
    pub fn connect(server: SocketAddr, config: ClientConfig) -> io::Result<Client> {
        let socket = Socket::new(Domain::for_address(server), Type::DGRAM, Some(Protocol::UDP))?;
        let any: SocketAddr =
            if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal address");
        socket.bind(&any.into())?;
        socket.connect(&server.into())?;
        let socket: UdpSocket = socket.into();
        if config.dont_fragment {
            crate::sys::set_dont_fragment(&socket, server.is_ipv6())?;
        }
        Ok(Client {
            socket,
            server,
            config,
            buf: vec![0; crate::sys::MAX_BUF],
            interrupt: None,
            alternates: Vec::new(),
        })
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The local address the requests come from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Like [`connect`](Client::connect) to the first of `servers`; if it turns
    /// out that nothing listens there (port unreachable), requests move on to
    /// the next, so `localhost` works whether the server took `::1` or `127.0.0.1`.
    pub fn connect_any(servers: &[SocketAddr], config: ClientConfig) -> io::Result<Client> {
        let (&first, rest) = servers
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no server address"))?;
        let mut client = Client::connect(first, config)?;
        client.alternates = rest.iter().rev().copied().collect();
        Ok(client)
    }

    /// Refuses a message that no datagram to this server can carry.
    pub fn check_size(&self, len: usize) -> Result<(), RequestError> {
        let limit = self.max_message();
        if len > limit {
            let family = if self.server.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(RequestError::TooLarge { len, limit, family });
        }
        Ok(())
    }

    /// The most a request to this server can carry.
    pub fn max_message(&self) -> usize {
        if self.server.is_ipv4() {
            MAX_DATAGRAM_V4
        } else {
            MAX_DATAGRAM_V6
        }
    }

    /// Makes waits end early with [`RequestError::Interrupted`] once `flag` is set
    /// (for Ctrl-C).
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// Sends `message` and waits for its reply, retransmitting with backoff.
    pub fn request(&mut self, message: &[u8]) -> Result<Reply, RequestError> {
        self.check_size(message.len())?;
        loop {
            match self.attempt(message) {
                Err(RequestError::NoServer(_)) if !self.alternates.is_empty() => {
                    let next = self.alternates.pop().expect("checked non-empty");
                    let interrupt = self.interrupt.take();
                    let alternates = std::mem::take(&mut self.alternates);
                    *self = Client::connect(next, self.config.clone())?;
                    self.interrupt = interrupt;
                    self.alternates = alternates;
                }
                other => return other,
            }
        }
    }

    /// One request to the current server, with its retransmissions.
    fn attempt(&mut self, message: &[u8]) -> Result<Reply, RequestError> {
        // Late replies to earlier requests are already queued: drop them now so
        // they are never even compared with this one.
        let mut discarded = self.drain();
        let started = Instant::now();
        let mut wait = self.config.timeout;
        let attempts = self.config.retries.saturating_add(1);
        // Refused after the first attempt went unanswered: the server may be
        // restarting, so that attempt counts as lost and the retries go on; if
        // the last one was refused too, there is no server.
        let mut refused_late = false;
        for attempt in 1..=attempts {
            refused_late = false;
            let sent_at = Instant::now();
            match self.socket.send(message) {
                Ok(_) => {}
                Err(err) if attempt > 1 && err.kind() == io::ErrorKind::ConnectionRefused => {
                    refused_late = true;
                }
                Err(err) => return Err(self.classify(err, message.len())),
            }
            let deadline = sent_at.checked_add(wait).unwrap_or(sent_at + MAX_WAIT);
            while let Some(left) =
                deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
            {
                if self.interrupt.as_ref().is_some_and(|f| f.load(Relaxed)) {
                    return Err(RequestError::Interrupted);
                }
                let slice = if self.interrupt.is_some() { left.min(INTERRUPT_POLL) } else { left };
                self.socket.set_read_timeout(Some(slice))?;
                match self.socket.recv(&mut self.buf) {
                    Ok(n)
                        if n < self.buf.len()
                            && self.config.expect.matches(message, &self.buf[..n]) =>
                    {
                        return Ok(Reply {
                            data: self.buf[..n].to_vec(),
                            from: self.server,
                            rtt: sent_at.elapsed(),
                            attempts: attempt,
                            discarded,
                        });
                    }
                    // An uppercasing server's reply differs from the request
                    // whenever the request has a lowercase letter; this copy
                    // can only come from an echo server, and so will every
                    // retransmission's: say so now instead of after every wait.
                    Ok(n) if self.config.expect == Expect::Upper && self.buf[..n] == *message => {
                        return Err(RequestError::EchoServer {
                            server: self.server,
                            discarded: discarded + 1,
                        });
                    }
                    // The mirror image: where an echo is expected, a reply that
                    // differs from the request exactly as uppercasing makes it
                    // differ comes from an uppercasing server.
                    Ok(n)
                        if self.config.expect == Expect::Echo
                            && self.buf[..n] != *message
                            && Mode::Upper.is_reply(message, &self.buf[..n]) =>
                    {
                        return Err(RequestError::UpperServer {
                            server: self.server,
                            discarded: discarded + 1,
                        });
                    }
                    Ok(_) => discarded += 1,
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(err) if attempt > 1 && err.kind() == io::ErrorKind::ConnectionRefused => {
                        refused_late = true;
                    }
                    Err(err) => return Err(self.classify(err, message.len())),
                }
            }
            // Doubling, but not past a minute (or the first wait, if longer).
            wait = wait.saturating_mul(2).min(MAX_WAIT.max(self.config.timeout));
        }
        if refused_late {
            return Err(RequestError::NoServer(self.server));
        }
        Err(RequestError::NoReply {
            server: self.server,
            attempts,
            waited: started.elapsed(),
            discarded,
        })
    }

    /// Reads and drops whatever is queued; returns how many datagrams that was.
    fn drain(&mut self) -> u64 {
        let mut dropped = 0;
        if self.socket.set_nonblocking(true).is_err() {
            return 0;
        }
        loop {
            match self.socket.recv(&mut self.buf) {
                Ok(_) => dropped += 1,
                // A refusal here belongs to an earlier request's retransmission.
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(_) => break,
            }
        }
        let _ = self.socket.set_nonblocking(false);
        dropped
    }

    fn classify(&self, err: io::Error, len: usize) -> RequestError {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => RequestError::NoServer(self.server),
            _ if err.raw_os_error() == Some(libc::EMSGSIZE) => {
                RequestError::PathTooSmall { len, server: self.server }
            }
            _ => RequestError::Io(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_server() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    #[test]
    fn wrong_datagram_is_discarded_and_right_one_returned() {
        let server = fake_server();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0; 64];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ping");
            server.send_to(b"PONG", peer).unwrap();
            server.send_to(b"PING", peer).unwrap();
        });
        let mut client = Client::connect(addr, ClientConfig::default()).unwrap();
        let reply = client.request(b"ping").unwrap();
        assert_eq!(reply.data, b"PING");
        assert_eq!(reply.discarded, 1);
        t.join().unwrap();
    }

    #[test]
    fn an_echo_where_uppercase_is_expected_fails_at_once() {
        let server = fake_server();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0; 64];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], peer).unwrap();
        });
        let mut client = Client::connect(addr, ClientConfig::default()).unwrap();
        let started = Instant::now();
        let err = client.request(b"ping").unwrap_err();
        assert!(matches!(err, RequestError::EchoServer { discarded: 1, .. }), "{err}");
        assert!(err.to_string().contains("--expect echo"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(900), "no retries");
        t.join().unwrap();
    }

    #[test]
    fn an_uppercased_reply_where_an_echo_is_expected_fails_at_once() {
        let server = fake_server();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0; 64];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            buf[..n].make_ascii_uppercase();
            server.send_to(&buf[..n], peer).unwrap();
        });
        let config = ClientConfig { expect: Expect::Echo, ..ClientConfig::default() };
        let mut client = Client::connect(addr, config).unwrap();
        let started = Instant::now();
        let err = client.request(b"ping").unwrap_err();
        assert!(matches!(err, RequestError::UpperServer { discarded: 1, .. }), "{err}");
        assert!(err.to_string().contains("--expect upper"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(900), "no retries");
        t.join().unwrap();
    }

    #[test]
    fn too_large_names_the_limit() {
        let server = fake_server();
        let mut client =
            Client::connect(server.local_addr().unwrap(), ClientConfig::default()).unwrap();
        let err = client.request(&vec![b'a'; MAX_DATAGRAM_V4 + 1]).unwrap_err();
        assert!(err.to_string().contains("65507"), "{err}");
    }

    #[test]
    fn closed_port_is_no_server_without_waiting() {
        let addr = fake_server().local_addr().unwrap(); // dropped: the port is closed
        let mut client = Client::connect(addr, ClientConfig::default()).unwrap();
        let started = Instant::now();
        let err = client.request(b"x").unwrap_err();
        assert!(matches!(err, RequestError::NoServer(a) if a == addr), "{err}");
        assert!(started.elapsed() < Duration::from_millis(900));
    }
}
