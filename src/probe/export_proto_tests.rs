//! The protobuf scrape against the text one of the same agent: every series,
//! help and type alike; and the native buckets against the values recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::super::engine::{Agent, AgentConfig};
use super::super::tally::{bump, native_index, native_upper, ZERO_THRESHOLD};
use super::super::target::{Protocol, TargetSpec};

/// A protobuf field's value.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Int(u64),
    F64(f64),
    Bytes(&'a [u8]),
}

fn varint(b: &mut &[u8]) -> u64 {
    let mut v = 0;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = b.split_first().expect("a truncated varint");
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
    }
    panic!("a varint over 10 bytes");
}

/// A message's fields in order.
fn fields(mut b: &[u8]) -> Vec<(u64, Val<'_>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let val = match key & 7 {
            0 => Val::Int(varint(&mut b)),
            1 => {
                let (v, rest) = b.split_at(8);
                b = rest;
                Val::F64(f64::from_le_bytes(v.try_into().unwrap()))
            }
            2 => {
                let len = varint(&mut b) as usize;
                let (v, rest) = b.split_at(len);
                b = rest;
                Val::Bytes(v)
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, val));
    }
    out
}

fn get<'a>(f: &[(u64, Val<'a>)], n: u64) -> Vec<Val<'a>> {
    f.iter().filter(|(k, _)| *k == n).map(|(_, v)| *v).collect()
}
fn int(f: &[(u64, Val<'_>)], n: u64) -> u64 {
    match get(f, n)[..] {
        [Val::Int(v)] => v,
        ref other => panic!("field {n}: {other:?}"),
    }
}
fn float(f: &[(u64, Val<'_>)], n: u64) -> f64 {
    match get(f, n)[..] {
        [Val::F64(v)] => v,
        ref other => panic!("field {n}: {other:?}"),
    }
}
fn text(v: Val<'_>) -> String {
    match v {
        Val::Bytes(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    }
}
fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

type Labels = BTreeMap<String, String>;
/// Series name and labels (`le` as a number), and value.
type Samples = BTreeMap<(String, Labels), f64>;
/// Family name as the text's `# TYPE` has it: help and type.
type Meta = BTreeMap<String, (String, String)>;

/// The native buckets of a decoded histogram: zero count and (index, count).
type NativeBuckets = (u64, Vec<(i64, u64)>);

fn le(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// Decodes a delimited stream of MetricFamily messages.
fn decode(mut b: &[u8]) -> (Samples, Meta, BTreeMap<(String, Labels), NativeBuckets>) {
    let (mut samples, mut meta, mut natives) = (Samples::new(), Meta::new(), BTreeMap::new());
    while !b.is_empty() {
        let len = varint(&mut b) as usize;
        let (family, rest) = b.split_at(len);
        b = rest;
        let f = fields(family);
        let name = text(get(&f, 1)[0]);
        let kind = ["counter", "gauge", "summary", "untyped", "histogram"][int(&f, 3) as usize];
        let base = if kind == "counter" { name.strip_suffix("_total").unwrap() } else { &name };
        meta.insert(base.to_string(), (text(get(&f, 2)[0]), kind.to_string()));
        for m in get(&f, 4) {
            let Val::Bytes(m) = m else { panic!("metric") };
            let m = fields(m);
            let labels: Labels = get(&m, 1)
                .into_iter()
                .map(|l| {
                    let Val::Bytes(l) = l else { panic!("label") };
                    let l = fields(l);
                    (text(get(&l, 1)[0]), text(get(&l, 2)[0]))
                })
                .collect();
            let field = match kind {
                "counter" => 3,
                "gauge" => 2,
                _ => 7,
            };
            let [Val::Bytes(body)] = get(&m, field)[..] else { panic!("{name}: field {field}") };
            let body = fields(body);
            if kind != "histogram" {
                let again = samples.insert((name.clone(), labels), float(&body, 1));
                assert!(again.is_none(), "{name}: a series twice");
                continue;
            }
            let count = int(&body, 1);
            for bucket in get(&body, 3) {
                let Val::Bytes(bucket) = bucket else { panic!("bucket") };
                let bucket = fields(bucket);
                let mut l = labels.clone();
                l.insert("le".into(), le(float(&bucket, 2)));
                samples.insert((format!("{name}_bucket"), l), int(&bucket, 1) as f64);
            }
            let mut l = labels.clone();
            l.insert("le".into(), "+Inf".into());
            samples.insert((format!("{name}_bucket"), l), count as f64);
            let again = samples.insert((format!("{name}_count"), labels.clone()), count as f64);
            assert!(again.is_none(), "{name}: a series twice");
            samples.insert((format!("{name}_sum"), labels.clone()), float(&body, 2));
            if get(&body, 5).is_empty() {
                continue;
            }
            assert_eq!(unzigzag(int(&body, 5)), 4, "schema");
            assert_eq!(float(&body, 6), ZERO_THRESHOLD);
            let mut buckets = Vec::new();
            let deltas = match get(&body, 13)[..] {
                [Val::Bytes(mut d)] => {
                    std::iter::from_fn(|| (!d.is_empty()).then(|| unzigzag(varint(&mut d))))
                        .collect()
                }
                [] => Vec::new(),
                ref other => panic!("deltas {other:?}"),
            };
            let (mut deltas, mut index, mut count_now) = (deltas.into_iter(), 0i64, 0i64);
            for (i, span) in get(&body, 12).into_iter().enumerate() {
                let Val::Bytes(span) = span else { panic!("span") };
                let span = fields(span);
                let offset = unzigzag(int(&span, 1));
                index = if i == 0 { offset } else { index + offset };
                for _ in 0..int(&span, 2) {
                    count_now += deltas.next().expect("a delta per bucket");
                    buckets.push((index, count_now as u64));
                    index += 1;
                }
            }
            assert!(deltas.next().is_none(), "no delta beyond the spans");
            let zero = int(&body, 7);
            let total = zero + buckets.iter().map(|b| b.1).sum::<u64>();
            assert_eq!(total, count, "{name}: native buckets hold every observation");
            natives.insert((name.clone(), labels), (zero, buckets));
        }
    }
    (samples, meta, natives)
}

/// The OpenMetrics text as the same samples, help and types.
fn parse_text(page: &str) -> (Samples, Meta) {
    let (mut samples, mut meta) = (Samples::new(), Meta::new());
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            meta.entry(name.to_string()).or_default().0 = help.to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            meta.entry(name.to_string()).or_default().1 = kind.to_string();
            continue;
        }
        if line == "# EOF" || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, mut labels) = (series.split('{').next().unwrap().to_string(), Labels::new());
        if let Some(body) = series.strip_prefix(&name).and_then(|s| s.strip_prefix('{')) {
            let mut chars = body.chars();
            loop {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                if key.is_empty() || key == "}" {
                    break;
                }
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.push(match chars.next().unwrap() {
                            'n' => '\n',
                            c => c,
                        }),
                        c => value.push(c),
                    }
                }
                if key == "le" && value != "+Inf" {
                    value = le(value.parse().unwrap());
                }
                labels.insert(key, value);
                if chars.next() != Some(',') {
                    break;
                }
            }
        }
        samples.insert((name, labels), value.parse().unwrap());
    }
    (samples, meta)
}

fn spec(name: &str, protocol: Protocol, labels: &[(&str, &str)]) -> TargetSpec {
    TargetSpec {
        name: name.into(),
        addr: SocketAddr::from(([192, 0, 2, 1], 862)),
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

#[test]
fn protobuf_has_every_series_of_the_text_and_native_rtt_buckets() {
    let agent = Agent::new(AgentConfig::default()).unwrap();
    agent
        .apply(vec![
            spec("192.0.2.1", Protocol::Stamp, &[("site", "a\"b\\c\nd")]),
            spec("echo.example:7", Protocol::Echo, &[]),
        ])
        .unwrap();
    let table = agent.table();
    let (stamp, echo) = (&table.targets[0].stats, &table.targets[1].stats);
    let rtts = [0u64, 700, 41_000, 41_300, 120_000, 3_000_000_000];
    for ns in rtts {
        stamp.quantiles.record(ns);
        stamp.rtt.record(&agent.bounds_ns, ns as i64);
    }
    for v in [-2_000_000, 30_000] {
        stamp.forward.record(&agent.bounds_ns, v);
    }
    stamp.turnaround.record(&agent.bounds_ns, 5_000);
    bump(&stamp.sent, 9);
    bump(&stamp.answered, 6);
    bump(&stamp.lost_backward, 2);
    bump(&echo.sent, 3);
    bump(&echo.mismatched, 4);
    stamp.ttl_forward.store(61, std::sync::atomic::Ordering::Relaxed);
    agent.health.lag_quantiles.record(20_000);
    agent.health.lag.record(&agent.lag_bounds_ns, 20_000);
    agent.note_resolve_failure("echo.example:7");

    let (want, want_meta) = parse_text(&agent.render_metrics());
    let (got, got_meta, natives) = decode(&agent.render_metrics_protobuf());
    let names = |s: &Samples| s.keys().map(|k| k.0.clone()).collect::<BTreeSet<_>>();
    assert_eq!(names(&got), names(&want), "the same series names");
    assert_eq!(got, want, "the same series and values");
    assert_eq!(got_meta, want_meta, "the same help and types");
    assert!(want.len() > 80, "{} series", want.len());

    let labels: Labels = [("target", "192.0.2.1"), ("site", "a\"b\\c\nd")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let (zero, buckets) = &natives[&("shout_probe_rtt_seconds".to_string(), labels)];
    assert_eq!(*zero, 2, "0 and 700 ns are within the zero bucket");
    let mut want_buckets: BTreeMap<i64, u64> = BTreeMap::new();
    for ns in &rtts[2..] {
        let i = native_index(*ns as f64 / 1e9);
        assert!(native_upper(i - 1) < *ns as f64 / 1e9 && *ns as f64 / 1e9 <= native_upper(i));
        *want_buckets.entry(i64::from(i)).or_default() += 1;
    }
    assert_eq!(buckets.iter().copied().collect::<BTreeMap<_, _>>(), want_buckets);
    assert_eq!(want_buckets.len(), 3, "41 and 41.3 µs share a bucket (39.58 to 41.33 µs)");
    let lag = &natives[&("shout_probe_scheduling_lag_seconds".to_string(), Labels::new())];
    assert_eq!(lag.1, [(i64::from(native_index(20e-6)), 1)]);
    let echo_labels: Labels = [("target".to_string(), "echo.example:7".to_string())].into();
    let (zero, buckets) = &natives[&("shout_probe_rtt_seconds".to_string(), echo_labels)];
    assert_eq!((*zero, buckets.len()), (0, 0), "no answer yet: still native, no buckets");
    assert_eq!(natives.len(), 3, "round trips and lag only; the delays are classic");
}

#[test]
fn a_page_of_many_targets_comes_in_groups_with_every_series_once() {
    use crate::metrics::{Body, PIECE};
    use crate::probe::GROUP;
    let agent = Agent::new(AgentConfig::default()).unwrap();
    let n = 2 * GROUP + 88;
    let specs = (0..n)
        .map(|i| spec(&format!("192.0.2.{}:{}", i % 250 + 1, 1000 + i), Protocol::Stamp, &[]))
        .collect();
    agent.apply(specs).unwrap();
    for (i, t) in agent.table().targets.iter().enumerate() {
        bump(&t.stats.sent, i as u64);
        t.stats.quantiles.record(40_000 + i as u64);
        t.stats.rtt.record(&agent.bounds_ns, 40_000 + i as i64);
    }
    // A piece at a time, as the endpoint takes it: more than one piece, and
    // together the same bytes as the whole page.
    let mut page = agent.metrics_page_protobuf();
    let (mut streamed, mut pieces) = (Vec::new(), 0);
    loop {
        let mut piece = Vec::new();
        let more = page.fill(&mut piece, PIECE);
        assert!(piece.len() < 4 * PIECE, "a piece of {} bytes", piece.len());
        streamed.extend_from_slice(&piece);
        pieces += 1;
        if !more {
            break;
        }
    }
    assert!(pieces > 3, "{pieces} pieces");
    assert_eq!(streamed, agent.render_metrics_protobuf());
    // Each per-target family comes once per group; every series once.
    let (want, want_meta) = parse_text(&agent.render_metrics());
    let (got, got_meta, natives) = decode(&streamed);
    assert_eq!(got, want, "the same series and values");
    assert_eq!(got_meta, want_meta);
    assert_eq!(natives.len(), n + 1, "each target's round trips, and the lag");
    let sent = got.keys().filter(|k| k.0 == "shout_probe_sent_total").count();
    assert_eq!(sent, n);
}
