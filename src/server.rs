//! The reply loop: receive a batch, transform it in place, send it back.
//!
//! One worker thread per socket; with `workers > 1` each bound address gets
//! that many `SO_REUSEPORT` sockets so the kernel spreads senders over cores.
//! Per-datagram failures are counted and warned about at a limited rate; only
//! losing a socket ends [`Server::run`].

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::logging::LogFormat;
use crate::monitor::Monitor;
use crate::policy::{Policy, PolicyConfig, Refusal};
use crate::stats::{Counts, WorkerStats};
use crate::sys::{self, segments, RecvMeta, Transmit, BATCH, MAX_BUF};
use crate::Mode;

/// The largest UDP payload over IPv4: 65,535 − 20 (IP) − 8 (UDP).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// The largest UDP payload over IPv6 without jumbograms: 65,535 − 8 (UDP).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// How often the stop flag is looked at.
const STOP_POLL: Duration = Duration::from_millis(50);
/// After a one-datagram batch, receive one at a time (recvmsg) for this many
/// calls before trying a full batch again: ping-pong traffic then pays for no
/// batching it cannot use, and a flood is back to full batches within as many
/// datagrams.
const SINGLE_RUN: u32 = 16;
/// GSO sends refused in a row before GSO is turned off. A refusal may be one
/// route's (a segment over its MTU, a device without checksum offload), and
/// that destination is then not tried again; refusals from this many
/// destinations with no success between mean the host refuses GSO.
const GSO_GIVE_UP: u32 = 64;
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
        }
    }
}

/// A bound server, ready to [`run`](Server::run).
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use shout::{Server, ServerConfig};
///
/// let config = ServerConfig { binds: vec!["127.0.0.1:0".parse().unwrap()], ..Default::default() };
/// let server = Server::bind(config).unwrap();
/// let addr = server.local_addr();
/// let stop = AtomicBool::new(false);
/// std::thread::scope(|s| {
///     s.spawn(|| server.run(&stop));
///     let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     client.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
///     client.send_to(b"hello", addr).unwrap();
///     let mut buf = [0; 16];
///     let (n, _) = client.recv_from(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"HELLO");
///     stop.store(true, std::sync::atomic::Ordering::Relaxed);
/// });
/// ```
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    policy: Policy,
    local_addrs: Vec<SocketAddr>,
    workers: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    socket: UdpSocket,
    local: SocketAddr,
    stats: Arc<WorkerStats>,
}

impl Server {
    /// Binds every address in `config.binds`, `config.workers` sockets each.
    pub fn bind(mut config: ServerConfig) -> io::Result<Server> {
        if config.binds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"));
        }
        config.workers = config.workers.max(1);
        let mut groups = Vec::new();
        for &addr in &config.binds {
            // A reuseport group would silently share the port with any other
            // process of ours already on it; a plain bind first says "in use".
            let addr = if config.workers > 1 { claim(addr)? } else { addr };
            let first = bind_socket(addr, config.workers > 1)?;
            let local = first.local_addr()?;
            let mut sockets = vec![first];
            for _ in 1..config.workers {
                // Same port as the first, so port 0 resolves once for the group.
                sockets.push(bind_socket(local, true)?);
            }
            groups.push(sockets);
        }
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
            socket.set_nonblocking(false)?;
            #[cfg(not(target_os = "linux"))]
            socket.set_read_timeout(Some(STOP_POLL))?;
            // Same queue as our own sockets get, unless the unit asked for more.
            let sock = socket2::SockRef::from(socket);
            if sock.recv_buffer_size().is_ok_and(|size| size < RECV_BUFFER) {
                let _ = sock.set_recv_buffer_size(RECV_BUFFER);
            }
        }
        Server::assemble(config, sockets.into_iter().map(|s| vec![s]).collect())
    }

    /// Sets up each group of sockets bound to one address.
    fn assemble(config: ServerConfig, groups: Vec<Vec<UdpSocket>>) -> io::Result<Server> {
        let mut local_addrs = Vec::new();
        let mut workers = Vec::new();
        for sockets in groups {
            let local = sockets[0].local_addr()?;
            for socket in sockets {
                if config.offload {
                    // Best effort: without GRO the kernel hands us datagrams one by one.
                    let _ = sys::enable_gro(&socket);
                }
                if local.ip().is_unspecified() {
                    // To answer from the address each request was sent to, and
                    // to recognise our own address in a self-loop check.
                    match sys::enable_pktinfo(&socket, local.is_ipv6()) {
                        Err(err) if err.kind() != io::ErrorKind::Unsupported => return Err(err),
                        // Where the platform cannot tell, the kernel picks the source.
                        _ => {}
                    }
                }
                workers.push(Slot { socket, local, stats: Arc::default() });
            }
            local_addrs.push(local);
        }
        let mut policy = Policy::new(&config.policy, config.mode, config.max_datagram);
        policy.set_own_addrs(&local_addrs);
        Ok(Server { config, policy, local_addrs, workers })
    }

    /// The first bound address, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every bound address, in the order of `config.binds`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Counters so far, summed over workers, with the kernel's drop counters read now.
    pub fn counts(&self) -> Counts {
        let mut total = Counts::default();
        for slot in &self.workers {
            if let Some(drops) = sys::socket_drops(&slot.socket) {
                slot.stats.set_kernel_drops(drops);
            }
            total += slot.stats.counts();
        }
        total
    }

    /// Counters per worker socket (for per-worker stats).
    pub fn worker_counts(&self) -> Vec<(SocketAddr, Counts)> {
        self.workers
            .iter()
            .map(|slot| {
                if let Some(drops) = sys::socket_drops(&slot.socket) {
                    slot.stats.set_kernel_drops(drops);
                }
                (slot.local, slot.stats.counts())
            })
            .collect()
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
            for (i, slot) in self.workers.iter().enumerate() {
                let monitor = Arc::clone(&monitor);
                let halt = &halt;
                let spawned = thread::Builder::new()
                    .name(format!("shout-worker-{i}"))
                    .spawn_scoped(scope, move || {
                        // Raises `halt` however the worker ends, a panic included.
                        let _guard = HaltOnExit(halt);
                        Worker::new(slot, &self.config, &self.policy, monitor).run(stop, halt)
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
            for slot in &self.workers {
                sys::wake(&slot.socket);
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

/// Sets `halt` when dropped: on a worker's return and on its panic alike.
struct HaltOnExit<'a>(&'a AtomicBool);

impl Drop for HaltOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
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

/// Whether a receive error is about one datagram or peer (an ICMP error from an
/// earlier reply, memory pressure), not about the socket.
fn is_transient(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | OutOfMemory
    ) || matches!(
        err.raw_os_error(),
        Some(
            libc::ENOBUFS
                | libc::ENOMEM
                | libc::EHOSTDOWN
                | libc::EPERM
                | libc::EMSGSIZE
                | libc::EPROTO
        )
    )
}

/// What one receive slot sends (see [`Worker::coalesce`]).
#[derive(Clone, Copy, Default)]
struct Run {
    /// Bytes sent from the slot's buffer; `None` when nothing is.
    len: Option<usize>,
    /// Where the bytes are cut into datagrams.
    stride: usize,
}

/// The transmit answering `m` with `contents`, cut every `stride` bytes.
fn reply<'a>(m: &RecvMeta, contents: &'a [u8], stride: usize) -> Transmit<'a> {
    Transmit {
        dst: m.addr,
        contents,
        segment_size: (contents.len() > stride).then_some(stride),
        // Never answer *from* a multicast group a request was sent to.
        src: m.dst.filter(|ip| !ip.is_multicast()),
    }
}

struct Worker<'a> {
    socket: &'a UdpSocket,
    local: SocketAddr,
    stats: &'a WorkerStats,
    config: &'a ServerConfig,
    policy: &'a Policy,
    monitor: Arc<Monitor>,
    gso: bool,
    /// The last destination whose route refused a GSO send, with the segment
    /// size refused: its replies that large now go out one by one at once.
    refused: Option<(SocketAddr, usize)>,
    /// GSO sends refused in a row (see [`GSO_GIVE_UP`]).
    refusals: u32,
    warned_at: Option<Instant>,
    unwarned: u64,
    /// Datagrams not shown, published to the monitor now and then.
    unseen: u64,
}

impl<'a> Worker<'a> {
    fn new(
        slot: &'a Slot,
        config: &'a ServerConfig,
        policy: &'a Policy,
        monitor: Arc<Monitor>,
    ) -> Self {
        Worker {
            socket: &slot.socket,
            local: slot.local,
            stats: &slot.stats,
            config,
            policy,
            monitor,
            gso: config.offload && sys::gso_supported(&slot.socket),
            refused: None,
            refusals: 0,
            warned_at: None,
            unwarned: 0,
            unseen: 0,
        }
    }

    fn run(&mut self, stop: &AtomicBool, halt: &AtomicBool) -> io::Result<()> {
        // Zeroed, so pages the traffic never reaches are never made resident.
        let mut storage = vec![0u8; BATCH * MAX_BUF];
        let mut meta = [RecvMeta::default(); BATCH];
        let wait = !self.config.busy_poll;
        let mut batches = 0u32;
        // Receives left in one-at-a-time mode (see SINGLE_RUN).
        let mut singles = 0u32;
        while !stop.load(Relaxed) && !halt.load(Relaxed) {
            let slots = if singles > 0 { 1 } else { BATCH };
            let received = {
                let mut chunks = storage.chunks_exact_mut(MAX_BUF);
                // The chunk count is BATCH by construction of `storage`.
                let mut bufs: [IoSliceMut<'_>; BATCH] =
                    std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("BATCH chunks")));
                sys::recv_batch(self.socket, &mut bufs[..slots], &mut meta, wait)
            };
            match received {
                Ok(0) => {} // woken to stop
                Ok(n) => {
                    singles = match (slots, n) {
                        (BATCH, 1) => SINGLE_RUN,
                        (1, _) => singles - 1,
                        _ => 0,
                    };
                    self.answer(&mut storage, &meta[..n]);
                    batches = batches.wrapping_add(1);
                    if batches % 1024 == 0 {
                        self.refresh_drops();
                    }
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if wait {
                        self.refresh_drops();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_transient(&err) => {
                    self.stats.add(&Counts { recv_errors: 1, ..Counts::default() });
                    self.warn(format_args!("receive error (ignored): {err}"));
                }
                Err(err) => {
                    self.refresh_drops();
                    return Err(err);
                }
            }
        }
        self.refresh_drops();
        if self.unwarned > 0 {
            self.monitor.warn(format!("{} similar warnings held back", self.unwarned));
        }
        Ok(())
    }

    /// Publishes what is kept locally: the kernel's drop count and the
    /// datagrams not shown. Called every 1024 batches, at exit, and where the
    /// platform has a read timeout, when idle.
    fn refresh_drops(&mut self) {
        if let Some(drops) = sys::socket_drops(self.socket) {
            self.stats.set_kernel_drops(drops);
        }
        self.monitor.add_unseen(std::mem::take(&mut self.unseen));
    }

    /// Judges and transforms a received batch in place, then sends the replies.
    fn answer(&mut self, storage: &mut [u8], meta: &[RecvMeta]) {
        let mut counts = Counts::default();
        let mut shown = 0;
        let now = self.policy.now();
        // Bytes of each slot that are answered: a prefix of whole datagrams.
        let mut reply_len = [None::<usize>; BATCH];
        for ((m, buf), reply) in
            meta.iter().zip(storage.chunks_exact_mut(MAX_BUF)).zip(&mut reply_len)
        {
            let total = segments(m.len, m.stride);
            counts.received += total;
            counts.bytes_received += m.len as u64;
            if m.truncated {
                counts.add_drop(Refusal::Oversize, total);
                continue;
            }
            if self.monitor.offer(m.addr, &buf[..m.stride.min(m.len)]) {
                shown += 1;
            }
            let mut answered = 0;
            for (i, datagram) in buf[..m.len.max(1)].chunks_mut(m.stride.max(1)).enumerate() {
                let datagram = if m.len == 0 { &mut datagram[..0] } else { datagram };
                match self.policy.handle(m.addr, self.local, m.dst, datagram, now) {
                    Ok(r) => answered += r.len(),
                    Err(reason) => {
                        // The rest are from the same source at the same instant.
                        counts.add_drop(reason, total - i as u64);
                        break;
                    }
                }
                *reply = Some(answered);
            }
        }
        // A shared counter per batch would be a cache line bouncing between
        // workers under load: publish when the queue is drained or often enough.
        self.unseen += counts.received - shown;
        if meta.len() < BATCH || self.unseen >= 4096 {
            self.monitor.add_unseen(std::mem::take(&mut self.unseen));
        }

        if let [m] = meta {
            // One datagram (ping-pong): nothing to gather, no table of sends.
            if let Some(len) = reply_len[0] {
                self.send_all(&[reply(m, &storage[..len], m.stride)], &mut counts);
            }
            self.stats.add(&counts);
            return;
        }
        // Consecutive one-datagram replies to the same sender go out as one GSO
        // send when they can: gathered behind the first in its slot, they cost
        // the kernel one trip down the stack instead of one each.
        let runs = self.coalesce(storage, meta, &reply_len);
        let empty = Transmit { dst: meta[0].addr, contents: &[], segment_size: None, src: None };
        let mut txs = [empty; BATCH];
        let mut ntx = 0;
        for (i, (run, m)) in runs.iter().zip(meta).enumerate() {
            let Some(len) = run.len else { continue };
            txs[ntx] = reply(m, &storage[i * MAX_BUF..][..len], run.stride);
            ntx += 1;
        }
        self.send_all(&txs[..ntx], &mut counts);
        self.stats.add(&counts);
    }

    /// Plans the sends of a batch: for each slot, the bytes its transmit covers.
    /// A run of one-datagram replies to one sender from one source address,
    /// each as long as the first but the last (which may be shorter, as GSO
    /// allows), is copied together into the first slot and sent as one GSO
    /// buffer; the other slots of the run send nothing.
    fn coalesce(
        &self,
        storage: &mut [u8],
        meta: &[RecvMeta],
        reply_len: &[Option<usize>],
    ) -> [Run; BATCH] {
        let mut runs = [Run::default(); BATCH];
        for ((run, len), m) in runs.iter_mut().zip(reply_len).zip(meta) {
            *run = Run { len: *len, stride: m.stride };
        }
        if !self.gso {
            return runs;
        }
        // One datagram, answered whole, to a route that has not refused GSO.
        let single = |i: usize| match reply_len[i] {
            Some(len) => {
                len > 0
                    && len == meta[i].len
                    && len <= meta[i].stride
                    && !self.gso_refused(meta[i].addr, len)
            }
            None => false,
        };
        let mut i = 0;
        while i < meta.len() {
            if !single(i) {
                i += 1;
                continue;
            }
            let stride = meta[i].len;
            let mut total = stride;
            let mut end = i + 1;
            while end < meta.len()
                && single(end)
                && meta[end].addr == meta[i].addr
                && meta[end].dst == meta[i].dst
                && meta[end].len <= stride
                && total + meta[end].len <= MAX_DATAGRAM_V4
            {
                total += meta[end].len;
                end += 1;
                if meta[end - 1].len < stride {
                    break; // only the last segment may be shorter
                }
            }
            if end - i > 1 {
                let mut at = i * MAX_BUF + stride;
                for (k, m) in meta.iter().enumerate().take(end).skip(i + 1) {
                    storage.copy_within(k * MAX_BUF..k * MAX_BUF + m.len, at);
                    at += m.len;
                    runs[k].len = None;
                }
                runs[i] = Run { len: Some(total), stride };
            }
            i = end;
        }
        runs
    }

    /// Whether `dst`'s route refused GSO with segments of `size` or larger.
    fn gso_refused(&self, dst: SocketAddr, size: usize) -> bool {
        self.refused.is_some_and(|(to, refused)| to == dst && size >= refused)
    }

    /// Sends every transmit, counting each as answered or failed; never gives up
    /// on the rest because one failed.
    fn send_all(&mut self, txs: &[Transmit<'_>], counts: &mut Counts) {
        let mut rest = txs;
        while let Some(first) = rest.first() {
            if first.segment_size.is_some_and(|size| !self.gso || self.gso_refused(first.dst, size))
            {
                self.send_split(first, counts);
                rest = &rest[1..];
                continue;
            }
            let end = if self.gso {
                rest.len()
            } else {
                rest.iter().position(|t| t.segment_size.is_some()).unwrap_or(rest.len())
            };
            match sys::send_batch(self.socket, &rest[..end]) {
                Ok(sent) => {
                    for t in &rest[..sent] {
                        counts.answered += t.datagrams();
                        counts.bytes_answered += t.contents.len() as u64;
                        if t.segment_size.is_some() {
                            self.refusals = 0;
                        }
                    }
                    rest = &rest[sent..];
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if first.segment_size.is_some() && sys::is_gso_error(&err) => {
                    // The error may be about the destination rather than GSO:
                    // only if the same datagrams go out one by one was GSO to blame.
                    let failed_before = counts.reply_failed;
                    self.send_split(first, counts);
                    if counts.reply_failed == failed_before {
                        // One by one they passed: this route refuses GSO.
                        self.refused = Some((first.dst, first.segment_size.unwrap_or(0)));
                        self.refusals += 1;
                        if self.refusals >= GSO_GIVE_UP {
                            self.gso = false;
                            self.warn(format_args!(
                                "UDP GSO refused {GSO_GIVE_UP} times in a row ({err}); \
                                 sending datagrams one by one from now on"
                            ));
                        }
                    }
                    rest = &rest[1..];
                }
                Err(err) => {
                    counts.reply_failed += first.datagrams();
                    self.warn(format_args!("reply to {} failed: {err}", first.dst));
                    rest = &rest[1..];
                }
            }
        }
    }

    /// Sends a GRO buffer's replies as separate datagrams.
    fn send_split(&mut self, t: &Transmit<'_>, counts: &mut Counts) {
        let stride = t.segment_size.unwrap_or(t.contents.len()).max(1);
        let mut pieces = t.contents.chunks(stride).peekable();
        while pieces.peek().is_some() {
            let mut txs = [Transmit { contents: &[], segment_size: None, ..*t }; BATCH];
            let mut n = 0;
            for (slot, piece) in txs.iter_mut().zip(pieces.by_ref()) {
                slot.contents = piece;
                n += 1;
            }
            self.send_all(&txs[..n], counts);
        }
    }

    /// A warning at most once a second per worker, with a count of the ones held back.
    fn warn(&mut self, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.warned_at.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            self.unwarned += 1;
            return;
        }
        let held = std::mem::take(&mut self.unwarned);
        let suffix =
            if held > 0 { format!(" ({held} similar warnings held back)") } else { String::new() };
        self.monitor.warn(format!("{what}{suffix}"));
        self.warned_at = Some(now);
    }
}
