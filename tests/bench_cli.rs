//! `shout bench` run as a child process against servers in this process: shout's
//! own (every probe answered) and a wrong one (lowercase garbage).

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use common::{with_fake_server, StopOnDrop, BIN};

use serde_json::Value;
use shout::{Server, ServerConfig};

/// Runs `shout bench ARGS`; kills it and fails if it runs past `limit`.
fn bench(args: &[&str], limit: Duration) -> Output {
    let args: Vec<&str> = ["bench"].iter().chain(args).copied().collect();
    common::run_shout(&args, None, limit).into_output()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not one JSON object ({err}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_else(|| panic!("{key} is not a count: {report}"))
}

/// Runs `f` with the address of a shout server running in this process.
fn with_server(f: impl FnOnce(SocketAddr)) {
    let config = ServerConfig { binds: vec!["127.0.0.1:0".parse().unwrap()], ..Default::default() };
    let server = Server::bind(config).expect("binding a server on port 0");
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| server.run(&stop));
        let _stop = StopOnDrop(&stop); // even if `f` panics, so the scope can end
        f(server.local_addr());
    });
}

#[test]
fn measures_shout_with_every_probe_answered() {
    with_server(|addr| {
        let out = bench(
            &[&addr.to_string(), "--duration", "1s", "--flows", "2", "--window", "4", "--json"],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "{out:?}");
        let report = json(&out);
        for key in shout::bench::JSON_FIELDS {
            assert!(report.get(key).is_some(), "field {key} missing: {report}");
        }
        assert_eq!(report["schema"], 1);
        assert_eq!(report["target"], addr.to_string());
        assert!(count(&report, "answered") > 0, "{report}");
        assert_eq!(count(&report, "answered"), count(&report, "sent"), "{report}");
        assert_eq!(count(&report, "lost"), 0, "{report}");
        assert_eq!(count(&report, "mismatched"), 0, "{report}");
        assert_eq!(count(&report, "duplicated"), 0, "{report}");
        assert!(report["answers_per_s"].as_f64().unwrap() > 0.0, "{report}");
        let rtt = &report["rtt_us"];
        for key in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(rtt[key].as_f64().is_some_and(|v| v > 0.0), "rtt_us.{key}: {report}");
        }
        assert!(rtt["p50"].as_f64() <= rtt["p99"].as_f64(), "{report}");
        assert!(out.stderr.is_empty(), "nothing on stderr when it is not a terminal");
    });
}

#[test]
fn open_loop_and_table_output() {
    with_server(|addr| {
        let out = bench(
            &[&addr.to_string(), "--rate", "2000", "--duration", "300ms", "--size", "200"],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "{out:?}");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("open loop, 2000 probes/s"), "{table}");
        assert!(table.contains("lost        0  (0.000%"), "{table}");
        assert!(table.contains("mismatched  0"), "{table}");
        assert!(table.contains("rtt p99.9"), "{table}");
        // About 600 probes in 300 ms.
        let sent: u64 = table
            .lines()
            .find_map(|l| l.strip_prefix("sent"))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sent line: {table}"));
        assert!((590..=601).contains(&sent), "{table}");
    });
}

#[test]
fn wrong_replies_are_mismatched_and_fail_the_loss_check() {
    let garbage = |_: &[u8]| b"sb0000 not what you sent, lowercase".to_vec();
    with_fake_server(garbage, |addr| {
        let out = bench(
            &[&addr.to_string(), "--duration", "1s", "--max-loss", "0", "--json"],
            Duration::from_secs(5),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let report = json(&out);
        assert!(count(&report, "mismatched") > 0, "{report}");
        assert_eq!(count(&report, "answered"), 0, "{report}");
        assert_eq!(count(&report, "lost"), count(&report, "sent"), "{report}");
        assert!(report["rtt_us"].is_null(), "{report}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("check failed: loss 100.000%"), "{stderr}");
    });
}

/// A reply that is right but too long is a mismatch, not an answer, whether it is
/// read by the one-datagram path (window 1) or in batches.
#[test]
fn overlong_replies_are_mismatched_at_any_window() {
    let overlong = |request: &[u8]| [&request.to_ascii_uppercase()[..], &[b'X'; 200]].concat();
    with_fake_server(overlong, |addr| {
        for window in ["1", "8"] {
            let out = bench(
                &[&addr.to_string(), "--duration", "300ms", "--window", window, "--json"],
                Duration::from_secs(5),
            );
            let report = json(&out);
            assert!(count(&report, "mismatched") > 0, "window {window}: {report}");
            assert_eq!(count(&report, "answered"), 0, "window {window}: {report}");
        }
    });
}

#[test]
fn p99_check_fails_when_exceeded() {
    with_server(|addr| {
        let out = bench(
            &[&addr.to_string(), "--duration", "200ms", "--max-p99", "1ns", "--max-loss", "0"],
            Duration::from_secs(5),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("check failed: p99 RTT"), "{stderr}");
        assert!(!stderr.contains("loss"), "loss held: {stderr}");
    });
}

/// Runs `f` with the address of a server that answers for `for_how_long`,
/// then closes its socket: later probes get "port unreachable".
fn with_server_that_goes_away(for_how_long: Duration, f: impl FnOnce(SocketAddr)) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let addr = sock.local_addr().unwrap();
    thread::scope(|s| {
        s.spawn(move || {
            let until = Instant::now() + for_how_long;
            let mut buf = [0u8; 2048];
            while Instant::now() < until {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    // Probes have no lowercase: the uppercase reply is the probe.
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
            drop(sock);
        });
        f(addr);
    });
}

/// A server that goes away mid-run does not throw the run away: the probes
/// after it are lost, the "port unreachable" reports counted, and the report
/// covers the whole duration, in closed and open loop.
#[test]
fn a_server_that_goes_away_mid_run_is_lost_not_an_error() {
    for load in [&["--window", "2"][..], &["--rate", "200"]] {
        with_server_that_goes_away(Duration::from_millis(300), |addr| {
            let mut args = vec![addr.to_string()];
            args.extend(["-d", "1s", "-t", "50ms", "--json"].map(String::from));
            args.extend(load.iter().map(|a| a.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = bench(&args, Duration::from_secs(5));
            // Some probes were answered and no limit was set: exit 0.
            assert_eq!(out.status.code(), Some(0), "{load:?}: {out:?}");
            let report = json(&out);
            assert!(count(&report, "answered") > 0, "{load:?}: {report}");
            assert!(count(&report, "unreachable") > 0, "{load:?}: {report}");
            // Each report is about a probe sent to the closed port: lost.
            assert!(count(&report, "lost") >= count(&report, "unreachable"), "{report}");
            let duration = report["duration_s"].as_f64().unwrap();
            assert!(duration > 0.95, "sent until the end: {report}");
        });
    }
    with_server_that_goes_away(Duration::from_millis(200), |addr| {
        let out = bench(&[&addr.to_string(), "-d", "600ms", "-t", "50ms"], Duration::from_secs(5));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("(port unreachable: the target went away"), "{out:?}");
    });
}

/// A run with no answer has failed (exit 1, as ping and iperf3), report and
/// all: 100 % loss even within `--max-loss 100`, or nothing sent at all.
#[test]
fn a_run_without_an_answer_exits_1() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap(); // queues, never answers
    let addr = silent.local_addr().unwrap().to_string();
    for extra in [&[][..], &["--max-loss", "100"]] {
        let mut args = vec![addr.as_str(), "-d", "200ms", "-t", "50ms", "--json"];
        args.extend_from_slice(extra);
        let out = bench(&args, Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {out:?}");
        let report = json(&out);
        assert!(count(&report, "sent") > 0, "{report}");
        assert_eq!(count(&report, "lost"), count(&report, "sent"), "{report}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error: none of the") && stderr.contains("was answered"),
            "{stderr}"
        );
        assert!(!stderr.contains("check failed"), "--max-loss 100 holds: {stderr}");
    }
    with_server(|addr| {
        let out = bench(&[&addr.to_string(), "-d", "1ns", "--json"], Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(count(&json(&out), "sent"), 0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error: no probe was sent"), "{stderr}");
        // One answer is enough for the run to have measured something.
        let out = bench(&[&addr.to_string(), "-d", "100ms"], Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    });
}

#[test]
fn no_server_is_a_clear_error() {
    let addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed again
    let started = Instant::now();
    let out = bench(&[&addr.to_string(), "--duration", "5s"], Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("error: no server at {addr}")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--size", "27"][..],
        &["--size", "70000"],
        &["--window", "0"],
        &["--flows", "0"],
        &["--rate", "0"],
        &["--rate", "1e300", "-d", "1s"],
        &["--rate", "1e-300"],
        &["--rate", "inf"],
        &["--window", "100000000"],
        &["--size", "18446744073709551615"],
        &["--duration", "1e300s"],
        &["--duration", "31d"],
        &["--warmup", "20d", "--duration", "20d"],
        &["--timeout", "2h"],
        &["--flows", "100000"],
        &["--rate", "5", "--window", "2"],
        &["--duration", "0s"],
        &["--duration", "soon"],
        &["--max-loss", "120"],
        &["no-such-host-or-port"],
    ] {
        let out = bench(args, Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?} must say why");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = bench(&["--size", "27"], Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("28 bytes"), "{stderr}");
}

/// A `--stamp-*` flag without `--stamp` is refused, never silently ignored:
/// with ADDR (or `--expect`) given, clap alone would let it through.
#[test]
fn stamp_flags_without_stamp_are_usage_errors() {
    let key = scratch("unused.key"); // refused before anything reads it
    let key = key.to_str().unwrap();
    for args in [
        &["127.0.0.1:9", "--stamp-key-file", key][..],
        &["127.0.0.1:9", "--stamp-ssid", "3"],
        &["127.0.0.1:9", "--stamp-ssid", "0"],
        &["127.0.0.1:9", "--stamp-timestamp", "ptp"],
        &["127.0.0.1:9", "--stamp-tlv", "direct"],
        &["127.0.0.1:9", "--stamp-stateful"],
        &["--expect", "echo", "--stamp-key-file", key],
        &["--stamp-ssid", "3"],
    ] {
        let out = bench(args, Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--stamp"), "{args:?} must name --stamp: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing measured");
    }
}

/// Runs `f` with the address of an echo server on `bind` that notes the
/// traffic class byte (IPv4 TOS, IPv6 Traffic Class) each datagram arrived with.
fn with_tos_reading_server(bind: &str, f: impl FnOnce(SocketAddr)) -> Vec<Option<u8>> {
    use shout::test_seam::{enable_ttl_tos, recv_batch, RecvMeta};
    let sock = UdpSocket::bind(bind).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    enable_ttl_tos(&sock, sock.local_addr().unwrap().is_ipv6()).unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    thread::scope(|s| {
        let server = s.spawn(|| {
            let mut tos = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut meta = [RecvMeta::default(); 1];
                let mut bufs = [std::io::IoSliceMut::new(&mut buf)];
                if let Ok(1) = recv_batch(&sock, &mut bufs, &mut meta, true) {
                    tos.push(meta[0].tos);
                    let _ = sock.send_to(&buf[..meta[0].len], meta[0].addr);
                }
            }
            tos
        });
        {
            let _stop = StopOnDrop(&stop);
            f(addr);
        }
        seen = server.join().unwrap();
    });
    seen
}

/// `--dscp` marks every probe: what arrives carries DSCP << 2 in its TOS
/// (IPv4) or Traffic Class (IPv6), named or numbered; a bad class is refused.
#[test]
fn dscp_marks_every_probe() {
    let mut cases = vec![("127.0.0.1:0", "af41", 34u8), ("127.0.0.1:0", "10", 10)];
    if common::ipv6_loopback_available() {
        cases.push(("[::1]:0", "ef", 46));
    }
    for (bind, class, dscp) in cases {
        let mut report = Value::Null;
        let seen = with_tos_reading_server(bind, |addr| {
            let args = [&addr.to_string(), "--dscp", class, "-d", "200ms", "--json"];
            let out = bench(&args, Duration::from_secs(5));
            assert!(out.status.success(), "{class}: {out:?}");
            report = json(&out);
        });
        assert_eq!(report["dscp"], dscp, "{report}");
        assert!(count(&report, "answered") > 0, "{report}");
        assert!(!seen.is_empty(), "{class}: the server saw nothing");
        let want = Some(dscp << 2);
        assert!(
            seen.iter().all(|&t| t == want),
            "{class} over {bind}: want {want:?}, saw {seen:?}"
        );
    }
    // Unmarked without the flag, and the table names the class.
    let seen = with_tos_reading_server("127.0.0.1:0", |addr| {
        let out = bench(&[&addr.to_string(), "-d", "100ms", "--json"], Duration::from_secs(5));
        assert_eq!(json(&out)["dscp"], Value::Null);
    });
    assert!(!seen.is_empty() && seen.iter().all(|&t| t == Some(0)), "{seen:?}");
    with_tos_reading_server("127.0.0.1:0", |addr| {
        let out =
            bench(&[&addr.to_string(), "-d", "100ms", "--dscp", "EF"], Duration::from_secs(5));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains(", DSCP 46 (ef)"), "{table}");
    });
    for bad in ["64", "af14", "cs8", "gold"] {
        let out = bench(&["--dscp", bad], Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("0 to 63"), "{out:?}");
    }
}

#[test]
fn gso_flood_with_warmup_counts_every_probe() {
    with_server(|addr| {
        let out = bench(
            &[
                &addr.to_string(),
                "--gso",
                "--window",
                "256",
                "--size",
                "32",
                "--warmup",
                "100ms",
                "--duration",
                "300ms",
                "--json",
            ],
            Duration::from_secs(5),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("no UDP GSO") {
            eprintln!("SKIPPED gso test: {stderr}");
            return;
        }
        assert!(out.status.success(), "{out:?}");
        let report = json(&out);
        assert_eq!(report["gso"], true);
        assert_eq!(report["warmup_s"], 0.1);
        assert!(count(&report, "answered") > 256, "{report}");
        assert_eq!(count(&report, "lost"), 0, "{report}");
        assert_eq!(count(&report, "mismatched"), 0, "{report}");
        assert_eq!(count(&report, "duplicated"), 0, "{report}");
        let duration = report["duration_s"].as_f64().unwrap();
        assert!((0.29..0.31).contains(&duration), "{report}");
    });
}

/// A file for this test's output under Cargo's scratch directory, removed first.
fn scratch(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench_cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Parses an SVG as XML (so it is well-formed) and reports its texts and the
/// number of points of each polyline, by id.
const SVG_CHECK: &str = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
lines = {p.get("id"): len(p.get("points").split()) for p in root.iter(ns + "polyline")}
texts = ["".join(t.itertext()) for t in root.iter(ns + "text")]
print(json.dumps({"lines": lines, "texts": texts, "circles": len(list(root.iter(ns + "circle")))}))
"#;

#[test]
fn plot_is_an_svg_with_both_panels() {
    let path = scratch("plot.svg");
    with_server(|addr| {
        let out = bench(
            &[&addr.to_string(), "--duration", "600ms", "--window", "4", "--plot"],
            Duration::from_secs(5),
        );
        // Without a file name it is a usage error, and nothing runs.
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let out = bench(
            &[
                &addr.to_string(),
                "--duration",
                "600ms",
                "--window",
                "4",
                "--json",
                "--plot",
                path.to_str().unwrap(),
            ],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "{out:?}");
        assert!(count(&json(&out), "answered") > 0);
    });
    let svg = std::fs::read_to_string(&path).expect("--plot wrote its file");
    assert!(svg.starts_with("<?xml"), "{svg}");
    for text in [
        "Round-trip time by percentile",
        "Answers per second over time",
        "99.999%",
        "RTT (µs)",
        "closed loop, 1 flow × window 4",
    ] {
        assert!(svg.contains(text), "no {text:?} in:\n{svg}");
    }
    if !common::python3_or_skip("the SVG's XML check") {
        return;
    }
    let out = common::run_python(SVG_CHECK, &[&path], Duration::from_secs(30));
    assert!(out.status.success(), "not well-formed XML: {}\n{svg}", out.describe());
    let found: Value = serde_json::from_slice(&out.stdout).expect("the check prints JSON");
    // Dozens of percentile points from 0% towards 100%; one point per 100 ms interval.
    let curve = found["lines"]["percentile-curve"].as_u64().unwrap_or(0);
    assert!(curve >= 20, "{found}");
    assert_eq!(found["lines"]["answers-rate"], 6, "{found}");
    assert_eq!(found["circles"], 6, "{found}");
    let texts = found["texts"].as_array().unwrap();
    assert!(texts.iter().any(|t| t == "Round-trip time by percentile"), "{found}");
    assert!(texts.iter().any(|t| t.as_str().unwrap().starts_with("Answers per second")), "{found}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn csv_has_a_row_per_interval_adding_up_to_the_report() {
    let path = scratch("run.csv");
    let mut report = Value::Null;
    with_server(|addr| {
        let out = bench(
            &[
                &addr.to_string(),
                "--rate",
                "5000",
                "--duration",
                "1s",
                "--json",
                "--csv",
                path.to_str().unwrap(),
            ],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "{out:?}");
        report = json(&out);
    });
    let csv = std::fs::read_to_string(&path).expect("--csv wrote its file");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("elapsed_s,sent,answered,lost,answers_per_s,p50_us,p99_us"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|f| f.parse().unwrap_or_else(|_| panic!("{f:?} in {l:?}:\n{csv}")))
                .collect()
        })
        .collect();
    // 100 ms intervals for a run under 5 s.
    assert_eq!(rows.len(), 10, "{csv}");
    let mut last = 0.0;
    for row in &rows {
        let &[elapsed, sent, answered, lost, per_s, p50, p99] = row.as_slice() else {
            panic!("7 fields wanted:\n{csv}");
        };
        assert!(elapsed > last, "elapsed_s must grow:\n{csv}");
        last = elapsed;
        // Open loop: exactly 500 probes are due in each 100 ms.
        assert_eq!(sent, 500.0, "{csv}");
        assert!(answered > 0.0 && lost == sent - answered, "{csv}");
        assert!((per_s - answered * 10.0).abs() < 1.0, "{csv}");
        assert!(p50 > 0.0 && p50 <= p99, "{csv}");
    }
    assert!((last - 1.0).abs() < 1e-9, "{csv}");
    let sum = |i: usize| rows.iter().map(|r| r[i]).sum::<f64>() as u64;
    assert_eq!(sum(1), count(&report, "sent"), "{report}\n{csv}");
    assert_eq!(sum(2), count(&report, "answered"), "{report}\n{csv}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn plot_and_csv_files_are_not_left_behind_when_the_run_fails() {
    let addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed again
    let (svg, csv) = (scratch("failed.svg"), scratch("failed.csv"));
    let out = bench(
        &[&addr.to_string(), "--plot", svg.to_str().unwrap(), "--csv", csv.to_str().unwrap()],
        Duration::from_secs(5),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!svg.exists() && !csv.exists());
    // A file that cannot be created fails before the run.
    let out = bench(&["--csv", "/nonexistent-dir/run.csv"], Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("creating --csv /nonexistent-dir/run.csv"), "{stderr}");
}

#[test]
fn busy_poll_runs_and_answers() {
    with_server(|addr| {
        let out = bench(
            &[&addr.to_string(), "--busy-poll", "--window", "2", "--duration", "300ms", "--json"],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "{out:?}");
        let report = json(&out);
        assert_eq!(report["busy_poll"], true, "{report}");
        assert!(count(&report, "answered") > 100, "{report}");
        assert_eq!(count(&report, "lost"), 0, "{report}");
        assert_eq!(count(&report, "mismatched"), 0, "{report}");
    });
}

#[test]
fn no_progress_line_when_stderr_is_piped() {
    with_server(|addr| {
        // Long enough for the first line (at 1 s) to be due.
        let out = bench(&[&addr.to_string(), "--duration", "1100ms"], Duration::from_secs(5));
        assert!(out.status.success(), "{out:?}");
        assert!(out.stderr.is_empty(), "{:?}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.contains(&b'\r'), "no progress on stdout either");
    });
}

#[test]
fn progress_line_on_a_terminal() {
    // util-linux `script` runs the command on a pseudo-terminal.
    let script = Command::new("script").arg("--version").stdin(Stdio::null()).output();
    if !script.is_ok_and(|o| o.status.success()) || !cfg!(target_os = "linux") {
        eprintln!("SKIPPED progress_line_on_a_terminal: no util-linux script");
        return;
    }
    with_server(|addr| {
        let command = format!("{BIN} bench {addr} --duration 1200ms --window 2");
        let mut script = Command::new("script");
        script.args(["-qec", &command, "/dev/null"]);
        let out = common::run_command(script, None, Duration::from_secs(30)).into_output();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .split('\r')
            .find(|l| l.contains("answers/s"))
            .unwrap_or_else(|| panic!("no progress line in {text:?}"));
        for part in ["s left)", "lost 0 (0.00%)", "p99 "] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        let p99 = line.split("p99 ").nth(1).unwrap_or_default();
        assert!(p99.starts_with(|c: char| c.is_ascii_digit()), "no p99 yet in {line:?}");
        assert!(text.contains("\r\x1b[K"), "the line is cleared before the report: {text:?}");
    });
}
