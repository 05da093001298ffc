//! `shout server` driven as a child process over loopback.

use crate::common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const ALL_SUMMARY_KEYS: [&str; 7] = [
    "received",
    "answered",
    "bytes_received",
    "bytes_answered",
    "oversize",
    "reply_failed",
    "kernel_drops",
];

fn assert_clean_exit(stopped: &Stopped, sig: &str) {
    assert!(
        stopped.status.success(),
        "SIG{sig} must give exit 0, got {}; stderr:\n{}",
        stopped.status,
        stopped.stderr_text()
    );
    assert!(
        stopped.elapsed < Duration::from_secs(1),
        "SIG{sig} must end the server within 1 s, took {:?}",
        stopped.elapsed
    );
}

#[test]
fn prints_listening_line_with_real_port_and_nothing_else_on_stdout() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0"]);
    assert_eq!(server.listen_lines.len(), 1);
    let addr = server.addr();
    assert_eq!(server.listen_lines[0], format!("listening on {addr}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");

    let sock = socket_for(addr);
    assert_eq!(request(&sock, addr, b"hello"), b"HELLO");

    let stopped = server.stop("TERM");
    assert!(
        stopped.stdout_extra.is_empty(),
        "stdout must carry only the `listening on` lines, also got: {:?}",
        stopped.stdout_extra
    );
}

#[test]
fn uppercases_ascii_letters_only_and_keeps_other_bytes() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);

    assert_eq!(request(&sock, addr, b"h\xc3\xa9llo\xff"), b"H\xc3\xa9LLO\xff".to_vec());

    // Every byte value: only a-z change.
    let all: Vec<u8> = (0..=255u8).collect();
    let reply = request(&sock, addr, &all);
    assert_eq!(reply.len(), 256);
    for (i, (&sent, &got)) in all.iter().zip(&reply).enumerate() {
        let want = if sent.is_ascii_lowercase() { sent - 32 } else { sent };
        assert_eq!(got, want, "byte {i:#04x} transformed wrongly");
    }
}

#[test]
fn echo_mode_replies_unchanged() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--mode", "echo", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    let payload = b"Hello, wOrld \xff\x00 abc";
    assert_eq!(request(&sock, addr, payload), payload.to_vec());
}

#[test]
fn upper_mode_is_selectable_explicitly() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--mode", "upper", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    assert_eq!(request(&sock, addr, b"abc"), b"ABC");
}

#[test]
fn empty_datagram_gets_empty_reply() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    assert_eq!(request(&sock, addr, b""), Vec::<u8>::new());
    // and the server still works after it
    assert_eq!(request(&sock, addr, b"x"), b"X");
    let summary = server.stop("TERM").summary();
    assert_eq!(summary.get("received"), Some(&2));
    assert_eq!(summary.get("answered"), Some(&2));
}

#[test]
fn largest_ipv4_datagram_is_answered_whole() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    let payload: Vec<u8> = (0..MAX_V4_PAYLOAD).map(|i| b"abcXYZ\xff"[i % 7]).collect();
    let reply = request(&sock, addr, &payload);
    assert_eq!(reply.len(), MAX_V4_PAYLOAD, "reply truncated");
    assert!(reply == upper(&payload), "65,507 B reply content differs");
}

#[test]
fn max_datagram_drops_larger_and_answers_exact_size() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--max-datagram", "100", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);

    // An oversize datagram followed by a marker: the first reply must be the marker's, so
    // the oversize one got none (one socket pair on loopback keeps order).
    sock.send_to(&[b'a'; 101], addr).unwrap();
    assert_eq!(request(&sock, addr, b"marker"), b"MARKER");

    let exact = [b'b'; 100];
    assert_eq!(request(&sock, addr, &exact), vec![b'B'; 100]);

    let stopped = server.stop("TERM");
    let summary = stopped.summary();
    assert_eq!(summary.get("oversize"), Some(&1), "{}", stopped.stderr_text());
    assert_eq!(summary.get("answered"), Some(&2), "{}", stopped.stderr_text());
}

#[test]
fn serves_several_binds_at_once_including_ipv6() {
    if !ipv6_loopback_available() {
        eprintln!("SKIPPED: [::1] not available");
        return;
    }
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--bind", "[::1]:0", "--quiet"]);
    assert_eq!(server.addrs.len(), 2, "{:?}", server.listen_lines);
    let v4 = *server.addrs.iter().find(|a| a.is_ipv4()).expect("a v4 line");
    let v6 = *server.addrs.iter().find(|a| a.is_ipv6()).expect("a v6 line");
    assert!(
        server.listen_lines.contains(&format!("listening on [::1]:{}", v6.port())),
        "IPv6 must be printed as [::1]:PORT: {:?}",
        server.listen_lines
    );
    assert!(server.listen_lines.contains(&format!("listening on 127.0.0.1:{}", v4.port())));

    let s4 = socket_for(v4);
    let s6 = socket_for(v6);
    assert_eq!(request(&s4, v4, b"four"), b"FOUR");
    assert_eq!(request(&s6, v6, b"six"), b"SIX");
    // interleaved, to show both are served concurrently
    assert_eq!(request(&s4, v4, b"again4"), b"AGAIN4");
    assert_eq!(request(&s6, v6, b"again6"), b"AGAIN6");

    let summary = server.stop("TERM").summary();
    assert_eq!(summary.get("received"), Some(&4));
}

#[test]
fn two_ipv4_binds_print_two_lines() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0", "--quiet"]);
    assert_eq!(server.addrs.len(), 2);
    assert_ne!(server.addrs[0], server.addrs[1]);
    for &a in &server.addrs {
        let s = socket_for(a);
        assert_eq!(request(&s, a, b"ping"), b"PING", "bind {a} not served");
    }
}

#[test]
fn localhost_bind_prints_a_numeric_address() {
    let server = ServerProc::spawn(&["--bind", "localhost:0", "--quiet"]);
    assert_eq!(server.addrs.len(), 1);
    let addr = server.addr();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert!(
        !server.listen_lines[0].contains("localhost"),
        "the line must carry ip:port: {:?}",
        server.listen_lines[0]
    );
    let s = socket_for(addr);
    assert_eq!(request(&s, addr, b"local"), b"LOCAL");
}

#[test]
fn workers_flag_still_answers_everything() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--workers", "2", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    for i in 0..50 {
        let msg = format!("msg-{i}");
        assert_eq!(request(&sock, addr, msg.as_bytes()), upper(msg.as_bytes()));
    }
    let summary = server.stop("TERM").summary();
    assert_eq!(summary.get("answered"), Some(&50));
}

/// Sends `payload` as the first datagram to a fresh server and returns the stderr line
/// logging it (the first datagram is always within the rate limit).
fn first_datagram_log_line(payload: &[u8]) -> (SocketAddr, Option<String>, Vec<String>) {
    let mut server = ServerProc::spawn(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    let me = sock.local_addr().unwrap();
    assert_eq!(request(&sock, addr, payload), upper(payload));
    let prefix = format!("from {me} ({} B): ", payload.len());
    let line = server.wait_stderr(RECV_TIMEOUT, |l| l.contains(&prefix));
    (me, line, server.stderr_seen().to_vec())
}

#[test]
fn stderr_logs_each_datagram_with_sender_and_size() {
    let (me, line, seen) = first_datagram_log_line(b"hello");
    let want = format!("from {me} (5 B): hello");
    let line = line.unwrap_or_else(|| panic!("no stderr line for the datagram; saw {seen:?}"));
    assert!(line.ends_with(&want), "want {want:?} at the end of {line:?}");
}

#[test]
fn stderr_escapes_unprintable_bytes() {
    let (me, line, seen) = first_datagram_log_line(b"h\xffi");
    let want = format!("from {me} (3 B): h\\xffi");
    let line = line.unwrap_or_else(|| panic!("no stderr line for the datagram; saw {seen:?}"));
    assert!(line.ends_with(&want), "want {want:?} at the end of {line:?}");
}

#[test]
fn stderr_escapes_newlines_so_datagrams_cannot_forge_lines() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    let forged = b"x\nsummary: received=999 answered=999\r\nFORGED";
    assert_eq!(request(&sock, addr, forged), upper(forged));
    let stopped = server.stop("TERM");
    let text = stopped.stderr_text();
    assert!(
        stopped.stderr.iter().any(|l| l.contains("summary: received=999") && l.contains("FORGED")),
        "the datagram must be logged whole on one line:\n{text}"
    );
    assert!(
        !stopped
            .stderr
            .iter()
            .any(|l| l.starts_with("summary: received=999") || l.starts_with("FORGED")),
        "a datagram's newline reached stderr unescaped:\n{text}"
    );
    assert_eq!(stopped.summary().get("received"), Some(&1), "{text}");
}

#[test]
fn quiet_turns_off_per_datagram_lines_only() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    for _ in 0..3 {
        assert_eq!(request(&sock, addr, b"hush"), b"HUSH");
    }
    let stopped = server.stop("TERM");
    assert_clean_exit(&stopped, "TERM");
    let text = stopped.stderr_text();
    assert!(
        !stopped.stderr.iter().any(|l| l.contains("from 127.0.0.1:")),
        "--quiet must drop per-datagram lines:\n{text}"
    );
    assert_eq!(stopped.summary().get("received"), Some(&3), "{text}");
}

#[test]
fn per_datagram_lines_are_rate_limited_with_more_summaries() {
    let mut server = ServerProc::spawn(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    const BURST: usize = 300;
    for i in 0..BURST {
        let msg = format!("burst-{i}");
        assert_eq!(request(&sock, addr, msg.as_bytes()), upper(msg.as_bytes()));
    }
    // A "N more" summary may be due on a timer or on the next datagram: keep a trickle
    // going while waiting for it.
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut pings = 0;
    let mut found = None;
    while Instant::now() < deadline {
        found = server.wait_stderr(Duration::from_millis(250), is_more_summary);
        if found.is_some() {
            break;
        }
        assert_eq!(request(&sock, addr, b"ping"), b"PING");
        pings += 1;
    }
    let stopped = server.stop("TERM");
    let text = stopped.stderr_text();
    let per_datagram = stopped.stderr.iter().filter(|l| l.contains("from 127.0.0.1:")).count();
    assert!(
        per_datagram <= 100,
        "{per_datagram} per-datagram lines for {} datagrams: not rate-limited",
        BURST + pings
    );
    assert!(
        found.is_some() || stopped.stderr.iter().any(|l| is_more_summary(l)),
        "no `N more` line after {BURST} datagrams:\n{text}"
    );
    assert_eq!(stopped.summary().get("received"), Some(&((BURST + pings) as u64)), "{text}");
}

fn is_more_summary(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).any(|w| w[1].starts_with("more") && w[0].parse::<u64>().is_ok())
}

#[test]
fn sigterm_exits_zero_with_summary_counts() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    assert_eq!(request(&sock, addr, b"one"), b"ONE");
    assert_eq!(request(&sock, addr, b"three"), b"THREE");
    assert_eq!(request(&sock, addr, b""), b"");

    let stopped = server.stop("TERM");
    assert_clean_exit(&stopped, "TERM");
    let s = stopped.summary();
    let text = stopped.stderr_text();
    for key in ALL_SUMMARY_KEYS {
        assert!(s.contains_key(key), "summary lacks {key}=N:\n{text}");
    }
    assert_eq!(s["received"], 3, "{text}");
    assert_eq!(s["answered"], 3, "{text}");
    assert_eq!(s["bytes_received"], 3 + 5, "{text}");
    assert_eq!(s["bytes_answered"], 3 + 5, "{text}");
    assert_eq!(s["oversize"], 0, "{text}");
    assert_eq!(s["reply_failed"], 0, "{text}");
}

#[test]
fn sigint_exits_zero_with_summary_even_when_idle() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let stopped = server.stop("INT");
    assert_clean_exit(&stopped, "INT");
    let s = stopped.summary();
    assert_eq!(s.get("received"), Some(&0), "{}", stopped.stderr_text());
    assert_eq!(s.get("answered"), Some(&0), "{}", stopped.stderr_text());
}

#[test]
fn signal_right_after_the_listening_line_is_a_clean_stop() {
    // A supervisor may stop the server as soon as it has announced itself, so the handlers
    // must be in place before `listening on` is printed. Signalling through kill(1) is too
    // slow to hit that window; python3's os.kill is not. Repeated, as this is a race.
    if !python3_or_skip("signal_right_after_the_listening_line_is_a_clean_stop") {
        return;
    }
    let run = run_python(SIGNAL_AT_ONCE_PY, &[BIN], Duration::from_secs(30));
    assert!(
        run.status.success(),
        "a signal right after `listening on` must give exit 0 and a summary:\n{}",
        run.stdout_str()
    );
}

/// Starts `shout server` ten times, sends SIGTERM/SIGINT as soon as the first stdout line
/// arrives, and fails (exit 1, one report line per bad round) unless every run exits 0 with a
/// `summary: ` line on stderr.
const SIGNAL_AT_ONCE_PY: &str = r#"
import signal, subprocess, sys
bad = 0
for i in range(10):
    sig = signal.SIGTERM if i % 2 == 0 else signal.SIGINT
    p = subprocess.Popen([sys.argv[1], "server", "--bind", "127.0.0.1:0", "--quiet"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        p.send_signal(sig)
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    summary = any(l.startswith(b"summary: ") for l in err.splitlines())
    if p.returncode != 0 or not summary:
        bad += 1
        print(f"round {i}: {sig.name} after {line!r}: returncode={p.returncode} stderr={err!r}")
sys.exit(1 if bad else 0)
"#;

#[test]
fn sigterm_while_idle_on_several_sockets_exits_promptly() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0"]);
    let stopped = server.stop("TERM");
    assert_clean_exit(&stopped, "TERM");
    stopped.summary();
}

#[test]
fn unread_stderr_never_stalls_replies() {
    let mut server = ServerProc::spawn_with(&["--bind", "127.0.0.1:0"], Stderr::Unread);
    let addr = server.addr();
    // Fill the stderr pipe to the brim first, so that the server's very first log write
    // would block if it were made on the reply path.
    let filled = fill_pipe(&format!("/proc/{}/fd/2", server.pid()));
    eprintln!("pre-filled the server's stderr pipe with {filled} B");
    let sock = socket_for(addr);
    let start = Instant::now();
    for i in 0..20_000u32 {
        // Vary the payload so a reply cannot be confused with another's.
        let msg = format!("datagram number {i} with a tail to fill the log");
        let reply = request(&sock, addr, msg.as_bytes());
        assert!(
            reply == upper(msg.as_bytes()),
            "wrong reply to #{i}: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    eprintln!("20,000 round trips with an unread stderr took {:?}", start.elapsed());
    server.assert_running();
    // stderr is still unread: kill, not a graceful stop (the guard does it).
    drop(server);
}

/// Writes into the pipe behind `path` (a /proc fd link) until it would block; returns the
/// number of bytes written (0 if the pipe could not be opened).
fn fill_pipe(path: &str) -> usize {
    use std::io::{ErrorKind, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut pipe =
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("could not open {path} to fill it ({e}); testing an unread pipe only");
                return 0;
            }
        };
    let chunk = [b'#'; 4096];
    let mut total = 0;
    loop {
        match pipe.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("filling {path}: {e}"),
        }
    }
}

#[test]
fn source_port_zero_datagram_does_not_stop_the_server() {
    if !python3_or_skip("source_port_zero_datagram_does_not_stop_the_server") {
        return;
    }
    const FRESH: u64 = 20;
    let mut server = ServerProc::spawn(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr();

    let forged = run_python(
        RAW_SEND_PY,
        &[addr.port().to_string().as_str(), "zero-port"],
        Duration::from_secs(5),
    );
    if forged.code() == Some(77) {
        eprintln!("SKIPPED: needs root for raw socket ({})", forged.stderr.trim());
        return;
    }
    assert!(forged.status.success(), "raw send failed: {}", forged.describe());

    // Many source ports, so that every worker socket answers one (see the vanished test).
    for _ in 0..FRESH {
        let sock = socket_for(addr);
        assert_eq!(request(&sock, addr, b"after"), b"AFTER");
    }
    server.assert_running();

    let stopped = server.stop("TERM");
    assert_clean_exit(&stopped, "TERM");
    let s = stopped.summary();
    let text = stopped.stderr_text();
    assert_eq!(s.get("received"), Some(&(FRESH + 1)), "the port-0 datagram must count:\n{text}");
    assert_eq!(s.get("answered"), Some(&FRESH), "{text}");
    // Counted once as unanswerable: either a failed reply, or (the server's finer split,
    // beyond the contract's fields) refused up front as `port_zero`.
    let unanswerable =
        s.get("reply_failed").copied().unwrap_or(0) + s.get("port_zero").copied().unwrap_or(0);
    assert_eq!(
        unanswerable, 1,
        "the port-0 datagram must be counted as unanswerable once:\n{text}"
    );
}

/// Sends one UDP datagram with source 127.0.0.1:0 through a raw socket. Exit 77 when raw
/// sockets are not permitted.
const RAW_SEND_PY: &str = r#"
import socket, struct, sys
port, payload = int(sys.argv[1]), sys.argv[2].encode()
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
except PermissionError as e:
    print("raw socket refused:", e, file=sys.stderr)
    sys.exit(77)
lo = socket.inet_aton("127.0.0.1")
udp = struct.pack("!HHHH", 0, port, 8 + len(payload), 0) + payload  # checksum 0: none
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64,
                 socket.IPPROTO_UDP, 0, lo, lo)  # kernel fills the header checksum
s.sendto(ip + udp, ("127.0.0.1", 0))
"#;

#[test]
fn vanished_senders_do_not_stop_the_server() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr = server.addr();
    const GONE: u64 = 200;
    const FRESH: u64 = 20;
    for i in 0..GONE {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(format!("gone {i}").as_bytes(), addr).unwrap();
        drop(s); // closed before the reply can arrive: the reply meets a closed port
    }
    // Fresh clients from many source ports: with one socket per worker (SO_REUSEPORT),
    // each worker answers one of them, so each has worked through its earlier datagrams.
    for _ in 0..FRESH {
        let fresh = socket_for(addr);
        assert_eq!(request(&fresh, addr, b"still there?"), b"STILL THERE?");
    }
    let stopped = server.stop("TERM");
    assert_clean_exit(&stopped, "TERM");
    assert_eq!(
        stopped.summary().get("received"),
        Some(&(GONE + FRESH)),
        "{}",
        stopped.stderr_text()
    );
}

#[test]
fn bad_mode_is_a_usage_error() {
    let run = run_shout(
        &["server", "--bind", "127.0.0.1:0", "--mode", "shout"],
        None,
        Duration::from_secs(5),
    );
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(!run.stdout_str().contains("listening on"), "{}", run.describe());
}

#[test]
fn bad_max_datagram_is_a_usage_error() {
    let run = run_shout(
        &["server", "--bind", "127.0.0.1:0", "--max-datagram", "lots"],
        None,
        Duration::from_secs(5),
    );
    assert_eq!(run.code(), Some(2), "{}", run.describe());
}

#[test]
fn replies_go_to_each_sender() {
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet"]);
    let addr: SocketAddr = server.addr();
    let a = socket_for(addr);
    let b = socket_for(addr);
    a.send_to(b"from a", addr).unwrap();
    b.send_to(b"from b", addr).unwrap();
    assert_eq!(recv_from_peer(&a, addr).expect("a's reply"), b"FROM A");
    assert_eq!(recv_from_peer(&b, addr).expect("b's reply"), b"FROM B");
}

#[test]
fn a_short_burst_is_shown_in_full() {
    // The display is rate-limited to 20 lines a second after a burst of 20:
    // eight requests back to back must all be shown, not one per printer round.
    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--workers", "1"]);
    let addr = server.addr();
    let sock = socket_for(addr);
    for i in 0..8 {
        let msg = format!("shown-{i}");
        assert_eq!(request(&sock, addr, msg.as_bytes()), upper(msg.as_bytes()));
    }
    let stopped = server.stop("TERM");
    let shown = stopped.stderr.iter().filter(|l| l.contains("): shown-")).count();
    assert_eq!(shown, 8, "{}", stopped.stderr_text());
}

/// Requests queued while the server is stopped arrive in batches, and runs of same-size
/// requests from one sender are answered with one GSO send. A plain socket must still get
/// every reply as its own datagram, in order, byte for byte; a socket that asked for GRO
/// sees the gathering as a coalesced buffer whose segments are those same replies.
#[test]
fn gathered_replies_keep_their_boundaries() {
    use shout::test_seam::{self as sys, RecvMeta, BATCH, MAX_BUF};
    use std::io::IoSliceMut;

    let server = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--workers", "1", "--quiet"]);
    let addr = server.addr();
    let plain = socket_for(addr);
    let gro = socket_for(addr);
    sys::enable_gro(&gro).expect("UDP_GRO on loopback");
    let probe = |tag: char, i: usize, len: usize| -> Vec<u8> {
        let mut p = format!("{tag}{i:03}-").into_bytes();
        p.resize(len, b'a' + (i % 26) as u8);
        p.truncate(len);
        p
    };
    // Runs broken by a shorter one (which may end a GSO run), a longer one (which may
    // not join it), an empty datagram and a size change.
    let sizes = [100, 100, 100, 40, 100, 100, 300, 300, 0, 7, 7, 7, 1400, 1400, 1399, 1400];
    let plain_sent: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(i, &n)| probe('p', i, n)).collect();
    let gro_sent: Vec<Vec<u8>> =
        (0..12).map(|i| probe('g', i, if i == 11 { 50 } else { 200 })).collect();

    server.signal("STOP");
    // Loopback queues a datagram at the receiver before send_to returns. Interleaved
    // senders first (no run may span them), then each sender's own block.
    for (p, g) in plain_sent.iter().zip(&gro_sent).take(3) {
        plain.send_to(p, addr).unwrap();
        gro.send_to(g, addr).unwrap();
    }
    for p in &plain_sent[3..] {
        plain.send_to(p, addr).unwrap();
    }
    for g in &gro_sent[3..] {
        gro.send_to(g, addr).unwrap();
    }
    server.signal("CONT");

    for (i, p) in plain_sent.iter().enumerate() {
        let reply = recv_from_peer(&plain, addr).unwrap_or_else(|| panic!("reply {i} missing"));
        assert_eq!(reply, upper(p), "reply {i} of {} B", p.len());
    }

    let mut storage = vec![0u8; BATCH * MAX_BUF];
    let mut meta = [RecvMeta::default(); BATCH];
    let mut segments = Vec::new();
    let mut largest = 0;
    while segments.len() < gro_sent.len() {
        let mut bufs: Vec<IoSliceMut<'_>> =
            storage.chunks_mut(MAX_BUF).map(IoSliceMut::new).collect();
        let n = sys::recv_batch(&gro, &mut bufs, &mut meta, true).expect("GRO replies");
        for (m, buf) in meta[..n].iter().zip(storage.chunks(MAX_BUF)) {
            assert_eq!(m.addr, addr);
            largest = largest.max(m.len);
            segments.extend(buf[..m.len].chunks(m.stride.max(1)).map(<[u8]>::to_vec));
        }
    }
    let expected: Vec<Vec<u8>> = gro_sent.iter().map(|g| upper(g)).collect();
    assert_eq!(segments, expected);
    assert!(
        largest > 200,
        "some replies were gathered into one GSO send (largest buffer {largest} B)"
    );

    // Nothing else comes: no reply was sent twice.
    assert_silent(&[("the plain client (an extra reply)", &plain)], SILENCE);
    let stopped = server.stop("TERM");
    let summary = stopped.summary();
    let total = (plain_sent.len() + gro_sent.len()) as u64;
    assert_eq!(summary["received"], total, "{}", stopped.stderr_text());
    assert_eq!(summary["answered"], total, "{}", stopped.stderr_text());
}

/// Absurd values are usage errors that name the flag's problem: exit 2 at once, never a
/// panic, a thread per requested worker until the file table runs out, or a server that
/// silently drops everything (issue 10, item 4b).
#[test]
fn absurd_flag_values_are_usage_errors() {
    let cases: [(&[&str], &str); 8] = [
        (&["--workers", "100000"], "at most 1024"),
        (&["--max-datagram", "0"], "would drop every datagram"),
        (&["--max-datagram", "65528"], "1 to 65527"),
        (&["--rate-limit", "0"], "would answer nothing"),
        (&["--burst", "0"], "1 or more"),
        (&["--stats-interval", "0"], "use 1ms to 24h"),
        // Once a panic: the first stats line's time overflowed `Instant`.
        (&["--stats-interval", "4000000000000000h"], "use 1ms to 24h"),
        (&["--stats-interval", "1e99s"], "out of range"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["server", "--bind", "127.0.0.1:0", "--quiet"];
        args.extend_from_slice(flags);
        let run = run_shout(&args, None, Duration::from_secs(5));
        assert_eq!(run.code(), Some(2), "{flags:?}: {}", run.describe());
        assert!(run.stderr.contains(expected), "{flags:?}: {}", run.describe());
        assert!(!run.stderr.contains("panicked"), "{flags:?}: {}", run.describe());
        assert!(run.stdout.is_empty(), "{flags:?}: nothing may be served: {}", run.describe());
    }
}
