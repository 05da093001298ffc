//! Sending: when each probe is due ([`Schedule`], open loop) and the batched
//! send of numbered probes ([`Outbox`]), with UDP GSO when asked.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use super::config::BenchConfig;
use super::probe::Format;
use super::socket::socket_error;
use crate::sys::{self, Transmit, BATCH};

/// The kernel refuses a GSO send of more segments than this.
pub(super) const MAX_GSO_SEGMENTS: usize = 64;
/// Payload bytes per GSO buffer, under the 64 KiB an IP packet can hold.
const MAX_GSO_BYTES: usize = 65_000;

/// Open loop's send times: flow `index` of `flows` sends its probe `seq` at
/// `at(seq)` nanoseconds after the start, the flows interleaved evenly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    offset_ns: f64,
    interval_ns: f64,
}

impl Schedule {
    /// `rate` probes per second over all `flows`.
    pub(crate) fn new(rate: f64, flows: usize, index: usize) -> Self {
        let gap = 1e9 / rate;
        Schedule { offset_ns: gap * index as f64, interval_ns: gap * flows as f64 }
    }

    /// When probe `seq` is meant to go out: the time its RTT counts from.
    #[inline]
    pub(crate) fn at(&self, seq: u64) -> u64 {
        (self.offset_ns + seq as f64 * self.interval_ns) as u64
    }
}

/// Probes on their way out: one buffer, filler written once, headers per send.
pub(super) struct Outbox {
    buf: Vec<u8>,
    size: usize,
    format: Format,
    /// Probes per transmit: 1, or with GSO as many as fit one buffer.
    per_tx: usize,
    target: SocketAddr,
}

impl Outbox {
    /// Room for one system call's worth of probes, but not more than `most`.
    pub(super) fn new(config: &BenchConfig, format: &Format, most: usize) -> Self {
        let format = format.clone();
        let size = format.size;
        let per_tx = if config.gso { (MAX_GSO_BYTES / size).clamp(1, MAX_GSO_SEGMENTS) } else { 1 };
        let probes = (BATCH * per_tx).min(most.max(1));
        let mut buf = vec![0; probes * size];
        for p in buf.chunks_exact_mut(size) {
            format.fill(p, 0, 0);
        }
        Outbox { buf, size, format, per_tx, target: config.target }
    }

    pub(super) fn capacity(&self) -> usize {
        self.buf.len() / self.size
    }

    /// Sends up to `want` probes numbered from `first`, each stamped with
    /// `time_of(seq)`; returns how many went out (fewer when the kernel is
    /// short of buffers).
    pub(super) fn send(
        &mut self,
        sock: &UdpSocket,
        first: u64,
        want: usize,
        time_of: impl Fn(u64) -> u64,
    ) -> io::Result<usize> {
        let n = want.min(self.capacity());
        let size = self.size;
        for (seq, p) in (first..).zip(self.buf.chunks_exact_mut(size).take(n)) {
            self.format.stamp(p, seq, time_of(seq));
        }
        let empty =
            Transmit { dst: self.target, contents: &[], segment_size: None, src: None, tos: None };
        let mut txs = [empty; BATCH];
        let mut ntx = 0;
        for (tx, group) in txs.iter_mut().zip(self.buf[..n * size].chunks(self.per_tx * size)) {
            *tx = Transmit {
                dst: self.target,
                contents: group,
                segment_size: (group.len() > size).then_some(size),
                src: None,
                tos: None,
            };
            ntx += 1;
        }
        if let [one] = &txs[..ntx] {
            if one.segment_size.is_none() {
                // One probe (ping-pong): send on the connected socket, so the
                // kernel uses the route it cached instead of looking it up.
                loop {
                    return match sock.send(one.contents) {
                        Ok(_) => Ok(1),
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) if is_short_of_buffers(&err) => Ok(0),
                        Err(err) => Err(socket_error(err, self.target, "sending to")),
                    };
                }
            }
        }
        let mut done = 0;
        while done < ntx {
            match sys::send_batch(sock, &txs[done..ntx]) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_short_of_buffers(&err) => break,
                // A "port unreachable" report for an earlier probe: what this
                // call sent counts; the caller sends the rest.
                Err(err) if done > 0 && err.kind() == io::ErrorKind::ConnectionRefused => break,
                Err(err) if txs[done].segment_size.is_some() && sys::is_gso_error(&err) => {
                    return Err(io::Error::new(
                        err.kind(),
                        format!("--gso: UDP GSO send failed ({err}); run without --gso"),
                    ));
                }
                Err(err) => return Err(socket_error(err, self.target, "sending to")),
            }
        }
        Ok((done * self.per_tx).min(n))
    }
}

fn is_short_of_buffers(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
        || matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM))
}
