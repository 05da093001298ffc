//! The Prometheus protobuf exposition, written by hand: a stream of
//! `io.prometheus.client.MetricFamily` messages, each preceded by its length
//! as a varint (`encoding=delimited`), as Prometheus asks for it when native
//! histograms are enabled.
//!
//! Field numbers are those of `metrics.proto` (prometheus/client_model, and
//! Prometheus' own copy in `prompb/io/prometheus/client/metrics.proto`).
//! Only what the agent sends is here: counters, gauges, and histograms with
//! classic buckets and optionally native ones. Every scalar is written even
//! when zero (the file is proto2: a present zero and an absent field read the
//! same, and some readers look at presence); repeated numbers are packed, which
//! every protobuf reader takes.

/// `MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter = 0,
    Gauge = 1,
    Histogram = 4,
}

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

// MetricFamily
const FAMILY_NAME: u32 = 1;
const FAMILY_HELP: u32 = 2;
const FAMILY_TYPE: u32 = 3;
const FAMILY_METRIC: u32 = 4;
// Metric
const METRIC_LABEL: u32 = 1;
const METRIC_GAUGE: u32 = 2;
const METRIC_COUNTER: u32 = 3;
const METRIC_HISTOGRAM: u32 = 7;
// LabelPair
const LABEL_NAME: u32 = 1;
const LABEL_VALUE: u32 = 2;
// Gauge and Counter
const VALUE: u32 = 1;
// Histogram
const H_SAMPLE_COUNT: u32 = 1;
const H_SAMPLE_SUM: u32 = 2;
const H_BUCKET: u32 = 3;
const H_SCHEMA: u32 = 5;
const H_ZERO_THRESHOLD: u32 = 6;
const H_ZERO_COUNT: u32 = 7;
const H_POSITIVE_SPAN: u32 = 12;
const H_POSITIVE_DELTA: u32 = 13;
// Bucket
const B_CUMULATIVE_COUNT: u32 = 1;
const B_UPPER_BOUND: u32 = 2;
// BucketSpan
const SPAN_OFFSET: u32 = 1;
const SPAN_LENGTH: u32 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A nested message: `fill` writes its body into `scratch`, which then goes
/// into `out` after its key and length.
fn message(out: &mut Vec<u8>, field: u32, scratch: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    scratch.clear();
    fill(scratch);
    bytes(out, field, scratch);
}

/// A histogram's native buckets (positive values only).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Native<'a> {
    pub(crate) schema: i32,
    pub(crate) zero_threshold: f64,
    pub(crate) zero_count: u64,
    /// The index of `counts[0]`'s bucket.
    pub(crate) first_index: i32,
    /// Counts of consecutive buckets from `first_index` (zeros allowed anywhere).
    pub(crate) counts: &'a [u64],
}

impl Native<'_> {
    /// Observations in the zero bucket and the others.
    pub(crate) fn total(&self) -> u64 {
        self.zero_count + self.counts.iter().sum::<u64>()
    }
}

/// One histogram series.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Histogram<'a> {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    /// Classic buckets: (upper bound, cumulative count), ascending, without
    /// +Inf (the reader takes `count` for it).
    pub(crate) buckets: &'a [(f64, u64)],
    pub(crate) native: Option<Native<'a>>,
}

/// One `MetricFamily` being written: [`Family::new`], one call per series,
/// then [`Family::finish`].
#[derive(Debug)]
pub(crate) struct Family {
    body: Vec<u8>,
    metric: Vec<u8>,
    scratch: Vec<u8>,
    inner: Vec<u8>,
    kind: Kind,
}

impl Family {
    pub(crate) fn new(name: &str, help: &str, kind: Kind) -> Family {
        let mut body = Vec::new();
        bytes(&mut body, FAMILY_NAME, name.as_bytes());
        bytes(&mut body, FAMILY_HELP, help.as_bytes());
        uint(&mut body, FAMILY_TYPE, kind as u64);
        Family { body, metric: Vec::new(), scratch: Vec::new(), inner: Vec::new(), kind }
    }

    /// Starts a `Metric` with its labels in `self.metric`.
    fn labels<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.metric.clear();
        for (name, value) in labels {
            message(&mut self.metric, METRIC_LABEL, &mut self.scratch, |m| {
                bytes(m, LABEL_NAME, name.as_bytes());
                bytes(m, LABEL_VALUE, value.as_bytes());
            });
        }
    }

    fn push_metric(&mut self) {
        bytes(&mut self.body, FAMILY_METRIC, &self.metric);
    }

    /// A counter's or a gauge's value (the family's kind says which).
    pub(crate) fn value<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        v: f64,
    ) {
        self.labels(labels);
        let field = match self.kind {
            Kind::Counter => METRIC_COUNTER,
            Kind::Gauge => METRIC_GAUGE,
            Kind::Histogram => unreachable!("a histogram family takes histograms"),
        };
        message(&mut self.metric, field, &mut self.scratch, |m| double(m, VALUE, v));
        self.push_metric();
    }

    pub(crate) fn histogram<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        h: &Histogram<'_>,
    ) {
        self.labels(labels);
        let Family { scratch, inner, .. } = self;
        scratch.clear();
        uint(scratch, H_SAMPLE_COUNT, h.count);
        double(scratch, H_SAMPLE_SUM, h.sum);
        for &(upper, cumulative) in h.buckets {
            message(scratch, H_BUCKET, inner, |b| {
                uint(b, B_CUMULATIVE_COUNT, cumulative);
                double(b, B_UPPER_BOUND, upper);
            });
        }
        if let Some(n) = &h.native {
            native(scratch, inner, n);
        }
        bytes(&mut self.metric, METRIC_HISTOGRAM, scratch);
        self.push_metric();
    }

    /// Appends the family, length first, to `out`.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        varint(out, self.body.len() as u64);
        out.extend_from_slice(&self.body);
    }
}

/// The native fields: schema, zero bucket, and the non-empty buckets as spans
/// (runs of buckets; each span's offset is the gap after the previous one,
/// the first's is its start index) with each count as the difference from
/// the previous bucket's.
fn native(h: &mut Vec<u8>, scratch: &mut Vec<u8>, n: &Native<'_>) {
    key(h, H_SCHEMA, VARINT);
    varint(h, zigzag(i64::from(n.schema)));
    double(h, H_ZERO_THRESHOLD, n.zero_threshold);
    uint(h, H_ZERO_COUNT, n.zero_count);
    let mut spans: Vec<(i64, u64)> = Vec::new();
    let mut deltas = Vec::new();
    let (mut end, mut last) = (None::<i64>, 0u64);
    for (i, &c) in n.counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let index = i64::from(n.first_index) + i as i64;
        match (end, spans.last_mut()) {
            (Some(e), Some(span)) if e == index => span.1 += 1,
            _ => spans.push((end.map_or(index, |e| index - e), 1)),
        }
        end = Some(index + 1);
        deltas.push(c as i64 - last as i64);
        last = c;
    }
    if spans.is_empty() {
        // No observation outside the zero bucket: a no-op span still marks it native.
        spans.push((0, 0));
    }
    for (offset, length) in spans {
        message(h, H_POSITIVE_SPAN, scratch, |s| {
            key(s, SPAN_OFFSET, VARINT);
            varint(s, zigzag(offset));
            uint(s, SPAN_LENGTH, length);
        });
    }
    if !deltas.is_empty() {
        scratch.clear();
        for d in deltas {
            varint(scratch, zigzag(d));
        }
        bytes(h, H_POSITIVE_DELTA, scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_are_as_protobuf_writes_them() {
        let enc = |v| {
            let mut out = Vec::new();
            varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(150), [0x96, 0x01], "the protobuf guide's example");
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
        assert_eq!([zigzag(0), zigzag(-1), zigzag(1), zigzag(-2), zigzag(2)], [0, 1, 2, 3, 4]);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn a_counter_family_is_these_bytes() {
        let mut f = Family::new("a_total", "h", Kind::Counter);
        f.value([("t", "x")], 1.0);
        let mut out = Vec::new();
        f.finish(&mut out);
        #[rustfmt::skip]
        let want: &[u8] = &[
            35,                                     // family length
            0x0a, 7, b'a', b'_', b't', b'o', b't', b'a', b'l', // name = 1
            0x12, 1, b'h',                          // help = 2
            0x18, 0,                                // type = 3: COUNTER
            0x22, 19,                               // metric = 4
              0x0a, 6, 0x0a, 1, b't', 0x12, 1, b'x',  // label = 1 {name, value}
              0x1a, 9, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // counter = 3 {value = 1: 1.0}
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn native_buckets_become_spans_and_deltas() {
        let counts = [0, 3, 4, 0, 0, 1, 0];
        let n = Native {
            schema: 4,
            zero_threshold: 0.5,
            zero_count: 2,
            first_index: -10,
            counts: &counts,
        };
        assert_eq!(n.total(), 10);
        let mut h = Vec::new();
        native(&mut h, &mut Vec::new(), &n);
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x28, 8,                                     // schema = 5: zigzag(4)
            0x31, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f,          // zero_threshold = 6: 0.5
            0x38, 2,                                     // zero_count = 7
            0x62, 4, 0x08, 17, 0x10, 2,                  // span {offset zigzag(-9), length 2}
            0x62, 4, 0x08, 4, 0x10, 1,                   // span {offset 2 (gap), length 1}
            0x6a, 3, 6, 2, 5,                            // deltas 3, +1, -3 (packed, zigzag)
        ];
        assert_eq!(h, want);
        let empty = Native { counts: &[0, 0], ..n };
        let mut h = Vec::new();
        native(&mut h, &mut Vec::new(), &empty);
        assert!(h.ends_with(&[0x62, 4, 0x08, 0, 0x10, 0]), "a no-op span: {h:?}");
    }
}
