//! The probing loop ([`Agent::run`]): one thread, one socket per address
//! family and marking (DSCP, TTL), not per target. Each turn:
//!
//! 1. take the new table if a reload made one (the only lock, once per reload);
//! 2. send every probe due, batched per socket (`sendmmsg`), and note how late
//!    each went out (the scheduling lag);
//! 3. read each socket's error queue (the kernel's transmit timestamps, ICMP
//!    unreachables) and its replies (`recvmmsg`, a bounded number of batches
//!    so a flood cannot starve the sends), and match each reply to its probe;
//! 4. give up on probes past their timeout (lost);
//! 5. sleep in `ppoll` until the next probe or timeout is due, or a datagram comes.
//!
//! Matching is the bench's: the probe is the bench's [`Format`] (the `SB`
//! payload, or a STAMP test packet from its [`Sender`](crate::stamp::Sender)),
//! read back by the same code, with the same verdicts (answered, duplicated,
//! reordered, late, mismatched) over a fixed ring of the target's recent
//! probes. A reply is first routed by its source address (then, if several
//! targets share it, by which one's probe it answers); one from an address no
//! target has is attributed by its contents when they name a single target,
//! and is mismatched either way.
//!
//! Round trips are kernel receive time minus kernel transmit time where the
//! kernel gives both (`SO_TIMESTAMPING`), so the agent's own scheduling is not
//! in them; the clock otherwise.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::engine::{Agent, Table};
use super::probing::{Probing, Rx, Slot, State, Verdict};
use super::schedule::{next_due, phases, Due, MinHeap, Rng};
use super::socks::{Outgoing, Sock, SockKey, NONE, TX_IDS};
use super::tally::bump;
use super::target::Protocol;
use crate::bench::probe::{Format, HEADER_LEN};
use crate::bench::stamp::unix_ns;
use crate::stamp::AuthMode;
use crate::sys::{self, Queued, Transmit, BATCH, MAX_BUF};
use crate::Expect;

/// Receive batches per socket per turn.
const RECV_ROUNDS: usize = 8;
/// Shortest time between two wake-ups when the kernel timestamps replies:
/// probes due within it go out together, replies are read in batches.
/// Fewer wake-ups are most of the agent's CPU at scale (each is a context
/// switch); see [`EARLY`] for what it does to the scheduling lag.
const TICK: Duration = Duration::from_micros(1_000);
/// With the tick, probes due up to half a tick ahead go out at a wake-up:
/// each probe leaves within about half a tick of its due time, early or
/// late, rather than up to a whole tick late. The intervals between one
/// target's probes are kept (the next is due one interval after this one
/// was due, not after it went out).
const EARLY: Duration = Duration::from_micros(500);
/// Longest sleep: how soon a stop or a reload is noticed.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// How often the socket drop counters are read and stale losses settled.
const HOUSEKEEPING_NS: u64 = 1_000_000_000;
/// A kernel transmit timestamp further than this from the clock read just
/// before the send is not this probe's (the numbering slipped): the clock's is kept.
const TX_SLACK_NS: i64 = 100_000_000;

/// A parser for any `SB` or `Sb` probe, whoever sent it and however a server
/// answered it (only its header is read).
const ANY_SB: Format = Format { size: HEADER_LEN, expect: Expect::Any, stamp: None, lower: true };

impl Agent {
    /// Probes the table's targets until `stop` is set (noticed within 50 ms).
    /// Reloads ([`apply`](Agent::apply)) from other threads are taken between
    /// two turns. Returns an error only when a socket cannot be made or is lost.
    /// Fails at once (`AlreadyExists`) if another thread is running it.
    pub fn run(&self, stop: &AtomicBool) -> io::Result<()> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the agent is already running",
            ));
        }
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _running = Running(&self.running);
        let mut prober = Prober {
            agent: self,
            version: u64::MAX,
            probing: Vec::new(),
            socks: Vec::new(),
            due: Due::default(),
            expiry: MinHeap::default(),
            by_id: HashMap::new(),
            rng: Rng::seeded(self as *const Agent as u64),
        };
        prober.run(stop)
    }
}

struct Prober<'a> {
    agent: &'a Agent,
    version: u64,
    probing: Vec<Probing>,
    socks: Vec<Sock>,
    due: Due,
    /// (deadline, target index, sequence number) of each probe sent.
    expiry: MinHeap<(u64, u32, u64)>,
    /// Target id (carried in `SB` probes) to index.
    by_id: HashMap<u32, u32>,
    rng: Rng,
}

fn realtime_ns() -> i64 {
    unix_ns(SystemTime::now())
}

impl Prober<'_> {
    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut housekeeping = 0;
        let mut woke = 0;
        while !stop.load(Ordering::Relaxed) {
            self.take_table()?;
            let now = self.agent.now_ns();
            let kernel_rx = self.agent.health.kernel_rx.load(Ordering::Relaxed);
            self.send_due(now, if kernel_rx { now + nanos(EARLY) } else { now })?;
            self.receive()?;
            let now = self.agent.now_ns();
            self.expire(now);
            if now >= housekeeping {
                self.housekeep(now);
                housekeeping = now + HOUSEKEEPING_NS;
            }
            let next = [self.due.next_at(), self.expiry.peek().map(|(at, ..)| *at)]
                .into_iter()
                .flatten()
                .fold(now + nanos(MAX_WAIT), u64::min)
                .min(housekeeping);
            // With kernel receive timestamps a reply read later is timed the
            // same: sleep by the clock, waking at most once a tick, so each
            // wake-up sends and reads a batch. Without them, wake for each reply.
            let next = if kernel_rx { next.max(woke + nanos(TICK)) } else { next };
            let now = self.agent.now_ns();
            if next > now {
                let wait = Duration::from_nanos(next - now);
                if self.socks.is_empty() || kernel_rx {
                    std::thread::sleep(wait);
                } else {
                    let socks: Vec<&UdpSocket> = self.socks.iter().map(|s| &s.sock).collect();
                    sys::wait_readable(&socks, wait)?;
                }
            }
            woke = self.agent.now_ns();
        }
        Ok(())
    }

    /// Takes the agent's table if a reload changed it: kept targets keep
    /// their state, new ones get phases spread over their interval.
    fn take_table(&mut self) -> io::Result<()> {
        let version = self.agent.version.load(Ordering::Acquire);
        if version == self.version {
            return Ok(());
        }
        self.version = version;
        let table: Arc<Table> = self.agent.table();
        let now = self.agent.now_ns();
        let old_len = self.probing.len();
        let mut old: HashMap<u32, (usize, Probing)> =
            self.probing.drain(..).enumerate().map(|(i, p)| (p.target.id, (i, p))).collect();
        let mut remap = vec![NONE; old_len];
        let mut fresh: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, t) in table.targets.iter().enumerate() {
            let kept = old.remove(&t.id).filter(|(_, p)| Arc::ptr_eq(&p.target, t));
            let p = match kept {
                Some((was, p)) => {
                    remap[was] = i as u32;
                    p
                }
                None => {
                    let key = SockKey::of(t);
                    let sock = match self.socks.iter().position(|s| s.key == key) {
                        Some(s) => s,
                        None => {
                            self.socks.push(Sock::open(key, self.agent)?);
                            self.socks.len() - 1
                        }
                    };
                    fresh.entry(t.interval_ns()).or_default().push(i);
                    Probing::new(Arc::clone(t), sock, &mut self.rng)
                }
            };
            self.probing.push(p);
        }
        for (interval, targets) in fresh {
            let spread = phases(targets.len(), interval, &mut self.rng);
            for (i, phase) in targets.into_iter().zip(spread) {
                self.probing[i].next_due = now + phase;
            }
        }
        self.due.clear();
        self.expiry.clear();
        self.by_id.clear();
        for s in &mut self.socks {
            s.by_addr.clear();
            s.by_ssid.clear();
            s.by_session.clear();
            s.chunk = 0;
            for id in s.ids.iter_mut() {
                id.0 = remap.get(id.0 as usize).copied().unwrap_or(NONE);
            }
        }
        for (i, p) in self.probing.iter().enumerate() {
            let i32 = i as u32;
            self.due.push(p.next_due, i);
            for s in p.slots.iter().filter(|s| s.state == State::Waiting) {
                self.expiry.push((s.sent_ns + p.timeout_ns, i32, s.seq));
            }
            self.by_id.insert(p.target.id, i32);
            let sock = &mut self.socks[p.sock];
            sock.by_addr.entry(p.target.spec.addr).or_default().push(i32);
            if p.target.spec.protocol == Protocol::Stamp {
                let auth = p.target.spec.key.is_some();
                sock.by_ssid.entry((auth, p.target.spec.ssid)).or_default().push(i32);
                let session = (p.target.spec.addr, auth, p.target.spec.ssid);
                sock.by_session.entry(session).or_default().push(i32);
            }
            // One byte over the largest probe, so a longer reply shows as truncated.
            sock.chunk =
                sock.chunk.max((p.target.format.size + 1).next_multiple_of(64).min(MAX_BUF));
        }
        for s in &mut self.socks {
            s.storage.resize(s.chunk.max(64) * BATCH, 0);
        }
        Ok(())
    }

    /// Builds and sends every probe due by `horizon` (`now`, or up to
    /// [`EARLY`] after it).
    fn send_due(&mut self, now: u64, horizon: u64) -> io::Result<()> {
        while let Some((due_ns, i)) = self.due.pop_due(horizon) {
            let p = &mut self.probing[i];
            let seq = p.next_seq;
            p.next_seq += 1;
            let tag = (u64::from(p.target.id) << 32) | ((now / 1_000) & 0xFFFF_FFFF);
            let s = &mut self.socks[p.sock];
            let size = p.target.format.size;
            let start = s.out.len();
            s.out.resize(start + size, 0);
            p.target.format.fill(&mut s.out[start..], seq, tag);
            s.outgoing.push(Outgoing { target: i as u32, seq, tag, due_ns, len: size });
            p.next_due = next_due(due_ns, p.interval_ns, horizon);
            let (next, sock) = (p.next_due, p.sock);
            self.due.push(next, i);
            if self.socks[sock].outgoing.len() == BATCH {
                self.flush(sock)?;
            }
        }
        for k in 0..self.socks.len() {
            if !self.socks[k].outgoing.is_empty() {
                self.flush(k)?;
            }
        }
        Ok(())
    }

    /// Sends socket `k`'s built probes in one `sendmmsg` (more if the kernel
    /// takes fewer at a time).
    fn flush(&mut self, k: usize) -> io::Result<()> {
        let Prober { agent, probing, socks, expiry, .. } = self;
        let s = &mut socks[k];
        let Some(first) = s.outgoing.first() else { return Ok(()) };
        let dst = probing[first.target as usize].target.spec.addr;
        let empty = Transmit { dst, contents: &[], segment_size: None, src: None, tos: None };
        let mut txs = [empty; BATCH];
        let mut at = 0;
        for (tx, o) in txs.iter_mut().zip(&s.outgoing) {
            *tx = Transmit {
                dst: probing[o.target as usize].target.spec.addr,
                contents: &s.out[at..at + o.len],
                segment_size: None,
                src: None,
                tos: None,
            };
            at += o.len;
        }
        let n = s.outgoing.len();
        let tx_ns = realtime_ns();
        let sent_ns = agent.now_ns();
        let mut done = 0;
        let mut retried = false;
        while done < n {
            match sys::send_batch(&s.sock, &txs[done..n]) {
                Ok(0) => break,
                Ok(count) => {
                    for o in &s.outgoing[done..done + count] {
                        let p = &mut probing[o.target as usize];
                        if p.slot(o.seq).state == State::Waiting {
                            // The ring is shorter than the probes in flight: the oldest goes.
                            let old = p.slot(o.seq).seq;
                            p.lose(old, sent_ns);
                        }
                        *p.slot(o.seq) =
                            Slot { seq: o.seq, tag: o.tag, tx_ns, sent_ns, state: State::Waiting };
                        bump(&p.target.stats.sent, 1);
                        bump(&agent.health.probes_sent, 1);
                        // How far from its due time, early or late.
                        let lag = sent_ns.abs_diff(o.due_ns);
                        // Native first, as for round trips (probing.rs).
                        agent.health.lag_quantiles.record(lag);
                        agent.health.lag.record(&agent.lag_bounds_ns, lag as i64);
                        s.ids[s.next_id as usize % TX_IDS] = (o.target, o.seq);
                        s.next_id = s.next_id.wrapping_add(1);
                        expiry.push((sent_ns + p.timeout_ns, o.target, o.seq));
                    }
                    done += count;
                    retried = false;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_short_of_buffers(&err) => break,
                Err(err) if is_fatal(&err) => return Err(err),
                Err(err) => {
                    // An ICMP error queued earlier fails the next send once
                    // (ECONNREFUSED): that is news about another probe, so try again.
                    if !retried && err.kind() == io::ErrorKind::ConnectionRefused {
                        retried = true;
                        continue;
                    }
                    // This one datagram cannot go (no route, a firewall): not sent.
                    let p = &probing[s.outgoing[done].target as usize];
                    if is_unreachable(&err) {
                        bump(&p.target.stats.unreachable, 1);
                    }
                    warn_send(&p.target.spec.name, &err);
                    done += 1;
                    retried = false;
                }
            }
        }
        s.out.clear();
        s.outgoing.clear();
        Ok(())
    }

    /// Reads every socket's error queue and replies, a bounded amount each.
    fn receive(&mut self) -> io::Result<()> {
        for k in 0..self.socks.len() {
            for _ in 0..RECV_ROUNDS {
                self.read_errors(k)?;
                let Prober { agent, probing, socks, by_id, .. } = self;
                let s = &mut socks[k];
                let chunk = s.chunk.max(64);
                let mut chunks = s.storage.chunks_exact_mut(chunk);
                let mut bufs: [IoSliceMut<'_>; BATCH] =
                    std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
                let n = match sys::recv_batch(&s.sock, &mut bufs, &mut s.meta, false) {
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    // A queued ICMP error reported once: its details are on the error queue.
                    Err(err) if sys::is_transient(&err) => continue,
                    Err(err) => return Err(err),
                };
                if n == 0 {
                    break;
                }
                // Transmit timestamps come before any reply to their probe;
                // read those that came while these replies did.
                read_errors(&socks[k], probing)?;
                let s = &socks[k];
                let at_ns = realtime_ns();
                let mono_ns = agent.now_ns();
                for (m, data) in s.meta[..n].iter().zip(s.storage.chunks_exact(chunk)) {
                    let data = (!m.truncated).then(|| &data[..m.len.min(chunk)]);
                    let rx = Rx {
                        at_ns: m
                            .received
                            .map_or(at_ns, |d| i64::try_from(d.as_nanos()).unwrap_or(at_ns)),
                        mono_ns,
                        ttl: m.ttl,
                    };
                    deliver(agent, s, probing, by_id, m.addr, data, rx);
                }
                if n < BATCH {
                    break;
                }
            }
        }
        Ok(())
    }

    fn read_errors(&mut self, k: usize) -> io::Result<()> {
        read_errors(&self.socks[k], &mut self.probing)
    }

    /// Gives up on probes past their timeout.
    fn expire(&mut self, now: u64) {
        while let Some((deadline, t, seq)) = self.expiry.peek().copied() {
            if deadline > now {
                break;
            }
            self.expiry.pop();
            if let Some(p) = self.probing.get_mut(t as usize) {
                let slot = *p.slot(seq);
                if slot.seq == seq && slot.state == State::Waiting {
                    p.lose(seq, now);
                }
            }
        }
    }

    fn housekeep(&mut self, now: u64) {
        for p in &mut self.probing {
            p.settle(now);
        }
        let drops: u64 = self.socks.iter().filter_map(|s| sys::socket_drops(&s.sock)).sum();
        self.agent.health.socket_drops.store(drops, Ordering::Relaxed);
    }
}

/// Reads socket `s`'s error queue: transmit timestamps go to their probes,
/// unreachables to their targets.
fn read_errors(s: &Sock, probing: &mut [Probing]) -> io::Result<()> {
    let mut apply = |q: Queued| match q {
        Queued::Sent { id, at } => {
            let (t, seq) = s.ids[id as usize % TX_IDS];
            let Some(p) = probing.get_mut(t as usize) else { return };
            let slot = p.slot(seq);
            let at_ns = i64::try_from(at.as_nanos()).unwrap_or(i64::MAX);
            if slot.seq == seq
                && slot.state == State::Waiting
                && (at_ns - slot.tx_ns).abs() <= TX_SLACK_NS
            {
                slot.tx_ns = at_ns;
            }
        }
        Queued::Unreachable { dst } => {
            if let Some(&t) = s.by_addr.get(&dst).and_then(|ts| ts.first()) {
                bump(&probing[t as usize].target.stats.unreachable, 1);
            }
        }
        Queued::Other => {}
    };
    match sys::recv_errors(&s.sock, &mut apply) {
        Ok(_) => Ok(()),
        Err(err) if is_fatal(&err) => Err(err),
        Err(_) => Ok(()),
    }
}

/// Hands one datagram to the target it answers, or counts it mismatched.
fn deliver(
    agent: &Agent,
    s: &Sock,
    probing: &mut [Probing],
    by_id: &HashMap<u32, u32>,
    from: SocketAddr,
    data: Option<&[u8]>,
    rx: Rx,
) {
    let bounds = &agent.bounds_ns;
    match s.by_addr.get(&from) {
        Some(targets) => {
            // Many targets at one address: go straight to the one the reply
            // names, which is also the one a mismatch is counted for.
            let one;
            let mut targets = targets.as_slice();
            if let Some(data) = data {
                if targets.len() > 1 {
                    if let Some(t) = named_target(by_id, probing, from, data) {
                        one = [t];
                        targets = &one;
                    } else if let Some(ts) = session_targets(s, from, data) {
                        targets = ts;
                    }
                }
                // Several candidates: first the one whose probe is still in its
                // slot; only then may one count it late. Else target A would take
                // B's replies as late whenever B's numbers run below A's.
                let passes: &[bool] = if targets.len() > 1 { &[true, false] } else { &[false] };
                for &exact in passes {
                    for &t in targets {
                        if probing[t as usize].on_reply(data, rx, bounds, exact) == Verdict::Done {
                            return;
                        }
                    }
                }
            }
            bump(&probing[targets[0] as usize].target.stats.mismatched, 1);
        }
        None => {
            let t = data.and_then(|d| stray_target(s, by_id, d));
            match t.and_then(|t| probing.get(t as usize)) {
                Some(p) => bump(&p.target.stats.mismatched, 1),
                None => bump(&agent.health.unmatched, 1),
            }
        }
    }
}

/// The upper/echo target at `from` whose id an `SB` reply carries.
fn named_target(
    by_id: &HashMap<u32, u32>,
    probing: &[Probing],
    from: SocketAddr,
    data: &[u8],
) -> Option<u32> {
    let tag = ANY_SB.read(data, u64::MAX).ok()?.sent_ns?;
    let t = *by_id.get(&((tag >> 32) as u32))?;
    (probing.get(t as usize)?.target.spec.addr == from).then_some(t)
}

/// The STAMP targets at `from` with the SSID a reply carries.
fn session_targets<'a>(s: &'a Sock, from: SocketAddr, data: &[u8]) -> Option<&'a [u32]> {
    ssids(data).find_map(|(auth, ssid)| s.by_session.get(&(from, auth, ssid))).map(Vec::as_slice)
}

/// The SSID a STAMP packet carries, read as either base packet (unauthenticated, authenticated).
fn ssids(data: &[u8]) -> impl Iterator<Item = (bool, u16)> + '_ {
    [(false, AuthMode::Unauthenticated), (true, AuthMode::Authenticated)].into_iter().filter_map(
        |(auth, mode)| {
            let l = mode.layout();
            let b = data.get(l.ssid..l.ssid + 2).filter(|_| data.len() >= l.len)?;
            Some((auth, u16::from_be_bytes([b[0], b[1]])))
        },
    )
}

/// The target a datagram from an address no target has claims to answer:
/// the id in an `SB` probe's tag, or the one STAMP target with its SSID.
fn stray_target(s: &Sock, by_id: &HashMap<u32, u32>, data: &[u8]) -> Option<u32> {
    if let Ok(e) = ANY_SB.read(data, u64::MAX) {
        return e.sent_ns.and_then(|tag| by_id.get(&((tag >> 32) as u32)).copied());
    }
    ssids(data).find_map(|key| match s.by_ssid.get(&key).map(Vec::as_slice) {
        Some([t]) => Some(*t),
        _ => None,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn is_short_of_buffers(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
        || matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM))
}

/// The socket itself is gone: nothing more can be sent or received on it.
fn is_fatal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT))
}

fn is_unreachable(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// A send that failed, on stderr at most once a second for the whole agent.
fn warn_send(target: &str, err: &io::Error) {
    use std::sync::atomic::AtomicU64;
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(target_name = %crate::escape(target.as_bytes()), "probe not sent: {err}");
    }
}
