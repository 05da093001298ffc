//! Receiving: batched reads of the flow's socket into fixed buffers, GRO
//! buffers split back into datagrams, waiting by polling or blocking as the
//! flow's loop asks.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::config::BenchConfig;
use crate::sys::{self, RecvMeta, BATCH, MAX_BUF};

/// How a receive waits.
#[derive(Clone, Copy, Debug)]
pub(super) enum Wait {
    /// Poll this long, then block up to the socket's tick.
    SpinThenBlock(Duration),
    /// One look without blocking; the caller loops (`--busy-poll`).
    Never,
}

/// Calls `look` (a receive; its argument says whether it may block) as `wait`
/// says: polling without sleeping for up to the spin, then once blocking.
fn waiting<T>(wait: Wait, mut look: impl FnMut(bool) -> io::Result<T>) -> io::Result<T> {
    let spin = match wait {
        Wait::Never => return look(false),
        Wait::SpinThenBlock(spin) => spin,
    };
    if !spin.is_zero() {
        let started = Instant::now();
        loop {
            match look(false) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if started.elapsed() >= spin {
                        break;
                    }
                    // Not yield: that hands the core to any other runnable
                    // task for a whole time slice (milliseconds).
                    std::hint::spin_loop();
                }
                other => return other,
            }
        }
    }
    look(true)
}

/// Receive buffers: just over a probe each, or with GRO a whole 64 KiB.
pub(super) struct Inbox {
    storage: Vec<u8>,
    chunk: usize,
    meta: [RecvMeta; BATCH],
    /// GRO is on: every receive must read the segment size.
    gro: bool,
    /// The target, the only sender a connected socket hears.
    from: SocketAddr,
    /// Every receive must read the TTL (STAMP's backward hop count), which
    /// only the batched call does.
    ttl: bool,
}

impl Inbox {
    pub(super) fn new(config: &BenchConfig) -> Self {
        // One byte over the probe size, so a longer reply shows as truncated.
        // STAMP: whole datagrams, as a reflector may pad its replies to any
        // size (TWAMP-Light, IMIX) and a longer reply is still an answer. The
        // pages of a slot no reply reaches are never touched, so never backed.
        let chunk = if config.gso || config.stamp.is_some() {
            MAX_BUF
        } else {
            (config.size + 1).next_multiple_of(64).min(MAX_BUF)
        };
        Inbox {
            storage: vec![0; BATCH * chunk],
            chunk,
            meta: [RecvMeta::default(); BATCH],
            gro: config.gso,
            from: config.target,
            ttl: config.stamp.is_some(),
        }
    }

    /// Receives up to `slots` datagrams: polls without sleeping for up to
    /// `spin`, then waits up to the socket's tick; or with [`Wait::Never`],
    /// looks once.
    pub(super) fn recv(&mut self, sock: &UdpSocket, wait: Wait, slots: usize) -> io::Result<usize> {
        if slots <= 1 && !self.gro && !self.ttl {
            // The socket is connected, so the sender is known: plain recv, the
            // cheapest call, keeps a spinning poll tight.
            let buf = &mut self.storage[..self.chunk];
            let len = waiting(wait, |block| sys::recv_connected(sock, buf, block))?;
            let kept = len.min(self.chunk);
            self.meta[0] = RecvMeta {
                addr: self.from,
                len: kept,
                stride: kept,
                truncated: len > self.chunk,
                ..RecvMeta::default()
            };
            return Ok(1);
        }
        let mut chunks = self.storage.chunks_exact_mut(self.chunk);
        // `storage` holds exactly BATCH chunks by construction.
        let mut all: [IoSliceMut<'_>; BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("BATCH chunks")));
        let bufs = &mut all[..slots.clamp(1, BATCH)];
        waiting(wait, |block| sys::recv_batch(sock, bufs, &mut self.meta, block))
    }

    /// Calls `f` with each datagram of the last `n` receives, GRO buffers
    /// split by their stride (`None` for one that did not fit), and the TTL
    /// and traffic class it came with when the socket reports them.
    pub(super) fn each(
        &self,
        n: usize,
        mut f: impl FnMut(Option<&[u8]>, (Option<u8>, Option<u8>)),
    ) {
        for (m, chunk) in self.meta[..n].iter().zip(self.storage.chunks_exact(self.chunk)) {
            let data = &chunk[..m.len.min(chunk.len())];
            let arrived = (m.ttl, m.tos);
            if m.truncated {
                f(None, arrived);
            } else if m.stride > 0 && m.stride < data.len() {
                data.chunks(m.stride).for_each(|d| f(Some(d), arrived));
            } else {
                f(Some(data), arrived);
            }
        }
    }
}
