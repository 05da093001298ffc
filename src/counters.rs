//! Server counters: one block per worker, summed for the summary.
//!
//! Workers count into plain locals and publish once per batch with relaxed
//! atomic adds, so counting costs nothing per datagram and never takes a lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a datagram was not answered: each reason is a counter of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Longer than `--max-datagram`.
    Oversize,
    /// Source port 0: cannot be answered, and only forged packets have it.
    PortZero,
    /// A denied source port (privileged ports, known reflectors).
    DeniedPort,
    /// A broadcast, multicast or unspecified source address.
    BadSource,
    /// From the server's own address and port: answering would loop forever.
    SelfLoop,
    /// Over the per-source rate limit.
    RateLimited,
    /// Within its own limit, but over the total cap on limited replies.
    TotalLimited,
    /// Not a STAMP test packet the reflector can answer at its size (shorter
    /// than the mode's base packet).
    StampMalformed,
    /// A STAMP test packet whose HMAC does not check (authenticated mode).
    StampAuth,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Oversize => "oversize",
            Refusal::PortZero => "port_zero",
            Refusal::DeniedPort => "denied_port",
            Refusal::BadSource => "bad_source",
            Refusal::SelfLoop => "self_loop",
            Refusal::RateLimited => "rate_limited",
            Refusal::TotalLimited => "total_limited",
            Refusal::StampMalformed => "stamp_malformed",
            Refusal::StampAuth => "stamp_auth_failed",
        })
    }
}

/// Declares [`Counts`] and its atomic twin [`WorkerStats`] from one field list,
/// so the two can never disagree.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Everything a server counts, as plain numbers.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counts {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counts {
            /// Field names and values, in a fixed order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }

        impl Counts {
            /// Emits the counters as one `tracing` event (for JSON logs).
            pub fn trace(&self, event: &'static str, answers_per_sec: f64) {
                tracing::info!(
                    target: "shout",
                    event,
                    answers_per_sec = (!answers_per_sec.is_nan()).then_some(answers_per_sec),
                    $($name = self.$name,)*
                    "{event}"
                );
            }
        }

        impl std::ops::AddAssign for Counts {
            fn add_assign(&mut self, rhs: Counts) {
                $(self.$name += rhs.$name;)*
            }
        }

        /// One worker's published counters, padded to its own cache lines so
        /// workers on different cores never contend.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub struct WorkerStats {
            $($name: AtomicU64,)*
        }

        impl WorkerStats {
            /// Adds a batch's local counts (`kernel_drops` is a gauge: see
            /// [`set_kernel_drops`](WorkerStats::set_kernel_drops)).
            pub fn add(&self, c: &Counts) {
                $(if c.$name != 0 && stringify!($name) != "kernel_drops" {
                    self.$name.fetch_add(c.$name, Relaxed);
                })*
            }

            /// A snapshot.
            pub fn counts(&self) -> Counts {
                Counts { $($name: self.$name.load(Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Datagrams received (answered or not).
    received,
    /// Replies sent.
    answered,
    /// Payload bytes received.
    bytes_received,
    /// Payload bytes sent back.
    bytes_answered,
    /// Dropped unanswered: longer than `--max-datagram`.
    oversize,
    /// Dropped unanswered: source port 0.
    port_zero,
    /// Dropped unanswered: a denied source port.
    denied_port,
    /// Dropped unanswered: broadcast, multicast or unspecified source.
    bad_source,
    /// Dropped unanswered: from the server's own address and port.
    self_loop,
    /// Dropped unanswered: over the per-source rate limit.
    rate_limited,
    /// Dropped unanswered: over the total cap on limited replies (`--rate-limit-total`).
    total_limited,
    /// Dropped unanswered (STAMP mode): not a test packet of the mode's size.
    stamp_malformed,
    /// Dropped unanswered (STAMP mode): the HMAC does not check.
    stamp_auth_failed,
    /// Replies the kernel refused (peer gone, firewall, unanswerable source).
    reply_failed,
    /// Receive errors that did not end the server (e.g. ICMP errors reported late).
    recv_errors,
    /// Datagrams the kernel dropped because a receive queue was full.
    kernel_drops,
}

impl Counts {
    /// Counts `n` datagrams dropped for `reason`.
    pub fn add_drop(&mut self, reason: Refusal, n: u64) {
        *match reason {
            Refusal::Oversize => &mut self.oversize,
            Refusal::PortZero => &mut self.port_zero,
            Refusal::DeniedPort => &mut self.denied_port,
            Refusal::BadSource => &mut self.bad_source,
            Refusal::SelfLoop => &mut self.self_loop,
            Refusal::RateLimited => &mut self.rate_limited,
            Refusal::TotalLimited => &mut self.total_limited,
            Refusal::StampMalformed => &mut self.stamp_malformed,
            Refusal::StampAuth => &mut self.stamp_auth_failed,
        } += n;
    }

    /// Datagrams dropped by policy (every reason but kernel drops and failures).
    pub fn dropped(&self) -> u64 {
        self.oversize
            + self.port_zero
            + self.denied_port
            + self.bad_source
            + self.self_loop
            + self.rate_limited
            + self.total_limited
            + self.stamp_malformed
            + self.stamp_auth_failed
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

impl WorkerStats {
    /// Records the kernel's drop counter for this worker's socket (a gauge).
    pub fn set_kernel_drops(&self, drops: u64) {
        self.kernel_drops.store(drops, Relaxed);
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
            kernel_drops: 99,
            ..Counts::default()
        });
        let mut c = Counts { received: 3, answered: 3, ..Counts::default() };
        c.add_drop(Refusal::RateLimited, 2);
        c.add_drop(Refusal::TotalLimited, 3);
        w.add(&c);
        w.set_kernel_drops(7);
        let c = w.counts();
        assert_eq!((c.received, c.answered, c.reply_failed, c.kernel_drops), (5, 4, 1, 7));
        assert_eq!((c.rate_limited, c.total_limited, c.dropped()), (2, 3, 5));
        let line = c.to_string();
        assert!(line.starts_with("received=5 answered=4 "), "{line}");
        assert!(line.contains(" rate_limited=2 total_limited=3 "), "{line}");
        assert!(line.ends_with("kernel_drops=7"), "{line}");
    }
}
