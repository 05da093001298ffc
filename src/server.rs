//! The server: [`Server::bind`] binds each address (a `SO_REUSEPORT` group
//! of one socket per worker), [`Server::from_sockets`] adopts sockets made
//! elsewhere, every served socket gets its options (receive buffer, GRO,
//! `IP_PKTINFO`, and for STAMP the TTL and traffic class), and
//! [`Server::run`] starts a worker thread on each socket and stops them.
//!
//! What a worker does with each datagram (receive, admit, transform, send)
//! is `worker.rs`, read top to bottom in call order; `gso.rs` is the send
//! step's memory of which routes refuse UDP GSO.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::counters::{Counts, WorkerStats};
use crate::logging::LogFormat;
use crate::monitor::Monitor;
use crate::policy::{Policy, PolicyConfig};
use crate::stamp::{ReflectorConfig, STAMP_PORT};
use crate::sys;
use crate::transform::Responder;
use crate::Mode;

mod gso;
mod worker;

pub use crate::sys::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
pub use worker::reply_to;
use worker::Worker;

/// How often a worker blocked in a receive looks at the stop flag where the
/// platform cannot wake it (everywhere but Linux), and how often the server
/// looks at the flags.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(50);
/// Socket receive buffer asked for; the kernel caps it at `net.core.rmem_max`.
const RECV_BUFFER: usize = 4 << 20;

/// How a server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Addresses to serve; port 0 picks a free port.
    pub binds: Vec<SocketAddr>,
    /// What each reply is made of.
    pub mode: Mode,
    /// Datagrams longer than this are dropped unanswered and counted.
    pub max_datagram: usize,
    /// Sockets (and threads) per address.
    pub workers: usize,
    /// Spin on the socket instead of sleeping: lower latency, one busy core per worker.
    pub busy_poll: bool,
    /// Show arriving datagrams on stderr (rate-limited); warnings show regardless.
    pub show: bool,
    /// Use UDP GRO/GSO where the kernel has them.
    pub offload: bool,
    /// Who gets an answer.
    pub policy: PolicyConfig,
    /// How the datagram lines and warnings are written.
    pub log_format: LogFormat,
    /// Answer as a STAMP reflector (RFC 8762) instead of in `mode`.
    pub stamp: Option<ReflectorConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            binds: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            mode: Mode::Upper,
            max_datagram: MAX_DATAGRAM_V6,
            workers: 1,
            busy_poll: false,
            show: false,
            offload: true,
            policy: PolicyConfig::default(),
            log_format: LogFormat::Text,
            stamp: None,
        }
    }
}

/// A bound server, ready to [`run`](Server::run); the crate documentation
/// has an example.
#[derive(Debug)]
pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) policy: Policy,
    pub(crate) local_addrs: Vec<SocketAddr>,
    pub(crate) sockets: Vec<WorkerSocket>,
}

impl Server {
    /// Binds every address in `config.binds`, `config.workers` sockets each.
    pub fn bind(mut config: ServerConfig) -> io::Result<Server> {
        if config.binds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"));
        }
        config.workers = config.workers.max(1);
        let groups = config
            .binds
            .iter()
            .map(|&addr| bind_group(addr, config.workers))
            .collect::<io::Result<_>>()?;
        Server::assemble(config, groups)
    }

    /// Serves sockets made elsewhere (systemd socket activation, a test
    /// harness): one worker each; `config.binds` and `config.workers` are
    /// ignored. The sockets should be bound UDP sockets.
    pub fn from_sockets(config: ServerConfig, sockets: Vec<UdpSocket>) -> io::Result<Server> {
        if sockets.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no socket to serve"));
        }
        for socket in &sockets {
            adopt(socket)?;
        }
        Server::assemble(config, sockets.into_iter().map(|s| vec![s]).collect())
    }

    fn assemble(config: ServerConfig, groups: Vec<Vec<UdpSocket>>) -> io::Result<Server> {
        let mut policy_config = config.policy.clone();
        if let Some(stamp) = &config.stamp {
            // A bad key fails here, not in a worker.
            Responder::stamp(stamp)?;
            // Routers send STAMP from STAMP's own port (RFC 8762 §4.1).
            policy_config.allow_ports.push(STAMP_PORT);
        }
        let (local_addrs, sockets) =
            prepare_sockets(groups, config.offload, config.stamp.is_some())?;
        let mut policy = Policy::new(&policy_config, config.max_datagram);
        policy.set_own_addrs(&local_addrs);
        Ok(Server { config, policy, local_addrs, sockets })
    }

    /// The first bound address, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every bound address, in the order of `config.binds`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Answers datagrams until `stop` is set, then finishes the batch in hand and
    /// returns the final counters. Returns an error only if a socket is lost.
    pub fn run(&self, stop: &AtomicBool) -> io::Result<Counts> {
        let monitor = Monitor::start(self.config.show, self.config.log_format);
        // Raised when any worker ends early, so the others stop too: a server
        // with a dead worker would leave that socket's share unanswered.
        let halt = AtomicBool::new(false);
        let result = thread::scope(|scope| {
            let mut handles = Vec::new();
            for (i, socket) in self.sockets.iter().enumerate() {
                let monitor = Arc::clone(&monitor);
                let halt = &halt;
                let spawned = thread::Builder::new()
                    .name(format!("shout-worker-{i}"))
                    .spawn_scoped(scope, move || {
                        // Raises `halt` however the worker ends, a panic included.
                        let _guard = HaltOnExit(halt);
                        let responder = match &self.config.stamp {
                            Some(stamp) => Responder::stamp(stamp)?,
                            None => Responder::new(self.config.mode),
                        };
                        Worker::new(socket, &self.config, &self.policy, responder, monitor)
                            .serve(stop, halt)
                    });
                match spawned {
                    Ok(handle) => handles.push(handle),
                    Err(err) => {
                        halt.store(true, Relaxed);
                        return Err(err);
                    }
                }
            }
            // Workers block without a timeout (a timer per receive costs
            // latency); this thread watches the flags and wakes them.
            while !stop.load(Relaxed) && !halt.load(Relaxed) {
                thread::sleep(STOP_POLL);
            }
            for socket in &self.sockets {
                sys::wake(&socket.socket);
            }
            let mut first_error = None;
            for handle in handles {
                let result =
                    handle.join().unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
                if let Err(err) = result {
                    first_error.get_or_insert(err);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        monitor.finish(Duration::from_millis(200));
        result.map(|()| self.counts())
    }

    /// Counters so far, summed over workers, with the kernel's drop counters read now.
    pub fn counts(&self) -> Counts {
        self.sockets.iter().fold(Counts::default(), |mut total, socket| {
            total += socket.counts();
            total
        })
    }

    /// Counters per worker socket (for per-worker stats).
    pub fn worker_counts(&self) -> Vec<(SocketAddr, Counts)> {
        self.sockets.iter().map(|socket| (socket.local, socket.counts())).collect()
    }
}

/// One served socket and what the worker thread on it counts.
#[derive(Debug)]
pub(crate) struct WorkerSocket {
    pub(crate) socket: UdpSocket,
    /// The address it is bound to, with the real port.
    pub(crate) local: SocketAddr,
    pub(crate) stats: Arc<WorkerStats>,
}

impl WorkerSocket {
    /// The worker's counters, with the kernel's drop counter read now.
    pub(crate) fn counts(&self) -> Counts {
        if let Some(drops) = sys::socket_drops(&self.socket) {
            self.stats.set_kernel_drops(drops);
        }
        self.stats.counts()
    }
}

/// Sets `halt` when dropped: on a worker's return and on its panic alike.
struct HaltOnExit<'a>(&'a AtomicBool);

impl Drop for HaltOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Prepares each group of sockets bound to one address: the addresses, in
/// order, and every socket with its counters.
fn prepare_sockets(
    groups: Vec<Vec<UdpSocket>>,
    offload: bool,
    ttl_tos: bool,
) -> io::Result<(Vec<SocketAddr>, Vec<WorkerSocket>)> {
    let mut local_addrs = Vec::new();
    let mut prepared = Vec::new();
    for sockets in groups {
        let local = sockets[0].local_addr()?;
        for socket in sockets {
            prepare(&socket, local, offload)?;
            if ttl_tos {
                stamp_options(&socket, local.is_ipv6())?;
            }
            prepared.push(WorkerSocket { socket, local, stats: Arc::default() });
        }
        local_addrs.push(local);
    }
    Ok((local_addrs, prepared))
}

/// A STAMP reflector's socket options: each test packet's TTL and traffic
/// class are read (where the platform cannot tell, 0 says "unknown"), and its
/// kernel receive time (where there is none, the batch's arrival is read from
/// the clock); replies leave with TTL 255, as STAMP senders send, so that the
/// sender can count the hops back as 255 less the TTL it sees.
fn stamp_options(socket: &UdpSocket, ipv6: bool) -> io::Result<()> {
    for enabled in [sys::enable_ttl_tos(socket, ipv6), sys::enable_rx_timestamps(socket)] {
        match enabled {
            Err(err) if err.kind() != io::ErrorKind::Unsupported => return Err(err),
            _ => {}
        }
    }
    let sock = socket2::SockRef::from(socket);
    if ipv6 {
        sock.set_unicast_hops_v6(255)
    } else {
        sock.set_ttl(255)
    }
}

/// Binds `workers` sockets to `addr` (a reuseport group when more than one),
/// all on the same port, so port 0 resolves once for the group.
fn bind_group(addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    // A reuseport group would silently share the port with any other
    // process of ours already on it; a plain bind first says "in use".
    let addr = if workers > 1 { claim(addr)? } else { addr };
    let first = bind_socket(addr, workers > 1)?;
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_socket(local, true)?);
    }
    Ok(sockets)
}

/// Makes a socket handed over by systemd or a test harness behave like ours:
/// blocking, and with at least our receive buffer unless it was given more.
fn adopt(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    #[cfg(not(target_os = "linux"))]
    socket.set_read_timeout(Some(STOP_POLL))?;
    let sock = socket2::SockRef::from(socket);
    if sock.recv_buffer_size().is_ok_and(|size| size < RECV_BUFFER) {
        let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    }
    Ok(())
}

/// Turns on what the reply loop uses: GRO (best effort) and, on a wildcard
/// address, the destination of each datagram.
fn prepare(socket: &UdpSocket, local: SocketAddr, offload: bool) -> io::Result<()> {
    if offload {
        // Best effort: without GRO the kernel hands us datagrams one by one.
        let _ = sys::enable_gro(socket);
    }
    if local.ip().is_unspecified() {
        // To answer from the address each request was sent to, and
        // to recognise our own address in a self-loop check.
        match sys::enable_pktinfo(socket, local.is_ipv6()) {
            Err(err) if err.kind() != io::ErrorKind::Unsupported => return Err(err),
            // Where the platform cannot tell, the kernel picks the source.
            _ => {}
        }
    }
    Ok(())
}

/// Binds `addr` without `SO_REUSEPORT` and lets go, to learn that it is free
/// (and, for port 0, which port to take). The port could be taken in between;
/// the reuseport bind that follows then still fails unless it is ours.
fn claim(addr: SocketAddr) -> io::Result<SocketAddr> {
    let probe = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())?;
    probe.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))
}

fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Lets `[::]:P` and `0.0.0.0:P` be bound side by side, as most servers do.
        socket.set_only_v6(true)?;
    }
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    // Linux workers are woken by `sys::wake`; elsewhere they poll the stop flag.
    #[cfg(not(target_os = "linux"))]
    socket.set_read_timeout(Some(STOP_POLL))?;
    Ok(socket.into())
}
