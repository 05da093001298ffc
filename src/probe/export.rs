//! [`Agent::metrics_page`]: the Prometheus text of every target's series and
//! of the agent's own health, written a piece at a time as the scrape's
//! connection takes it ([`Body`]), so 10,000 targets' 50 MB are never held
//! whole.
//!
//! The per-target families are written by hand, not through
//! prometheus-client: each target's labels are escaped and joined once, when
//! a reload makes the target (`TargetSpec::label_text`), and the bucket bounds once per
//! scrape, so a series costs a few copies and an integer format. The text is
//! the same, byte for byte, as prometheus-client's (the `export_oracle` tests
//! compare the two); the agent's own few series still go through it.
//!
//! Rendering reads the targets' atomics and the current table (an `Arc`), so
//! a scrape never stops the probing thread; only the table's mutex is taken,
//! once, to clone the `Arc`. A target removed by a reload is not in the table,
//! so its series are gone from the next scrape; one whose scrape is under way
//! keeps the table it began with.

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
use super::tally::{read, Buckets, Fates, Stats};
use super::target::{escape_label, Protocol};
use crate::metrics::Body;

impl Agent {
    /// The metrics in the OpenMetrics text format, made as it is read (for
    /// [`MetricsEndpoint`](crate::metrics::MetricsEndpoint)): per target
    /// `shout_probe_*` series labelled `target` and the target's labels, and
    /// the agent's health. The names are listed in docs/PROBE.md. The agent's
    /// own counters are read now, each target's when its series are written.
    pub fn metrics_page(&self) -> MetricsPage {
        let h = &self.health;
        let mut lag = Vec::new();
        let (lag_count, lag_sum) = h.lag.read(&mut lag);
        let table = self.table();
        let own = Own {
            targets: table.targets.len(),
            lag: Hist::new(&LAG_BUCKETS, lag, lag_count, lag_sum),
            probes_sent: read(&h.probes_sent),
            socket_drops: h.socket_drops.load(Ordering::Relaxed),
            unmatched: read(&h.unmatched),
            reload_ok: h.reload_ok.load(Ordering::Relaxed),
            reload_at: f64::from_bits(h.reload_at.load(Ordering::Relaxed)),
            kernel: self.kernel_timestamps(),
            resolve_failures: self
                .resolve_failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        };
        MetricsPage {
            table,
            les: self.buckets.iter().map(|b| dtoa::Buffer::new().format(*b).into()).collect(),
            now_ns: self.now_ns(),
            own: Some(own),
            fates: Vec::new(),
            family: 0,
            next: 0,
            scratch: Vec::new(),
        }
    }

    /// [`metrics_page`](Agent::metrics_page) whole, as one string.
    pub fn render_metrics(&self) -> String {
        let mut page = self.metrics_page();
        let mut out = Vec::new();
        while page.fill(&mut out, crate::metrics::PIECE) {}
        // Every piece is UTF-8 (names, escaped labels, numbers); a bug otherwise.
        String::from_utf8(out).expect("the metrics text is UTF-8")
    }

    /// Counts one failure to resolve `target`'s host name, for
    /// `shout_probe_resolve_failures_total{target}` (the config's resolver calls it).
    pub fn note_resolve_failure(&self, target: &str) {
        let mut map = self.resolve_failures.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(target.to_string()).or_insert(0) += 1;
    }
}

/// Which of a target's histograms.
type Pick = fn(&Stats) -> &Buckets;

/// What a family writes per target.
#[derive(Clone, Copy)]
enum Series {
    /// Histograms (STAMP targets only when `true`), one per `direction` label
    /// (written after the target's labels, as `,direction="..."`).
    Hist(bool, &'static [(&'static str, Pick)]),
    /// A counter of the consistent reading of the probes' fates.
    Fate(fn(&Fates) -> u64),
    /// `lost` by direction.
    Lost,
    /// A plain counter.
    Counter(fn(&Stats) -> u64),
    InFlight,
    Up,
    Ttl,
}

struct Family {
    name: &'static str,
    help: &'static str,
    series: Series,
}

const FORWARD: &str = ",direction=\"forward\"";
const BACKWARD: &str = ",direction=\"backward\"";
const UNKNOWN: &str = ",direction=\"unknown\"";

/// The per-target families, in the order of the page.
const FAMILIES: &[Family] = &[
    Family {
        name: "shout_probe_rtt_seconds",
        help: "Round-trip time of answered probes",
        series: Series::Hist(false, &[("", |s| &s.rtt)]),
    },
    Family {
        name: "shout_probe_one_way_delay_seconds",
        help: "One-way delay of STAMP probes (meaningful only with synchronised clocks)",
        series: Series::Hist(
            true,
            &[(FORWARD, |s| &s.forward), (BACKWARD, |s| &s.backward)],
        ),
    },
    Family {
        name: "shout_probe_turnaround_seconds",
        help: "Time the STAMP reflector held each probe (its T3 - T2)",
        series: Series::Hist(true, &[("", |s| &s.turnaround)]),
    },
    Family { name: "shout_probe_sent", help: "Probes sent", series: Series::Fate(|f| f.sent) },
    Family {
        name: "shout_probe_answered",
        help: "Probes answered in time (first reply)",
        series: Series::Fate(|f| f.answered),
    },
    Family {
        name: "shout_probe_lost",
        help: "Probes given up after their timeout, by the direction they were lost in where a stateful STAMP reflector tells",
        series: Series::Lost,
    },
    Family {
        name: "shout_probe_duplicated",
        help: "Replies beyond the first to a probe",
        series: Series::Counter(|s| read(&s.duplicated)),
    },
    Family {
        name: "shout_probe_reordered",
        help: "First replies to a probe older than one already answered",
        series: Series::Counter(|s| read(&s.reordered)),
    },
    Family {
        name: "shout_probe_late",
        help: "Replies to probes already counted lost",
        series: Series::Counter(|s| read(&s.late)),
    },
    Family {
        name: "shout_probe_mismatched",
        help: "Datagrams that answer no probe of the target",
        series: Series::Counter(|s| read(&s.mismatched)),
    },
    Family {
        name: "shout_probe_unreachable",
        help: "ICMP destination unreachable about the target's probes",
        series: Series::Counter(|s| read(&s.unreachable)),
    },
    Family {
        name: "shout_probe_in_flight",
        help: "Probes neither answered nor lost yet (sent = answered + lost + in flight)",
        series: Series::InFlight,
    },
    Family {
        name: "shout_probe_up",
        help: "1 if the target answered within the last three intervals",
        series: Series::Up,
    },
    Family {
        name: "shout_probe_ttl",
        help: "TTL (hop limit) of the last answer: forward as the STAMP reflector saw our probe, backward as we received its reply",
        series: Series::Ttl,
    },
];

impl Series {
    fn kind(self) -> &'static str {
        match self {
            Series::Hist(..) => "histogram",
            Series::Fate(_) | Series::Lost | Series::Counter(_) => "counter",
            Series::InFlight | Series::Up | Series::Ttl => "gauge",
        }
    }
}

/// One scrape's text, written as it is read: family by family, target by
/// target, then the agent's own series and `# EOF`. Holds the table it began
/// with and, from the first probe-count family on, one reading of every
/// target's fates (40 bytes a target), so that sent = answered + lost + in
/// flight holds across the families.
pub struct MetricsPage {
    table: Arc<Table>,
    /// The bucket bounds as `le` values.
    les: Vec<Box<str>>,
    now_ns: u64,
    /// The agent's own series, until written.
    own: Option<Own>,
    fates: Vec<Fates>,
    /// Where the page is: `FAMILIES[family]`, at target `next`.
    family: usize,
    next: usize,
    scratch: Vec<u64>,
}

impl fmt::Debug for MetricsPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsPage")
            .field("targets", &self.table.targets.len())
            .field("family", &self.family)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Body for MetricsPage {
    fn fill(&mut self, out: &mut Vec<u8>, want: usize) -> bool {
        let start = out.len();
        let table = Arc::clone(&self.table);
        while out.len() - start < want {
            let Some(family) = FAMILIES.get(self.family) else {
                if let Some(own) = self.own.take() {
                    let mut registry = Registry::default();
                    registry.register_collector(Box::new(own));
                    let mut text = String::new();
                    // Writing into a String cannot fail.
                    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                    out.extend_from_slice(text.as_bytes());
                }
                return false;
            };
            if self.next == 0 {
                for part in ["# HELP ", family.name, " ", family.help, "\n# TYPE ", family.name] {
                    out.extend_from_slice(part.as_bytes());
                }
                for part in [" ", family.series.kind(), "\n"] {
                    out.extend_from_slice(part.as_bytes());
                }
            }
            match table.targets.get(self.next) {
                Some(t) => {
                    self.series(family, t, out);
                    self.next += 1;
                }
                None => {
                    self.family += 1;
                    self.next = 0;
                }
            }
        }
        true
    }
}

/// Appends `name` + `suffix` + `{` + `first` + `labels` + `extra` + `} ` + `value` + newline.
fn line(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    first: &str,
    labels: &str,
    extra: &str,
    value: &str,
) {
    for part in [name, suffix, "{", first, labels, extra, "} ", value, "\n"] {
        out.extend_from_slice(part.as_bytes());
    }
}

impl MetricsPage {
    /// Target `t`'s series of `family`.
    fn series(&mut self, family: &Family, t: &Target, out: &mut Vec<u8>) {
        let (name, labels, s) = (family.name, &*t.labels, &t.stats);
        let mut int = itoa::Buffer::new();
        let counter = |out: &mut Vec<u8>, extra: &str, v: u64| {
            line(out, name, "_total", "", labels, extra, itoa::Buffer::new().format(v));
        };
        match family.series {
            Series::Hist(stamp_only, per_target) => {
                if stamp_only && t.spec.protocol != Protocol::Stamp {
                    return;
                }
                for (direction, buckets) in per_target {
                    self.histogram(out, name, labels, direction, buckets(s));
                }
            }
            Series::Fate(f) => counter(out, "", f(&self.fates())),
            Series::Lost => {
                let lost = self.fates().lost;
                for (d, v) in [FORWARD, BACKWARD, UNKNOWN].into_iter().zip(lost) {
                    counter(out, d, v);
                }
            }
            Series::Counter(f) => counter(out, "", f(s)),
            Series::InFlight => {
                let v = self.fates().in_flight as i64;
                line(out, name, "", "", labels, "", int.format(v));
            }
            Series::Up => {
                line(out, name, "", "", labels, "", int.format(i64::from(t.up(self.now_ns))));
            }
            Series::Ttl => {
                for (d, v) in [(FORWARD, &s.ttl_forward), (BACKWARD, &s.ttl_backward)] {
                    let v = v.load(Ordering::Relaxed);
                    if v != 0 {
                        line(out, name, "", "", labels, d, int.format(i64::from(v)));
                    }
                }
            }
        }
    }

    /// The fates of the target being written, as read when the first family
    /// that needs them began (all targets at once).
    fn fates(&mut self) -> Fates {
        if self.fates.is_empty() {
            self.fates = self.table.targets.iter().map(|t| t.stats.fates()).collect();
        }
        self.fates[self.next]
    }

    /// One histogram: `_sum`, `_count`, then the cumulative `_bucket`s, `le` first.
    fn histogram(&mut self, out: &mut Vec<u8>, name: &str, labels: &str, extra: &str, b: &Buckets) {
        let (count, sum_ns) = b.read(&mut self.scratch);
        let mut int = itoa::Buffer::new();
        line(out, name, "_sum", "", labels, extra, dtoa::Buffer::new().format(sum_ns as f64 / 1e9));
        line(out, name, "_count", "", labels, extra, int.format(count));
        let mut cumulative = 0;
        for (i, c) in self.scratch.iter().enumerate() {
            cumulative += c;
            let le = self.les.get(i).map_or("+Inf", |le| le);
            for part in [name, "_bucket{le=\"", le, "\",", labels, extra, "} "] {
                out.extend_from_slice(part.as_bytes());
            }
            out.extend_from_slice(int.format(cumulative).as_bytes());
            out.push(b'\n');
        }
    }
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

    fn encode(&self, m: prometheus_client::encoding::MetricEncoder<'_>) -> fmt::Result {
        let mut m = m;
        m.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }
}

/// The agent's own series, read when the scrape began.
#[derive(Debug)]
struct Own {
    targets: usize,
    lag: Hist,
    probes_sent: u64,
    socket_drops: u64,
    unmatched: u64,
    reload_ok: bool,
    reload_at: f64,
    kernel: (bool, bool),
    resolve_failures: Vec<(String, u64)>,
}

impl Own {
    fn gauge(&self, e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
        ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
    }
}

impl Collector for Own {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
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
        self.gauge(e, "shout_probe_targets", "Targets probed", self.targets as f64)?;
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
            ConstCounter::new(*n).encode(m.encode_family(&[("target", escaped(target))])?)?;
        }
        Ok(())
    }
}

fn escaped(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_label(v, &mut out);
    out
}
