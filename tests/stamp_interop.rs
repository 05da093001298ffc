//! Interoperability with an independent STAMP implementation, stamp-suite 1.0.0
//! (`cargo install stamp-suite --version 1.0.0 --locked`): its Session-Sender against
//! `shout server --mode stamp` in every combination of unauthenticated / authenticated,
//! stateless / stateful, NTP / PTP, without / with TLVs; each run checked field by field in
//! its JSON report and `-R` per-packet lines, and against our server's `summary:` line.
//!
//! The runs take turns ([`exclusive`]), so that on a small machine one run's load does not
//! show up as another's round-trip times.
//!
//! Skipped (with a `SKIPPED:` note) when `stamp-suite` is not on PATH, unless
//! `SHOUT_REQUIRE_STAMP_SUITE=1`, which `.ci/run` sets: then a missing peer fails.
//!
//! The other direction, `shout bench --stamp` against stamp-suite's reflector, is
//! [`shout_sender_against_stamp_suite_reflector`], ignored until `bench --stamp` lands.

use crate::common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Probes per stamp-suite run, and the gap between them.
const COUNT: u64 = 20;
const INTERVAL_MS: &str = "10";
/// Longest a stamp-suite run may take (20 probes at 10 ms, a 1 s reply timeout, startup).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// A plausible round trip on loopback: the median and the shortest must be below it. Single
/// probes may take longer on a loaded 2-core machine (66 ms was seen once while other builds
/// ran), so each is only held to [`REPLY_TIMEOUT_MS`], by which it was answered anyway.
const MAX_RTT_MS: f64 = 50.0;
/// stamp-suite's reply timeout (`-L 1`): a reply later than this would be counted lost.
const REPLY_TIMEOUT_MS: f64 = 1000.0;
/// The shared HMAC key, hex, as both programs read it from one file.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef";
/// The TTL stamp-suite 1.0.0 always sends (its `--ttl` accepts only 255).
const PEER_TTL: u64 = 255;

/// The path of `program` if it is an executable file in a PATH directory.
fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// stamp-suite's path; `None` (after a `SKIPPED:` note) if it is missing, unless
/// `SHOUT_REQUIRE_STAMP_SUITE=1`, when a missing peer is a failure.
fn stamp_suite(test: &str) -> Option<PathBuf> {
    let Some(path) = on_path("stamp-suite") else {
        if std::env::var("SHOUT_REQUIRE_STAMP_SUITE").as_deref() == Ok("1") {
            panic!(
                "{test}: stamp-suite is not on PATH and SHOUT_REQUIRE_STAMP_SUITE=1; \
                 install it: cargo install stamp-suite --version 1.0.0 --locked"
            );
        }
        eprintln!(
            "SKIPPED: {test}: stamp-suite is not on PATH \
             (cargo install stamp-suite --version 1.0.0 --locked)"
        );
        return None;
    };
    let version = Command::new(&path).arg("--version").output().map(|o| o.stdout);
    let version = String::from_utf8_lossy(&version.unwrap_or_default()).trim().to_string();
    if version != "stamp-suite 1.0.0" {
        eprintln!(
            "NOTE: {test}: these cases were written against stamp-suite 1.0.0, not {version:?}"
        );
    }
    Some(path)
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug)]
struct Case {
    authenticated: bool,
    stateful: bool,
    ptp: bool,
    tlvs: bool,
}

impl Case {
    fn all() -> impl Iterator<Item = Case> {
        (0..16u8).map(|i| Case {
            authenticated: i & 8 != 0,
            stateful: i & 4 != 0,
            ptp: i & 2 != 0,
            tlvs: i & 1 != 0,
        })
    }
}

/// A key file (hex, mode 600) both programs read.
struct KeyFile(Scratch);

impl KeyFile {
    fn new() -> KeyFile {
        KeyFile::with(KEY_HEX)
    }

    fn with(hex: &str) -> KeyFile {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new("stamp-interop-key");
        dir.write("key", format!("{hex}\n").as_bytes());
        std::fs::set_permissions(dir.path().join("key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600 the key file");
        KeyFile(dir)
    }

    fn path(&self) -> String {
        self.0.path().join("key").to_str().expect("a UTF-8 temp path").to_string()
    }
}

/// `shout server --mode stamp` set up for `case`.
fn server_for(case: Case, key: &KeyFile) -> Server {
    let mut args =
        vec!["--mode".to_string(), "stamp".into(), "--bind".into(), "127.0.0.1:0".into()];
    if case.authenticated {
        args.extend(["--stamp-key-file".into(), key.path()]);
    }
    if case.stateful {
        args.push("--stamp-stateful".into());
    }
    if case.ptp {
        args.extend(["--stamp-timestamp".into(), "ptp".into()]);
    }
    Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// What one stamp-suite sender run reported.
struct PeerRun {
    /// The last JSON object on stdout (`--output-format json`).
    report: Value,
    /// The `-R` per-packet lines (`seq=N rtt=Xms ttl=T ...`) as key=value maps, in order.
    packets: Vec<BTreeMap<String, String>>,
    /// All of its output, for assertion messages.
    text: String,
}

impl PeerRun {
    fn u64(&self, pointer: &str) -> u64 {
        self.report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| {
            panic!("no integer at {pointer} in stamp-suite's report:\n{}", self.text)
        })
    }

    fn f64(&self, pointer: &str) -> f64 {
        self.report.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| {
            panic!("no number at {pointer} in stamp-suite's report:\n{}", self.text)
        })
    }

    fn str(&self, pointer: &str) -> &str {
        self.report.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| {
            panic!("no string at {pointer} in stamp-suite's report:\n{}", self.text)
        })
    }
}

/// The stamp-suite flags that ask for the TLVs of a case with TLVs: Class of Service (asking
/// for AF11), Timestamp Information, Direct Measurement, Follow-Up Telemetry, Location (which
/// shout does not implement: it comes back with U), and 32 octets of Extra Padding.
const PEER_TLVS: [&str; 9] = [
    "--cos",
    "--dscp",
    "10",
    "--timestamp-info",
    "--direct-measurement",
    "--follow-up-telemetry",
    "--location",
    "--extra-padding",
    "32",
];

/// Runs stamp-suite as Session-Sender against `server` for `case`, from `local_port` (0:
/// any), with `extra` flags; asserts it exits 0 and returns what it reported.
fn run_sender(
    peer: &PathBuf,
    server: &Server,
    case: Case,
    key: &KeyFile,
    local_port: u16,
    extra: &[&str],
) -> PeerRun {
    let mut cmd = Command::new(peer);
    let port = server.addr().port().to_string();
    let local_port = local_port.to_string();
    cmd.args(["-r", "127.0.0.1", "-p", &port, "-S", "127.0.0.1", "-o", &local_port])
        .args(["-c", &COUNT.to_string(), "-d", INTERVAL_MS, "-L", "1", "--ssid", "7"])
        .args(["--output-format", "json", "-R"])
        .args(["-K", if case.ptp { "PTP" } else { "NTP" }])
        .env("NO_COLOR", "1")
        .env_remove("STAMP_HMAC_KEY");
    if case.authenticated {
        cmd.args(["-A", "A", "--hmac-key-file", &key.path()]);
    }
    if case.tlvs {
        cmd.args(PEER_TLVS);
    }
    cmd.args(extra);
    let described = format!("{cmd:?}");
    let run = Running::spawn(cmd).output(RUN_TIMEOUT);
    let text = format!("{described}\n{}", run.describe());
    assert!(run.status.success(), "stamp-suite failed ({case:?}):\n{text}");
    let stdout = run.stdout_str();
    let last = stdout.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let report: Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report on stamp-suite's stdout ({case:?}):\n{text}"));
    let packets = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("seq="))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    PeerRun { report, packets, text }
}

/// What every run of a case must show, whatever the mode: all probes answered, none lost,
/// RTTs present and plausible, sequence numbers 0..COUNT in the per-packet lines with the
/// TTL it sent, one-way delays plausible (one clock), the reflector's Z bit as configured
/// and its S bit clear; and the TLVs each answered as shout answers them.
fn check_run(case: Case, run: &PeerRun) {
    let ctx = format!("{case:?}\n{}", run.text);
    assert_eq!(run.u64("/packets_sent"), COUNT, "{ctx}");
    assert_eq!(run.u64("/packets_received"), COUNT, "{ctx}");
    assert_eq!(run.u64("/packets_lost"), 0, "{ctx}");
    let (min, max) = (run.f64("/min_rtt_ms"), run.f64("/max_rtt_ms"));
    let median = run.f64("/median_rtt_ms");
    assert!(0.0 < min && min <= median && median <= max, "RTT {min}/{median}/{max} ms: {ctx}");
    assert!(median < MAX_RTT_MS && max < REPLY_TIMEOUT_MS, "RTT {median}, {max} ms: {ctx}");
    for field in ["answered_probes", "unique_replies"] {
        assert_eq!(run.u64(&format!("/measurements/{field}")), COUNT, "{field}: {ctx}");
    }
    for field in ["unknown_replies", "duplicate_replies", "late_replies", "reordered_replies"] {
        assert_eq!(run.u64(&format!("/measurements/{field}")), 0, "{field}: {ctx}");
    }

    // Per packet: its sequence numbers, our copy of its TTL, an RTT for each.
    let seqs: Vec<u64> = run.packets.iter().map(|p| p["seq"].parse().unwrap()).collect();
    assert_eq!(seqs, (0..COUNT).collect::<Vec<_>>(), "per-packet seq: {ctx}");
    for p in &run.packets {
        assert_eq!(p["ttl"].parse::<u64>().ok(), Some(PEER_TTL), "Session-Sender TTL: {ctx}");
        let rtt: f64 = p["rtt"].trim_end_matches("ms").parse().expect("rtt=X.XXXms");
        assert!(0.0 < rtt && rtt < REPLY_TIMEOUT_MS, "rtt {rtt} ms: {ctx}");
        let (t2, t3): (u64, u64) =
            (p["reflector_recv_ts"].parse().unwrap(), p["reflector_send_ts"].parse().unwrap());
        // The same format on both (NTP or PTP as 32.32 bits), so raw order is time order.
        assert!(t2 <= t3, "T2 after T3: {ctx}");
    }

    // The reflector's timestamps as it decoded them: one-way delays on one clock are tiny.
    assert_eq!(run.u64("/owd/samples"), COUNT, "{ctx}");
    for (d, limit) in [
        ("forward_median_ms", MAX_RTT_MS),
        ("reverse_median_ms", MAX_RTT_MS),
        ("forward_max_ms", REPLY_TIMEOUT_MS),
        ("reverse_max_ms", REPLY_TIMEOUT_MS),
    ] {
        let v = run.f64(&format!("/owd/{d}"));
        assert!((-1.0..limit).contains(&v), "{d} = {v}: {ctx}");
    }
    for d in ["forward_min_ms", "reverse_min_ms"] {
        let v = run.f64(&format!("/owd/{d}"));
        assert!((-1.0..MAX_RTT_MS).contains(&v), "{d} = {v}: {ctx}");
    }
    let z = if case.ptp { "PTP" } else { "NTP" };
    assert_eq!(run.str("/owd/clock_quality/last_reflector/format"), z, "Z bit: {ctx}");
    let s = run.report.pointer("/owd/clock_quality/last_reflector/synchronized");
    assert_eq!(s, Some(&Value::Bool(false)), "S bit: {ctx}");

    // The reflector's sequence numbers: ours from 0 in a fresh stateful session, its own
    // copied back when stateless; both end at COUNT - 1 here.
    assert_eq!(run.u64("/measurements/last_reflector_sequence"), COUNT - 1, "{ctx}");

    let tv = "/measurements/tlv_validation";
    if !case.tlvs {
        assert_eq!(run.u64(&format!("{tv}/evaluated_replies")), 0, "{ctx}");
        return;
    }
    assert_eq!(run.u64(&format!("{tv}/evaluated_replies")), COUNT, "{ctx}");
    assert_eq!(run.u64(&format!("{tv}/rejected_replies")), 0, "{ctx}");
    assert_eq!(run.u64(&format!("{tv}/flags/malformed")), 0, "{ctx}");
    assert_eq!(run.u64(&format!("{tv}/flags/integrity_failed")), 0, "{ctx}");
    // Extra Padding, Timestamp Information, CoS, Direct Measurement, Follow-Up Telemetry.
    for kind in ["1", "3", "4", "5", "7"] {
        assert_eq!(run.u64(&format!("{tv}/by_type/{kind}/observed")), COUNT, "type {kind}: {ctx}");
        let u = run.u64(&format!("{tv}/by_type/{kind}/flags/unrecognized"));
        assert_eq!(u, 0, "type {kind} is implemented, yet came back with U: {ctx}");
    }
    // Location (RFC 8972 §4.2) is not implemented by shout: U, as §4 asks.
    assert_eq!(run.u64(&format!("{tv}/by_type/2/flags/unrecognized")), COUNT, "{ctx}");
    if case.authenticated {
        assert_eq!(run.u64(&format!("{tv}/hmac/verified")), COUNT, "HMAC TLV: {ctx}");
        assert_eq!(run.u64(&format!("{tv}/hmac/failed")), 0, "{ctx}");
        assert_eq!(run.u64(&format!("{tv}/by_type/8/flags/unrecognized")), 0, "{ctx}");
    }
    let dm = "/measurements/direct_measurement";
    let fu = "/measurements/follow_up";
    assert_eq!(run.u64(&format!("{fu}/unmatched")), 0, "Follow-Up Telemetry: {ctx}");
    if case.stateful {
        // Stateful: the counters of Direct Measurement and the previous reply of Follow-Up.
        assert_eq!(run.u64(&format!("{dm}/forward_missing")), 0, "{ctx}");
        assert_eq!(run.u64(&format!("{dm}/reverse_missing")), 0, "{ctx}");
        assert_eq!(run.u64(&format!("{dm}/latest_transmit/reflector_rx")), COUNT, "{ctx}");
        assert_eq!(run.u64(&format!("{fu}/matched")), COUNT - 1, "{ctx}");
    }
}

/// Our server's account of a case: every probe received and answered, nothing dropped.
fn check_summary(case: Case, summary: &Summary, probes: u64, bytes_each: Option<u64>) {
    assert_eq!(summary.get("received"), probes, "{case:?}: {summary}");
    assert_eq!(summary.get("answered"), probes, "{case:?}: {summary}");
    if let Some(b) = bytes_each {
        assert_eq!(summary.get("bytes_answered"), probes * b, "{case:?}: {summary}");
    }
    for field in DROP_REASONS.into_iter().chain(["reply_failed"]) {
        assert_eq!(summary.get(field), 0, "{field}, {case:?}: {summary}");
    }
}

/// The four cells of the matrix for one (authenticated, stateful) pair.
fn matrix(test: &str, authenticated: bool, stateful: bool) {
    let Some(peer) = stamp_suite(test) else { return };
    let _one_at_a_time = exclusive();
    let key = KeyFile::new();
    for case in Case::all().filter(|c| c.authenticated == authenticated && c.stateful == stateful) {
        let server = server_for(case, &key);
        let run = run_sender(&peer, &server, case, &key, 0, &[]);
        let summary = server.stop();
        check_run(case, &run);
        // Without TLVs the base packet: 44 octets, 112 authenticated (RFC 8762 §4.2).
        let base = if case.tlvs { None } else { Some(if authenticated { 112 } else { 44 }) };
        check_summary(case, &summary, COUNT, base);
        eprintln!("ok: {case:?}");
    }
}

#[test]
fn stamp_suite_sender_unauthenticated_stateless() {
    matrix("stamp_suite_sender_unauthenticated_stateless", false, false);
}

#[test]
fn stamp_suite_sender_unauthenticated_stateful() {
    matrix("stamp_suite_sender_unauthenticated_stateful", false, true);
}

#[test]
fn stamp_suite_sender_authenticated_stateless() {
    matrix("stamp_suite_sender_authenticated_stateless", true, false);
}

#[test]
fn stamp_suite_sender_authenticated_stateful() {
    matrix("stamp_suite_sender_authenticated_stateful", true, true);
}

/// A port on 127.0.0.1 that was free a moment ago (stamp-suite picks its own otherwise).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// Stateful, the reflector numbers its own: a second run from the same source port and SSID
/// is the same session, so stamp-suite (whose sequence numbers start at 0 again) sees the
/// reflector's numbers 20..39, independent of its own. Stateless, the second run sees its own
/// 0..19 copied back.
#[test]
fn stamp_suite_sees_the_stateful_reflectors_own_sequence_numbers() {
    let Some(peer) = stamp_suite("stamp_suite_sees_the_stateful_reflectors_own_sequence_numbers")
    else {
        return;
    };
    let _one_at_a_time = exclusive();
    let key = KeyFile::new();
    for stateful in [false, true] {
        let case = Case { authenticated: false, stateful, ptp: false, tlvs: false };
        let server = server_for(case, &key);
        let port = free_port();
        let first = run_sender(&peer, &server, case, &key, port, &[]);
        let second = run_sender(&peer, &server, case, &key, port, &[]);
        let summary = server.stop();
        check_run(case, &first);
        let ctx = format!("{case:?}\n{}", second.text);
        assert_eq!(second.u64("/packets_received"), COUNT, "{ctx}");
        let last = second.u64("/measurements/last_reflector_sequence");
        let independent = second.u64("/measurements/independent_sequence_observations");
        if stateful {
            assert_eq!(last, 2 * COUNT - 1, "the session went on counting: {ctx}");
            assert_eq!(independent, COUNT, "{ctx}");
        } else {
            assert_eq!((last, independent), (COUNT - 1, 0), "{ctx}");
        }
        check_summary(case, &summary, 2 * COUNT, Some(44));
    }
}

/// stamp-suite's deliberately malformed TLVs (`--malformed bad-length`: a Length past the end
/// of the packet; `bad-flags`: reserved flag bits set) still get a reply of the same length
/// for every probe (RFC 8972 §4: the reflector marks the TLV, it does not drop the packet).
#[test]
fn stamp_suite_malformed_tlvs_are_answered() {
    let Some(peer) = stamp_suite("stamp_suite_malformed_tlvs_are_answered") else { return };
    let _one_at_a_time = exclusive();
    let key = KeyFile::new();
    let case = Case { authenticated: false, stateful: false, ptp: false, tlvs: false };
    for how in ["bad-length", "bad-flags"] {
        let server = server_for(case, &key);
        let run = run_sender(&peer, &server, case, &key, 0, &["--malformed", how]);
        let summary = server.stop();
        let ctx = format!("--malformed {how}\n{}", run.text);
        assert_eq!(run.u64("/packets_received"), COUNT, "{ctx}");
        assert_eq!(run.u64("/packets_lost"), 0, "{ctx}");
        check_summary(case, &summary, COUNT, None);
    }
}

/// An authenticated reflector answers neither stamp-suite signing with another key (counted
/// as `stamp_auth_failed`) nor stamp-suite in unauthenticated mode (44-octet packets, shorter
/// than the 112-octet authenticated base packet: `stamp_malformed`); stamp-suite sees every
/// probe lost.
#[test]
fn stamp_suite_with_another_key_or_mode_gets_no_reply() {
    let Some(peer) = stamp_suite("stamp_suite_with_another_key_or_mode_gets_no_reply") else {
        return;
    };
    let _one_at_a_time = exclusive();
    let key = KeyFile::new();
    let other = KeyFile::with("ffeeddccbbaa99887766554433221100");
    let case = Case { authenticated: true, stateful: false, ptp: false, tlvs: false };
    let server = server_for(case, &key);
    let wrong_key = run_sender(&peer, &server, case, &other, 0, &[]);
    let open = Case { authenticated: false, ..case };
    let wrong_mode = run_sender(&peer, &server, open, &key, 0, &[]);
    let summary = server.stop();
    for run in [&wrong_key, &wrong_mode] {
        assert_eq!(run.u64("/packets_sent"), COUNT, "{}", run.text);
        assert_eq!(run.u64("/packets_received"), 0, "{}", run.text);
        assert_eq!(run.u64("/packets_lost"), COUNT, "{}", run.text);
    }
    assert_eq!(summary.get("received"), 2 * COUNT, "{summary}");
    assert_eq!(summary.get("answered"), 0, "{summary}");
    assert_eq!(summary.get("stamp_auth_failed"), COUNT, "{summary}");
    assert_eq!(summary.get("stamp_malformed"), COUNT, "{summary}");
}

/// The other direction: `shout bench --stamp` (a STAMP Session-Sender) against
/// stamp-suite's reflector, in every cell of the matrix: 20 probes at 100/s.
/// Checked from our JSON report (docs/BENCH-JSON.md) field by field, and from
/// the reflector's own statistics when it is interrupted.
fn reverse_matrix(test: &str, authenticated: bool) {
    let Some(peer) = stamp_suite(test) else { return };
    let _one_at_a_time = exclusive();
    let key = KeyFile::new();
    for case in Case::all().filter(|c| c.authenticated == authenticated) {
        let port = free_port();
        let mut cmd = Command::new(&peer);
        cmd.args(["-i", "-S", "127.0.0.1", "-o", &port.to_string()]).env("NO_COLOR", "1");
        if case.authenticated {
            cmd.args(["-A", "A", "--hmac-key-file", &key.path()]);
        }
        if case.stateful {
            cmd.arg("--stateful-reflector");
        }
        if case.ptp {
            cmd.args(["-K", "PTP"]);
        }
        let mut reflector = Proc::spawn(cmd);
        reflector
            .stderr_line(Duration::from_secs(10), |l| l.contains("Reflector listening on"))
            .expect("stamp-suite's reflector did not say it was listening");
        let target = format!("127.0.0.1:{port}");
        let mut args = vec!["bench", "--stamp", &target, "--rate", "100", "--duration", "200ms"];
        args.extend(["--timeout", "1s", "--json"]);
        let key_path = key.path();
        if case.authenticated {
            args.extend(["--stamp-key-file", &key_path]);
        }
        if case.stateful {
            args.push("--stamp-stateful");
        }
        if case.ptp {
            args.extend(["--stamp-timestamp", "ptp"]);
        }
        if case.tlvs {
            args.extend([
                "--stamp-tlv",
                "timestamp-info,cos,direct,follow-up",
                "--stamp-ssid",
                "7",
            ]);
        }
        let run = shout(&args, Duration::from_secs(20));
        assert_eq!(run.code(), Some(0), "{case:?}: {run}");
        let report: Value =
            serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run}"));
        let n = |k: &str| report[k].as_u64().unwrap_or_else(|| panic!("no {k}: {run}"));
        assert_eq!(n("sent"), COUNT, "{case:?}: {run}");
        assert_eq!((n("answered"), n("lost"), n("mismatched")), (COUNT, 0, 0), "{case:?}: {run}");
        assert_eq!((n("duplicated"), n("reordered")), (0, 0), "{case:?}: {run}");
        let rtt = |k: &str| report["rtt_us"][k].as_f64().unwrap_or_else(|| panic!("{k}: {run}"));
        assert!(0.0 < rtt("min") && rtt("p50") < MAX_RTT_MS * 1000.0, "{case:?}: {run}");
        assert!(rtt("max") < REPLY_TIMEOUT_MS * 1000.0, "{case:?}: {run}");
        let stamp = &report["stamp"];
        let field = |k: &str| stamp[k].as_u64().unwrap_or_else(|| panic!("no stamp.{k}: {run}"));
        let mode = if case.authenticated { "authenticated" } else { "unauthenticated" };
        assert_eq!(stamp["mode"], mode, "{case:?}: {run}");
        assert_eq!(stamp["timestamp"], if case.ptp { "ptp" } else { "ntp" }, "{run}");
        assert_eq!(field("auth_failed"), 0, "{case:?}: {run}");
        // The split needs the reflector's own sequence numbers (stateful); a
        // stateless reflector copies ours, so there is none to make.
        assert_eq!(stamp["reflector_stateful"], case.stateful, "{case:?}: {run}");
        if case.stateful {
            let split = (field("forward_lost"), field("backward_lost"));
            assert_eq!(split, (0, 0), "{case:?}: {run}");
        } else {
            assert!(stamp["forward_lost"].is_null(), "{case:?}: {run}");
        }
        assert_eq!(field("unsplit_lost"), 0, "{case:?}: {run}");
        // It saw our TTL 255 and sends its replies with 255: no hop on loopback.
        assert_eq!(stamp["forward_ttl"]["min"], PEER_TTL, "{case:?}: {run}");
        assert_eq!(stamp["backward_ttl"]["min"], PEER_TTL, "{case:?}: {run}");
        // One-way delays and its turnaround are there and inside the round trip.
        let us = |part: &str, k: &str| stamp[part][k].as_f64().unwrap_or(f64::NAN);
        for part in ["forward_us", "backward_us", "turnaround_us"] {
            assert!(us(part, "p50") >= 0.0, "{part} in {case:?}: {run}");
        }
        assert!(us("turnaround_us", "max") <= rtt("max"), "{case:?}: {run}");
        // It knows every TLV we send: each came back on all 20 replies with
        // the U flag cleared, and none was malformed or failed its HMAC check.
        let tlvs = &stamp["tlv_results"];
        if case.tlvs {
            assert_eq!(tlvs["replies"], COUNT, "{case:?}: {run}");
            assert_eq!(tlvs["hmac_failed"], 0, "{case:?}: {run}");
            let types = tlvs["types"].as_array().unwrap_or_else(|| panic!("types: {run}"));
            let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
            assert_eq!(names, ["timestamp-info", "cos", "direct", "follow-up"], "{run}");
            for t in types {
                assert_eq!(t["returned"], COUNT, "{case:?}: {t}: {run}");
                for flag in ["unrecognized", "malformed", "integrity_failed"] {
                    assert_eq!(t[flag], 0, "{flag} in {case:?}: {t}: {run}");
                }
            }
        } else {
            assert!(tlvs.is_null(), "no TLVs sent, no TLV result: {case:?}: {run}");
        }
        // Interrupted, it prints its statistics on stdout.
        reflector.signal("INT");
        reflector.wait(Duration::from_secs(5)).expect("stamp-suite exits within 5 s of SIGINT");
        let out = reflector.drain_stdout().join("\n");
        assert!(out.contains(&format!("Total packets reflected: {COUNT}")), "{case:?}: {out}");
        eprintln!("ok: shout bench --stamp against stamp-suite -i, {case:?}");
    }
}

#[test]
fn shout_sender_against_stamp_suite_reflector_unauthenticated() {
    reverse_matrix("shout_sender_against_stamp_suite_reflector_unauthenticated", false);
}

#[test]
fn shout_sender_against_stamp_suite_reflector_authenticated() {
    reverse_matrix("shout_sender_against_stamp_suite_reflector_authenticated", true);
}
