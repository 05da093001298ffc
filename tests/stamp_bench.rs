//! `shout bench --stamp` against STAMP reflectors running in this process: a
//! thread with a UdpSocket and `shout::stamp::Reflector`, stateless or
//! stateful, unauthenticated or authenticated, NTP or PTP, with TLVs; and
//! reflectors that misbehave on purpose (dropping requests or replies,
//! repeating or reordering replies, signing with the wrong key), to check
//! every field the bench reports from what they sent back.

use crate::common;

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use common::{Scratch, StopOnDrop};
use serde_json::Value;
use shout::bench::{
    self, BenchConfig, Load, Report, StampConfig, StampReport, TlvResult, STAMP_JSON_FIELDS,
};
use shout::stamp::{
    Arrival, AuthMode, Reflector, ReflectorConfig, SenderConfig, TimestampFormat, TlvRequest,
};
use shout::test_seam::{self as sys, RecvMeta};

const KEY: &[u8] = b"a shared STAMP key for the tests";
/// The TTL the test reflectors send with: the bench must see it on the replies.
const REFLECTOR_TTL: u32 = 77;

/// How a test reflector answers, and how it misbehaves.
#[derive(Clone, Default)]
struct Knobs {
    stateful: bool,
    key: Option<Vec<u8>>,
    format: TimestampFormat,
    /// Never reflect the requests numbered k-1, 2k-1, ... (forward loss: a
    /// stateful reflector does not count them).
    drop_request_every: Option<u64>,
    /// Reflect every request but do not send replies k-1, 2k-1, ... (backward loss).
    drop_reply_every: Option<u64>,
    /// Send every reply twice.
    duplicate: bool,
    /// Hold each even-numbered reply back until the next one has gone.
    reorder: bool,
    /// Spoil each reply's HMAC (a reflector with another key).
    spoil_hmac: bool,
    /// With `key`: unauthenticated base packets, the key only for HMAC TLVs.
    key_for_tlvs_only: bool,
    /// Flip the last octet of each reply (inside a trailing HMAC TLV).
    spoil_last_octet: bool,
    /// Listen on [::1] instead of 127.0.0.1.
    ipv6: bool,
    /// Resize each reply to these lengths in turn (cut, or zero-padded), as a
    /// TWAMP-Light reflector that pads its own way, or to a random IMIX.
    pad_to: Vec<usize>,
}

/// What the reflector did.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    dropped_requests: AtomicU64,
    dropped_replies: AtomicU64,
    /// TTL of the last request, as the reflector's socket saw it.
    last_ttl: AtomicU64,
}

/// Runs `f` with the address of a STAMP reflector thread, and its counts.
fn with_reflector(knobs: Knobs, f: impl FnOnce(SocketAddr, &Counts)) {
    let sock = UdpSocket::bind(if knobs.ipv6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    if knobs.ipv6 {
        socket2::SockRef::from(&sock).set_unicast_hops_v6(REFLECTOR_TTL).unwrap();
    } else {
        sock.set_ttl(REFLECTOR_TTL).unwrap();
    }
    sys::enable_ttl_tos(&sock, knobs.ipv6).unwrap();
    let addr = sock.local_addr().unwrap();
    let config = ReflectorConfig {
        mode: if knobs.key.is_some() && !knobs.key_for_tlvs_only {
            AuthMode::Authenticated
        } else {
            AuthMode::Unauthenticated
        },
        auth_key: knobs.key.clone(),
        stateful: knobs.stateful,
        format: knobs.format,
        ..ReflectorConfig::default()
    };
    let mut reflector = Reflector::new(config).unwrap();
    let stop = AtomicBool::new(false);
    let counts = Counts::default();
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = vec![0u8; 65_536];
            let mut held: Option<(Vec<u8>, SocketAddr)> = None;
            let mut reflected = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut meta = [RecvMeta::default(); 1];
                let mut bufs = [IoSliceMut::new(&mut buf)];
                let n = match sys::recv_batch(&sock, &mut bufs, &mut meta, true) {
                    Ok(n) => n,
                    Err(_) => continue, // the read timeout: look at `stop`
                };
                if n == 0 {
                    continue;
                }
                let m = meta[0];
                let nth = counts.requests.fetch_add(1, Ordering::Relaxed);
                counts.last_ttl.store(m.ttl.map_or(0, u64::from), Ordering::Relaxed);
                if knobs.drop_request_every.is_some_and(|k| nth % k == k - 1) {
                    counts.dropped_requests.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let rx =
                    Arrival { src: m.addr, received: SystemTime::now(), ttl: m.ttl, tos: m.tos };
                let Ok(len) = reflector.reflect(&mut buf, m.len, &rx) else {
                    continue;
                };
                let mine = reflected;
                reflected += 1;
                if knobs.drop_reply_every.is_some_and(|k| mine % k == k - 1) {
                    counts.dropped_replies.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if knobs.spoil_hmac {
                    // The base packet's HMAC: octets 96..112 of the authenticated layout.
                    buf[100] ^= 0xFF;
                }
                if knobs.spoil_last_octet {
                    buf[len - 1] ^= 0xFF;
                }
                let len = match knobs.pad_to.len() {
                    0 => len,
                    n => {
                        let to = knobs.pad_to[mine as usize % n];
                        buf[len.min(to)..to].fill(0);
                        to
                    }
                };
                let reply = &buf[..len];
                if knobs.reorder && mine.is_multiple_of(2) {
                    held = Some((reply.to_vec(), m.addr));
                    continue;
                }
                let _ = sock.send_to(reply, m.addr);
                if knobs.duplicate {
                    let _ = sock.send_to(reply, m.addr);
                }
                if let Some((earlier, to)) = held.take() {
                    let _ = sock.send_to(&earlier, to);
                }
            }
        });
        let _stop = StopOnDrop(&stop);
        f(addr, &counts);
    });
}

fn stamp_config(addr: SocketAddr, sender: SenderConfig, stateful: bool) -> BenchConfig {
    let stamp = StampConfig { sender, stateful };
    BenchConfig {
        target: addr,
        size: stamp.packet_len().unwrap(),
        load: Load::Window(4),
        duration: Duration::from_millis(400),
        timeout: Duration::from_millis(100),
        stamp: Some(stamp),
        ..BenchConfig::default()
    }
}

fn run(config: &BenchConfig) -> (Report, StampReport) {
    let report = bench::run(config).unwrap();
    let stamp = report.stamp.clone().expect("a stamp section with --stamp");
    (report, stamp)
}

/// The checks every clean run passes: all answered, TTLs, delays within RTT.
fn assert_clean(report: &Report, stamp: &StampReport) {
    assert!(report.sent > 20, "{report:#?}");
    assert_eq!(report.answered, report.sent, "{report:#?}");
    assert_eq!((report.lost, report.mismatched, report.duplicated), (0, 0, 0), "{report:#?}");
    assert_eq!(report.expect, "stamp");
    assert_eq!(stamp.auth_failed, 0);
    assert_eq!(stamp.unsplit_lost, 0);
    let fwd = stamp.forward_ttl.expect("the reflector reports the TTL it saw");
    assert_eq!(
        (fwd.min, fwd.max, fwd.hops_min),
        (255, 255, 0),
        "sent with 255, no hop on loopback"
    );
    let back = stamp.backward_ttl.expect("the bench reads the replies' TTL");
    assert_eq!((back.min, back.max), (REFLECTOR_TTL as u8, REFLECTOR_TTL as u8));
    assert_eq!(back.hops_min, 255 - REFLECTOR_TTL as u8);
    let rtt = report.rtt_us.expect("round trips");
    assert!(rtt.min > 0.0 && rtt.p50 < 100_000.0, "{rtt:?}");
    // One host, one clock: the one-way delays are real, and within a round trip
    // (plus the time between taking the clocks and the sockets' calls).
    for d in [stamp.forward_us, stamp.backward_us, stamp.turnaround_us] {
        let d = d.expect("timestamps to compare");
        assert!(d.min >= -1_000.0, "{d:?}");
        assert!(d.p50 <= rtt.p50 + 2_000.0 && d.max <= rtt.max + 5_000.0, "{d:?} vs {rtt:?}");
    }
    let net = stamp.rtt_net_us.expect("rtt minus turnaround");
    assert!(net.p50 <= rtt.p50 + 1.0, "{net:?} vs {rtt:?}");
}

#[test]
fn stateless_unauthenticated_ntp() {
    with_reflector(Knobs::default(), |addr, counts| {
        let config = stamp_config(addr, SenderConfig::default(), false);
        assert_eq!(config.size, 44, "the unauthenticated base packet");
        let (report, stamp) = run(&config);
        assert_clean(&report, &stamp);
        assert_eq!(counts.last_ttl.load(Ordering::Relaxed), 255, "the bench sends with TTL 255");
        assert_eq!(counts.requests.load(Ordering::Relaxed), report.sent);
        assert_eq!((stamp.mode, stamp.timestamp, stamp.ssid), ("unauthenticated", "ntp", 0));
        assert!(!stamp.reflector_stateful, "a stateless reflector copies our numbers");
        assert_eq!(stamp.reflector_own_seq, 0);
        assert_eq!((stamp.forward_lost, stamp.backward_lost), (None, None));
        assert_eq!(stamp.tlv_results, None, "no TLVs sent, none to report on");
    });
}

#[test]
fn ipv6_hop_limits_both_ways() {
    if !common::ipv6_loopback_available() {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    }
    with_reflector(Knobs { ipv6: true, ..Knobs::default() }, |addr, counts| {
        let (report, stamp) = run(&stamp_config(addr, SenderConfig::default(), false));
        assert_clean(&report, &stamp);
        assert_eq!(counts.last_ttl.load(Ordering::Relaxed), 255, "hop limit 255 on IPv6 too");
    });
}

#[test]
fn stateful_authenticated_ptp_with_tlvs_and_padding() {
    let knobs = Knobs {
        stateful: true,
        key: Some(KEY.to_vec()),
        format: TimestampFormat::Ptp,
        ..Knobs::default()
    };
    with_reflector(knobs, |addr, _| {
        let sender = SenderConfig {
            mode: AuthMode::Authenticated,
            auth_key: Some(KEY.to_vec()),
            ssid: 4242,
            format: TimestampFormat::Ptp,
            tlvs: vec![
                TlvRequest::TimestampInfo,
                TlvRequest::ClassOfService { dscp: 0 },
                TlvRequest::DirectMeasurement,
            ],
            size: 300,
            ..SenderConfig::default()
        };
        let mut config = stamp_config(addr, sender, true);
        config.load = Load::Rate(500.0);
        assert_eq!(config.size, 300);
        let (report, stamp) = run(&config);
        assert_clean(&report, &stamp);
        assert!(report.rate.is_some() && report.size == 300, "{report:#?}");
        assert_eq!((stamp.mode, stamp.timestamp, stamp.ssid), ("authenticated", "ptp", 4242));
        assert_eq!(stamp.tlvs, ["timestamp-info", "cos", "direct"]);
        assert!(stamp.reflector_stateful);
        assert_eq!((stamp.forward_lost, stamp.backward_lost), (Some(0), Some(0)));
        // Every TLV processed on every reply: U cleared, no M, no I.
        let t = stamp.tlv_results.expect("TLVs sent: a TLV result");
        assert_eq!((t.replies, t.hmac_failed), (report.answered, 0), "{t:#?}");
        let got: Vec<(&str, u8, u64, [u64; 3])> = t.types.iter().map(summary).collect();
        let n = report.answered;
        let want =
            [("timestamp-info", 3, n, [0; 3]), ("cos", 4, n, [0; 3]), ("direct", 5, n, [0; 3])];
        assert_eq!(got, want, "{t:#?}");
    });
}

/// A TLV type's result as (name, type, returned, [U, M, I]).
fn summary(r: &TlvResult) -> (&'static str, u8, u64, [u64; 3]) {
    (r.name, r.kind, r.returned, [r.unrecognized, r.malformed, r.integrity_failed])
}

#[test]
fn the_report_tells_which_tlvs_the_reflector_knew() {
    with_reflector(Knobs::default(), |addr, counts| {
        let sender = SenderConfig {
            tlvs: vec![
                TlvRequest::TimestampInfo,
                // Type 200 is unassigned: the reflector leaves the sender's U flag set.
                TlvRequest::Raw { kind: 200, len: 8 },
                TlvRequest::FollowUpTelemetry,
                // Access Report has 4 octets, not 2: malformed, marked M. The
                // reflector copies what follows a malformed TLV untouched, so it goes last.
                TlvRequest::Raw { kind: 6, len: 2 },
            ],
            ..SenderConfig::default()
        };
        let (report, stamp) = run(&stamp_config(addr, sender, false));
        assert_clean(&report, &stamp);
        let n = report.answered;
        assert_eq!(counts.requests.load(Ordering::Relaxed), report.sent);
        let t = stamp.tlv_results.expect("TLVs sent: a TLV result");
        assert_eq!((t.replies, t.hmac_failed), (n, 0), "{t:#?}");
        let got: Vec<_> = t.types.iter().map(summary).collect();
        let want = [
            ("timestamp-info", 3, n, [0, 0, 0]),
            ("raw", 200, n, [n, 0, 0]),
            ("follow-up", 7, n, [0, 0, 0]),
            ("raw", 6, n, [0, n, 0]),
        ];
        assert_eq!(got, want, "{t:#?}");
        let table = report.to_string();
        assert!(
            table.contains(&format!(
                "tlv timestamp-info back on {n} of {n} replies, none flagged\n"
            )),
            "{table}"
        );
        assert!(
            table.contains(&format!(
                "tlv type 200 back on {n} of {n} replies: {n} unrecognized (U)\n"
            )),
            "{table}"
        );
        assert!(
            table.contains(&format!("tlv type 6  back on {n} of {n} replies: {n} malformed (M)\n")),
            "{table}"
        );
    });
}

#[test]
fn replies_whose_hmac_tlv_fails_are_counted_not_used() {
    let knobs = Knobs {
        key: Some(KEY.to_vec()),
        key_for_tlvs_only: true,
        spoil_last_octet: true,
        ..Knobs::default()
    };
    with_reflector(knobs, |addr, counts| {
        let sender = SenderConfig {
            auth_key: Some(KEY.to_vec()),
            tlvs: vec![TlvRequest::TimestampInfo],
            ..SenderConfig::default()
        };
        let (report, stamp) = run(&stamp_config(addr, sender, false));
        assert_eq!(report.answered, 0, "{report:#?}");
        let replies = counts.requests.load(Ordering::Relaxed);
        assert!(replies > 0);
        let t = stamp.tlv_results.expect("TLVs sent: a TLV result");
        assert_eq!((t.replies, t.hmac_failed), (0, replies), "{t:#?}");
        assert_eq!(stamp.auth_failed, replies, "also an authentication failure");
        assert_eq!(report.mismatched, replies);
        assert_eq!(summary(&t.types[0]), ("timestamp-info", 3, 0, [0; 3]), "not counted");
        assert!(report.to_string().contains(&format!("tlv hmac    failed on {replies} replies")));
    });
}

/// A reflector that pads its replies its own way: longer, shorter (base
/// packet only, as TWAMP-Light may answer a padded request), or a mix of
/// sizes. Every reply that parses and carries our number is an answer, and
/// the report says which sizes came back.
#[test]
fn replies_padded_differently_are_answers_with_their_sizes_reported() {
    let cases: [(&[usize], usize, usize, &[usize]); 3] = [
        (&[100], 100, 100, &[100]),
        (&[44], 44, 44, &[44]),
        (&[64, 9000, 594, 1518], 64, 9000, &[64, 594, 1518, 9000]),
    ];
    for (pad_to, min, max, seen) in cases {
        let knobs = Knobs { pad_to: pad_to.to_vec(), ..Knobs::default() };
        with_reflector(knobs, |addr, counts| {
            // 200-byte test packets (Extra Padding), so a 44-byte reply is shorter.
            let sender = SenderConfig { size: 200, ..SenderConfig::default() };
            let (report, stamp) = run(&stamp_config(addr, sender, false));
            assert_clean(&report, &stamp);
            assert_eq!(counts.requests.load(Ordering::Relaxed), report.sent);
            let sizes = stamp.reply_sizes.clone().expect("sizes differed: reported");
            assert_eq!(sizes.differed, report.answered, "{pad_to:?}: {sizes:?}");
            assert_eq!((sizes.min, sizes.max, &sizes.seen[..]), (min, max, seen), "{sizes:?}");
            let table = report.to_string();
            let range = if min == max { format!("{min} B") } else { format!("{min}-{max} B") };
            let line =
                format!("reply size  {} replies not 200 B as sent: {range}", report.answered);
            assert!(table.contains(&line), "{line:?} in:\n{table}");
            let json = serde_json::to_value(&report).unwrap();
            assert_eq!(json["stamp"]["reply_sizes"]["seen"], serde_json::json!(seen), "{json}");
        });
    }
    // Replies of the size sent: nothing to say.
    with_reflector(Knobs::default(), |addr, _| {
        let (report, stamp) = run(&stamp_config(addr, SenderConfig::default(), false));
        assert_clean(&report, &stamp);
        assert_eq!(stamp.reply_sizes, None);
        assert!(!report.to_string().contains("reply size"), "{report}");
    });
}

#[test]
fn forward_loss_is_told_from_a_stateful_reflectors_numbers() {
    let knobs = Knobs { stateful: true, drop_request_every: Some(10), ..Knobs::default() };
    with_reflector(knobs, |addr, counts| {
        // Not declared stateful: its numbers show it.
        let (report, stamp) = run(&stamp_config(addr, SenderConfig::default(), false));
        let dropped = counts.dropped_requests.load(Ordering::Relaxed);
        assert!(dropped >= 2, "{report:#?}");
        assert_eq!(report.lost, dropped, "{report:#?}");
        assert!(stamp.reflector_stateful && stamp.reflector_own_seq > 0, "{stamp:#?}");
        let (fwd, back) = (stamp.forward_lost.unwrap(), stamp.backward_lost.unwrap());
        assert_eq!(back, 0, "{stamp:#?}");
        assert_eq!(fwd + stamp.unsplit_lost, dropped, "{stamp:#?}");
        assert!(stamp.unsplit_lost <= 1, "only a drop after the last answer: {stamp:#?}");
    });
}

#[test]
fn backward_loss_is_told_from_a_stateful_reflectors_numbers() {
    let knobs = Knobs { stateful: true, drop_reply_every: Some(10), ..Knobs::default() };
    with_reflector(knobs, |addr, counts| {
        let (report, stamp) = run(&stamp_config(addr, SenderConfig::default(), true));
        let dropped = counts.dropped_replies.load(Ordering::Relaxed);
        assert!(dropped >= 2, "{report:#?}");
        assert_eq!(report.lost, dropped, "{report:#?}");
        assert_eq!(stamp.reflector_own_seq, 0, "no request lost: the numbers agree");
        let (fwd, back) = (stamp.forward_lost.unwrap(), stamp.backward_lost.unwrap());
        assert_eq!(fwd, 0, "{stamp:#?}");
        assert_eq!(back + stamp.unsplit_lost, dropped, "{stamp:#?}");
        assert!(stamp.unsplit_lost <= 1, "{stamp:#?}");
    });
    // Without --stamp-stateful the same numbers could come from a stateless
    // reflector: no split is claimed.
    let knobs = Knobs { stateful: true, drop_reply_every: Some(10), ..Knobs::default() };
    with_reflector(knobs, |addr, counts| {
        let (report, stamp) = run(&stamp_config(addr, SenderConfig::default(), false));
        assert_eq!(report.lost, counts.dropped_replies.load(Ordering::Relaxed));
        assert_eq!((stamp.forward_lost, stamp.backward_lost), (None, None), "{stamp:#?}");
        assert_eq!(stamp.unsplit_lost, report.lost);
    });
}

#[test]
fn duplicates_and_reordering_are_counted() {
    with_reflector(Knobs { duplicate: true, ..Knobs::default() }, |addr, _| {
        let (report, _) = run(&stamp_config(addr, SenderConfig::default(), false));
        assert_eq!(report.answered, report.sent, "{report:#?}");
        // Every reply came twice; the copies of the last few may come after the end.
        let (dup, answered) = (report.duplicated, report.answered);
        assert!(dup <= answered && dup + 4 >= answered, "{report:#?}");
    });
    with_reflector(Knobs { reorder: true, ..Knobs::default() }, |addr, _| {
        let (report, _) = run(&stamp_config(addr, SenderConfig::default(), false));
        assert!(report.lost <= 1, "only a reply held at the end: {report:#?}");
        assert!(report.reordered * 3 >= report.answered, "{report:#?}");
        assert_eq!(report.duplicated, 0, "{report:#?}");
    });
}

#[test]
fn replies_signed_with_another_key_are_mismatched_not_answered() {
    let knobs = Knobs { key: Some(KEY.to_vec()), spoil_hmac: true, ..Knobs::default() };
    with_reflector(knobs, |addr, counts| {
        let sender = SenderConfig {
            mode: AuthMode::Authenticated,
            auth_key: Some(KEY.to_vec()),
            ..SenderConfig::default()
        };
        let started = std::time::Instant::now();
        let (report, stamp) = run(&stamp_config(addr, sender, false));
        assert!(started.elapsed() < Duration::from_secs(3), "no hang");
        assert_eq!(report.answered, 0, "{report:#?}");
        assert_eq!(report.lost, report.sent);
        assert!(report.sent > 0);
        assert_eq!(stamp.auth_failed, counts.requests.load(Ordering::Relaxed), "{stamp:#?}");
        assert_eq!(report.mismatched, stamp.auth_failed);
        assert_eq!(stamp.unauthenticated_replies, 0, "another key, not none: {stamp:#?}");
        assert!(report.to_string().contains("replies (wrong key?)\n"), "{report}");
        assert_eq!(report.rtt_us, None);
    });
}

/// A key sent to a reflector without one: its replies are unauthenticated
/// packets carrying our sequence numbers, and the report says so instead of
/// blaming the key.
#[test]
fn an_unauthenticated_reflector_is_named_as_such() {
    with_reflector(Knobs::default(), |addr, counts| {
        let sender = SenderConfig {
            mode: AuthMode::Authenticated,
            auth_key: Some(KEY.to_vec()),
            ..SenderConfig::default()
        };
        let (report, stamp) = run(&stamp_config(addr, sender, false));
        let replies = counts.requests.load(Ordering::Relaxed);
        assert!(report.sent > 0 && replies > 0, "{report:#?}");
        assert_eq!(report.answered, 0, "not authenticated: not answered: {report:#?}");
        assert_eq!(stamp.auth_failed, replies, "{stamp:#?}");
        assert_eq!(stamp.unauthenticated_replies, replies, "{stamp:#?}");
        let table = report.to_string();
        assert!(table.contains("the reflector answers unauthenticated"), "{table}");
        assert!(!table.contains("wrong key?"), "{table}");
    });
    // The real reflector, without a key, through the binary.
    let scratch = Scratch::new("stamp_bench_unauth");
    scratch.write("key", KEY);
    let key = scratch.path().join("key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = common::Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let target = server.addr().to_string();
    let key = key.to_str().unwrap();
    let out = bench(&["--stamp", &target, "--stamp-key-file", key, "-d", "200ms", "-t", "50ms"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("the reflector answers unauthenticated"), "{out:?}");
    let out = bench(&["--stamp", &target, "--stamp-key-file", key, "-d", "200ms", "--json"]);
    let report = json(&out);
    let failed = &report["stamp"]["auth_failed"];
    assert!(failed.as_u64().unwrap() > 0, "{report}");
    assert_eq!(&report["stamp"]["unauthenticated_replies"], failed, "{report}");
    server.stop();
}

// ---- the binary ----

/// `shout bench --stamp` against the real `shout server --mode stamp` (spawned
/// as in tests/stamp_server.rs), stateless, stateful, and authenticated (with
/// an HMAC TLV): it knows every TLV the bench can send, so each comes back
/// on every reply with U cleared and neither M nor I. By default it refuses every DSCP a
/// Class of Service TLV asks for (docs/STAMP.md) and says so with the TLV's RP
/// field, which is not one of the flags: shown below on a reply read directly.
#[test]
fn shout_server_answers_every_tlv_unflagged() {
    let scratch = Scratch::new("stamp_bench_server_tlvs");
    scratch.write("key", KEY);
    let key = scratch.path().join("key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let key = key.to_str().unwrap();
    let all = "timestamp-info,cos=46,direct,access-report,follow-up";
    let names = ["timestamp-info", "cos", "direct", "access-report", "follow-up"];
    for extra in [&[][..], &["--stamp-stateful"], &["--stamp-key-file", key]] {
        let mut args = vec!["--mode", "stamp", "--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let server = common::Server::start(&args);
        let target = server.addr().to_string();
        let mut bench_args = vec!["--stamp", &target, "--stamp-tlv", all, "--json"];
        bench_args.extend(["--rate", "200", "-d", "200ms", "-t", "1s"]);
        if extra.contains(&key) {
            // Authenticated mode on both ends, one key file: the bench adds an
            // HMAC TLV after its TLVs, which the server checks and signs back.
            bench_args.extend(["--stamp-key-file", key]);
        }
        let out = bench(&bench_args);
        assert!(out.status.success(), "{extra:?}: {out:?}");
        let report = json(&out);
        let answered = report["answered"].as_u64().unwrap();
        assert!(answered >= 20 && report["lost"] == 0, "{extra:?}: {report}");
        let t = &report["stamp"]["tlv_results"];
        assert_eq!((&t["replies"], &t["hmac_failed"]), (&answered.into(), &0.into()), "{report}");
        let types = t["types"].as_array().expect("one result per TLV type sent");
        let got: Vec<&str> = types.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(got, names, "{report}");
        for r in types {
            assert_eq!(r["returned"], answered, "{extra:?}: {r}");
            for flag in ["unrecognized", "malformed", "integrity_failed"] {
                assert_eq!(r[flag], 0, "{flag}, {extra:?}: {r}");
            }
        }
        let summary = server.stop();
        assert_eq!(summary.get("answered"), summary.get("received"), "{summary}");
    }
    // The refusal is the Class of Service TLV's RP field (RFC 8972 §4.4), its
    // flags octet clear: not U, M or I.
    let server = common::Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let cfg = SenderConfig {
        tlvs: vec![TlvRequest::ClassOfService { dscp: 46 }],
        ..SenderConfig::default()
    };
    let sender = shout::stamp::Sender::new(cfg).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; sender.packet_len()];
    let n = sender.build_test_packet(1, SystemTime::now(), &mut buf).unwrap();
    sock.send_to(&buf[..n], server.addr()).unwrap();
    let mut reply = [0u8; 2048];
    let len = sock.recv(&mut reply).expect("a reply within 2 s");
    let r = sender.parse_reflected(&reply[..len]).unwrap();
    let tlvs: Vec<_> = r.tlvs().map(Result::unwrap).collect();
    assert_eq!(tlvs.len(), 1, "{tlvs:?}");
    assert_eq!(tlvs[0].flags.0 & 0xE0, 0, "U, M and I clear: {tlvs:?}");
    match tlvs[0].decode() {
        Ok(shout::stamp::TlvValue::ClassOfService { dscp1: 46, rp: 1, .. }) => {}
        other => panic!("a refused DSCP1 46 with RP 1: {other:?}"),
    }
    server.stop();
}

/// Class of Service end to end (RFC 8972 §4.4): `shout server --stamp-allow-dscp ef,af41`
/// sends the replies of `shout bench --stamp-cos ef` with DSCP 46, as the bench reads it off
/// the replies that arrive (`IP_RECVTOS`), and reports the DSCP and ECN our packets arrived
/// with (0: the bench does not mark them); a class it does not allow (af11) gets RP set on
/// every reply and the replies keep the socket's class (0). Without a CoS TLV, no `cos`.
#[test]
fn class_of_service_is_applied_where_allowed_and_refused_with_rp_elsewhere() {
    let server = common::Server::start(&[
        "--mode",
        "stamp",
        "--bind",
        "127.0.0.1:0",
        "--stamp-allow-dscp",
        "ef,af41",
    ]);
    let target = server.addr().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["--stamp", &target, "--rate", "200", "-d", "200ms", "-t", "1s"];
        args.extend_from_slice(extra);
        let out = bench(&args);
        assert!(out.status.success(), "{extra:?}: {out:?}");
        out
    };
    for (class, dscp, refused, back) in [("ef", 46, false, 46), ("af11", 10, true, 0)] {
        let report = json(&run(&["--stamp-cos", class, "--json"]));
        let answered = report["answered"].as_u64().unwrap();
        assert!(answered >= 20 && report["lost"] == 0, "{class}: {report}");
        let cos = &report["stamp"]["cos"];
        assert_eq!(cos["requested"], dscp, "{cos}");
        assert_eq!(cos["replies"], answered, "{cos}");
        assert_eq!(cos["refused"], if refused { answered } else { 0 }, "{class}: {cos}");
        assert_eq!(cos["backward_dscp"], serde_json::json!([back]), "{class}: {cos}");
        assert_eq!(cos["forward_dscp"], serde_json::json!([0]), "{class}: {cos}");
        assert_eq!(cos["forward_ecn"], serde_json::json!([0]), "{class}: {cos}");
        assert_eq!(cos["backward_ecn"], serde_json::json!([0]), "{class}: {cos}");
    }
    let text = String::from_utf8(run(&["--stamp-cos", "46"]).stdout).unwrap();
    assert!(
        text.contains("\ncos forward dscp 0, ecn 0 (as the reflector received them)\n"),
        "{text}"
    );
    assert!(
        text.contains("\ncos back    dscp 46, ecn 0 (asked for 46; refused on 0 of "),
        "{text}"
    );
    let plain = json(&run(&["--json"]));
    assert_eq!(plain["stamp"]["cos"], Value::Null, "{plain}");
    let summary = server.stop();
    assert_eq!(summary.get("answered"), summary.get("received"), "{summary}");
}

fn bench(args: &[&str]) -> std::process::Output {
    let args: Vec<&str> = ["bench"].iter().chain(args).copied().collect();
    common::run_shout(&args, None, Duration::from_secs(10)).into_output()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn cli_key_file_json_plot_csv_and_checks() {
    let scratch = Scratch::new("stamp_bench_cli");
    // Raw bytes, all of them (hex text would be decoded): the format
    // stamp-suite's --hmac-key-file reads too; mode 600, or it is refused.
    scratch.write("key", KEY);
    scratch.write("wrong", b"not the key, but as long as one");
    let key = scratch.path().join("key");
    let wrong = scratch.path().join("wrong");
    for path in [&key, &wrong] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (plot, csv) = (scratch.path().join("run.svg"), scratch.path().join("run.csv"));
    let knobs = Knobs { stateful: true, key: Some(KEY.to_vec()), ..Knobs::default() };
    with_reflector(knobs, |addr, counts| {
        let out = bench(&[
            "--stamp",
            &addr.to_string(),
            "--stamp-key-file",
            key.to_str().unwrap(),
            "--stamp-tlv",
            "timestamp-info,cos=0,direct",
            "--stamp-ssid",
            "9",
            "--stamp-timestamp",
            "ptp",
            "--window",
            "2",
            "-d",
            "300ms",
            "--json",
            "--plot",
            plot.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--max-loss",
            "0",
            "--max-p99",
            "1s",
        ]);
        assert!(out.status.success(), "{out:?}");
        let report = json(&out);
        for key in shout::bench::JSON_FIELDS {
            assert!(report.get(key).is_some(), "{key} missing: {report}");
        }
        let stamp = report["stamp"].as_object().expect("a stamp object");
        for key in STAMP_JSON_FIELDS {
            assert!(stamp.contains_key(*key), "stamp.{key} missing: {report}");
        }
        assert_eq!(stamp.len(), STAMP_JSON_FIELDS.len(), "{report}");
        assert_eq!(report["expect"], "stamp");
        assert_eq!(stamp["mode"], "authenticated");
        assert_eq!(stamp["timestamp"], "ptp");
        assert_eq!(stamp["ssid"], 9);
        assert_eq!(stamp["forward_ttl"]["min"], 255);
        assert_eq!(stamp["backward_ttl"]["max"], REFLECTOR_TTL);
        assert_eq!(report["lost"], 0, "{report}");
        assert!(report["answered"].as_u64().unwrap() > 10, "{report}");
        assert!(stamp["forward_us"]["p50"].as_f64().is_some(), "{report}");
        let answered = &report["answered"];
        let t = &stamp["tlv_results"];
        assert_eq!((&t["replies"], &t["hmac_failed"]), (answered, &0.into()), "{report}");
        let types = t["types"].as_array().expect("types: one per TLV sent");
        let names: Vec<&str> = types.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["timestamp-info", "cos", "direct"], "{report}");
        for r in types {
            assert_eq!(&r["returned"], answered, "{report}");
            for flag in ["unrecognized", "malformed", "integrity_failed"] {
                assert_eq!(r[flag], 0, "{flag}: {report}");
            }
        }
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("polyline"),
            "{svg}"
        );
        let csv_text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(csv_text.lines().next(), Some(shout::bench::CSV_HEADER));
        assert!(csv_text.lines().count() > 1, "{csv_text}");

        // The key is read from the file, never from the command line; a wrong
        // one gets no answer from an authenticating reflector, and fails the
        // loss check instead of hanging.
        let before = counts.requests.load(Ordering::Relaxed);
        let out = bench(&[
            "--stamp",
            &addr.to_string(),
            "--stamp-key-file",
            wrong.to_str().unwrap(),
            "-d",
            "200ms",
            "-t",
            "50ms",
            "--max-loss",
            "0",
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(counts.requests.load(Ordering::Relaxed) > before);
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("(expect stamp)") && table.contains("stamp       authenticated"),
            "{table}"
        );
        assert!(!table.contains("\ntlv "), "no TLVs sent, no TLV lines: {table}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("above --max-loss"), "{out:?}");
    });
}

/// `shout server --mode stamp` killed mid-run: the bench goes on to the end
/// and reports, the probes after the kill lost and the "port unreachable"
/// reports counted, in the JSON and the table.
#[test]
fn a_reflector_killed_mid_run_leaves_a_report() {
    for json_flag in [true, false] {
        let server = common::Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
        let target = server.addr().to_string();
        let mut args = vec!["--stamp", &target, "--rate", "200", "-d", "1s", "-t", "50ms"];
        if json_flag {
            args.push("--json");
        }
        let out = thread::scope(|s| {
            s.spawn(move || {
                thread::sleep(Duration::from_millis(300));
                server.kill();
            });
            bench(&args)
        });
        assert_eq!(out.status.code(), Some(0), "some answered, no limit: {out:?}");
        if json_flag {
            let report = json(&out);
            let answered = report["answered"].as_u64().unwrap();
            let unreachable = report["unreachable"].as_u64().unwrap();
            assert!(answered > 0 && unreachable > 0, "{report}");
            assert!(report["lost"].as_u64().unwrap() >= unreachable, "{report}");
            assert!(report["duration_s"].as_f64().unwrap() > 0.95, "{report}");
            assert!(report["stamp"]["unsplit_lost"].as_u64().unwrap() > 0, "{report}");
        } else {
            let table = String::from_utf8_lossy(&out.stdout);
            assert!(table.contains("the target went away during the run"), "{table}");
            assert!(table.contains("stamp       unauthenticated"), "{table}");
        }
    }
}

#[test]
fn cli_stamp_usage_errors_exit_2() {
    let scratch = Scratch::new("stamp_bench_usage");
    scratch.write("empty", b"\n");
    let empty = scratch.path().join("empty");
    for args in [
        &["--stamp-ssid", "3"][..],
        &["--stamp", "127.0.0.1:9", "--stamp-ssid", "70000"],
        &["--stamp", "127.0.0.1:9", "--stamp-tlv", "nonsense"],
        &["--stamp", "127.0.0.1:9", "--stamp-tlv", "cos=64"],
        &["--stamp", "127.0.0.1:9", "--stamp-cos", "64"],
        &["--stamp", "127.0.0.1:9", "--stamp-cos", "af44"],
        &["--stamp", "127.0.0.1:9", "--stamp-cos", "ef", "--stamp-tlv", "cos=46"],
        &["--stamp-cos", "ef"],
        &["--stamp", "127.0.0.1:9", "--stamp-timestamp", "gps"],
        &["--stamp", "127.0.0.1:9", "--size", "46"],
        &["--stamp", "127.0.0.1:9", "--size", "30"],
        &["--stamp", "127.0.0.1:9", "--stamp-key-file", empty.to_str().unwrap()],
        &["--stamp", "127.0.0.1:9", "127.0.0.1:8"],
        &["--stamp", "127.0.0.1:9", "--expect", "echo"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?} must say why");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = bench(&["--stamp", "127.0.0.1:9", "--stamp-key-file", "/no/such/key"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/key"), "{out:?}");
}

#[test]
fn stamp_port_is_862_when_none_is_given() {
    // Nothing listens at 127.0.0.1:862 (a privileged port no test binds), so the
    // error names the address the bench chose.
    let out = bench(&["--stamp", "127.0.0.1", "-d", "200ms"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:862"), "{out:?}");
}
