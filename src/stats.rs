//! Server counters: one block per worker, summed for the summary.
//!
//! Workers count into plain locals and publish once per batch with relaxed
//! atomic adds, so counting costs nothing per datagram and never takes a lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Everything a server counts, as plain numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams received (answered or not).
    pub received: u64,
    /// Replies sent.
    pub answered: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Payload bytes sent back.
    pub bytes_answered: u64,
    /// Datagrams dropped unanswered for exceeding `--max-datagram`.
    pub oversize: u64,
    /// Replies the kernel refused (peer gone, firewall, unanswerable source).
    pub reply_failed: u64,
    /// Receive errors that did not end the server (e.g. ICMP errors reported late).
    pub recv_errors: u64,
    /// Datagrams the kernel dropped because a receive queue was full.
    pub kernel_drops: u64,
}

impl Counts {
    fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("received", self.received),
            ("answered", self.answered),
            ("bytes_received", self.bytes_received),
            ("bytes_answered", self.bytes_answered),
            ("oversize", self.oversize),
            ("reply_failed", self.reply_failed),
            ("recv_errors", self.recv_errors),
            ("kernel_drops", self.kernel_drops),
        ]
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, rhs: Counts) {
        self.received += rhs.received;
        self.answered += rhs.answered;
        self.bytes_received += rhs.bytes_received;
        self.bytes_answered += rhs.bytes_answered;
        self.oversize += rhs.oversize;
        self.reply_failed += rhs.reply_failed;
        self.recv_errors += rhs.recv_errors;
        self.kernel_drops += rhs.kernel_drops;
    }
}

/// `key=value` pairs separated by spaces: easy to read and to parse.
impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.fields().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

/// One worker's published counters. Padded to its own cache lines so workers
/// on different cores never contend.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerStats {
    received: AtomicU64,
    answered: AtomicU64,
    bytes_received: AtomicU64,
    bytes_answered: AtomicU64,
    oversize: AtomicU64,
    reply_failed: AtomicU64,
    recv_errors: AtomicU64,
    kernel_drops: AtomicU64,
}

impl WorkerStats {
    /// Adds a batch's local counts.
    pub fn add(&self, c: &Counts) {
        let pairs = [
            (&self.received, c.received),
            (&self.answered, c.answered),
            (&self.bytes_received, c.bytes_received),
            (&self.bytes_answered, c.bytes_answered),
            (&self.oversize, c.oversize),
            (&self.reply_failed, c.reply_failed),
            (&self.recv_errors, c.recv_errors),
        ];
        for (counter, n) in pairs {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    /// Records the kernel's drop counter for this worker's socket (a gauge).
    pub fn set_kernel_drops(&self, drops: u64) {
        self.kernel_drops.store(drops, Relaxed);
    }

    /// A snapshot.
    pub fn counts(&self) -> Counts {
        Counts {
            received: self.received.load(Relaxed),
            answered: self.answered.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            bytes_answered: self.bytes_answered.load(Relaxed),
            oversize: self.oversize.load(Relaxed),
            reply_failed: self.reply_failed.load(Relaxed),
            recv_errors: self.recv_errors.load(Relaxed),
            kernel_drops: self.kernel_drops.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_add_up_and_render_as_key_values() {
        let w = WorkerStats::default();
        w.add(&Counts {
            received: 2,
            answered: 1,
            reply_failed: 1,
            ..Counts::default()
        });
        w.add(&Counts {
            received: 3,
            answered: 3,
            ..Counts::default()
        });
        w.set_kernel_drops(7);
        let c = w.counts();
        assert_eq!(
            (c.received, c.answered, c.reply_failed, c.kernel_drops),
            (5, 4, 1, 7)
        );
        let line = c.to_string();
        assert!(line.starts_with("received=5 answered=4 "), "{line}");
        assert!(line.ends_with("kernel_drops=7"), "{line}");
    }
}
