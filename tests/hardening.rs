//! Issue 10, second round, on the real binary over loopback: the `/metrics` endpoint stays
//! bounded under slow and hostile HTTP clients; a total reply cap holds a flood from a million
//! forged sources; SIGTERM ends a server under full load within a second with a balanced
//! summary; hostile servers cannot fool or hang `shout client`; and bogus socket-activation
//! variables give a clear error.
//!
//! Parts that need root (raw sockets) or python3 print `SKIPPED <test>: <reason>` and return
//! where the machine lacks them. Every load is bounded in count and time; every child is killed
//! by PID and reaped on drop.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Held by the tests that load the machine, so they do not skew each other's timings.
fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Threads of a process, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Open file descriptors of a process, from /proc.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Balances the server's summary: every datagram received is answered, failed or dropped for
/// exactly one reason.
fn assert_balanced(summary: &std::collections::HashMap<String, u64>) {
    let dropped: u64 = DROP_REASONS.iter().map(|r| summary[*r]).sum();
    assert_eq!(
        summary["received"],
        summary["answered"] + summary["reply_failed"] + dropped,
        "received = answered + reply_failed + each drop reason: {summary:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The /metrics endpoint

/// Starts a one-worker server with `/metrics` and returns it with the metrics address.
fn metrics_server(extra: &[&str]) -> (ServerProc, SocketAddr) {
    let mut args = vec!["--bind", "127.0.0.1:0", "--quiet", "--workers", "1"];
    args.extend(["--metrics", "127.0.0.1:0"]);
    args.extend(extra);
    let mut srv = ServerProc::spawn(&args);
    let line = srv
        .wait_stderr(Duration::from_secs(10), |l| l.contains("metrics on http://"))
        .expect("a `metrics on http://ADDR/metrics` line");
    let rest = &line[line.find("http://").expect("a URL") + "http://".len()..];
    let addr = rest.split_once("/metrics").and_then(|(a, _)| a.parse().ok()).expect("an address");
    (srv, addr)
}

/// Sends `request` bytes and reads the response to EOF within `limit`; returns the status code,
/// the head and the body.
fn http(addr: SocketAddr, request: &[u8], limit: Duration) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, limit).expect("connect");
    stream.set_read_timeout(Some(limit)).expect("timeout");
    stream.set_write_timeout(Some(limit)).expect("timeout");
    stream.write_all(request).expect("write request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the response to EOF");
    parse_response(&response)
}

fn parse_response(response: &[u8]) -> (u16, String, Vec<u8>) {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(response)));
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, response[end + 4..].to_vec())
}

/// Round-trip times of `n` sequential requests (panics on a lost one).
fn udp_rtts(to: SocketAddr, n: usize) -> Vec<Duration> {
    let sock = socket_for(to);
    let mut rtts: Vec<Duration> = (0..n)
        .map(|i| {
            let start = Instant::now();
            let payload = format!("ping {i}");
            assert_eq!(request(&sock, to, payload.as_bytes()), upper(payload.as_bytes()));
            start.elapsed()
        })
        .collect();
    rtts.sort();
    rtts
}

/// 1,000 clients each send half a request head and hold their connection, reopening it when
/// the server closes it. The server keeps
/// its thread count and at most 65 more fds (64 connections and one being accepted), scrapes are still answered within 1 s, and UDP
/// replies do not slow down.
#[test]
fn metrics_endpoint_stays_bounded_under_a_thousand_slow_connections() {
    const SLOW: usize = 1000;
    /// `shout::metrics::MAX_FDS`, the documented bound: listener, 64 connections, one more
    /// being accepted.
    const MAX_FDS: usize = 66;
    let _machine = heavy();
    let (srv, metrics) = metrics_server(&[]);
    let pid = srv.pid();
    let scrape = b"GET /metrics HTTP/1.1\r\nHost: shout\r\n\r\n";
    assert_eq!(http(metrics, scrape, RECV_TIMEOUT).0, 200);
    let before = udp_rtts(srv.addr(), 200);
    // Let the first scrape's connection close on the server side.
    thread::sleep(Duration::from_millis(50));
    let (threads0, fds0) = (threads(pid), fds(pid));

    let half = b"GET /metrics HTTP/1.1\r\nHost: shout\r\nUser-Agent: slo";
    let open = || {
        let mut s = TcpStream::connect_timeout(&metrics, Duration::from_secs(2)).ok()?;
        s.set_nonblocking(true).ok()?;
        let _ = s.write_all(half);
        Some(s)
    };
    let mut slow: Vec<TcpStream> = (0..SLOW).filter_map(|_| open()).collect();
    assert!(slow.len() >= SLOW / 2, "only {} slow connections were made", slow.len());
    let mut peak = (threads(pid), fds(pid));

    // Like a real slowloris, the attacker reopens every connection the server closes, while
    // the scrapes go on.
    let scraping = AtomicBool::new(true);
    let (scrapes, reopened) = thread::scope(|s| {
        let attacker = s.spawn(|| {
            let mut reopened = 0u32;
            let mut buf = [0u8; 512];
            let deadline = Instant::now() + Duration::from_secs(10);
            while scraping.load(Ordering::Relaxed) && Instant::now() < deadline {
                for conn in slow.iter_mut() {
                    let closed = match conn.read(&mut buf) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    };
                    if closed {
                        if let Some(fresh) = open() {
                            *conn = fresh;
                            reopened += 1;
                        }
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
            reopened
        });
        let mut scrapes = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            let (status, head, body) = http(metrics, scrape, Duration::from_secs(1));
            scrapes.push(start.elapsed());
            assert_eq!(status, 200, "{head}");
            assert!(String::from_utf8_lossy(&body).trim_end().ends_with("# EOF"));
            peak = (peak.0.max(threads(pid)), peak.1.max(fds(pid)));
            thread::sleep(Duration::from_millis(100));
        }
        scraping.store(false, Ordering::Relaxed);
        (scrapes, attacker.join().expect("attacker"))
    });
    let during = udp_rtts(srv.addr(), 200);
    peak = (peak.0.max(threads(pid)), peak.1.max(fds(pid)));
    let report = format!(
        "threads {threads0} -> peak {}, fds {fds0} -> peak {}; {reopened} reopened; \
         scrapes {scrapes:?}; UDP p50/max before {:?}/{:?}, during {:?}/{:?}",
        peak.0, peak.1, before[100], before[199], during[100], during[199]
    );
    eprintln!("{report}");
    assert!(peak.0 <= threads0, "threads grew: {report}");
    // `fds0` counts the listener already.
    assert!(peak.1 < fds0 + MAX_FDS, "fds beyond the bound: {report}");
    assert!(scrapes.iter().all(|d| *d < Duration::from_secs(1)), "{report}");
    // Loopback round trips are tens of microseconds; a starved worker would show milliseconds.
    assert!(during[100] <= before[100] * 5 + Duration::from_millis(2), "UDP slowed: {report}");
    drop(slow);
    let stopped = srv.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.stderr_text());
}

/// A 10 MiB head gets 431, other methods 405 (with `Allow`), `HEAD` the headers alone, junk
/// 400, and a head that never ends 408 after the 5 s head timeout.
#[test]
fn metrics_endpoint_refuses_huge_heads_other_methods_and_junk() {
    let (srv, metrics) = metrics_server(&[]);

    // The client keeps writing after the server has answered; read concurrently.
    let mut stream = TcpStream::connect_timeout(&metrics, RECV_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(RECV_TIMEOUT)).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sent = thread::spawn(move || {
        let _ = writer.write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ");
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < 10 << 20 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let _ = stream.shutdown(Shutdown::Both);
    let sent = sent.join().expect("writer");
    let (status, head, _) = parse_response(&response);
    assert_eq!(status, 431, "{head} (after {sent} B of header sent)");

    let (status, head, _) =
        http(metrics, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", RECV_TIMEOUT);
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let (status, _, _) = http(metrics, b"DELETE /metrics HTTP/1.0\r\n\r\n", RECV_TIMEOUT);
    assert_eq!(status, 405);

    let (status, head, body) = http(metrics, b"HEAD /metrics HTTP/1.1\r\n\r\n", RECV_TIMEOUT);
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty(), "HEAD has no body: {:?}", String::from_utf8_lossy(&body));
    assert!(head.contains("Content-Length: "), "{head}");

    for junk in [&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..], b"GET\r\n\r\n"] {
        assert_eq!(http(metrics, junk, RECV_TIMEOUT).0, 400, "{junk:?}");
    }
    assert_eq!(http(metrics, b"GET /other HTTP/1.1\r\n\r\n", RECV_TIMEOUT).0, 404);

    let start = Instant::now();
    let (status, head, _) =
        http(metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", Duration::from_secs(8));
    let waited = start.elapsed();
    assert_eq!(status, 408, "{head}");
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(7)).contains(&waited),
        "head timeout after {waited:?}"
    );
    let stopped = srv.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.stderr_text());
}

// ---------------------------------------------------------------------------------------------
// 2. The total reply cap

/// A raw IPv4 socket to forge UDP datagrams with, or why there is none.
fn raw_socket() -> Result<socket2::Socket, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
        .map_err(|e| format!("no raw socket ({e}): needs root or CAP_NET_RAW"))
}

/// An IPv4 packet carrying one UDP datagram (the kernel fills in the IP checksum; a UDP
/// checksum of 0 means none, which IPv4 allows).
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend([0x45, 0]);
    p.extend(total.to_be_bytes());
    p.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend(src.ip().octets());
    p.extend(dst.ip().octets());
    p.extend(src.port().to_be_bytes());
    p.extend(dst.port().to_be_bytes());
    p.extend((8 + payload.len() as u16).to_be_bytes());
    p.extend([0, 0]);
    p.extend(payload);
    p
}

/// 1,000,000 datagrams, each from a different forged 127/8 source, to a server with
/// `--limit-loopback --rate-limit-total 1000`: replies stay within cap × time + burst, the
/// rest count as `total_limited`, and a legitimate client (exempt) gets its answers.
#[test]
#[ignore = "a million datagrams: run by .ci/run extended"]
fn total_cap_holds_a_million_forged_sources() {
    let test = "total_cap_holds_a_million_forged_sources";
    let raw = match raw_socket() {
        Ok(raw) => raw,
        Err(why) => return eprintln!("SKIPPED {test}: {why}"),
    };
    const SOURCES: u32 = 1_000_000;
    const CAP: u64 = 1000;
    let _machine = heavy();
    let srv = ServerProc::spawn(&[
        "--bind",
        "127.0.0.1:0",
        "--quiet",
        "--workers",
        "1",
        "--limit-loopback",
        "--rate-limit-total",
        "1000",
        "--rate-limit-exempt",
        "127.0.0.1",
    ]);
    let server = srv.addr();
    let SocketAddr::V4(to) = server else { unreachable!("bound to IPv4") };
    let started = Instant::now();
    let flooding = AtomicBool::new(true);
    let (sent, legit) = thread::scope(|s| {
        let legit = s.spawn(|| {
            let sock = socket_for(server);
            sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
            let (mut asked, mut answered) = (0u32, 0u32);
            while flooding.load(Ordering::Relaxed) && asked < 2000 {
                asked += 1;
                let payload = format!("legit {asked}");
                for _ in 0..4 {
                    sock.send_to(payload.as_bytes(), server).expect("send");
                    let reply = recv_from_peer(&sock, server);
                    if reply.as_deref() == Some(&upper(payload.as_bytes())[..]) {
                        answered += 1;
                        break;
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
            (asked, answered)
        });
        let dst = socket2::SockAddr::from(to);
        let mut packet = udp_packet(SocketAddrV4::new([127, 1, 0, 0].into(), 40_000), to, b"x");
        let mut sent = 0u32;
        for i in 0..SOURCES {
            // 127.1.0.0 onwards: each source new, none of them the exempt 127.0.0.1.
            packet[12..16].copy_from_slice(&(0x7f01_0000 + i).to_be_bytes());
            if raw.send_to(&packet, &dst).is_ok() {
                sent += 1;
            }
            if started.elapsed() > Duration::from_secs(15) {
                break;
            }
        }
        // Let the server finish its queue.
        thread::sleep(Duration::from_millis(300));
        flooding.store(false, Ordering::Relaxed);
        (sent, legit.join().expect("legit client"))
    });
    let stopped = srv.stop("TERM");
    let elapsed = started.elapsed();
    let summary = stopped.summary();
    let (asked, answered) = legit;
    // Replies to the legitimate client are some of `answered`: what is left is the forged share.
    let forged_answered = summary["answered"] - u64::from(answered);
    // GCRA is exact: at most the burst (one second's worth) plus the cap for every second
    // the server could have been answering, which is less than `elapsed`.
    let bound = (CAP as f64 * elapsed.as_secs_f64()) as u64 + CAP;
    let report = format!(
        "{sent} forged in {elapsed:?}: forged answered {forged_answered} (bound {bound}); \
         legit {answered}/{asked}; {summary:?}"
    );
    eprintln!("{report}");
    assert_eq!(sent, SOURCES, "{report}");
    assert!(forged_answered <= bound, "{report}");
    assert!(forged_answered >= CAP, "at least the burst is answered: {report}");
    assert!(summary["total_limited"] >= summary["received"] / 2, "{report}");
    assert!(asked >= 10 && answered * 100 >= asked * 95, "legitimate client starved: {report}");
    assert_balanced(&summary);
}

// ---------------------------------------------------------------------------------------------
// 3. Shutdown under load

/// `shout bench` floods the server as fast as it can; SIGTERM during the flood ends the server
/// within 1 s, and its summary balances.
#[test]
fn sigterm_under_full_load_exits_within_a_second_and_balances() {
    let _machine = heavy();
    let srv = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let mut bench = ChildGuard::new(
        Command::new(BIN)
            .args(["bench", &srv.addr().to_string(), "--duration", "10s", "--timeout", "100ms"])
            .args(["--flows", "2", "--window", "64", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning shout bench"),
    );
    // Flooding for a while: the server's counters are moving fast by now.
    thread::sleep(Duration::from_secs(3));
    assert!(bench.wait_timeout(Duration::ZERO).is_none(), "bench ended early");
    let stopped = srv.stop("TERM");
    bench.signal("INT");
    let bench_status = bench.wait_timeout(Duration::from_secs(5));
    assert!(stopped.status.success(), "{}", stopped.stderr_text());
    assert!(
        stopped.elapsed < Duration::from_secs(1),
        "exit {:?} after SIGTERM; stderr:\n{}",
        stopped.elapsed,
        stopped.stderr_text()
    );
    let summary = stopped.summary();
    eprintln!("stopped in {:?}: {summary:?}", stopped.elapsed);
    assert!(summary["received"] > 10_000, "was it flooded? {summary:?}");
    assert_balanced(&summary);
    assert!(bench_status.is_some(), "bench did not stop on SIGINT");
}

// ---------------------------------------------------------------------------------------------
// 4a. Hostile servers for `shout client` (tests/client_cli.rs covers the others: see
// docs/SECURITY.md)

fn client_args(addr: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["client".to_string(), addr.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

const RUN: Duration = Duration::from_secs(10);

/// A reply one byte too long or too short is not the reply: discarded, and counted as such.
#[test]
fn client_discards_replies_of_the_wrong_length() {
    for (name, cut) in [("longer", false), ("shorter", true)] {
        let server = FakeServer::start("127.0.0.1:0", move |s, from, data| {
            let mut reply = upper(data);
            if cut {
                reply.pop();
            } else {
                reply.push(b'!');
            }
            let _ = s.send_to(&reply, from);
        });
        let args = client_args(server.addr, &["--timeout", "200ms", "--retries", "0", "hello"]);
        let run = run_shout(&args, None, RUN);
        assert_eq!(run.code(), Some(1), "{name}: {}", run.describe());
        assert_eq!(run.stdout_str(), "", "{name}: {}", run.describe());
        assert!(run.stderr.contains("discarded 1 datagram"), "{name}: {}", run.describe());
    }
}

/// Every reply sent twice: each message is printed once, and the duplicate never passes for
/// the next message's reply.
#[test]
fn client_prints_each_reply_once_when_the_server_sends_two() {
    let server = FakeServer::start("127.0.0.1:0", |s, from, data| {
        let _ = s.send_to(&upper(data), from);
        let _ = s.send_to(&upper(data), from);
    });
    let run = run_shout(&client_args(server.addr, &["one", "two", "three"]), None, RUN);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout_str(), "ONE\nTWO\nTHREE\n", "{}", run.describe());
}

/// A 64 KiB reply to a 1-byte request: refused as a reply to it (a reply is never longer than
/// its request), and shown whole and escaped with `--expect any`: no truncation, no panic.
#[test]
fn client_handles_a_64_kib_reply_to_a_one_byte_request() {
    let big = vec![b'A'; MAX_V4_PAYLOAD];
    let reply = big.clone();
    let server = FakeServer::start("127.0.0.1:0", move |s, from, _| {
        let _ = s.send_to(&reply, from);
    });
    let run = run_shout(
        &client_args(server.addr, &["--timeout", "200ms", "--retries", "0", "x"]),
        None,
        RUN,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "");
    assert!(run.stderr.contains("discarded 1 datagram"), "{}", run.describe());

    let run = run_shout(&client_args(server.addr, &["--expect", "any", "x"]), None, RUN);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.len(), MAX_V4_PAYLOAD + 1, "{}", run.stderr);
    assert_eq!(&run.stdout[..MAX_V4_PAYLOAD], &big[..]);
}

/// The reply comes after the client's last wait: the client has already given up (exit 1,
/// "no reply", on time) and never prints it.
#[test]
fn client_gives_up_on_time_when_the_reply_comes_after_the_timeout() {
    let server = FakeServer::start("127.0.0.1:0", |s, from, data| {
        thread::sleep(Duration::from_millis(400));
        let _ = s.send_to(&upper(data), from);
    });
    let run = run_shout(
        &client_args(server.addr, &["--timeout", "100ms", "--retries", "0", "late"]),
        None,
        RUN,
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout_str(), "", "{}", run.describe());
    assert!(run.stderr.contains("no reply"), "{}", run.describe());
    assert!(
        run.elapsed < Duration::from_millis(390),
        "waited for the late reply: {:?}",
        run.elapsed
    );
}

/// Runs `BIN client ADDR --expect any MSG` with stdout and stderr on a pseudo-terminal;
/// prints what the terminal received, as hex, then the exit status.
const PTY_CLIENT_PY: &str = r#"
import os, pty, select, sys, time
binary, addr = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "client", addr, "--expect", "any", "--timeout", "500ms", "hi"])
buf, deadline = b"", time.monotonic() + 5
while time.monotonic() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
_, status = os.waitpid(pid, 0)
print(buf.hex())
print(os.waitstatus_to_exitcode(status))
"#;

/// A reply full of terminal control: clear screen, set title, cursor moves, bell, backspace,
/// carriage return. On a terminal (a pty) none of it reaches the screen as control bytes.
#[test]
fn client_escapes_terminal_control_bytes_on_a_terminal() {
    if !python3_or_skip("client on a pty") {
        return;
    }
    let hostile = b"\x1b[2J\x1b]0;pwned\x07\x1b[1;1H\rOK\x08\x08\x9b31m\xc2\x9b31m\x7f";
    let server = FakeServer::start("127.0.0.1:0", move |s, from, _| {
        let _ = s.send_to(hostile, from);
    });
    let run = run_python(PTY_CLIENT_PY, &[BIN, &server.addr.to_string()], RUN);
    assert!(run.status.success(), "{}", run.describe());
    let out = run.stdout_str();
    let mut lines = out.lines();
    let screen = lines.next().and_then(hex_decode).expect("hex of the terminal output");
    assert_eq!(lines.next(), Some("0"), "client exit code; {}", run.describe());
    let text = String::from_utf8_lossy(&screen);
    // The pty turns "\n" into "\r\n": that is the only control the terminal may see.
    let shown = text.replace("\r\n", "\n");
    let controls: Vec<char> = shown.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(
        controls.is_empty(),
        "control characters reached the terminal: {controls:?} in {shown:?}"
    );
    assert!(shown.contains("\\x1b[2J\\x1b]0;pwned\\x07"), "{shown:?}");
    assert!(shown.contains("\\u{009b}31m"), "C1 CSI escaped: {shown:?}");
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 4c. Bogus socket activation

/// Puts `kind` on fd 3 (a TCP listener, a file, a pipe, a unix datagram socket, an unbound UDP
/// socket, a bound UDP socket, or nothing), sets LISTEN_FDS and LISTEN_PID (`self` for the
/// pid shout will have), and execs `shout server`.
const ACTIVATE_PY: &str = r#"
import os, socket, sys
binary, kind, fds, pid = sys.argv[1:5]
keep = []
if kind == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); s.listen()
    keep.append(s); os.dup2(s.fileno(), 3)
elif kind == "file":
    os.dup2(os.open("/dev/null", os.O_RDONLY), 3)
elif kind == "pipe":
    os.dup2(os.pipe()[0], 3)
elif kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); keep.append(s); os.dup2(s.fileno(), 3)
elif kind == "unbound":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); keep.append(s); os.dup2(s.fileno(), 3)
elif kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    keep.append(s); os.dup2(s.fileno(), 3)
else:
    try:
        os.close(3)
    except OSError:
        pass
if kind != "none":
    os.set_inheritable(3, True)
for fd in range(4, 64):
    try:
        os.close(fd)
    except OSError:
        pass
env = {k: v for k, v in os.environ.items() if k not in ("LISTEN_FDNAMES", "NOTIFY_SOCKET")}
env.update(LISTEN_FDS=fds, LISTEN_PID=str(os.getpid()) if pid == "self" else pid)
os.execve(binary, [binary, "server", "--bind", "127.0.0.1:0", "--quiet"], env)
"#;

/// Each bogus combination ends at once with exit 1 and an `error:` naming the problem.
#[test]
fn bogus_socket_activation_is_a_clear_error() {
    if !python3_or_skip("bogus socket activation") {
        return;
    }
    let cases = [
        ("tcp", "1", "self", "fd 3 is not a valid udp socket"),
        ("unix", "1", "self", "fd 3 is not a valid udp socket"),
        ("file", "1", "self", "fd 3 is not a socket"),
        ("pipe", "1", "self", "fd 3 is not a socket"),
        ("none", "1", "self", "fd 3 is not a socket"),
        ("unbound", "1", "self", "fd 3 is a UDP socket bound to no port"),
        ("udp", "2", "self", "fd 4 is not a socket"),
        ("udp", "100000", "self", "LISTEN_FDS is not a number of sockets"),
        ("udp", "abc", "self", "LISTEN_FDS is not a number of sockets"),
        ("udp", "-1", "self", "LISTEN_FDS is not a number of sockets"),
        ("udp", "", "self", "LISTEN_FDS is not a number of sockets"),
        ("udp", "99999999999", "self", "LISTEN_FDS is not a number of sockets"),
        ("udp", "1", "garbage", "LISTEN_PID is not a process id"),
        ("udp", "1", "-5", "LISTEN_PID is not a process id"),
    ];
    for (kind, fds, pid, want) in cases {
        let run = run_python(ACTIVATE_PY, &[BIN, kind, fds, pid], Duration::from_secs(5));
        let case = format!("{kind} LISTEN_FDS={fds:?} LISTEN_PID={pid}");
        assert_eq!(run.code(), Some(1), "{case}: {}", run.describe());
        assert!(run.stderr.starts_with("error: "), "{case}: {}", run.describe());
        assert!(run.stderr.contains(want), "{case}: want {want:?}: {}", run.describe());
        assert!(!run.stderr.contains("panicked"), "{case}: {}", run.describe());
        assert_eq!(run.stdout_str(), "", "{case}: nothing served");
    }
}

/// Port 0 is always refused as a source (docs/SECURITY.md): `--allow-port 0` cannot change
/// that, so it is a usage error rather than a flag that silently does nothing.
#[test]
fn allow_port_zero_is_a_usage_error() {
    let run =
        shout(&["server", "--bind", "127.0.0.1:0", "--allow-port", "0"], Duration::from_secs(5));
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(run.stderr.contains("--allow-port"), "{run}");
    assert!(run.stdout.is_empty(), "nothing served: {run}");
}
