//! The scrape as prometheus-client encoded it before the text was written by
//! hand ([`super::export`]), kept as the oracle its tests compare with, byte
//! for byte: same names, labels, series, values and order.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::engine::{Agent, Table, Target, LAG_BUCKETS};
use super::tally::{read, Buckets, Fates};
use super::target::Protocol;

/// The whole metrics text, as `Agent::render_metrics` made it.
pub(super) fn render(agent: &Agent) -> String {
    let h = &agent.health;
    let mut lag = Vec::new();
    let (lag_count, lag_sum) = h.lag.read(&mut lag);
    let export = Export {
        table: agent.table(),
        buckets: agent.buckets.clone(),
        now_ns: agent.now_ns(),
        lag: Hist::new(&LAG_BUCKETS, lag, lag_count, lag_sum),
        probes_sent: read(&h.probes_sent),
        socket_drops: h.socket_drops.load(Ordering::Relaxed),
        unmatched: read(&h.unmatched),
        reload_ok: h.reload_ok.load(Ordering::Relaxed),
        reload_at: f64::from_bits(h.reload_at.load(Ordering::Relaxed)),
        kernel: agent.kernel_timestamps(),
        resolve_failures: agent
            .resolve_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(export));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// A histogram as prometheus-client encodes it.
#[derive(Debug)]
struct Hist {
    /// (upper bound in seconds, count in that bucket alone); +Inf last as `f64::MAX`.
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl Hist {
    fn new(bounds: &[f64], counts: Vec<u64>, count: u64, sum_ns: i64) -> Hist {
        let buckets = bounds.iter().copied().chain(std::iter::once(f64::MAX)).zip(counts).collect();
        Hist { buckets, count, sum: sum_ns as f64 / 1e9 }
    }

    fn of(bounds: &[f64], b: &Buckets, scratch: &mut Vec<u64>) -> Hist {
        let (count, sum) = b.read(scratch);
        Hist::new(bounds, std::mem::take(scratch), count, sum)
    }

    fn encode(&self, m: prometheus_client::encoding::MetricEncoder<'_>) -> fmt::Result {
        let mut m = m;
        m.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }
}

#[derive(Debug)]
struct Export {
    table: Arc<Table>,
    buckets: Vec<f64>,
    now_ns: u64,
    lag: Hist,
    probes_sent: u64,
    socket_drops: u64,
    unmatched: u64,
    reload_ok: bool,
    reload_at: f64,
    kernel: (bool, bool),
    resolve_failures: Vec<(String, u64)>,
}

/// A label value as the text format needs it: `\`, `"` and newlines escaped
/// (prometheus-client writes values as given).
fn escape(v: &str) -> Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        Cow::Owned(v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
    } else {
        Cow::Borrowed(v)
    }
}

/// A target's labels: `target`, then its configured ones.
fn labels(t: &Target) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut out = Vec::with_capacity(t.spec.labels.len() + 2);
    out.push((Cow::Borrowed("target"), escape(&t.spec.name)));
    for (k, v) in &t.spec.labels {
        out.push((Cow::Borrowed(k.as_str()), escape(v)));
    }
    out
}

fn with<'a>(
    mut labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    key: &'a str,
    value: &'a str,
) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    labels.push((Cow::Borrowed(key), Cow::Borrowed(value)));
    labels
}

type Read = fn(&Target) -> u64;
/// A histogram family's series per target: a `direction` label, and which buckets.
type Series = [(Option<&'static str>, fn(&Target) -> &Buckets)];

impl Export {
    fn counter(&self, e: &mut DescriptorEncoder, name: &str, help: &str, f: Read) -> fmt::Result {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for t in &self.table.targets {
            ConstCounter::new(f(t)).encode(m.encode_family(&labels(t))?)?;
        }
        Ok(())
    }

    fn gauge(&self, e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
        ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
    }

    fn histograms(
        &self,
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        stamp_only: bool,
        per_target: &Series,
    ) -> fmt::Result {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
        let mut scratch = Vec::new();
        for t in &self.table.targets {
            if stamp_only && t.spec.protocol != Protocol::Stamp {
                continue;
            }
            for (direction, buckets) in per_target {
                let h = Hist::of(&self.buckets, buckets(t), &mut scratch);
                let l = match direction {
                    Some(d) => with(labels(t), "direction", d),
                    None => labels(t),
                };
                h.encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }

    fn targets(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        self.histograms(
            e,
            "shout_probe_rtt_seconds",
            "Round-trip time of answered probes",
            false,
            &[(None, |t| &t.stats.rtt)],
        )?;
        self.histograms(
            e,
            "shout_probe_one_way_delay_seconds",
            "One-way delay of STAMP probes (meaningful only with synchronised clocks)",
            true,
            &[(Some("forward"), |t| &t.stats.forward), (Some("backward"), |t| &t.stats.backward)],
        )?;
        self.histograms(
            e,
            "shout_probe_turnaround_seconds",
            "Time the STAMP reflector held each probe (its T3 - T2)",
            true,
            &[(None, |t| &t.stats.turnaround)],
        )?;
        // One reading of the fates per target: sent = answered + lost + in flight exactly.
        let fates: Vec<Fates> = self.table.targets.iter().map(|t| t.stats.fates()).collect();
        let fate = |e: &mut DescriptorEncoder, name: &str, help: &str, f: fn(&Fates) -> u64| {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (t, fates) in self.table.targets.iter().zip(&fates) {
                ConstCounter::new(f(fates)).encode(m.encode_family(&labels(t))?)?;
            }
            Ok::<(), fmt::Error>(())
        };
        fate(e, "shout_probe_sent", "Probes sent", |f| f.sent)?;
        fate(e, "shout_probe_answered", "Probes answered in time (first reply)", |f| f.answered)?;
        let mut m = e.encode_descriptor(
            "shout_probe_lost",
            "Probes given up after their timeout, by the direction they were lost in where a stateful STAMP reflector tells",
            None,
            MetricType::Counter,
        )?;
        for (t, f) in self.table.targets.iter().zip(&fates) {
            for (d, v) in ["forward", "backward", "unknown"].into_iter().zip(f.lost) {
                ConstCounter::new(v).encode(m.encode_family(&with(
                    labels(t),
                    "direction",
                    d,
                ))?)?;
            }
        }
        self.counter(e, "shout_probe_duplicated", "Replies beyond the first to a probe", |t| {
            read(&t.stats.duplicated)
        })?;
        self.counter(
            e,
            "shout_probe_reordered",
            "First replies to a probe older than one already answered",
            |t| read(&t.stats.reordered),
        )?;
        self.counter(e, "shout_probe_late", "Replies to probes already counted lost", |t| {
            read(&t.stats.late)
        })?;
        self.counter(
            e,
            "shout_probe_mismatched",
            "Datagrams that answer no probe of the target",
            |t| read(&t.stats.mismatched),
        )?;
        self.counter(
            e,
            "shout_probe_unreachable",
            "ICMP destination unreachable about the target's probes",
            |t| read(&t.stats.unreachable),
        )?;
        {
            let mut m = e.encode_descriptor(
                "shout_probe_in_flight",
                "Probes neither answered nor lost yet (sent = answered + lost + in flight)",
                None,
                MetricType::Gauge,
            )?;
            for (t, f) in self.table.targets.iter().zip(&fates) {
                ConstGauge::new(f.in_flight as i64).encode(m.encode_family(&labels(t))?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "shout_probe_up",
                "1 if the target answered within the last three intervals",
                None,
                MetricType::Gauge,
            )?;
            for t in &self.table.targets {
                ConstGauge::new(i64::from(t.up(self.now_ns)))
                    .encode(m.encode_family(&labels(t))?)?;
            }
        }
        let mut m = e.encode_descriptor(
            "shout_probe_ttl",
            "TTL (hop limit) of the last answer: forward as the STAMP reflector saw our probe, backward as we received its reply",
            None,
            MetricType::Gauge,
        )?;
        for t in &self.table.targets {
            for (d, v) in [("forward", &t.stats.ttl_forward), ("backward", &t.stats.ttl_backward)] {
                let v = v.load(Ordering::Relaxed);
                if v != 0 {
                    ConstGauge::new(i64::from(v)).encode(m.encode_family(&with(
                        labels(t),
                        "direction",
                        d,
                    ))?)?;
                }
            }
        }
        Ok(())
    }
}

impl Collector for Export {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        self.targets(e)?;
        let m = e.encode_descriptor(
            "shout_probe_probes_sent",
            "Probes sent by the agent",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.probes_sent).encode(m)?;
        let m = e.encode_descriptor(
            "shout_probe_scheduling_lag_seconds",
            "How far from its due time each probe left, early or late",
            None,
            MetricType::Histogram,
        )?;
        self.lag.encode(m)?;
        let m = e.encode_descriptor(
            "shout_probe_socket_drops",
            "Replies the kernel dropped on the agent's sockets: receive queue full",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.socket_drops).encode(m)?;
        let m = e.encode_descriptor(
            "shout_probe_unmatched",
            "Datagrams from addresses no target has that name no target",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.unmatched).encode(m)?;
        self.gauge(e, "shout_probe_targets", "Targets probed", self.table.targets.len() as f64)?;
        self.gauge(
            e,
            "shout_probe_config_last_reload_successful",
            "1 if the last configuration reload succeeded",
            if self.reload_ok { 1.0 } else { 0.0 },
        )?;
        self.gauge(
            e,
            "shout_probe_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in seconds since the epoch",
            self.reload_at,
        )?;
        let mut m = e.encode_descriptor(
            "shout_probe_kernel_timestamps",
            "1 when the kernel timestamps probes in this direction, 0 when the agent falls back to its clock",
            None,
            MetricType::Gauge,
        )?;
        for (d, on) in [("rx", self.kernel.0), ("tx", self.kernel.1)] {
            ConstGauge::new(i64::from(on)).encode(m.encode_family(&[("direction", d)])?)?;
        }
        let mut m = e.encode_descriptor(
            "shout_probe_resolve_failures",
            "Times a target's host name failed to resolve",
            None,
            MetricType::Counter,
        )?;
        for (target, n) in &self.resolve_failures {
            ConstCounter::new(*n).encode(m.encode_family(&[("target", escape(target))])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::engine::AgentConfig;
    use super::super::schedule::Rng;
    use super::super::tally::bump;
    use super::super::target::TargetSpec;
    use super::*;
    use crate::metrics::Body;

    fn spec(name: &str, protocol: Protocol, labels: &[(&str, &str)]) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            addr: "127.0.0.1:862".parse().unwrap(),
            protocol,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            size: 44,
            dscp: None,
            ttl: None,
            ssid: 0,
            key: None,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    /// The page in pieces of `want` bytes.
    fn pieces(agent: &Agent, want: usize) -> String {
        let mut page = agent.metrics_page();
        let mut out = Vec::new();
        while page.fill(&mut out, want) {}
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_hand_written_page_is_prometheus_clients_byte_for_byte() {
        let agent = Agent::new(AgentConfig { buckets: vec![0.000_25, 0.001, 0.5, 3.0] }).unwrap();
        assert_eq!(agent.render_metrics(), render(&agent), "no targets");
        let mut specs = vec![
            spec("a", Protocol::Stamp, &[("role", "reference"), ("site", "a\"b\\c\nd")]),
            spec("b\"q", Protocol::Upper, &[]),
            spec("c", Protocol::Echo, &[("z", "")]),
        ];
        specs.extend((0..40).map(|i| {
            let p = [Protocol::Stamp, Protocol::Upper, Protocol::Echo][i % 3];
            spec(&format!("10.0.0.{i}"), p, &[("n", &i.to_string())])
        }));
        agent.apply(specs).unwrap();
        agent.note_resolve_failure("gone\"host");
        agent.set_reload_status(true);
        let mut rng = Rng::seeded(7);
        let h = &agent.health;
        for _ in 0..500 {
            bump(&h.probes_sent, 1);
            h.lag.record(&agent.lag_bounds_ns, rng.below(3_000_000) as i64);
        }
        for (i, t) in agent.table().targets.iter().enumerate() {
            let s = &t.stats;
            for c in [&s.sent, &s.duplicated, &s.reordered, &s.late, &s.mismatched, &s.unreachable]
            {
                bump(c, rng.below(1 << 40));
            }
            bump(&s.answered, rng.below(1000));
            bump(&s.lost_backward, rng.below(3));
            for b in [&s.rtt, &s.forward, &s.backward, &s.turnaround] {
                for _ in 0..rng.below(50) {
                    b.record(&agent.bounds_ns, rng.below(4_000_000_000) as i64 - 10_000_000);
                }
            }
            if i % 4 != 0 {
                s.ttl_forward.store(i as u32, Ordering::Relaxed);
            }
            if i % 3 != 0 {
                s.ttl_backward.store(64, Ordering::Relaxed);
                s.answered_at.store(agent.now_ns().max(1), Ordering::Relaxed);
            }
        }
        let want = render(&agent);
        assert!(want.contains("site=\"a\\\"b\\\\c\\nd\""), "escaped labels in the oracle");
        assert_eq!(agent.render_metrics(), want);
        for piece in [1, 100, 4096] {
            assert_eq!(pieces(&agent, piece), want, "in pieces of {piece} bytes");
        }
    }
}
