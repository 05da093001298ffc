//! Fault injection against the real `shout` binary: forged and refused sources, a loop
//! between two servers, the per-source rate limit, amplification, 10% loss each way, a
//! 1280-byte MTU path, a stopped and a restarted server, overload, and end-to-end accounting.
//!
//! Tests that need root, python3, nftables or namespaces print `SKIPPED: <test>: <reason>` on
//! stderr and return when the machine lacks them. Traffic stays on loopback or inside network
//! namespaces the tests create; every load is bounded in count and in time.

use crate::common;

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Sends `count` datagrams from `sock` to `to` at `rate` per second on an absolute schedule
/// (a late send does not push back the rest). Returns the number sent and the time from the
/// first send to the last.
fn paced(
    sock: &UdpSocket,
    to: SocketAddr,
    rate: f64,
    count: u64,
    payload: impl Fn(u64) -> Vec<u8>,
) -> (u64, Duration) {
    let start = Instant::now();
    let mut sent = 0;
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        if sock.send_to(&payload(i), to).is_ok() {
            sent += 1;
        }
    }
    (sent, start.elapsed())
}

/// Sends `payload` on a connected socket as fast as it goes until `deadline` or `max` sends.
fn blast(sock: &UdpSocket, payload: &[u8], deadline: Instant, max: u64) -> u64 {
    let mut sent = 0;
    while sent < max && Instant::now() < deadline {
        for _ in 0..64 {
            if sock.send(payload).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

/// Replies received on one socket.
#[derive(Default)]
struct Replies {
    count: u64,
    bytes: u64,
    kept: Vec<Vec<u8>>,
}

/// Reads `sock` until `done` is set and the socket has been quiet for its read timeout
/// (5 s after `done` at most, whatever still arrives).
fn replies(sock: &UdpSocket, done: &AtomicBool, keep: bool) -> Replies {
    let mut got = Replies::default();
    let mut buf = vec![0u8; 65_536];
    let mut done_at = None;
    loop {
        if done.load(Ordering::Relaxed) {
            let since = *done_at.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                return got;
            }
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                got.count += 1;
                got.bytes += n as u64;
                if keep {
                    got.kept.push(buf[..n].to_vec());
                }
            }
            Err(_) if done_at.is_some() => return got,
            Err(_) => {}
        }
    }
}

/// The index `r` falls on when `0..sum(weights)` is cut into consecutive `weights`.
fn weighted(weights: &[u64], mut r: u64) -> usize {
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    panic!("{r} is beyond the weights' sum")
}

/// Waits until at least `n` equal-sized datagrams sit in the receive queue of the socket
/// bound to `addr` (a stopped server's): the first one tells the size of each.
fn wait_queued(addr: SocketAddr, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut one = 0;
    loop {
        let queued = udp_row_of(addr).rx_queue;
        if one == 0 {
            one = queued;
        }
        if one > 0 && queued >= n * one {
            return;
        }
        assert!(Instant::now() < deadline, "{n} datagrams never queued at {addr} ({queued} B)");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Sums the N of every `discarded N datagram(s)` warning on a client's stderr.
fn discarded(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| {
            l.split("discarded ").nth(1)?.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn spawn_client(args: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.arg("client").args(args);
    Running::spawn(cmd)
}

// ---------------------------------------------------------------------------------------------
// 1. Refused sources

/// Source port 0 and the server's own address (forged with a raw socket) and each refused
/// port (bound for real, as root) get nothing back, each counted under its reason exactly;
/// an ordinary source in the same run is answered. A sniffer on `lo` confirms that the one
/// reply is the only packet the server sent.
#[test]
fn refused_sources_get_no_reply_and_are_counted() {
    let test = "refused_sources_get_no_reply_and_are_counted";
    if !require(test, &[Need::PrivilegedPorts, Need::RawSockets]) {
        return;
    }
    let _cpus = exclusive();
    let server = Server::start(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr_v4();
    let sniffer = Sniffer::start(addr);

    let refused: Vec<(u16, UdpSocket)> =
        DENIED_PORTS.iter().map(|&port| (port, bind_v4(unique_loopback(), port))).collect();
    for (port, sock) in &refused {
        sock.send_to(format!("from port {port}").as_bytes(), addr).expect("send");
    }
    let zero = SocketAddrV4::new(unique_loopback(), 0);
    forge(&[
        Forged { src: zero, dst: addr, payload: b"from port zero", count: 1, interval: 0.0 },
        Forged { src: addr, dst: addr, payload: b"from myself", count: 1, interval: 0.0 },
    ]);
    let allowed = bind_v4(unique_loopback(), 0);
    allowed.send_to(b"allowed", addr).expect("send");
    // One worker answers in arrival order: once this reply is in, the rest were judged.
    let (reply, from) =
        recv_within(&allowed, Duration::from_secs(2)).expect("allowed source answered");
    assert_eq!((reply.as_slice(), from), (&b"ALLOWED"[..], SocketAddr::V4(addr)));

    let names: Vec<String> =
        refused.iter().map(|(port, _)| format!("source port {port}")).collect();
    let socks: Vec<(&str, &UdpSocket)> =
        names.iter().map(String::as_str).zip(refused.iter().map(|(_, sock)| sock)).collect();
    assert_silent(&socks, SILENCE);
    let mut seen = sniffer.finish();
    let SocketAddr::V4(allowed_addr) = allowed.local_addr().expect("local addr") else {
        unreachable!("bound to IPv4")
    };
    let mut expected: Vec<Sniffed> = vec![
        // The forged datagram itself carries the server's address as its source.
        (*addr.ip(), addr.port(), b"from myself".to_vec()),
        (*allowed_addr.ip(), allowed_addr.port(), b"ALLOWED".to_vec()),
    ];
    // Which packets, not in which order the capture saw them.
    seen.sort();
    expected.sort();
    if seen != expected {
        let show = |v: &[Sniffed]| {
            let first: Vec<String> = v
                .iter()
                .take(8)
                .map(|(ip, port, data)| format!("{ip}:{port} {:?}", String::from_utf8_lossy(data)))
                .collect();
            format!("{} packets: {}", v.len(), first.join(", "))
        };
        panic!(
            "packets on lo from the server's address:\n got {}\nwant {}",
            show(&seen),
            show(&expected)
        );
    }

    let summary = server.stop();
    for (key, want) in [
        ("received", 12),
        ("answered", 1),
        ("port_zero", 1),
        ("denied_port", DENIED_PORTS.len() as u64),
        ("self_loop", 1),
        ("bad_source", 0),
        ("rate_limited", 0),
        ("reply_failed", 0),
    ] {
        assert_eq!(summary.get(key), want, "{key} in {summary}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Echo loop

/// Two servers that answer anything, and datagrams forged "from" A to B: B's replies go to
/// A, which answers them back: a loop. With `--limit-loopback --rate-limit 50 --burst 50`
/// each side answers at most rate × time + burst, and every datagram it did not answer was
/// the limiter's doing.
#[test]
fn loop_between_two_servers_is_held_to_the_rate_limit() {
    let test = "loop_between_two_servers_is_held_to_the_rate_limit";
    if !require(test, &[Need::RawSockets]) {
        return;
    }
    let _cpus = exclusive();
    const RATE: f64 = 50.0;
    const BURST: f64 = 50.0;
    let args = ["--bind", "127.0.0.1:0", "--limit-loopback", "--rate-limit", "50", "--burst", "50"];
    let started = Instant::now();
    let a = Server::start(&args);
    let b = Server::start(&args);
    // 100 forged datagrams a second for 3 s, each one starting a loop: twice the limit.
    forge(&[Forged {
        src: a.addr_v4(),
        dst: b.addr_v4(),
        payload: b"ping-pong",
        count: 300,
        interval: 0.01,
    }]);
    thread::sleep(Duration::from_millis(200));
    let (sa, sb) = (a.stop(), b.stop());
    let secs = started.elapsed().as_secs_f64();
    let bound = (RATE * secs + BURST + 1.0) as u64;
    for (name, s) in [("A", &sa), ("B", &sb)] {
        assert!(
            s.get("answered") <= bound,
            "{name} answered more than {bound} in {secs:.2} s: {s}"
        );
        assert_eq!(
            s.get("received"),
            s.get("answered") + s.get("rate_limited"),
            "{name}: everything unanswered was rate-limited: {s}"
        );
    }
    // Every reply of A's went back into B (A stopped first): the loop really ran...
    assert_eq!(sb.get("received"), 300 + sa.get("answered"), "A: {sa}\nB: {sb}");
    assert!(sa.get("answered") >= BURST as u64, "A answered B's replies: {sa}");
    // ...and B, which saw the forged datagrams and A's replies, was held to its limit.
    assert!(sb.get("rate_limited") > 0, "B was never limited: {sb}");
    assert!(sb.get("answered") as f64 >= RATE * 2.5, "B answered at its limit: {sb}");
}

// ---------------------------------------------------------------------------------------------
// 3. Rate limit

/// With loopback limited at 200/s: a source sending 10× that for 5 s gets burst + rate × time
/// replies (±1%), while a second source at half the rate at the same time is answered in full.
#[test]
fn rate_limit_holds_a_flood_and_spares_a_polite_source() {
    let _cpus = exclusive();
    const RATE: u64 = 200;
    const SECS: u64 = 5;
    let server =
        Server::start(&["--bind", "127.0.0.1:0", "--limit-loopback", "--rate-limit", "200"]);
    let to = server.addr();
    let flood = bind_v4(unique_loopback(), 0);
    let polite = bind_v4(unique_loopback(), 0);
    let done = AtomicBool::new(false);
    let (flood_sent, flood_span, flood_got, polite_sent, polite_got) = thread::scope(|s| {
        let flood_rx = s.spawn(|| replies(&flood, &done, true));
        let polite_rx = s.spawn(|| replies(&polite, &done, true));
        let flood_tx = s.spawn(|| {
            paced(&flood, to, (10 * RATE) as f64, 10 * RATE * SECS, |i| {
                format!("flood {i}").into_bytes()
            })
        });
        let polite_tx = s.spawn(|| {
            paced(&polite, to, RATE as f64 / 2.0, RATE / 2 * SECS, |i| {
                format!("polite {i}").into_bytes()
            })
        });
        let (flood_sent, flood_span) = flood_tx.join().expect("flood sender");
        let (polite_sent, _) = polite_tx.join().expect("polite sender");
        thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        let flood_got = flood_rx.join().expect("flood receiver");
        let polite_got = polite_rx.join().expect("polite receiver");
        (flood_sent, flood_span, flood_got, polite_sent, polite_got)
    });
    let summary = server.stop();

    assert!(flood_got.kept.iter().all(|r| r.starts_with(b"FLOOD ")), "flood replies are its own");
    assert!(
        polite_got.kept.iter().all(|r| r.starts_with(b"POLITE ")),
        "polite replies are its own"
    );
    let expected = RATE as f64 + RATE as f64 * flood_span.as_secs_f64();
    let got = flood_got.count as f64;
    eprintln!(
        "rate limit: flood {got} of {flood_sent} answered (expected {expected:.1}), polite {} of {polite_sent}",
        polite_got.count
    );
    assert!(
        (got - expected).abs() <= expected / 100.0,
        "flood of {flood_sent} over {flood_span:?}: {got} replies, expected {expected:.0} ± 1%; {summary}"
    );
    assert!(
        polite_got.count * 1000 >= polite_sent * 999,
        "polite source: {} of {polite_sent} answered; {summary}",
        polite_got.count
    );
    assert_eq!(
        summary.get("rate_limited"),
        flood_sent + polite_sent - flood_got.count - polite_got.count,
        "{summary}"
    );
    assert_eq!(summary.get("kernel_drops"), 0, "{summary}");
}

// ---------------------------------------------------------------------------------------------
// 4. No amplification

/// 10,000 random requests (0..=1500 random bytes) from ordinary, refused (privileged and
/// reflector ports, bound as root) and rate-limited sources: no socket gets more replies or
/// more reply bytes than it sent, every reply is the transform of one of its own requests,
/// refused sources get none, and in total replies ≤ requests in count and in bytes.
#[test]
fn no_source_gets_more_back_than_it_sent() {
    let test = "no_source_gets_more_back_than_it_sent";
    if !require(test, &[Need::PrivilegedPorts]) {
        return;
    }
    let _cpus = exclusive();
    const TOTAL: u64 = 10_000;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let server = Server::start(&[
        "--bind",
        "127.0.0.1:0",
        "--limit-loopback",
        "--rate-limit",
        "1000",
        "--burst",
        "100",
    ]);
    let to = server.addr();
    // (socket, weight, refused): the last one sends most, far over its 1000/s.
    let sources: Vec<(UdpSocket, u64, bool)> = vec![
        (bind_v4(unique_loopback(), 0), 15, false),
        (bind_v4(unique_loopback(), 0), 15, false),
        (bind_v4(unique_loopback(), 53), 10, true),
        (bind_v4(unique_loopback(), 1900), 10, true),
        (bind_v4(unique_loopback(), 7), 10, true),
        (bind_v4(unique_loopback(), 0), 40, false),
    ];
    let weights: u64 = sources.iter().map(|s| s.1).sum();
    let done = AtomicBool::new(false);
    // Per source: expected replies (transform → copies), requests, request bytes.
    let mut expected: Vec<(HashMap<Vec<u8>, u64>, u64, u64)> =
        vec![Default::default(); sources.len()];
    let got: Vec<Replies> = thread::scope(|s| {
        let readers: Vec<_> =
            sources.iter().map(|(sock, _, _)| s.spawn(|| replies(sock, &done, true))).collect();
        let start = Instant::now();
        for i in 0..TOTAL {
            let k = weighted(&sources.iter().map(|s| s.1).collect::<Vec<_>>(), rng.below(weights));
            let len = rng.below(1501) as usize;
            let payload = rng.bytes(len);
            sources[k].0.send_to(&payload, to).expect("send");
            *expected[k].0.entry(payload.to_ascii_uppercase()).or_default() += 1;
            expected[k].1 += 1;
            expected[k].2 += len as u64;
            if i % 100 == 99 {
                // 10,000 a second: no queue anywhere overflows.
                let due = start + Duration::from_millis(i / 10);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
        }
        thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        readers.into_iter().map(|r| r.join().expect("reader")).collect()
    });
    let summary = server.stop();

    let (mut replies_total, mut reply_bytes, mut request_bytes) = (0, 0, 0);
    for (k, ((_, _, refused), (want, sent, sent_bytes))) in
        sources.iter().zip(&mut expected).enumerate()
    {
        let r = &got[k];
        assert!(
            r.count <= *sent && r.bytes <= *sent_bytes,
            "source {k} (seed {seed}): {} replies / {} B for {sent} / {sent_bytes} B",
            r.count,
            r.bytes
        );
        if *refused {
            assert_eq!(r.count, 0, "refused source {k} was answered (seed {seed})");
        }
        for reply in &r.kept {
            let left = want.get_mut(reply).filter(|n| **n > 0);
            let left = left.unwrap_or_else(|| panic!("source {k} got a reply ({} B) that is not the transform of one of its requests (seed {seed})", reply.len()));
            *left -= 1;
        }
        replies_total += r.count;
        reply_bytes += r.bytes;
        request_bytes += *sent_bytes;
    }
    assert!(
        replies_total <= TOTAL && reply_bytes <= request_bytes,
        "{replies_total} replies / {reply_bytes} B for {TOTAL} / {request_bytes} B"
    );
    assert_eq!(summary.get("received"), TOTAL, "{summary}");
    assert_eq!(summary.get("bytes_received"), request_bytes, "{summary}");
    assert_eq!(summary.get("answered"), replies_total, "{summary}");
    assert_eq!(summary.get("bytes_answered"), reply_bytes, "{summary}");
    assert_eq!(
        summary.get("denied_port"),
        expected[2].1 + expected[3].1 + expected[4].1,
        "{summary}"
    );
    assert!(summary.get("rate_limited") > 0, "the limited source was limited: {summary}");
    assert!(replies_total > 0, "ordinary sources were answered: {summary}");
}

// ---------------------------------------------------------------------------------------------
// 5. Loss

/// In a namespace whose loopback drops 10% of requests and 10% of replies at random
/// (nftables `numgen random`), `shout client --timeout 50ms --retries 8` pipes 1,000 distinct
/// lines: at least 999 are answered, each printed once, in order, with its own reply.
#[test]
fn client_gets_through_ten_percent_loss_each_way() {
    let test = "client_gets_through_ten_percent_loss_each_way";
    if !require(test, &[Need::Unshare, Need::Nft]) {
        return;
    }
    const LINES: usize = 1000;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let lines: Vec<String> = (0..LINES)
        .map(|i| {
            let word: String = (0..8).map(|_| (b'a' + rng.below(26) as u8) as char).collect();
            format!("request {i:04} {word}")
        })
        .collect();
    let dir = Scratch::new("loss");
    dir.write("lines.txt", (lines.join("\n") + "\n").as_bytes());
    let script = r#"
        set -u
        ip link set lo up || exit 90
        nft -f - <<'EOF' || exit 91
table inet faults {
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport 9000 numgen random mod 10 == 0 counter drop
        udp sport 9000 numgen random mod 10 == 0 counter drop
    }
}
EOF
        "$BIN" server --bind 127.0.0.1:9000 --quiet --workers 1 >"$DIR/server.out" 2>"$DIR/server.err" &
        server=$!
        i=0
        until grep -q '^listening on' "$DIR/server.out"; do
            i=$((i + 1)); [ "$i" -gt 1000 ] && exit 92; sleep 0.01
        done
        "$BIN" client 127.0.0.1:9000 --timeout 50ms --retries 8 \
            <"$DIR/lines.txt" >"$DIR/client.out" 2>"$DIR/client.err"
        echo $? >"$DIR/client.rc"
        kill -TERM "$server"; wait "$server"
        nft list chain inet faults input >"$DIR/nft.txt"
    "#;
    let run = in_namespace(script, &dir, &[], Duration::from_secs(60));
    let context = format!(
        "seed {seed}\nscript: {run}\nclient rc: {}client stderr:\n{}\nserver stderr:\n{}\nnft:\n{}",
        dir.read("client.rc"),
        dir.read("client.err"),
        dir.read("server.err"),
        dir.read("nft.txt")
    );
    assert!(run.status.success(), "{context}");

    // The fault was real: both rules dropped packets (≈ 10% of ~1,100 each).
    let dropped = |direction: &str| -> u64 {
        let nft = dir.read("nft.txt");
        let line = nft
            .lines()
            .find(|l| l.contains(direction))
            .unwrap_or_else(|| panic!("no {direction} rule: {context}"));
        line.split("counter packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .expect("packet counter")
    };
    let (requests_dropped, replies_dropped) = (dropped("dport 9000"), dropped("sport 9000"));
    assert!(
        requests_dropped >= 40 && replies_dropped >= 40,
        "loss injected: {requests_dropped} requests, {replies_dropped} replies; {context}"
    );

    let index: HashMap<String, usize> =
        lines.iter().enumerate().map(|(i, l)| (l.to_ascii_uppercase(), i)).collect();
    let out = dir.read("client.out");
    let mut last = None;
    let mut answered = 0;
    for reply in out.lines() {
        let i = *index
            .get(reply)
            .unwrap_or_else(|| panic!("printed {reply:?}, the reply to no request: {context}"));
        assert!(
            last < Some(i),
            "reply {i} printed after {last:?}: out of order or twice; {context}"
        );
        last = Some(i);
        answered += 1;
    }
    assert!(answered >= LINES - 1, "{answered} of {LINES} answered; {context}");
    let rc = dir.read("client.rc");
    assert_eq!(rc.trim(), if answered == LINES { "0" } else { "1" }, "client exit code; {context}");
    let summary = Summary::parse(&dir.read("server.err"));
    assert!(summary.get("answered") >= LINES as u64, "{summary}");
    eprintln!("loss: dropped {requests_dropped} requests and {replies_dropped} replies; {answered}/{LINES} answered; {summary}");
}

// ---------------------------------------------------------------------------------------------
// 6. MTU

/// Two namespaces joined by a veth pair with MTU 1280: with `--dont-fragment` a 1,300-byte
/// message fails at once with an `EMSGSIZE` error (exit 1), 1,232 bytes go through; without
/// it the 1,300 bytes travel as fragments (so the MTU, not something else, is what refused).
/// A burst of 1,300-byte requests is answered in full too: gathered replies whose segments
/// exceed the MTU are refused by GSO and sent one by one, without turning GSO off.
#[test]
fn dont_fragment_over_a_1280_mtu_path() {
    let test = "dont_fragment_over_a_1280_mtu_path";
    if !require(test, &[Need::Unshare, Need::Ip]) {
        return;
    }
    let dir = Scratch::new("mtu");
    let big = "a".repeat(1300);
    let fits = "b".repeat(1232);
    let script = r#"
        set -u
        ip link set lo up || exit 90
        # The server's namespace: waits for its end of the veth, then serves on it.
        unshare -n sh -c '
            echo $$ >"$DIR/b.pid"
            i=0
            until ip link show v1 >/dev/null 2>&1; do
                i=$((i + 1)); [ "$i" -gt 1000 ] && exit 93; sleep 0.01
            done
            ip link set lo up && ip addr add 10.99.0.2/24 dev v1 && ip link set v1 mtu 1280 up || exit 94
            exec "$BIN" server --bind 10.99.0.2:9000 --quiet --workers 1 --rate-limit off >"$DIR/server.out" 2>"$DIR/server.err"
        ' &
        server=$!
        i=0
        until [ -s "$DIR/b.pid" ]; do i=$((i + 1)); [ "$i" -gt 1000 ] && exit 95; sleep 0.01; done
        ip link add v0 mtu 1280 type veth peer name v1 mtu 1280 netns "$(cat "$DIR/b.pid")" || exit 96
        ip addr add 10.99.0.1/24 dev v0 && ip link set v0 up || exit 97
        ip link show v0 >"$DIR/link.txt"
        i=0
        until grep -q '^listening on' "$DIR/server.out" 2>/dev/null; do
            i=$((i + 1)); [ "$i" -gt 1000 ] && exit 98; sleep 0.01
        done
        try() {
            name=$1; shift
            t0=$(date +%s%N)
            "$BIN" client 10.99.0.2:9000 --timeout 2s --retries 2 "$@" >"$DIR/$name.out" 2>"$DIR/$name.err"
            echo $? >"$DIR/$name.rc"
            echo $(( ($(date +%s%N) - t0) / 1000000 )) >"$DIR/$name.ms"
        }
        try df_big --dont-fragment "$BIG"
        try df_fits --dont-fragment "$FITS"
        try frag_big "$BIG"
        # Bursts of replies too large for one MTU: gathered, GSO refuses them (each
        # segment must fit the MTU), and they go out one by one, fragmented.
        "$BIN" bench 10.99.0.2:9000 --size 1300 --window 8 --duration 1s --max-loss 0 --json \
            >"$DIR/bench.json" 2>"$DIR/bench.err"
        echo $? >"$DIR/bench.rc"
        kill -TERM "$server"; wait "$server"
    "#;
    let run =
        in_namespace(script, &dir, &[("BIG", &big), ("FITS", &fits)], Duration::from_secs(60));
    let show = |name: &str| {
        format!(
            "{name}: rc {} in {} ms\nstdout: {}\nstderr: {}",
            dir.read(&format!("{name}.rc")).trim(),
            dir.read(&format!("{name}.ms")).trim(),
            dir.read(&format!("{name}.out")).len(),
            dir.read(&format!("{name}.err"))
        )
    };
    let context = format!(
        "script: {run}\nlink: {}\n{}\n{}\n{}\nserver stderr:\n{}",
        dir.read("link.txt"),
        show("df_big"),
        show("df_fits"),
        show("frag_big"),
        dir.read("server.err")
    );
    assert!(run.status.success(), "{context}");
    assert!(dir.read("link.txt").contains("mtu 1280"), "{context}");

    assert_eq!(dir.read("df_big.rc").trim(), "1", "{context}");
    assert!(dir.read("df_big.err").contains("EMSGSIZE"), "{context}");
    assert_eq!(dir.read("df_big.out"), "", "{context}");
    let ms: u64 = dir.read("df_big.ms").trim().parse().expect("ms");
    assert!(ms < 1000, "EMSGSIZE is reported at once, not after timeouts: {context}");

    assert_eq!(dir.read("df_fits.rc").trim(), "0", "{context}");
    assert_eq!(dir.read("df_fits.out"), fits.to_ascii_uppercase() + "\n", "{context}");
    assert_eq!(dir.read("frag_big.rc").trim(), "0", "{context}");
    assert_eq!(dir.read("frag_big.out"), big.to_ascii_uppercase() + "\n", "{context}");

    assert_eq!(dir.read("bench.rc").trim(), "0", "{context}\nbench: {}", dir.read("bench.err"));
    let bench = dir.read("bench.json");
    let sent: u64 = bench
        .split("\"sent\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sent count in {bench}"));
    assert!(sent > 100, "{bench}");
    let server_err = dir.read("server.err");
    assert!(!server_err.contains("GSO refused"), "an MTU refusal is not a broken GSO: {context}");

    let summary = Summary::parse(&server_err);
    assert_eq!(summary.get("received"), 2 + sent, "the refused message never left: {summary}");
    assert_eq!(summary.get("answered"), 2 + sent, "{summary}");
}

// ---------------------------------------------------------------------------------------------
// 7. Stopped and restarted servers

/// A server stopped with SIGSTOP while a client retries (`--timeout 100ms --retries 5`),
/// resumed ~300 ms later: the client gets through (exit 0), and the late replies to the
/// queued retransmissions are discarded: exactly one line per request.
#[test]
fn stopped_server_resumes_and_late_replies_are_discarded() {
    let _cpus = exclusive();
    let server = Server::start(&["--bind", "127.0.0.1:0"]);
    let addr = server.addr();
    let target = addr.to_string();
    server.signal("STOP");
    let client =
        spawn_client(&[&target, "alpha", "beta", "gamma", "--timeout", "100ms", "--retries", "5"]);
    let spawned = Instant::now();
    // At least one retransmission queued behind the first copy, so late replies will exist.
    wait_queued(addr, 2, Duration::from_secs(3));
    if let Some(rest) =
        (spawned + Duration::from_millis(300)).checked_duration_since(Instant::now())
    {
        thread::sleep(rest);
    }
    server.signal("CONT");
    let run = client.finish(Duration::from_secs(15));
    let summary = server.stop();
    assert_eq!(run.code(), Some(0), "{run}\n{summary}");
    assert_eq!(run.stdout, "ALPHA\nBETA\nGAMMA\n", "{run}\n{summary}");
    let late = summary.get("answered") - 3;
    assert!(late >= 1, "the stopped server had retransmissions queued: {summary}");
    assert_eq!(
        discarded(&run.stderr),
        late,
        "every late reply was discarded, and said so: {run}\n{summary}"
    );
    assert_eq!(summary.get("received"), summary.get("answered"), "{summary}");
}

/// A server killed (SIGKILL, while stopped with requests queued) and a new one started on
/// the same port between two retransmissions: the retrying client gets through, exit 0,
/// one line per request.
#[test]
fn server_restarted_on_the_same_port_while_a_client_retries() {
    let _cpus = exclusive();
    let old = Server::start(&["--bind", "127.0.0.1:0"]);
    let addr = old.addr();
    let target = addr.to_string();
    old.signal("STOP");
    // Attempts at 0, 200, 600 ms...: the restart must fall between two of them, since a
    // retransmission to a closed port is refused (ICMP) and ends the client at once.
    let client =
        spawn_client(&[&target, "delta", "epsilon", "--timeout", "200ms", "--retries", "5"]);
    wait_queued(addr, 2, Duration::from_secs(3)); // the first retransmission is in
    let killed = Instant::now();
    old.kill();
    let new = Server::start(&["--bind", &target]);
    let gap = killed.elapsed();
    let run = client.finish(Duration::from_secs(15));
    let summary = new.stop();
    assert_eq!(run.code(), Some(0), "restart took {gap:?}\n{run}\n{summary}");
    assert_eq!(run.stdout, "DELTA\nEPSILON\n", "{run}\n{summary}");
    assert!(summary.get("answered") >= 2, "the new server answered both: {summary}");
}

// ---------------------------------------------------------------------------------------------
// 8. Overload

/// One worker flooded from three sockets at full speed for 10 s: the server stays up, its RSS
/// after the flood is within 2 MiB of its RSS after 1 s of it, a probe is answered within 1 s
/// of the end, and its summary's `kernel_drops` equals the drops column of `/proc/net/udp`.
#[test]
#[ignore = "a 10 s flood: run by .ci/run extended"]
fn overload_leaves_the_server_up_flat_and_counting() {
    let _cpus = exclusive();
    const FLOOD: Duration = Duration::from_secs(10);
    let mut server = Server::start(&["--bind", "127.0.0.1:0"]);
    let to = server.addr();
    let pid = server.pid();
    let senders: Vec<UdpSocket> = (0..3)
        .map(|_| {
            let s = bind_v4(unique_loopback(), 0);
            s.connect(to).expect("connect");
            s
        })
        .collect();
    let start = Instant::now();
    let deadline = start + FLOOD;
    let (sent, rss_1s, rss_end) = thread::scope(|s| {
        let floods: Vec<_> = senders
            .iter()
            .map(|sock| {
                s.spawn(move || {
                    blast(sock, b"flood flood flood flood flood!!!", deadline, 50_000_000)
                })
            })
            .collect();
        thread::sleep(Duration::from_secs(1));
        let rss_1s = rss_kib(pid);
        let sent: u64 = floods.into_iter().map(|f| f.join().expect("flooder")).sum();
        (sent, rss_1s, rss_kib(pid))
    });
    assert!(server.is_running(), "the server died under the flood");

    let probe = bind_v4(unique_loopback(), 0);
    let flood_end = Instant::now();
    let mut answered = None;
    let mut probes = 0;
    while answered.is_none() && flood_end.elapsed() < Duration::from_secs(1) {
        probe.send_to(b"probe", to).expect("send probe");
        probes += 1;
        answered = recv_within(&probe, Duration::from_millis(100)).filter(|(r, _)| r == b"PROBE");
    }
    let probe_time = flood_end.elapsed();
    let proc_drops = udp_row_of(to).drops;
    let summary = server.stop();

    eprintln!("overload: sent {sent} in {FLOOD:?}; RSS {rss_1s} KiB at 1 s, {rss_end} KiB at the end; probe in {probe_time:?}; /proc drops {proc_drops}; {summary}");
    assert!(answered.is_some(), "probe unanswered 1 s after the flood; {summary}");
    assert!(
        rss_end.abs_diff(rss_1s) <= 2048,
        "RSS {rss_1s} KiB after 1 s, {rss_end} KiB after {FLOOD:?}"
    );
    assert_eq!(
        summary.get("kernel_drops"),
        proc_drops,
        "summary vs /proc/net/udp drops: {summary}"
    );
    assert!(summary.get("kernel_drops") > 0, "the flood did not overload one worker: {summary}");
    assert_eq!(
        summary.get("received") + summary.get("kernel_drops"),
        sent + probes,
        "every datagram sent was received or dropped at the server's socket: {summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Accounting

/// A known load: two sources at full speed (read as they come), one at full speed whose
/// replies are left unread until the end, and one refused source, against a limit of
/// 5,000/s per source. Every datagram sent is accounted for, to 0.1%, as a reply read, a
/// reply dropped at the client's socket (`/proc/net/udp`), a request dropped at the server's
/// socket (`kernel_drops`), rate-limited or refused.
#[test]
fn every_datagram_sent_is_accounted_for() {
    let test = "every_datagram_sent_is_accounted_for";
    if !require(test, &[Need::PrivilegedPorts]) {
        return;
    }
    let _cpus = exclusive();
    const LOAD: Duration = Duration::from_secs(2);
    let server = Server::start(&[
        "--bind",
        "127.0.0.1:0",
        "--limit-loopback",
        "--rate-limit",
        "5000",
        "--burst",
        "500",
    ]);
    let to = server.addr();
    let connected = |port: u16| {
        let s = bind_v4(unique_loopback(), port);
        s.connect(to).expect("connect");
        s
    };
    let readers = [connected(0), connected(0)];
    let lazy = connected(0);
    let refused = connected(123);
    let softnet_before = softnet_drops();
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + LOAD;
    let (sent, read) = thread::scope(|s| {
        let rx: Vec<_> =
            readers.iter().map(|sock| s.spawn(|| replies(sock, &done, false))).collect();
        let mut tx: Vec<_> = readers
            .iter()
            .chain([&lazy])
            .map(|sock| s.spawn(move || blast(sock, b"count me, count me", deadline, 20_000_000)))
            .collect();
        tx.push(s.spawn(|| blast(&refused, b"refused", deadline, 20_000)));
        let sent: u64 = tx.into_iter().map(|t| t.join().expect("sender")).sum();
        // Let the server empty its queue, then the replies land or drop.
        let quiet = Instant::now() + Duration::from_secs(5);
        while udp_row_of(to).rx_queue > 0 && Instant::now() < quiet {
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(200));
        done.store(true, Ordering::Relaxed);
        let read: u64 = rx.into_iter().map(|r| r.join().expect("reader").count).sum();
        (sent, read)
    });
    let sockets = readers.iter().chain([&lazy, &refused]);
    let client_drops: u64 =
        sockets.map(|sock| udp_row_of(sock.local_addr().expect("local addr")).drops).sum();
    lazy.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let stop = AtomicBool::new(true);
    let lazy_read = replies(&lazy, &stop, false).count;
    let refused_read = replies(&refused, &stop, false).count;
    let server_drops = udp_row_of(to).drops;
    let summary = server.stop();
    let softnet = softnet_drops() - softnet_before;

    let answered_seen = read + lazy_read + refused_read + client_drops;
    let explained = answered_seen
        + summary.get("kernel_drops")
        + summary.get("rate_limited")
        + summary.get("denied_port")
        + summary.get("reply_failed");
    let report = format!(
        "sent {sent}: read {read} + {lazy_read} (lazy) + {refused_read} (refused), client drops {client_drops}, \
         server /proc drops {server_drops}, softnet drops {softnet}; {summary}"
    );
    eprintln!("accounting: {report}");
    assert_eq!(refused_read, 0, "{report}");
    assert!(
        sent.abs_diff(explained) * 1000 <= sent,
        "unexplained: {} of {sent}; {report}",
        sent.abs_diff(explained)
    );
    assert!(
        sent.abs_diff(summary.get("received") + summary.get("kernel_drops")) * 1000 <= sent,
        "server's view: received + kernel_drops vs sent; {report}"
    );
    assert!(
        summary.get("answered").abs_diff(answered_seen) * 1000 <= summary.get("answered").max(1),
        "replies sent vs replies read or dropped at the clients; {report}"
    );
    assert_eq!(summary.get("kernel_drops"), server_drops, "{report}");
    assert!(summary.get("rate_limited") > 0 && summary.get("denied_port") > 0, "{report}");
    assert!(client_drops > 0, "the lazy reader's socket overflowed: {report}");
}
