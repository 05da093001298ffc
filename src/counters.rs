//! Server counters: one block per worker, summed for the summary.
//!
//! Workers count into plain locals and publish once per batch with relaxed
//! atomic adds, so counting costs nothing per datagram and never takes a lock.
//!
//! The drop reasons are one table (the `drops` list below): each line makes a
//! [`Refusal`] variant, its name (its `Display`, its counter in [`Counts`],
//! the summary and stats lines, the JSON log, the `reason` label of
//! `/metrics`) and, where one helps, a hint for the summary. A new reason is
//! one line there.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Declares [`Refusal`], [`Counts`] and its atomic twin [`WorkerStats`] from
/// one field list, so they can never disagree. The fields come in the order
/// given: the `before` ones, one per drop reason, then the `after` ones.
macro_rules! counters {
    (
        before { $($(#[$bdoc:meta])* $before:ident,)* }
        drops { $($(#[$rdoc:meta])* $variant:ident => $drop:ident $(, hint $hint:literal)?;)* }
        after { $($(#[$adoc:meta])* $after:ident,)* }
    ) => {
        /// Why a datagram was not answered: each reason is a counter of its own.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Refusal {
            $($(#[$rdoc])* $variant,)*
        }

        impl Refusal {
            /// Every reason, in the order of the counters.
            pub const ALL: &'static [Refusal] = &[$(Refusal::$variant,)*];

            /// The counter's name: `rate_limited`, `stamp_malformed`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(Refusal::$variant => stringify!($drop),)*
                }
            }

            /// What an operator who sees this counter grow may want to know,
            /// for the few reasons where a flag changes it.
            pub fn hint(self) -> Option<&'static str> {
                match self {
                    $(Refusal::$variant => None $(.or(Some($hint)))?,)*
                }
            }
        }

        /// Everything a server counts, as plain numbers.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counts {
            $($(#[$bdoc])* pub $before: u64,)*
            $(
                #[doc = concat!("Dropped unanswered: see [`Refusal::", stringify!($variant), "`].")]
                pub $drop: u64,
            )*
            $($(#[$adoc])* pub $after: u64,)*
        }

        impl Counts {
            /// Field names and values, in a fixed order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![
                    $((stringify!($before), self.$before),)*
                    $((stringify!($drop), self.$drop),)*
                    $((stringify!($after), self.$after),)*
                ]
            }

            /// Datagrams dropped for `reason`.
            pub fn drops(&self, reason: Refusal) -> u64 {
                match reason {
                    $(Refusal::$variant => self.$drop,)*
                }
            }

            /// Counts `n` datagrams dropped for `reason`.
            pub fn add_drop(&mut self, reason: Refusal, n: u64) {
                *match reason {
                    $(Refusal::$variant => &mut self.$drop,)*
                } += n;
            }

            /// Datagrams dropped by policy (every reason but kernel drops and failures).
            pub fn dropped(&self) -> u64 {
                0 $(+ self.$drop)*
            }

            /// Emits the counters as one `tracing` event (for JSON logs).
            pub fn trace(&self, event: &'static str, answers_per_sec: f64) {
                tracing::info!(
                    target: "shout",
                    event,
                    answers_per_sec = (!answers_per_sec.is_nan()).then_some(answers_per_sec),
                    $($before = self.$before,)*
                    $($drop = self.$drop,)*
                    $($after = self.$after,)*
                    "{event}"
                );
            }
        }

        impl std::ops::AddAssign for Counts {
            fn add_assign(&mut self, rhs: Counts) {
                $(self.$before += rhs.$before;)*
                $(self.$drop += rhs.$drop;)*
                $(self.$after += rhs.$after;)*
            }
        }

        /// One worker's published counters, padded to its own cache lines so
        /// workers on different cores never contend.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub struct WorkerStats {
            $($before: AtomicU64,)*
            $($drop: AtomicU64,)*
            $($after: AtomicU64,)*
        }

        impl WorkerStats {
            /// Adds a batch's local counts (`kernel_drops` is a gauge: see
            /// [`set_kernel_drops`](WorkerStats::set_kernel_drops)).
            pub fn add(&self, c: &Counts) {
                $(if c.$before != 0 {
                    self.$before.fetch_add(c.$before, Relaxed);
                })*
                $(if c.$drop != 0 {
                    self.$drop.fetch_add(c.$drop, Relaxed);
                })*
                $(if c.$after != 0 && stringify!($after) != "kernel_drops" {
                    self.$after.fetch_add(c.$after, Relaxed);
                })*
            }

            /// A snapshot.
            pub fn counts(&self) -> Counts {
                Counts {
                    $($before: self.$before.load(Relaxed),)*
                    $($drop: self.$drop.load(Relaxed),)*
                    $($after: self.$after.load(Relaxed),)*
                }
            }
        }
    };
}

counters! {
    before {
        /// Datagrams received (answered or not).
        received,
        /// Replies sent.
        answered,
        /// Payload bytes received.
        bytes_received,
        /// Payload bytes sent back.
        bytes_answered,
    }
    drops {
        /// Longer than `--max-datagram`.
        Oversize => oversize;
        /// Source port 0: cannot be answered, and only forged packets have it.
        PortZero => port_zero;
        /// A denied source port (privileged ports, known reflectors).
        DeniedPort => denied_port;
        /// A broadcast, multicast or unspecified source address.
        BadSource => bad_source;
        /// From the server's own address and port: answering would loop forever.
        SelfLoop => self_loop;
        /// Over the per-source rate limit.
        RateLimited => rate_limited;
        /// Within its own limit, but over the total cap on limited replies
        /// (`--rate-limit-total`).
        TotalLimited => total_limited;
        /// Not a STAMP test packet the reflector can answer at its size (shorter
        /// than the mode's base packet).
        StampMalformed => stamp_malformed;
        /// A STAMP test packet whose HMAC does not check (authenticated mode).
        StampAuth => stamp_auth_failed;
        /// A short unauthenticated test packet (TWAMP-Light, 14 to 43 octets):
        /// its 44-octet reply would be longer than the request.
        StampShort => stamp_short, hint "short TWAMP-Light test packets (14 to 43 octets) \
            are not answered: a 44-octet reply would amplify them; --stamp-short-from PREFIX \
            answers those from senders you name";
    }
    after {
        /// Replies the kernel refused (peer gone, firewall, unanswerable source).
        reply_failed,
        /// Receive errors that did not end the server (e.g. ICMP errors reported late).
        recv_errors,
        /// Datagrams the kernel dropped because a receive queue was full.
        kernel_drops,
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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

    #[test]
    fn each_reason_is_one_counter_under_its_name() {
        for &reason in Refusal::ALL {
            let mut c = Counts::default();
            c.add_drop(reason, 3);
            assert_eq!((c.drops(reason), c.dropped()), (3, 3), "{reason}");
            let named: Vec<_> = c.fields().into_iter().filter(|&(_, v)| v != 0).collect();
            assert_eq!(named, [(reason.name(), 3)]);
            assert_eq!(reason.to_string(), reason.name());
        }
    }

    #[test]
    fn the_summary_fields_keep_their_order() {
        let names: Vec<_> = Counts::default().fields().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names.join(" "),
            "received answered bytes_received bytes_answered oversize port_zero denied_port \
             bad_source self_loop rate_limited total_limited stamp_malformed stamp_auth_failed \
             stamp_short reply_failed recv_errors kernel_drops"
        );
    }
}
