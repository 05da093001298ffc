//! `shout server --mode stamp`, the binary, as a STAMP Session-Reflector (RFC 8762, RFC 8972):
//! test packets built by the library's own Session-Sender, sent from real loopback sockets
//! (with the TTL and TOS a test sets), replies read back field by field; drops read from the
//! server's `summary:` line after SIGTERM.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;
use shout::stamp::tlv::{kind, TlvValue};
use shout::stamp::{
    AuthMode, ErrorEstimate, ParseError, Reflected, Sender, SenderConfig, TimestampFormat,
    TlvIntegrity, TlvRequest,
};

/// The unauthenticated base packet (RFC 8762 §4.2.1).
const BASE: usize = 44;
/// The authenticated base packet (RFC 8762 §4.2.2).
const AUTH_BASE: usize = 112;
/// The key the authenticated tests share with the server, as the key file holds it (hex).
const KEY_HEX: &str = "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef";

fn key_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// Asserts that every drop counter but those in `expected` is 0 and those are as given.
fn assert_drops(summary: &Summary, expected: &[(&str, u64)]) {
    for field in DROP_REASONS.into_iter().chain(["reply_failed", "recv_errors"]) {
        let want = expected.iter().find(|(k, _)| *k == field).map_or(0, |(_, v)| *v);
        assert_eq!(summary.get(field), want, "{field} in {summary}");
    }
}

/// A key file (hex text, mode 600) in a scratch directory that lives as long as the value.
struct KeyFile {
    dir: Scratch,
}

impl KeyFile {
    fn new(test: &str, contents: &str) -> KeyFile {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new(test);
        dir.write("key", contents.as_bytes());
        std::fs::set_permissions(dir.path().join("key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600 the key file");
        KeyFile { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("key")
    }
}

fn sender(cfg: SenderConfig) -> Sender {
    Sender::new(cfg).expect("a valid sender configuration")
}

/// A client socket on 127.0.0.1, port 0, with a receive timeout.
fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.set_read_timeout(Some(RECV_TIMEOUT)).expect("read timeout");
    s
}

/// Sends test packet `seq` and returns the raw reply (the bytes) and the send time.
fn exchange(sock: &UdpSocket, to: SocketAddr, s: &Sender, seq: u32) -> (Vec<u8>, SystemTime) {
    let mut buf = vec![0u8; s.packet_len()];
    let t1 = SystemTime::now();
    let n = s.build_test_packet(seq, t1, &mut buf).expect("buffer fits");
    let reply = request(sock, to, &buf[..n]);
    assert_eq!(reply.len(), n, "a STAMP reply has the test packet's length");
    (reply, t1)
}

/// Sends test packet `seq` and asserts that nothing comes back within [`SILENCE`].
fn no_reply(sock: &UdpSocket, to: SocketAddr, s: &Sender, seq: u32) {
    let mut buf = vec![0u8; s.packet_len()];
    let n = s.build_test_packet(seq, SystemTime::now(), &mut buf).expect("buffer fits");
    sock.send_to(&buf[..n], to).expect("send_to");
    assert_silent(&[(&format!("test packet {seq}"), sock)], SILENCE);
}

fn parsed<'a>(s: &Sender, reply: &'a [u8]) -> Reflected<'a> {
    s.parse_reflected(reply).unwrap_or_else(|e| panic!("{e}: reply {}", hex(reply)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn near(t: SystemTime, lo: SystemTime, hi: SystemTime) -> bool {
    let slack = Duration::from_millis(1);
    t + slack >= lo && t <= hi + slack
}

/// The reflector's own fields in stateless unauthenticated mode, for both timestamp formats:
/// the sender's sequence number, timestamp, error estimate, SSID and TTL come back, the
/// reflector's sequence number is the sender's, T2 <= T3 and both lie between our send and
/// our receive, the S bit is clear and the Z bit says the format asked for.
#[test]
fn stateless_replies_copy_the_senders_fields_and_add_the_reflectors() {
    for (flag, format) in [("ntp", TimestampFormat::Ntp), ("ptp", TimestampFormat::Ptp)] {
        let server =
            Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0", "--stamp-timestamp", flag]);
        let sock = client();
        sock.set_ttl(200).expect("IP_TTL 200");
        // The sender uses the other format, so a reflector that echoes the Z bit is caught.
        let sender_format = match format {
            TimestampFormat::Ntp => TimestampFormat::Ptp,
            TimestampFormat::Ptp => TimestampFormat::Ntp,
        };
        let s = sender(SenderConfig {
            ssid: 0xbeef,
            format: sender_format,
            synchronized: true,
            error_bound: Duration::from_micros(250),
            ..Default::default()
        });
        let sent_ee = ErrorEstimate::new(true, sender_format, Duration::from_micros(250));
        for seq in [7u32, 8, 1_000_000, u32::MAX] {
            let (reply, t1) = exchange(&sock, server.addr(), &s, seq);
            let t4 = SystemTime::now();
            let r = parsed(&s, &reply);
            let ctx = format!("--stamp-timestamp {flag}, seq {seq}: reply {}", hex(&reply));
            assert_eq!(r.seq, seq, "stateless: reflector seq is the sender's; {ctx}");
            assert_eq!(r.sender_seq, seq, "{ctx}");
            assert_eq!(r.ssid, 0xbeef, "{ctx}");
            assert_eq!(r.sender_ttl, 200, "the TTL we set; {ctx}");
            assert_eq!(r.sender_error_estimate, sent_ee, "{ctx}");
            assert_eq!(r.sender_timestamp.format, sender_format, "{ctx}");
            let sent = shout::stamp::Timestamp::from_system_time(sender_format, t1);
            assert_eq!(r.sender_timestamp.raw, sent.raw, "T1 copied back; {ctx}");
            assert!(!r.error_estimate.synchronized(), "S bit set without the flag; {ctx}");
            assert_eq!(r.error_estimate.format(), format, "Z bit; {ctx}");
            assert_eq!(r.timestamp.format, format, "{ctx}");
            let t2 = r.receive_timestamp.to_system_time().expect("T2 is a time");
            let t3 = r.timestamp.to_system_time().expect("T3 is a time");
            assert!(t2 <= t3, "receive {t2:?} after transmit {t3:?}; {ctx}");
            assert!(near(t2, t1, t4) && near(t3, t1, t4), "T2/T3 not between T1 and T4; {ctx}");
            assert_eq!(r.tlv_integrity, TlvIntegrity::Absent, "{ctx}");
            assert_eq!(r.tlvs().count(), 0, "{ctx}");
        }
        let summary = server.stop();
        assert_eq!((summary.get("received"), summary.get("answered")), (4, 4), "{summary}");
        assert_drops(&summary, &[]);
    }
}

/// T2 is the kernel's receive time (`SO_TIMESTAMPNS`), not the moment the
/// reflector got round to reading: a test packet that waits 150 ms in the
/// queue of a stopped server comes back with T2 near our send and T3 - T2
/// holding the wait.
#[test]
fn the_receive_timestamp_is_taken_on_arrival_not_on_reading() {
    let server = Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let sock = client();
    let s = sender(SenderConfig::default());
    // Linux turns host-wide receive stamping on a moment after the first
    // socket asks (a deferred switch); until then it stamps at the read.
    exchange(&sock, server.addr(), &s, 0);
    std::thread::sleep(Duration::from_millis(200));
    server.signal("STOP");
    let mut buf = vec![0u8; s.packet_len()];
    let t1 = SystemTime::now();
    let n = s.build_test_packet(1, t1, &mut buf).expect("buffer fits");
    sock.send_to(&buf[..n], server.addr()).expect("send_to");
    std::thread::sleep(Duration::from_millis(150));
    server.signal("CONT");
    let (reply, _) = recv_within(&sock, RECV_TIMEOUT).expect("the reply after SIGCONT");
    let r = parsed(&s, &reply);
    let t2 = r.receive_timestamp.to_system_time().expect("T2 is a time");
    let t3 = r.timestamp.to_system_time().expect("T3 is a time");
    let arrival = t2.duration_since(t1).unwrap_or_default();
    let held = t3.duration_since(t2).unwrap_or_default();
    assert!(arrival < Duration::from_millis(50), "T2 {arrival:?} after T1: read time, not arrival");
    assert!(held >= Duration::from_millis(100), "T3 - T2 = {held:?}: the queue wait is lost");
    let summary = server.stop();
    assert_eq!(summary.get("answered"), 2, "{summary}");
}

/// `--stamp-clock-synchronized` sets the S bit (RFC 8762 §4.2.1, RFC 4656 §4.1.2).
#[test]
fn the_s_bit_follows_the_flag() {
    let server =
        Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0", "--stamp-clock-synchronized"]);
    let s = sender(SenderConfig::default());
    let (reply, _) = exchange(&client(), server.addr(), &s, 1);
    assert!(parsed(&s, &reply).error_estimate.synchronized(), "reply {}", hex(&reply));
    server.stop();
}

/// Stateful (RFC 8972 §4): the reflector counts 0, 1, 2... per session, whatever the sender
/// numbers; another SSID or another source port is another session, starting at 0.
#[test]
fn stateful_reflector_numbers_each_session_from_zero() {
    let server = Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0", "--stamp-stateful"]);
    let to = server.addr();
    let a = client();
    let s1 = sender(SenderConfig { ssid: 1, ..Default::default() });
    let s2 = sender(SenderConfig { ssid: 2, ..Default::default() });
    let mut got = Vec::new();
    for seq in [100u32, 7, 5000] {
        let (reply, _) = exchange(&a, to, &s1, seq);
        let r = parsed(&s1, &reply);
        assert_eq!(r.sender_seq, seq);
        got.push(r.seq);
    }
    assert_eq!(got, [0, 1, 2], "reflector seq of session (port A, SSID 1)");
    let (reply, _) = exchange(&a, to, &s2, 100);
    assert_eq!(parsed(&s2, &reply).seq, 0, "another SSID from the same port: a new session");
    let b = client();
    let (reply, _) = exchange(&b, to, &s1, 100);
    assert_eq!(parsed(&s1, &reply).seq, 0, "the same SSID from another port: a new session");
    let (reply, _) = exchange(&a, to, &s1, 3);
    assert_eq!(parsed(&s1, &reply).seq, 3, "the first session goes on where it was");
    let (reply, _) = exchange(&a, to, &s2, 0);
    assert_eq!(parsed(&s2, &reply).seq, 1);
    let summary = server.stop();
    assert_eq!((summary.get("received"), summary.get("answered")), (7, 7), "{summary}");
    assert_drops(&summary, &[]);
}

/// Authenticated mode (RFC 8762 §4.4) with the key from a hex key file: test packets with
/// the right HMAC get replies whose HMAC checks with the key (and not with another); a packet
/// signed with another key gets nothing and is counted as `stamp_auth_failed`; an
/// unauthenticated test packet (44 octets, shorter than the 112-octet authenticated base
/// packet) gets nothing and is counted as `stamp_malformed`.
#[test]
fn authenticated_mode_answers_only_the_right_key() {
    let key = KeyFile::new("stamp-auth", &format!("{KEY_HEX}\n"));
    let key_path = key.path();
    let server = Server::start(&[
        "--mode",
        "stamp",
        "--bind",
        "127.0.0.1:0",
        "--stamp-key-file",
        key_path.to_str().unwrap(),
    ]);
    let to = server.addr();
    let sock = client();
    let good = sender(SenderConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(key_bytes(KEY_HEX)),
        ssid: 5,
        ..Default::default()
    });
    let mut wrong_key = key_bytes(KEY_HEX);
    wrong_key[0] ^= 1;
    let bad = sender(SenderConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(wrong_key),
        ssid: 5,
        ..Default::default()
    });
    assert_eq!(good.packet_len(), AUTH_BASE);
    for seq in 0..3u32 {
        let (reply, _) = exchange(&sock, to, &good, seq);
        let r = parsed(&good, &reply);
        assert_eq!((r.sender_seq, r.ssid), (seq, 5), "reply {}", hex(&reply));
        assert_eq!(bad.parse_reflected(&reply), Err(ParseError::Auth), "HMAC ignores the key?");
    }
    no_reply(&sock, to, &bad, 3);
    no_reply(&sock, to, &sender(SenderConfig::default()), 4);
    // The server is still there, and the refused packet left no reply queued.
    let (reply, _) = exchange(&sock, to, &good, 5);
    assert_eq!(parsed(&good, &reply).sender_seq, 5);
    let summary = server.stop();
    assert_eq!((summary.get("received"), summary.get("answered")), (6, 4), "{summary}");
    assert_drops(&summary, &[("stamp_auth_failed", 1), ("stamp_malformed", 1)]);
}

/// Every length from 0 to 1500 octets: each datagram either gets a reply of exactly its
/// length that is a valid reflected packet for it, or is counted as `stamp_malformed`; the
/// summary explains every datagram received. Lengths from 44 on are a test packet followed
/// by zero fill (TWAMP-Light padding), an Extra Padding TLV, or pseudo-random bytes (which
/// read as TLVs, usually malformed); shorter ones are the start of a test packet.
#[test]
fn every_length_up_to_1500_is_answered_in_full_or_counted() {
    let seed = seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let server = Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let to = server.addr();
    let sock = client();
    let plain = sender(SenderConfig::default());
    let mut short = 0;
    for len in 0..=1500usize {
        let seq = len as u32;
        let mut pkt = vec![0u8; BASE];
        plain.build_test_packet(seq, SystemTime::now(), &mut pkt).unwrap();
        let s = if len >= BASE + 4 && len % 3 == 0 {
            sender(SenderConfig { size: len, ..Default::default() })
        } else {
            plain.clone()
        };
        let pkt = match len {
            _ if len < BASE => pkt[..len].to_vec(),
            _ if len % 3 == 0 && len >= BASE + 4 => {
                let mut p = vec![0u8; len];
                s.build_test_packet(seq, SystemTime::now(), &mut p).unwrap();
                p
            }
            _ if len % 3 == 1 => {
                pkt.resize(len, 0);
                pkt
            }
            _ => {
                pkt.extend(rng.bytes(len - BASE));
                pkt
            }
        };
        sock.send_to(&pkt, to).expect("send_to");
        if len < BASE {
            // A reply to it, if there were one, would come before the next one's.
            short += 1;
            continue;
        }
        let reply = recv_from_peer(&sock, to)
            .unwrap_or_else(|| panic!("no reply to a {len} B test packet: {}", hex(&pkt)));
        assert_eq!(reply.len(), len, "reply length to {}", hex(&pkt));
        let r = parsed(&s, &reply);
        assert_eq!(
            r.sender_seq,
            seq,
            "a reply to another datagram (a short one?): {}",
            hex(&reply)
        );
        if len % 3 == 0 && len >= BASE + 4 {
            let tlvs: Vec<_> = r.tlvs().collect::<Result<_, _>>().expect("well-formed TLVs");
            assert_eq!(tlvs.len(), 1, "one Extra Padding TLV: {}", hex(&reply));
            assert_eq!(tlvs[0].kind, kind::EXTRA_PADDING);
            assert_eq!(tlvs[0].flags.0, 0, "Extra Padding is known: U cleared");
        }
        if len % 3 == 1 {
            assert!(reply[BASE..].iter().all(|&b| b == 0), "zero fill not kept: {}", hex(&reply));
        }
    }
    let summary = server.stop();
    let (received, answered) = (summary.get("received"), summary.get("answered"));
    assert_eq!(received, 1501, "{summary}");
    assert_eq!(answered, 1501 - short, "{summary}");
    // 14 to 43 octets: a TWAMP-Light test packet without its padding.
    let twamp_light = (TWAMP_LIGHT_MIN..BASE).len() as u64;
    assert_drops(
        &summary,
        &[("stamp_malformed", short - twamp_light), ("stamp_short", twamp_light)],
    );
    let dropped: u64 = DROP_REASONS.iter().map(|r| summary.get(r)).sum();
    assert_eq!(received, answered + dropped, "unexplained: {summary}");
}

/// The smallest TWAMP-Light test packet: Sequence Number, Timestamp, Error Estimate.
const TWAMP_LIGHT_MIN: usize = 14;

/// A short test packet (RFC 5357 §4.1.2: 14 octets, no padding) from a TWAMP-Light sender.
fn twamp_light_packet(s: &Sender, seq: u32, len: usize) -> Vec<u8> {
    let mut pkt = vec![0u8; BASE];
    s.build_test_packet(seq, SystemTime::now(), &mut pkt).unwrap();
    pkt.truncate(len);
    pkt
}

/// By default a short TWAMP-Light test packet (14 octets, RFC 5357 §4.1.2) is not answered:
/// its 44-octet reply would amplify. It is counted as `stamp_short`, not `stamp_malformed`,
/// and the summary is followed by a hint naming `--stamp-short-from`.
#[test]
fn short_twamp_light_packets_are_dropped_counted_and_hinted_by_default() {
    let proc = ServerProc::spawn(&["--quiet", "--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let to = proc.addr();
    let sock = client();
    let s = sender(SenderConfig::default());
    for (seq, len) in [(1, 14), (2, 43), (3, 13)] {
        sock.send_to(&twamp_light_packet(&s, seq, len), to).unwrap();
    }
    if let Some((reply, _)) = recv_within(&sock, SILENCE) {
        panic!("a short packet was answered: {}", hex(&reply));
    }
    let stopped = proc.stop("TERM");
    let text = stopped.stderr_text();
    let summary = Summary::parse(&text);
    assert_drops(&summary, &[("stamp_short", 2), ("stamp_malformed", 1)]);
    let hint = text.lines().find(|l| l.starts_with("hint: stamp_short=2: ")).unwrap_or_else(|| {
        panic!("no hint for stamp_short:\n{text}");
    });
    assert!(hint.contains("--stamp-short-from PREFIX"), "{hint}");
    assert!(!text.contains("hint: stamp_malformed"), "no hint where no flag helps: {text}");
}

/// `--stamp-short-from PREFIX` answers short test packets from that prefix with a whole
/// 44-octet reflected packet (the sender's sequence number, timestamp and TTL back), while a
/// sender outside the prefix is still refused and counted, and the rate limit still applies.
#[test]
fn stamp_short_from_answers_named_senders_only() {
    let inside = unique_loopback();
    let outside = unique_loopback();
    let server = Server::start(&[
        "--mode",
        "stamp",
        "--bind",
        "127.0.0.1:0",
        "--stamp-short-from",
        &format!("{inside}/32"),
        "--limit-loopback",
        "--rate-limit",
        "1",
        "--burst",
        "3",
    ]);
    let to = server.addr();
    let (named, other) = (bind_v4(inside, 0), bind_v4(outside, 0));
    let s = sender(SenderConfig::default());
    for seq in 0..3u32 {
        let pkt = twamp_light_packet(&s, seq, TWAMP_LIGHT_MIN);
        let reply = request(&named, to, &pkt);
        assert_eq!(reply.len(), BASE, "a whole STAMP reply: {}", hex(&reply));
        let r = parsed(&s, &reply);
        assert_eq!((r.seq, r.sender_seq, r.ssid), (seq, seq, 0), "{}", hex(&reply));
        assert_eq!(reply[28..36], pkt[4..12], "the sender's timestamp comes back");
        assert_eq!(r.sender_ttl, 64, "{}", hex(&reply));
    }
    // Over the burst of 3: the rate limit still applies.
    named.send_to(&twamp_light_packet(&s, 3, TWAMP_LIGHT_MIN), to).unwrap();
    other.send_to(&twamp_light_packet(&s, 4, TWAMP_LIGHT_MIN), to).unwrap();
    for sock in [&named, &other] {
        if let Some((reply, _)) = recv_within(sock, SILENCE) {
            panic!("expected no reply, got {}", hex(&reply));
        }
    }
    let summary = server.stop();
    assert_eq!((summary.get("received"), summary.get("answered")), (5, 3), "{summary}");
    assert_eq!(summary.get("bytes_answered"), 3 * BASE as u64, "{summary}");
    assert_drops(&summary, &[("stamp_short", 1), ("rate_limited", 1)]);
}

/// TLVs (RFC 8972 §4): a type the reflector does not know comes back with U set (while a
/// known one next to it has U cleared); Class of Service (§4.4) reports the DSCP and ECN the
/// packet arrived with (set with IP_TOS on the client); a known type with the wrong length
/// comes back with M set, and whatever follows it untouched.
#[test]
fn tlvs_get_their_flags_and_cos_reports_the_tos_sent() {
    let server = Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let to = server.addr();

    // Unknown next to known.
    let s = sender(SenderConfig {
        tlvs: vec![TlvRequest::TimestampInfo, TlvRequest::Raw { kind: 200, len: 8 }],
        ..Default::default()
    });
    let (reply, _) = exchange(&client(), to, &s, 1);
    let r = parsed(&s, &reply);
    let tlvs: Vec<_> = r.tlvs().collect::<Result<_, _>>().expect("well-formed TLVs");
    assert_eq!(tlvs.len(), 2, "reply {}", hex(&reply));
    assert_eq!((tlvs[0].kind, tlvs[0].flags.0), (kind::TIMESTAMP_INFO, 0), "{}", hex(&reply));
    assert_eq!(tlvs[1].kind, 200);
    assert!(tlvs[1].flags.unrecognized(), "unknown TLV without U: {}", hex(&reply));
    assert!(!tlvs[1].flags.malformed(), "{}", hex(&reply));

    // Class of Service: DSCP AF11 (10) and ECT(1) on the way in; EF (46) asked for the reply.
    let tos: u8 = (10 << 2) | 0b01;
    let sock = client();
    socket2::SockRef::from(&sock).set_tos(u32::from(tos)).expect("IP_TOS");
    let s = sender(SenderConfig {
        tlvs: vec![TlvRequest::ClassOfService { dscp: 46 }],
        ..Default::default()
    });
    let (reply, _) = exchange(&sock, to, &s, 2);
    let r = parsed(&s, &reply);
    let cos = r.tlvs().next().expect("a TLV").expect("well-formed");
    assert_eq!((cos.kind, cos.flags.0), (kind::CLASS_OF_SERVICE, 0), "{}", hex(&reply));
    match cos.decode().expect("4 octets") {
        TlvValue::ClassOfService { dscp1, dscp2, ecn, .. } => {
            assert_eq!(dscp1, 46, "DSCP1 copied: {}", hex(&reply));
            assert_eq!(dscp2, 10, "DSCP2 is the DSCP received: {}", hex(&reply));
            assert_eq!(ecn, 0b01, "ECN is the ECN received: {}", hex(&reply));
        }
        other => panic!("not a CoS value: {other:?}"),
    }

    // Malformed: a Class of Service TLV of 8 octets, then an unknown TLV left as sent.
    let s = sender(SenderConfig {
        tlvs: vec![
            TlvRequest::Raw { kind: kind::CLASS_OF_SERVICE, len: 8 },
            TlvRequest::Raw { kind: 201, len: 4 },
        ],
        ..Default::default()
    });
    let mut sent = vec![0u8; s.packet_len()];
    s.build_test_packet(3, SystemTime::now(), &mut sent).unwrap();
    let (reply, _) = exchange(&client(), to, &s, 3);
    let r = parsed(&s, &reply);
    let first = r.tlvs().next().expect("a TLV").expect("well-formed header");
    assert_eq!(first.kind, kind::CLASS_OF_SERVICE);
    assert!(first.flags.malformed(), "wrong-length TLV without M: {}", hex(&reply));
    assert_eq!(reply[BASE + 12..], sent[BASE + 12..], "what follows a malformed TLV is copied");

    let summary = server.stop();
    assert_eq!((summary.get("received"), summary.get("answered")), (3, 3), "{summary}");
    assert_drops(&summary, &[]);
}

/// Whether this process runs as root (from /proc, without unsafe).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The source-port defences in STAMP mode: port 862 (senders may use it, RFC 8762 §4.1) is
/// answered; 7 (echo) and 53 (DNS) are still refused as `denied_port`.
#[test]
fn source_port_862_is_answered_but_7_and_53_are_refused() {
    if !require("source_port_862_is_answered_but_7_and_53_are_refused", &[Need::PrivilegedPorts]) {
        return;
    }
    let server = Server::start(&["--mode", "stamp", "--bind", "127.0.0.1:0"]);
    let to = server.addr();
    let s = sender(SenderConfig::default());
    let ip = unique_loopback();
    let stamp_port = match UdpSocket::bind((ip, 862)) {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("SKIPPED: source_port_862: cannot bind {ip}:862: {e}");
            server.stop();
            return;
        }
    };
    stamp_port.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    let (reply, _) = exchange(&stamp_port, to, &s, 862);
    assert_eq!(parsed(&s, &reply).sender_seq, 862);
    for port in [7u16, 53] {
        let sock = bind_v4(ip, port);
        no_reply(&sock, to, &s, u32::from(port));
    }
    let summary = server.stop();
    assert_eq!((summary.get("received"), summary.get("answered")), (3, 1), "{summary}");
    assert_drops(&summary, &[("denied_port", 2)]);
}

/// Without `--bind`, STAMP mode serves 127.0.0.1:862 (as root; skipped if the port is busy).
#[test]
fn stamp_mode_binds_port_862_by_default() {
    if !is_root() {
        eprintln!("SKIPPED: stamp_mode_binds_port_862_by_default: not root");
        return;
    }
    match UdpSocket::bind((Ipv4Addr::LOCALHOST, 862)) {
        Ok(probe) => drop(probe),
        Err(e) => {
            eprintln!("SKIPPED: stamp_mode_binds_port_862_by_default: 127.0.0.1:862: {e}");
            return;
        }
    }
    let server = Server::start(&["--mode", "stamp"]);
    assert_eq!(server.addr(), "127.0.0.1:862".parse::<SocketAddr>().unwrap());
    let s = sender(SenderConfig::default());
    let (reply, _) = exchange(&client(), server.addr(), &s, 9);
    assert_eq!(parsed(&s, &reply).sender_seq, 9);
    server.stop();
}

/// Unprivileged, the default port 862 cannot be bound: a clear message naming
/// `--bind ADDR:PORT`, exit code 1, no panic. As root the server is run as nobody through
/// `setpriv`; skipped where that is missing or unprivileged users may bind port 862.
#[test]
fn unprivileged_default_port_fails_with_a_hint() {
    let test = "unprivileged_default_port_fails_with_a_hint";
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 862 {
        eprintln!("SKIPPED: {test}: ip_unprivileged_port_start is {start}: anyone may bind 862");
        return;
    }
    let mut cmd = if is_root() {
        let ok = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: {test}: `setpriv --reuid=65534` does not work here");
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args(["server", "--mode", "stamp"]);
    let run: Finished = Running::spawn(cmd).finish(Duration::from_secs(10));
    if run.stderr.starts_with("setpriv:") {
        eprintln!("SKIPPED: {test}: nobody cannot run {BIN}:\n{run}");
        return;
    }
    assert_eq!(run.code(), Some(1), "{run}");
    assert!(run.stderr.contains("--bind ADDR:PORT"), "{run}");
    assert!(run.stderr.contains("862"), "the message names the port: {run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
}

/// The new reflector flags say what is wrong with them (exit 2): without `--mode stamp`,
/// `--stamp-short-from` with a key (authenticated TWAMP-Light is not STAMP's), and a class
/// or prefix that is not one.
#[test]
fn short_from_and_allow_dscp_usage_errors_exit_2() {
    let key = KeyFile::new("stamp-usage", &format!("{KEY_HEX}\n"));
    let key = key.path();
    let key = key.to_str().unwrap();
    for (args, says) in [
        (&["--stamp-short-from", "127.0.0.1"][..], "--mode stamp"),
        (&["--stamp-allow-dscp", "ef"], "--mode stamp"),
        (
            &["--mode", "stamp", "--stamp-short-from", "127.0.0.1", "--stamp-key-file", key],
            "--stamp-key-file",
        ),
        (&["--mode", "stamp", "--stamp-short-from", "127.0.0.1/33"], "prefix"),
        (&["--mode", "stamp", "--stamp-allow-dscp", "ef,64"], "0 to 63"),
        (&["--mode", "stamp", "--stamp-allow-dscp", "7-0"], "backwards"),
    ] {
        let mut all = vec!["server", "--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = run_shout(&all, None, Duration::from_secs(10)).into_output();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should name {says:?}: {err}");
    }
}

/// Runs `shout ARGS --stamp-key-file PATH` for the server and the bench: each must exit 2
/// within a second, nothing on stdout, with `want` in the message (never hang in `open()`).
fn assert_key_refused(path: &std::path::Path, want: &str) {
    let path = path.to_str().unwrap();
    let server = ["server", "--mode", "stamp", "--bind", "127.0.0.1:0", "--stamp-key-file", path];
    let bench = ["bench", "--stamp", "127.0.0.1:9", "-d", "1s", "--stamp-key-file", path];
    for args in [&server[..], &bench[..]] {
        let run = shout(args, Duration::from_secs(10));
        assert_eq!(run.code(), Some(2), "{args:?}: {run}");
        assert!(run.elapsed < Duration::from_secs(1), "{args:?} took {:?}: {run}", run.elapsed);
        assert!(run.stdout.is_empty(), "{args:?}: nothing served or measured: {run}");
        assert!(run.stderr.contains("the STAMP key file"), "{args:?}: {run}");
        assert!(run.stderr.contains(want), "{args:?}: want {want:?}: {run}");
    }
}

/// Issue 15, item 8: a key path that is a FIFO (no writer), a directory or a device is
/// refused at once, by the server and the bench alike, instead of blocking in `open()`.
#[test]
fn key_files_that_are_not_regular_files_are_refused_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let private = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let dir = Scratch::new("stamp-key-kinds");
    // Mode 600, as a key should be: the permission check passes and the open is reached.
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
    if made {
        private(&fifo, 0o600);
        assert_key_refused(&fifo, "is a FIFO, not a regular file");
    } else {
        eprintln!("SKIPPED (FIFO part): mkfifo failed");
    }
    let sub = dir.path().join("dir");
    std::fs::create_dir(&sub).unwrap();
    private(&sub, 0o700);
    assert_key_refused(&sub, "is a directory, not a regular file");
    assert_key_refused(std::path::Path::new("/dev/zero"), "is a character device");
    // A file that cannot be read stays an I/O error (exit 1), as it was; it names the path.
    let missing = dir.path().join("missing");
    let run = shout(
        &["server", "--mode", "stamp", "--stamp-key-file", missing.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(run.code(), Some(1), "{run}");
    assert!(run.stderr.contains(missing.to_str().unwrap()), "{run}");
}

/// Issue 15, item 9: a key file's size is capped (read no further than the cap), an all-zero
/// key is refused, hex-looking text that is not valid hex is an error naming the rule (never
/// raw bytes), and the permission message names the group; server and bench alike.
#[test]
fn key_files_too_large_all_zero_bad_hex_or_group_readable_are_refused() {
    let cases: [(&str, &[u8], u32, &str); 6] = [
        ("zeros", &[0; 32], 0o600, "all zeros"),
        ("hex-zeros", &[b'0'; 64], 0o600, "all zeros"),
        ("odd", b"00112233445566778899aabbccddeeff0\n", 0o600, "odd number of digits (33)"),
        ("spaced", b"0011 2233 4455 6677 8899 aabb ccdd eeff\n", 0o600, "white space between"),
        ("group", KEY_HEX.as_bytes(), 0o640, "readable by group (mode 640)"),
        ("others", KEY_HEX.as_bytes(), 0o604, "readable by others (mode 604)"),
    ];
    for (name, contents, mode, want) in cases {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new(&format!("stamp-key-{name}"));
        dir.write("key", contents);
        let path = dir.path().join("key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_key_refused(&path, want);
    }
    // 256 MiB (sparse: no disk used) was read whole and taken as a key of zeros.
    let dir = Scratch::new("stamp-key-huge");
    dir.write("key", b"");
    let path = dir.path().join("key");
    std::fs::File::options().write(true).open(&path).unwrap().set_len(256 << 20).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert_key_refused(&path, "larger than 4096 bytes");
}

/// The key file rule is stated once: `server --help`, `bench --help` and docs/STAMP.md carry
/// the same sentence.
#[test]
fn key_file_rule_is_the_same_in_both_helps_and_the_docs() {
    let rule = shout::stamp::key::KEY_FILE_RULE;
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/STAMP.md"))
        .expect("docs/STAMP.md");
    assert_eq!(docs.matches(rule).count(), 2, "docs/STAMP.md states the rule for both ends");
    for sub in ["server", "bench"] {
        let run = shout(&[sub, "--help"], Duration::from_secs(10));
        assert!(run.stdout.contains(rule), "`shout {sub} --help` lacks the rule: {run}");
    }
}
