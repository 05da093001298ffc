//! `shout probe`'s `/metrics` in Prometheus' protobuf exposition, on the real
//! binary over loopback: a scrape with the `Accept` header Prometheus sends
//! with native histograms enabled gets length-delimited `MetricFamily`
//! messages (decoded here by a small decoder of its own) whose round-trip
//! histogram has native buckets as well as classic ones; every other scrape
//! gets the text exactly as before.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{hermetic, Proc, ServerProc, BIN, RECV_TIMEOUT, STARTUP_TIMEOUT};

/// What Prometheus 2.42 sends with `--enable-feature=native-histograms`.
const PROMETHEUS_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// What it sends without.
const PROMETHEUS_TEXT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const WAIT: Duration = Duration::from_secs(10);

/// `shout probe --metrics 127.0.0.1:0 ARGS` and its endpoint.
fn probe(args: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["probe", "--quiet", "--metrics", "127.0.0.1:0"]).args(args);
    hermetic(&mut cmd);
    let mut p = Proc::spawn(cmd);
    let (_, addrs) = p.listening(1, STARTUP_TIMEOUT);
    (p, addrs[0])
}

/// `GET /metrics` with an optional `Accept`; the content type and the body.
fn scrape(addr: SocketAddr, accept: Option<&str>) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, RECV_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}\r\n").unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("the response, to EOF");
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8(response[..end].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("a content type")
        .to_string();
    (content_type, response[end..].to_vec())
}

fn varint(b: &mut &[u8]) -> u64 {
    let mut v = 0;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = b.split_first().expect("a whole varint");
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
    }
    panic!("a varint over 10 bytes")
}

/// A message's fields: number and value (varints and fixed64 as `u64`, the rest as bytes).
fn fields(mut b: &[u8]) -> Vec<(u64, Result<u64, &[u8]>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let v = match key & 7 {
            0 => Ok(varint(&mut b)),
            1 => {
                let (v, rest) = b.split_at(8);
                b = rest;
                Ok(u64::from_le_bytes(v.try_into().unwrap()))
            }
            2 => {
                let len = varint(&mut b) as usize;
                let (v, rest) = b.split_at(len);
                b = rest;
                Err(v)
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, v));
    }
    out
}

fn one(f: &[(u64, Result<u64, &[u8]>)], n: u64) -> Option<u64> {
    f.iter().find(|(k, _)| *k == n).and_then(|(_, v)| v.ok())
}

fn all<'a>(f: &[(u64, Result<u64, &'a [u8]>)], n: u64) -> Vec<&'a [u8]> {
    f.iter().filter(|(k, _)| *k == n).filter_map(|(_, v)| v.err()).collect()
}

fn zigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The native buckets of one histogram: schema, zero threshold, zero count, and (index, count).
fn native(h: &[(u64, Result<u64, &[u8]>)]) -> (i64, f64, u64, Vec<(i64, u64)>) {
    let schema = zigzag(one(h, 5).expect("a schema"));
    let threshold = f64::from_bits(one(h, 6).expect("a zero threshold"));
    let zero = one(h, 7).expect("a zero count");
    let packed = all(h, 13).concat();
    let mut d = &packed[..];
    let deltas: Vec<i64> =
        std::iter::from_fn(|| (!d.is_empty()).then(|| zigzag(varint(&mut d)))).collect();
    let (mut buckets, mut index, mut count, mut next) = (Vec::new(), 0, 0, deltas.iter());
    for (i, span) in all(h, 12).into_iter().enumerate() {
        let span = fields(span);
        let offset = zigzag(one(&span, 1).unwrap_or(0));
        index = if i == 0 { offset } else { index + offset };
        for _ in 0..one(&span, 2).unwrap_or(0) {
            count += next.next().expect("a delta per bucket");
            buckets.push((index, count as u64));
            index += 1;
        }
    }
    assert!(next.next().is_none(), "no delta beyond the spans");
    (schema, threshold, zero, buckets)
}

/// A delimited stream of MetricFamily messages: name, type, and each metric's bytes.
fn decode(mut b: &[u8]) -> Vec<(String, u64, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = varint(&mut b) as usize;
        let (family, rest) = b.split_at(len);
        b = rest;
        let f = fields(family);
        let name = String::from_utf8(all(&f, 1)[0].to_vec()).unwrap();
        let metrics = all(&f, 4).into_iter().map(<[u8]>::to_vec).collect();
        out.push((name, one(&f, 3).unwrap_or(0), metrics));
    }
    out
}

#[test]
fn prometheus_asking_for_protobuf_gets_native_round_trip_histograms() {
    let server = ServerProc::spawn(&["--mode", "stamp", "--bind", "127.0.0.1:0", "--quiet"]);
    let target = server.addr().to_string();
    let (_p, metrics) = probe(&[&target, "--interval", "20ms", "--timeout", "1s"]);
    let deadline = Instant::now() + WAIT;
    let (families, metric) = loop {
        let (content_type, body) = scrape(metrics, Some(PROMETHEUS_NATIVE));
        assert_eq!(
            content_type,
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        );
        let families = decode(&body);
        let (_, kind, metrics) = families
            .iter()
            .find(|f| f.0 == "shout_probe_rtt_seconds")
            .expect("a round-trip histogram");
        assert_eq!(*kind, 4, "HISTOGRAM");
        let [metric] = &metrics[..] else { panic!("one target: {metrics:?}") };
        let h = fields(all(&fields(metric), 7)[0]);
        if one(&h, 1).is_some_and(|n| n >= 5) {
            break (families.iter().map(|f| f.0.clone()).collect::<BTreeSet<_>>(), metric.clone());
        }
        assert!(Instant::now() < deadline, "no 5 answers in {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let metric = fields(&metric);
    let label = fields(all(&metric, 1)[0]);
    assert_eq!((all(&label, 1)[0], all(&label, 2)[0]), (&b"target"[..], target.as_bytes()));
    let rtt = fields(all(&metric, 7)[0]);
    let count = one(&rtt, 1).unwrap();
    let (schema, threshold, zero, buckets) = native(&rtt);
    assert_eq!((schema, threshold), (4, 2f64.powi(-20)));
    assert!(!buckets.is_empty(), "loopback round trips are above 1 µs");
    assert_eq!(zero + buckets.iter().map(|b| b.1).sum::<u64>(), count, "every answer in a bucket");
    for (i, _) in &buckets {
        let upper = 2f64.powf(*i as f64 / 16.0);
        assert!((1e-6..2.0).contains(&upper), "bucket {i} up to {upper} s");
    }
    let classic = all(&rtt, 3);
    assert_eq!(classic.len(), 10, "the ten default buckets too (+Inf is the count)");
    let last = fields(classic[9]);
    assert_eq!(f64::from_bits(one(&last, 2).unwrap()), 2.0);
    assert!(one(&last, 1).unwrap() <= count);
    for name in [
        "shout_probe_sent_total",
        "shout_probe_lost_total",
        "shout_probe_one_way_delay_seconds",
        "shout_probe_up",
        "shout_probe_scheduling_lag_seconds",
        "shout_probe_config_last_reload_successful",
        "shout_probe_resolve_failures_total",
    ] {
        assert!(families.contains(name), "{name} in {families:?}");
    }
}

#[test]
fn every_other_scrape_gets_the_same_text() {
    // Nothing answers, and one probe an hour: the text does not change between scrapes.
    let (_p, metrics) = probe(&["127.0.0.1:9", "--protocol", "echo", "--interval", "1h"]);
    let (content_type, plain) = scrape(metrics, None);
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = String::from_utf8(plain.clone()).unwrap();
    assert!(text.contains("# TYPE shout_probe_rtt_seconds histogram"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    for accept in [PROMETHEUS_TEXT, "*/*", "text/plain;version=0.0.4", "application/json"] {
        let (ct, body) = scrape(metrics, Some(accept));
        assert_eq!(
            (ct.as_str(), body.as_slice()),
            (content_type.as_str(), plain.as_slice()),
            "{accept}"
        );
    }
    let (ct, body) = scrape(metrics, Some(PROMETHEUS_NATIVE));
    assert!(ct.starts_with("application/vnd.google.protobuf"), "{ct}");
    assert!(!body.ends_with(b"# EOF\n"));
}
