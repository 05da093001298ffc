//! What a worker thread does with the datagrams on its socket, in call order:
//! [`Worker::serve`] loops over [`receive`](Worker::receive) (a batch) and
//! [`answer`](Worker::answer); for each receive buffer
//! [`admit_and_transform`](Worker::admit_and_transform) runs [`reply_to`] on
//! each datagram in it (the policy admits, [`Policy::admit`]; the responder
//! transforms in place, [`Responder::respond`], the seam where upper, echo and
//! the STAMP reflector sit); then [`send`](Worker::send) plans the sends
//! (same-size replies to one sender gathered into one GSO send) and sends them.
//! The one reply longer than its request, a short TWAMP-Light test packet's
//! where the operator opted in, is answered out of place and sent at once
//! ([`answer_unpadded`](Worker::answer_unpadded)); so is a STAMP reply that
//! leaves with the traffic class its Class of Service TLV asked for (a
//! control message on its own send). Housekeeping (counters, warnings) comes last in the file.
//!
//! Per-datagram failures are counted and warned about at a limited rate; only
//! losing the socket ends [`Worker::serve`].

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use super::gso::{self, Gso};
use super::{ServerConfig, WorkerSocket};
use crate::counters::{Counts, Refusal, WorkerStats};
use crate::monitor::{Monitor, Throttle};
use crate::policy::{Policy, Tick};
use crate::sys::{self, segments, RecvMeta, Transmit, BATCH, MAX_BUF, MAX_DATAGRAM_V4};
use crate::transform::{Envelope, Responder, UNPADDED_REPLY};

/// After a one-datagram batch, receive one at a time (recvmsg) for this many
/// calls before trying a full batch again: ping-pong traffic then pays for no
/// batching it cannot use, and a flood is back to full batches within as many
/// datagrams.
const SINGLE_RECEIVES: u32 = 16;
/// Batches between two reads of the kernel's drop counter for the socket.
const DROPS_EVERY: u32 = 1024;
/// Datagrams not shown that a worker gathers before publishing the count
/// while its queue is never drained (see [`Worker::publish_unseen`]).
const UNSEEN_PUBLISH: u64 = 4096;

/// One worker thread's state: its socket, what it shares with the others
/// (config, policy, monitor), and its own responder and GSO memory.
pub(crate) struct Worker<'a> {
    socket: &'a UdpSocket,
    local: SocketAddr,
    stats: &'a WorkerStats,
    config: &'a ServerConfig,
    policy: &'a Policy,
    responder: Responder,
    monitor: Arc<Monitor>,
    gso: Gso,
    warnings: Throttle,
    /// Datagrams not shown, published to the monitor now and then.
    unseen: u64,
}

impl<'a> Worker<'a> {
    pub(crate) fn new(
        socket: &'a WorkerSocket,
        config: &'a ServerConfig,
        policy: &'a Policy,
        responder: Responder,
        monitor: Arc<Monitor>,
    ) -> Self {
        Worker {
            socket: &socket.socket,
            local: socket.local,
            stats: &socket.stats,
            config,
            policy,
            responder,
            monitor,
            gso: Gso::new(config.offload && sys::gso_supported(&socket.socket)),
            warnings: Throttle::default(),
            unseen: 0,
        }
    }

    /// Receives and answers until `stop` or `halt` is set; an error only
    /// when the socket is lost.
    pub(crate) fn serve(&mut self, stop: &AtomicBool, halt: &AtomicBool) -> io::Result<()> {
        // Zeroed, so pages the traffic never reaches are never made resident.
        let mut storage = vec![0u8; BATCH * MAX_BUF];
        let mut meta = [RecvMeta::default(); BATCH];
        let wait = !self.config.busy_poll;
        let mut batches = 0u32;
        // Receives left in one-at-a-time mode (see SINGLE_RECEIVES).
        let mut singles = 0u32;
        while !stop.load(Relaxed) && !halt.load(Relaxed) {
            let buffers = if singles > 0 { 1 } else { BATCH };
            match self.receive(&mut storage, &mut meta, buffers, wait) {
                Ok(0) => {} // woken to stop
                Ok(n) => {
                    singles = match (buffers, n) {
                        (BATCH, 1) => SINGLE_RECEIVES,
                        (1, _) => singles - 1,
                        _ => 0,
                    };
                    self.answer(&mut storage, &meta[..n]);
                    batches = batches.wrapping_add(1);
                    if batches.is_multiple_of(DROPS_EVERY) {
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

    /// Receives up to `buffers` datagrams (or GRO buffers) into `storage`, one
    /// per `MAX_BUF` chunk; builds only the receive buffers it asks for.
    fn receive(
        &self,
        storage: &mut [u8],
        meta: &mut [RecvMeta],
        buffers: usize,
        wait: bool,
    ) -> io::Result<usize> {
        if buffers == 1 {
            let mut one = [IoSliceMut::new(&mut storage[..MAX_BUF])];
            return sys::recv_batch(self.socket, &mut one, meta, wait);
        }
        let mut chunks = storage.chunks_exact_mut(MAX_BUF);
        // The chunk count is BATCH by construction of `storage`.
        let mut bufs: [IoSliceMut<'_>; BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("BATCH chunks")));
        sys::recv_batch(self.socket, &mut bufs[..buffers], meta, wait)
    }

    /// One received batch, start to end: each buffer's datagrams admitted and
    /// transformed in place, then the replies sent.
    fn answer(&mut self, storage: &mut [u8], meta: &[RecvMeta]) {
        let mut counts = Counts::default();
        let now = self.policy.now();
        // Read from the clock only where the kernel gave no receive time.
        let clock = self.responder.wants_clock() && meta.iter().any(|m| m.received.is_none());
        let received = clock.then(SystemTime::now);
        // Bytes of each buffer that are answered: whole replies, packed from the start.
        let mut reply_len = [None::<usize>; BATCH];
        for ((m, buf), reply) in
            meta.iter().zip(storage.chunks_exact_mut(MAX_BUF)).zip(&mut reply_len)
        {
            *reply = self.admit_and_transform(m, buf, (now, received), &mut counts);
        }
        self.publish_unseen(meta.len());
        self.send(storage, meta, &reply_len, &mut counts);
        self.stats.add(&counts);
    }

    /// Admit and transform for one receive buffer: one datagram, or a GRO
    /// buffer of several from one sender, cut every `stride` bytes. Returns
    /// how many bytes at the start of `buf` are now replies; a datagram that
    /// is refused is left out and the replies after it move up, so the buffer
    /// still holds whole datagrams of `stride` bytes (the last may be shorter).
    fn admit_and_transform(
        &mut self,
        m: &RecvMeta,
        buf: &mut [u8],
        (now, received): (Tick, Option<SystemTime>),
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
        let received = m.received.map(|t| SystemTime::UNIX_EPOCH + t).or(received);
        let envelope = Envelope { src: m.addr, dst: m.dst, ttl: m.ttl, tos: m.tos, received };
        let stride = m.stride.max(1);
        let (mut start, mut kept) = (0, None::<usize>);
        loop {
            let end = (start + stride).min(m.len);
            match reply_to(
                self.policy,
                &mut self.responder,
                &envelope,
                self.local,
                &mut buf[start..end],
                now,
            ) {
                Ok(reply) if self.responder.reply_tos().is_some() => {
                    // A Class of Service reply: its own traffic class, its own send.
                    let tos = self.responder.reply_tos();
                    let len = reply.len();
                    self.send_all(&[Transmit { tos, ..transmit(m, reply, len) }], counts);
                }
                Ok(reply) => {
                    let (at, len) = (kept.unwrap_or(0), reply.len());
                    if at != start {
                        buf.copy_within(start..start + len, at);
                    }
                    kept = Some(at + len);
                }
                Err(Refusal::StampShort) => {
                    self.answer_unpadded(m, &buf[start..end], &envelope, counts);
                }
                Err(reason) => counts.add_drop(reason, 1),
            }
            start = end;
            if start >= m.len {
                return kept;
            }
        }
    }

    /// A short TWAMP-Light test packet, the one request whose reply is longer:
    /// answered out of place and at once where the operator opted in for its
    /// sender (`--stamp-short-from`), counted as `stamp_short` otherwise.
    /// Rare by design, so it costs a send of its own.
    fn answer_unpadded(
        &mut self,
        m: &RecvMeta,
        request: &[u8],
        envelope: &Envelope,
        counts: &mut Counts,
    ) {
        let mut out = [0u8; UNPADDED_REPLY];
        match self.responder.respond_unpadded(request, envelope, &mut out) {
            Ok(len) => self.send_all(&[transmit(m, &out[..len], len)], counts),
            Err(reason) => counts.add_drop(reason, 1),
        }
    }

    /// Sends a batch's replies: `reply_len[i]` bytes at the start of buffer
    /// `i`, answering `meta[i]`.
    fn send(
        &mut self,
        storage: &mut [u8],
        meta: &[RecvMeta],
        reply_len: &[Option<usize>; BATCH],
        counts: &mut Counts,
    ) {
        if let [m] = meta {
            // One datagram (ping-pong): nothing to gather, no table of sends.
            if let Some(len) = reply_len[0] {
                self.send_all(&[transmit(m, &storage[..len], m.stride)], counts);
            }
            return;
        }
        let plan = self.plan_sends(storage, meta, reply_len);
        let empty =
            Transmit { dst: meta[0].addr, contents: &[], segment_size: None, src: None, tos: None };
        let mut txs = [empty; BATCH];
        let mut ntx = 0;
        for (i, (planned, m)) in plan.iter().zip(meta).enumerate() {
            let Some(len) = planned.len else { continue };
            txs[ntx] = transmit(m, &storage[i * MAX_BUF..][..len], planned.stride);
            ntx += 1;
        }
        self.send_all(&txs[..ntx], counts);
    }

    /// Plans the sends of a batch: for each buffer, the bytes its transmit
    /// covers. A sequence of one-datagram replies to one sender from one
    /// source address, each as long as the first but the last (which may be
    /// shorter, as GSO allows), is copied together into the first buffer and
    /// sent as one GSO buffer; the other buffers of it send nothing.
    fn plan_sends(
        &self,
        storage: &mut [u8],
        meta: &[RecvMeta],
        reply_len: &[Option<usize>],
    ) -> [Planned; BATCH] {
        let mut plan = [Planned::default(); BATCH];
        for ((planned, len), m) in plan.iter_mut().zip(reply_len).zip(meta) {
            *planned = Planned { len: *len, stride: m.stride };
        }
        if !self.gso.enabled() {
            return plan;
        }
        // One datagram, answered whole, to a route that has not refused GSO.
        let single = |i: usize| match reply_len[i] {
            Some(len) => {
                len > 0
                    && len == meta[i].len
                    && len <= meta[i].stride
                    && !self.gso.refuses(meta[i].addr, len)
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
                    plan[k].len = None;
                }
                plan[i] = Planned { len: Some(total), stride };
            }
            i = end;
        }
        plan
    }

    /// Sends every transmit, counting each as answered or failed; never gives up
    /// on the rest because one failed.
    fn send_all(&mut self, txs: &[Transmit<'_>], counts: &mut Counts) {
        let mut rest = txs;
        while let Some(first) = rest.first() {
            if first.segment_size.is_some_and(|size| self.gso.refuses(first.dst, size)) {
                self.send_split(first, counts);
                rest = &rest[1..];
                continue;
            }
            let end = if self.gso.enabled() {
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
                            self.gso.sent();
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
                    if counts.reply_failed == failed_before
                        && self.gso.refused(first.dst, first.segment_size.unwrap_or(0))
                    {
                        self.warn(format_args!(
                            "UDP GSO refused {} times in a row ({err}); \
                             sending datagrams one by one from now on",
                            gso::GIVE_UP
                        ));
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

    /// Publishes the count of datagrams not shown now and then: a shared
    /// counter per batch would be a cache line bouncing between workers under
    /// load, so only when the queue is drained or enough have gathered.
    fn publish_unseen(&mut self, batch: usize) {
        if batch < BATCH || self.unseen >= UNSEEN_PUBLISH {
            self.monitor.add_unseen(std::mem::take(&mut self.unseen));
        }
    }

    /// Publishes what is kept locally: the kernel's drop count and the
    /// datagrams not shown. Called every [`DROPS_EVERY`] batches, at exit,
    /// and where the platform has a read timeout, when idle.
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
    envelope: &Envelope,
    local: SocketAddr,
    payload: &'p mut [u8],
    now: Tick,
) -> Result<&'p [u8], Refusal> {
    policy.admit(envelope.src, local, envelope.dst, payload.len(), now)?;
    responder.respond(payload, envelope)?;
    Ok(payload)
}

/// What one receive buffer sends (see [`Worker::plan_sends`]).
#[derive(Clone, Copy, Default)]
struct Planned {
    /// Bytes sent from the buffer; `None` when nothing is.
    len: Option<usize>,
    /// Where the bytes are cut into datagrams.
    stride: usize,
}

/// The transmit answering `m` with `contents`, cut every `stride` bytes.
fn transmit<'a>(m: &RecvMeta, contents: &'a [u8], stride: usize) -> Transmit<'a> {
    Transmit {
        dst: m.addr,
        contents,
        segment_size: (contents.len() > stride).then_some(stride),
        // Never answer *from* a multicast group a request was sent to.
        src: m.dst.filter(|ip| !ip.is_multicast()),
        tos: None,
    }
}
