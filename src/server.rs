//! The reply path each worker runs, top to bottom: `Worker::run` loops over
//! `receive` (a batch) and `answer`, which for each slot calls
//! `respond_slot`: [`reply_to`] admits each datagram ([`Policy::admit`]) and
//! transforms it in place ([`Responder::respond`], the seam where upper, echo
//! and the STAMP reflector sit); then `coalesce` gathers same-size replies to
//! one sender for one GSO send, and `send_runs`/`send_all` send them.
//! Housekeeping (counters, warnings) comes last in the file.
//!
//! One worker thread per socket; with `workers > 1` each bound address gets
//! that many `SO_REUSEPORT` sockets so the kernel spreads senders over cores.
//! Per-datagram failures are counted and warned about at a limited rate; only
//! losing a socket ends [`Server::run`].

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use std::time::SystemTime;

use crate::arrivals::{Monitor, Throttle};
use crate::counters::{Counts, WorkerStats};
use crate::logging::LogFormat;
use crate::policy::{Policy, PolicyConfig, Refusal, Tick};
use crate::stamp::ReflectorConfig;
use crate::sys::{self, segments, RecvMeta, Transmit, BATCH, MAX_BUF};
use crate::transform::{Arrival, Responder};
use crate::Mode;

pub use crate::sys::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};

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
/// has an example. [`Server::bind`], [`Server::from_sockets`] and
/// [`Server::run`] are in `sockets.rs`, with the sockets and threads they
/// set up; this file has the reply path each worker thread runs.
#[derive(Debug)]
pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) policy: Policy,
    pub(crate) local_addrs: Vec<SocketAddr>,
    pub(crate) workers: Vec<Slot>,
}

impl Server {
    /// The first bound address, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every bound address, in the order of `config.binds`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }
}

/// One served socket and what its worker counts.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) socket: UdpSocket,
    /// The address it is bound to, with the real port.
    pub(crate) local: SocketAddr,
    pub(crate) stats: Arc<WorkerStats>,
}

impl Slot {
    /// The worker's counters, with the kernel's drop counter read now.
    pub(crate) fn counts(&self) -> Counts {
        if let Some(drops) = sys::socket_drops(&self.socket) {
            self.stats.set_kernel_drops(drops);
        }
        self.stats.counts()
    }
}

/// The only road from a request to a reply: the policy admits the datagram,
/// then the responder rewrites it in place. On `Ok` the reply *is* the
/// request's own buffer, so it can never be longer than the request, and one
/// request yields at most one reply; on `Err` the payload is left untouched
/// when the policy refused it. The property tests and the `handler` fuzz
/// target hold it to that.
#[inline]
pub fn reply_to<'p>(
    policy: &Policy,
    responder: &mut Responder,
    arrival: &Arrival,
    local: SocketAddr,
    payload: &'p mut [u8],
    now: Tick,
) -> Result<&'p [u8], Refusal> {
    policy.admit(arrival.src, local, arrival.dst, payload.len(), now)?;
    responder.respond(payload, arrival)?;
    Ok(payload)
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

pub(crate) struct Worker<'a> {
    socket: &'a UdpSocket,
    local: SocketAddr,
    stats: &'a WorkerStats,
    config: &'a ServerConfig,
    policy: &'a Policy,
    responder: Responder,
    monitor: Arc<Monitor>,
    gso: bool,
    /// The last destination whose route refused a GSO send, with the segment
    /// size refused: its replies that large now go out one by one at once.
    refused: Option<(SocketAddr, usize)>,
    /// GSO sends refused in a row (see [`GSO_GIVE_UP`]).
    refusals: u32,
    warnings: Throttle,
    /// Datagrams not shown, published to the monitor now and then.
    unseen: u64,
}

impl<'a> Worker<'a> {
    pub(crate) fn new(
        slot: &'a Slot,
        config: &'a ServerConfig,
        policy: &'a Policy,
        responder: Responder,
        monitor: Arc<Monitor>,
    ) -> Self {
        Worker {
            socket: &slot.socket,
            local: slot.local,
            stats: &slot.stats,
            config,
            policy,
            responder,
            monitor,
            gso: config.offload && sys::gso_supported(&slot.socket),
            refused: None,
            refusals: 0,
            warnings: Throttle::default(),
            unseen: 0,
        }
    }

    pub(crate) fn run(&mut self, stop: &AtomicBool, halt: &AtomicBool) -> io::Result<()> {
        // Zeroed, so pages the traffic never reaches are never made resident.
        let mut storage = vec![0u8; BATCH * MAX_BUF];
        let mut meta = [RecvMeta::default(); BATCH];
        let wait = !self.config.busy_poll;
        let mut batches = 0u32;
        // Receives left in one-at-a-time mode (see SINGLE_RUN).
        let mut singles = 0u32;
        while !stop.load(Relaxed) && !halt.load(Relaxed) {
            let slots = if singles > 0 { 1 } else { BATCH };
            match self.receive(&mut storage, &mut meta, slots, wait) {
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
                Err(err) if sys::is_transient(&err) => {
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
        self.warnings.finish(&self.monitor);
        Ok(())
    }

    /// Receives up to `slots` datagrams (or GRO buffers) into `storage`, one
    /// per `MAX_BUF` chunk; builds only the receive slots it asks for.
    fn receive(
        &self,
        storage: &mut [u8],
        meta: &mut [RecvMeta],
        slots: usize,
        wait: bool,
    ) -> io::Result<usize> {
        if slots == 1 {
            let mut one = [IoSliceMut::new(&mut storage[..MAX_BUF])];
            return sys::recv_batch(self.socket, &mut one, meta, wait);
        }
        let mut chunks = storage.chunks_exact_mut(MAX_BUF);
        // The chunk count is BATCH by construction of `storage`.
        let mut bufs: [IoSliceMut<'_>; BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("BATCH chunks")));
        sys::recv_batch(self.socket, &mut bufs[..slots], meta, wait)
    }

    /// One received batch, start to end: each slot's datagrams admitted and
    /// transformed in place, then the replies coalesced and sent.
    fn answer(&mut self, storage: &mut [u8], meta: &[RecvMeta]) {
        let mut counts = Counts::default();
        let now = self.policy.now();
        // Read from the clock only where the kernel gave no receive time.
        let clock = self.responder.wants_clock() && meta.iter().any(|m| m.received.is_none());
        let received = if clock { SystemTime::now() } else { SystemTime::UNIX_EPOCH };
        // Bytes of each slot that are answered: whole replies, packed from the start.
        let mut reply_len = [None::<usize>; BATCH];
        for ((m, buf), reply) in
            meta.iter().zip(storage.chunks_exact_mut(MAX_BUF)).zip(&mut reply_len)
        {
            *reply = self.respond_slot(m, buf, (now, received), &mut counts);
        }
        self.publish_unseen(meta.len());
        if let [m] = meta {
            // One datagram (ping-pong): nothing to gather, no table of sends.
            if let Some(len) = reply_len[0] {
                self.send_all(&[reply(m, &storage[..len], m.stride)], &mut counts);
            }
        } else {
            let runs = self.coalesce(storage, meta, &reply_len);
            self.send_runs(storage, meta, &runs, &mut counts);
        }
        self.stats.add(&counts);
    }

    /// Receive, admit and transform for one slot: one datagram, or a GRO
    /// buffer of several from one sender, cut every `stride` bytes. Returns
    /// how many bytes at the start of `buf` are now replies; a datagram that
    /// is refused is left out and the replies after it move up, so the slot
    /// still holds whole datagrams of `stride` bytes (the last may be shorter).
    fn respond_slot(
        &mut self,
        m: &RecvMeta,
        buf: &mut [u8],
        (now, received): (Tick, SystemTime),
        counts: &mut Counts,
    ) -> Option<usize> {
        let total = segments(m.len, m.stride);
        counts.received += total;
        counts.bytes_received += m.len as u64;
        let shown = !m.truncated && self.monitor.offer(m.addr, &buf[..m.stride.min(m.len)]);
        self.unseen += total - u64::from(shown);
        if m.truncated {
            counts.add_drop(Refusal::Oversize, total);
            return None;
        }
        // The kernel's receive time where the socket gives it (STAMP's T2).
        let received = m.received.map_or(received, |t| SystemTime::UNIX_EPOCH + t);
        let arrival = Arrival { src: m.addr, dst: m.dst, ttl: m.ttl, tos: m.tos, received };
        let stride = m.stride.max(1);
        let (mut start, mut kept) = (0, None::<usize>);
        loop {
            let end = (start + stride).min(m.len);
            match reply_to(
                self.policy,
                &mut self.responder,
                &arrival,
                self.local,
                &mut buf[start..end],
                now,
            ) {
                Ok(reply) => {
                    let (at, len) = (kept.unwrap_or(0), reply.len());
                    if at != start {
                        buf.copy_within(start..start + len, at);
                    }
                    kept = Some(at + len);
                }
                Err(reason) => counts.add_drop(reason, 1),
            }
            start = end;
            if start >= m.len {
                return kept;
            }
        }
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

    /// Sends what [`coalesce`](Worker::coalesce) planned: one transmit per slot that has one.
    fn send_runs(&mut self, storage: &[u8], meta: &[RecvMeta], runs: &[Run], counts: &mut Counts) {
        let empty = Transmit { dst: meta[0].addr, contents: &[], segment_size: None, src: None };
        let mut txs = [empty; BATCH];
        let mut ntx = 0;
        for (i, (run, m)) in runs.iter().zip(meta).enumerate() {
            let Some(len) = run.len else { continue };
            txs[ntx] = reply(m, &storage[i * MAX_BUF..][..len], run.stride);
            ntx += 1;
        }
        self.send_all(&txs[..ntx], counts);
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

    /// Whether `dst`'s route refused GSO with segments of `size` or larger.
    fn gso_refused(&self, dst: SocketAddr, size: usize) -> bool {
        self.refused.is_some_and(|(to, refused)| to == dst && size >= refused)
    }

    /// Publishes the count of datagrams not shown now and then: a shared
    /// counter per batch would be a cache line bouncing between workers under
    /// load, so only when the queue is drained or enough have gathered.
    fn publish_unseen(&mut self, batch: usize) {
        if batch < BATCH || self.unseen >= 4096 {
            self.monitor.add_unseen(std::mem::take(&mut self.unseen));
        }
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

    fn warn(&mut self, what: std::fmt::Arguments<'_>) {
        self.warnings.warn(&self.monitor, what);
    }
}
