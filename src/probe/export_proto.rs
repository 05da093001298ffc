//! [`Agent::render_metrics_protobuf`]: the same metric families as
//! [`Agent::render_metrics`] (names, help, labels, values), in the Prometheus
//! protobuf exposition ([`proto`](super::proto)), where the round-trip and
//! scheduling-lag histograms also carry native buckets (schema
//! [`SCHEMA`](super::tally::SCHEMA)) from the counts the percentiles use.
//!
//! Counters are named with their `_total` as the protobuf format wants (the
//! text format adds it to the family's name). Label values go as they are:
//! protobuf needs no escaping. A test renders both formats of one agent and
//! compares every series, so a family added to one and not the other fails.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::engine::{Agent, Table, Target, LAG_BUCKETS};
use super::proto::{Family, Histogram, Kind, Native};
use super::tally::{read, Buckets, Fates, Quantiles, SCHEMA, ZERO_INDEX, ZERO_THRESHOLD};
use super::target::Protocol;
use crate::metrics::Body;

/// Targets per group of families in [`ProtobufPage`]: a group is about
/// 100 KiB (1.3 KiB per target with native buckets), so the page's memory
/// stays that whatever the number of targets.
pub const GROUP: usize = 64;

/// The protobuf page being written ([`Agent::metrics_page_protobuf`]).
pub struct ProtobufPage<'a> {
    agent: &'a Agent,
    table: Arc<Table>,
    /// The first target of the next group.
    next: usize,
    /// Whether the first group (perhaps of no targets) is written.
    started: bool,
}

impl std::fmt::Debug for ProtobufPage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufPage")
            .field("targets", &self.table.targets.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Body for ProtobufPage<'_> {
    fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> bool {
        let start = out.len();
        let targets = &self.table.targets;
        while out.len() - start < want {
            if self.started && self.next >= targets.len() {
                return false;
            }
            let end = (self.next + GROUP).min(targets.len());
            self.agent.render_targets_protobuf(out, &targets[self.next..end]);
            self.next = end;
            self.started = true;
            if end == targets.len() {
                self.agent.render_health_protobuf(out, targets.len());
                return false;
            }
        }
        true
    }
}

/// Reused buffers for one histogram series.
#[derive(Default)]
struct Scratch {
    counts: Vec<u64>,
    cumulative: Vec<(f64, u64)>,
    native: Vec<u64>,
}

impl Scratch {
    /// `b` as classic buckets over `bounds` (seconds), with `q`'s native
    /// buckets if given, into `f` under `labels`.
    fn histogram<'a>(
        &mut self,
        f: &mut Family,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        bounds: &[f64],
        b: &Buckets,
        q: Option<&Quantiles>,
    ) {
        // Classic first: the probing thread records native first, so the
        // native total read after is at least the classic one (tally.rs).
        let (mut count, sum_ns) = b.read(&mut self.counts);
        self.cumulative.clear();
        let mut seen = 0;
        for (&upper, &c) in bounds.iter().zip(&self.counts) {
            seen += c;
            self.cumulative.push((upper, seen));
        }
        let native = q.map(|q| {
            let zero_count = q.read(&mut self.native);
            let n = Native {
                schema: SCHEMA,
                zero_threshold: ZERO_THRESHOLD,
                zero_count,
                first_index: ZERO_INDEX + 1,
                counts: &self.native,
            };
            // Native histograms need count = the buckets' sum; it is never below the classic one.
            count = n.total();
            n
        });
        let h = Histogram { count, sum: sum_ns as f64 / 1e9, buckets: &self.cumulative, native };
        f.histogram(labels, &h);
    }
}

/// A target's labels: `target`, then its configured ones.
fn labels(t: &Target) -> impl Iterator<Item = (&str, &str)> {
    std::iter::once(("target", t.spec.name.as_str()))
        .chain(t.spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn with<'a>(
    t: &'a Target,
    key: &'a str,
    value: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    labels(t).chain(std::iter::once((key, value)))
}

/// A histogram family's series per target: a `direction` label, which buckets,
/// and whether the round-trip counts go with them as native buckets.
type Series = [(Option<&'static str>, fn(&Target) -> &Buckets, bool)];
/// A per-target counter: name, help, value.
type Counter = (&'static str, &'static str, fn(&Target) -> u64);

impl Agent {
    /// The metrics in the Prometheus protobuf exposition (length-delimited
    /// `io.prometheus.client.MetricFamily` messages): the families of
    /// [`render_metrics`](Agent::render_metrics), the round-trip and
    /// scheduling-lag histograms with native buckets too.
    pub fn render_metrics_protobuf(&self) -> Vec<u8> {
        let mut page = self.metrics_page_protobuf();
        let mut out = Vec::new();
        while page.fill(&mut out, usize::MAX) {}
        out
    }

    /// [`render_metrics_protobuf`](Agent::render_metrics_protobuf) a piece
    /// at a time, as the connection takes it: the per-target families of
    /// [`GROUP`] targets at a time (each family once per group, so a family
    /// comes in several messages), then the agent's own. Never held whole.
    pub fn metrics_page_protobuf(&self) -> ProtobufPage<'_> {
        ProtobufPage { agent: self, table: self.table(), next: 0, started: false }
    }

    /// The per-target families of `targets`, each as one message.
    fn render_targets_protobuf(&self, out: &mut Vec<u8>, targets: &[Arc<Target>]) {
        let mut s = Scratch::default();
        let mut hist = |out: &mut Vec<u8>, name, help, stamp_only, series: &Series| {
            let mut f = Family::new(name, help, Kind::Histogram);
            for t in targets {
                if stamp_only && t.spec.protocol != Protocol::Stamp {
                    continue;
                }
                for &(direction, buckets, native) in series {
                    let q = native.then_some(&t.stats.quantiles);
                    match direction {
                        Some(d) => s.histogram(
                            &mut f,
                            with(t, "direction", d),
                            &self.buckets,
                            buckets(t),
                            q,
                        ),
                        None => s.histogram(&mut f, labels(t), &self.buckets, buckets(t), q),
                    }
                }
            }
            f.finish(out);
        };
        hist(
            out,
            "shout_probe_rtt_seconds",
            "Round-trip time of answered probes",
            false,
            &[(None, |t| &t.stats.rtt, true)],
        );
        hist(
            out,
            "shout_probe_one_way_delay_seconds",
            "One-way delay of STAMP probes (meaningful only with synchronised clocks)",
            true,
            &[
                (Some("forward"), |t| &t.stats.forward, false),
                (Some("backward"), |t| &t.stats.backward, false),
            ],
        );
        hist(
            out,
            "shout_probe_turnaround_seconds",
            "Time the STAMP reflector held each probe (its T3 - T2)",
            true,
            &[(None, |t| &t.stats.turnaround, false)],
        );
        // One reading of the fates per target, as the text has.
        let fates: Vec<Fates> = targets.iter().map(|t| t.stats.fates()).collect();
        let per_target =
            |out: &mut Vec<u8>, name, help, kind, v: &dyn Fn(&Target, &Fates) -> f64| {
                let mut f = Family::new(name, help, kind);
                for (t, fates) in targets.iter().zip(&fates) {
                    f.value(labels(t), v(t, fates));
                }
                f.finish(out);
            };
        per_target(out, "shout_probe_sent_total", "Probes sent", Kind::Counter, &|_, f| {
            f.sent as f64
        });
        per_target(
            out,
            "shout_probe_answered_total",
            "Probes answered in time (first reply)",
            Kind::Counter,
            &|_, f| f.answered as f64,
        );
        let mut f = Family::new(
            "shout_probe_lost_total",
            "Probes given up after their timeout, by the direction they were lost in where a stateful STAMP reflector tells",
            Kind::Counter,
        );
        for (t, fates) in targets.iter().zip(&fates) {
            for (d, v) in ["forward", "backward", "unknown"].into_iter().zip(fates.lost) {
                f.value(with(t, "direction", d), v as f64);
            }
        }
        f.finish(out);
        let counters: [Counter; 5] = [
            ("shout_probe_duplicated_total", "Replies beyond the first to a probe", |t| {
                read(&t.stats.duplicated)
            }),
            (
                "shout_probe_reordered_total",
                "First replies to a probe older than one already answered",
                |t| read(&t.stats.reordered),
            ),
            ("shout_probe_late_total", "Replies to probes already counted lost", |t| {
                read(&t.stats.late)
            }),
            ("shout_probe_mismatched_total", "Datagrams that answer no probe of the target", |t| {
                read(&t.stats.mismatched)
            }),
            (
                "shout_probe_unreachable_total",
                "ICMP destination unreachable about the target's probes",
                |t| read(&t.stats.unreachable),
            ),
        ];
        for (name, help, get) in counters {
            per_target(out, name, help, Kind::Counter, &|t, _| get(t) as f64);
        }
        per_target(
            out,
            "shout_probe_in_flight",
            "Probes neither answered nor lost yet (sent = answered + lost + in flight)",
            Kind::Gauge,
            &|_, f| f.in_flight as f64,
        );
        let now = self.now_ns();
        per_target(
            out,
            "shout_probe_up",
            "1 if the target answered within the last three intervals",
            Kind::Gauge,
            &|t, _| f64::from(u8::from(t.up(now))),
        );
        let mut f = Family::new(
            "shout_probe_ttl",
            "TTL (hop limit) of the last answer: forward as the STAMP reflector saw our probe, backward as we received its reply",
            Kind::Gauge,
        );
        for t in targets {
            for (d, v) in [("forward", &t.stats.ttl_forward), ("backward", &t.stats.ttl_backward)] {
                let v = v.load(Ordering::Relaxed);
                if v != 0 {
                    f.value(with(t, "direction", d), f64::from(v));
                }
            }
        }
        f.finish(out);
    }

    /// The agent's own families, after the targets'.
    fn render_health_protobuf(&self, out: &mut Vec<u8>, targets: usize) {
        let h = &self.health;
        let single = |out: &mut Vec<u8>, name, help, kind, v: f64| {
            let mut f = Family::new(name, help, kind);
            f.value([], v);
            f.finish(out);
        };
        single(
            out,
            "shout_probe_probes_sent_total",
            "Probes sent by the agent",
            Kind::Counter,
            read(&h.probes_sent) as f64,
        );
        let mut f = Family::new(
            "shout_probe_scheduling_lag_seconds",
            "How far from its due time each probe left, early or late",
            Kind::Histogram,
        );
        Scratch::default().histogram(&mut f, [], &LAG_BUCKETS, &h.lag, Some(&h.lag_quantiles));
        f.finish(out);
        single(
            out,
            "shout_probe_socket_drops_total",
            "Replies the kernel dropped on the agent's sockets: receive queue full",
            Kind::Counter,
            h.socket_drops.load(Ordering::Relaxed) as f64,
        );
        single(
            out,
            "shout_probe_unmatched_total",
            "Datagrams from addresses no target has that name no target",
            Kind::Counter,
            read(&h.unmatched) as f64,
        );
        single(out, "shout_probe_targets", "Targets probed", Kind::Gauge, targets as f64);
        single(
            out,
            "shout_probe_config_last_reload_successful",
            "1 if the last configuration reload succeeded",
            Kind::Gauge,
            f64::from(u8::from(h.reload_ok.load(Ordering::Relaxed))),
        );
        single(
            out,
            "shout_probe_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in seconds since the epoch",
            Kind::Gauge,
            f64::from_bits(h.reload_at.load(Ordering::Relaxed)),
        );
        let mut f = Family::new(
            "shout_probe_kernel_timestamps",
            "1 when the kernel timestamps probes in this direction, 0 when the agent falls back to its clock",
            Kind::Gauge,
        );
        let (rx, tx) = self.kernel_timestamps();
        for (d, on) in [("rx", rx), ("tx", tx)] {
            f.value([("direction", d)], f64::from(u8::from(on)));
        }
        f.finish(out);
        let mut f = Family::new(
            "shout_probe_resolve_failures_total",
            "Times a target's host name failed to resolve",
            Kind::Counter,
        );
        let failures = self.resolve_failures.lock().unwrap_or_else(PoisonError::into_inner);
        for (target, n) in failures.iter() {
            f.value([("target", target.as_str())], *n as f64);
        }
        drop(failures);
        f.finish(out);
    }
}

#[cfg(test)]
#[path = "export_proto_tests.rs"]
mod tests;
