//! Helpers for `tests/faults.rs`: the `shout` binary as a child process, capability checks
//! that turn into `SKIPPED:` notes, `/proc` readers (socket queues and drops, RSS), unique
//! loopback addresses, forged datagrams and a loopback sniffer in Python, and scripts run in
//! throwaway network namespaces.
//!
//! Every child is killed (by its own PID) and reaped on drop; every wait has a deadline.

// Not every test uses every helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_shout");

/// Source ports the server refuses by default that a test can bind for real as root.
pub(crate) const DENIED_PORTS: [u16; 9] = [7, 19, 53, 123, 1023, 1900, 3702, 5353, 11211];

// ---------------------------------------------------------------------------------------------
// Capabilities

/// Something a test needs from the machine.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// Binding source ports below 1024 (root, or CAP_NET_BIND_SERVICE).
    PrivilegedPorts,
    /// `python3` with raw sockets: IPPROTO_RAW to forge, AF_PACKET to sniff (CAP_NET_RAW).
    RawSockets,
    /// `unshare -rn --pid --fork` (user, network and PID namespaces).
    Unshare,
    /// `nft`, to drop packets inside a namespace.
    Nft,
    /// `ip` from iproute2, for veth pairs.
    Ip,
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const RAW_PY: &str = "import socket
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)).close()";

/// Whether everything in `needs` is here; if not, prints `SKIPPED: test: reason` on stderr.
pub(crate) fn require(test: &str, needs: &[Need]) -> bool {
    for need in needs {
        let missing = match need {
            Need::PrivilegedPorts => UdpSocket::bind((unique_loopback(), 1))
                .is_err()
                .then_some("cannot bind ports below 1024 (needs root)"),
            Need::RawSockets => (!runs("python3", &["-c", RAW_PY]))
                .then_some("python3 with raw sockets (root, CAP_NET_RAW) not available"),
            Need::Unshare => {
                (!runs("unshare", &["-rn", "--pid", "--fork", "--kill-child", "true"]))
                    .then_some("`unshare -rn --pid --fork` does not work here")
            }
            Need::Nft => (!runs("nft", &["--version"]))
                .then_some("nft (nftables) not installed: apt-get install nftables"),
            Need::Ip => (!runs("ip", &["-V"])).then_some("ip (iproute2) not installed"),
        };
        if let Some(reason) = missing {
            eprintln!("SKIPPED: {test}: {reason}");
            return false;
        }
    }
    true
}

/// Serialises the tests whose outcome depends on timing or on a quiet loopback: the
/// floods would starve the others' servers (and swamp the sniffer) on a 2-core machine.
/// Only the namespace tests, which have their own loopback and tolerate delay, run beside.
pub(crate) fn exclusive() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Children

/// Sends `sig` (`TERM`, `STOP`, ...) to `pid`, a child this test started, with the shell's
/// `kill` builtin (no unsafe, and no dependency on procps).
pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = Command::new("sh")
        .args(["-c", r#"kill -s "$0" "$1""#, sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -s {sig} {pid} failed");
}

/// Polls `child` until it exits or `timeout` passes.
pub(crate) fn wait_for(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Reads a pipe to the end on a thread.
fn collect<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// A finished command.
pub(crate) struct Finished {
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// Its stdout.
    pub(crate) stdout: String,
    /// Its stderr.
    pub(crate) stderr: String,
    /// From spawn to exit.
    pub(crate) elapsed: Duration,
}

impl Finished {
    /// The exit code (`None` if killed by a signal).
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A spawned command whose output is collected; killed and reaped on drop.
pub(crate) struct Running {
    child: Child,
    started: Instant,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
    reaped: bool,
}

impl Running {
    /// Spawns `cmd` with stdin from /dev/null and both outputs collected.
    pub(crate) fn spawn(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let out = Some(collect(child.stdout.take().expect("piped stdout")));
        let err = Some(collect(child.stderr.take().expect("piped stderr")));
        Running { child, started, out, err, reaped: false }
    }

    /// The child's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout`; panics (after killing it) if it is still running then.
    pub(crate) fn finish(mut self, timeout: Duration) -> Finished {
        let status = wait_for(&mut self.child, timeout);
        let elapsed = self.started.elapsed();
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.reaped = true;
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            String::from_utf8_lossy(&h.expect("joined once").join().unwrap_or_default())
                .into_owned()
        };
        let (stdout, stderr) = (text(self.out.take()), text(self.err.take()));
        let Some(status) = status else {
            panic!(
                "command did not exit within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        };
        Finished { status, stdout, stderr, elapsed }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `shout ARGS` and waits for it (at most `timeout`).
pub(crate) fn shout(args: &[&str], timeout: Duration) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    Running::spawn(cmd).finish(timeout)
}

// ---------------------------------------------------------------------------------------------
// `shout server`

/// The `key=value` counters of a server's `summary:` line.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    line: String,
    fields: HashMap<String, u64>,
}

impl Summary {
    /// Parses the `summary:` line out of a server's stderr.
    pub(crate) fn parse(stderr: &str) -> Summary {
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("summary: "))
            .unwrap_or_else(|| panic!("no `summary:` line on the server's stderr:\n{stderr}"));
        let fields = line
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect();
        Summary { line: line.to_string(), fields }
    }

    /// One counter; panics if the summary lacks it.
    pub(crate) fn get(&self, key: &str) -> u64 {
        *self.fields.get(key).unwrap_or_else(|| panic!("summary has no {key}: {}", self.line))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// A running `shout server --quiet --workers 1 ...`, killed on drop.
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Option<JoinHandle<Vec<u8>>>,
    reaped: bool,
}

impl Server {
    /// Starts `shout server --quiet --workers 1 ARGS` and reads its `listening on` line.
    pub(crate) fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["server", "--quiet", "--workers", "1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning shout server");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = Some(collect(child.stderr.take().expect("piped stderr")));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Server { child, addr: ([0, 0, 0, 0], 0).into(), stderr, reaped: false };
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on ").and_then(|a| a.parse().ok())
        else {
            let _ = server.child.kill();
            let _ = server.child.wait();
            server.reaped = true;
            let err = server.stderr.take().expect("present").join().unwrap_or_default();
            panic!(
                "server {args:?} did not print `listening on ADDR` (got {line:?}); stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        };
        server.addr = addr;
        server
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address, which tests bind as IPv4.
    pub(crate) fn addr_v4(&self) -> SocketAddrV4 {
        match self.addr {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => panic!("expected an IPv4 server, got {a}"),
        }
    }

    /// The server's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it a signal.
    pub(crate) fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM; expects exit 0 within 5 s and returns the summary.
    pub(crate) fn stop(mut self) -> Summary {
        signal(self.pid(), "TERM");
        let status = wait_for(&mut self.child, Duration::from_secs(5));
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.reaped = true;
        let err = self.stderr.take().expect("joined once").join().unwrap_or_default();
        let err = String::from_utf8_lossy(&err);
        let status = status.unwrap_or_else(|| panic!("server ignored SIGTERM for 5 s:\n{err}"));
        assert!(status.success(), "server exited with {status} on SIGTERM:\n{err}");
        Summary::parse(&err)
    }

    /// SIGKILL and reap: the crash case; the port is free once this returns.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// One socket's row of `/proc/net/udp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UdpRow {
    /// Bytes of receive queue in use (`sk_rmem_alloc`: truesize, not payload).
    pub(crate) rx_queue: u64,
    /// Datagrams dropped on this socket (full queue and the like).
    pub(crate) drops: u64,
}

/// The `/proc/net/udp` row of the socket bound to `local` (in this process's namespace).
pub(crate) fn udp_row(local: SocketAddrV4) -> Option<UdpRow> {
    // The kernel prints the big-endian address word as a host integer.
    let want = format!("{:08X}:{:04X}", u32::from_ne_bytes(local.ip().octets()), local.port());
    let table = std::fs::read_to_string("/proc/net/udp").expect("reading /proc/net/udp");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(1) != Some(&want.as_str()) {
            return None;
        }
        let rx = cols.get(4)?.split_once(':')?.1;
        Some(UdpRow {
            rx_queue: u64::from_str_radix(rx, 16).ok()?,
            drops: cols.get(12)?.parse().ok()?,
        })
    })
}

/// `udp_row`, for a socket that must exist.
pub(crate) fn udp_row_of(local: SocketAddr) -> UdpRow {
    let SocketAddr::V4(v4) = local else { panic!("IPv4 only: {local}") };
    udp_row(v4).unwrap_or_else(|| panic!("no /proc/net/udp row for {local}"))
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS line")
}

/// Packets the kernel dropped before any socket (per-CPU backlog full), summed over CPUs.
pub(crate) fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Sockets and payloads

/// A loopback address no other test (or process) uses: `127.N.P.P` with P from our PID.
/// Each address is its own /32, so its own rate-limit bucket.
pub(crate) fn unique_loopback() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(127, 100 + (n % 150) as u8, (pid >> 8) as u8, pid as u8)
}

/// A socket bound to `ip:port` (port 0: ephemeral) with a 100 ms receive timeout.
pub(crate) fn bind_v4(ip: Ipv4Addr, port: u16) -> UdpSocket {
    let s = UdpSocket::bind((ip, port)).unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
    s
}

/// Waits up to `timeout` for a datagram on `sock`.
pub(crate) fn recv_within(sock: &UdpSocket, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            return Some((buf[..n].to_vec(), from));
        }
    }
    None
}

/// A small deterministic PRNG (xorshift64*): reproducible payloads without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded; the seed is printed by tests so a failure can be replayed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` random bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A seed from the clock.
pub(crate) fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

// ---------------------------------------------------------------------------------------------
// Python: forged datagrams and a sniffer

/// Sends IPv4/UDP datagrams with headers we write ourselves (IPPROTO_RAW), so the source
/// address and port can be anything. argv[1]: JSON list of
/// `{src, sport, dst, dport, payload (hex), count, interval (s)}`. Prints how many it sent.
const FORGE_PY: &str = r#"
import json, socket, struct, sys, time

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def packet(src, sport, dst, dport, payload):
    length = 8 + len(payload)
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    pseudo = s + d + struct.pack("!BBH", 0, 17, length)
    check = csum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, check) + payload
    # The kernel fills in the IP checksum and, as the id is 0, the id.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0, s, d)
    return ip + udp

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = 0
for p in json.loads(sys.argv[1]):
    pkt = packet(p["src"], p["sport"], p["dst"], p["dport"], bytes.fromhex(p["payload"]))
    start = time.monotonic()
    for i in range(p["count"]):
        delay = start + i * p["interval"] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        raw.sendto(pkt, (p["dst"], 0))
        sent += 1
print(sent)
"#;

/// A forged datagram, sent `count` times `interval` apart.
pub(crate) struct Forged<'a> {
    /// The source written in the header: anything.
    pub(crate) src: SocketAddrV4,
    /// Where it goes.
    pub(crate) dst: SocketAddrV4,
    /// UDP payload.
    pub(crate) payload: &'a [u8],
    /// Copies to send.
    pub(crate) count: u32,
    /// Seconds between copies.
    pub(crate) interval: f64,
}

/// Sends forged datagrams (root and python3 needed); returns when all are sent.
pub(crate) fn forge(packets: &[Forged<'_>]) {
    let spec: Vec<serde_json::Value> = packets
        .iter()
        .map(|p| {
            serde_json::json!({
                "src": p.src.ip().to_string(), "sport": p.src.port(),
                "dst": p.dst.ip().to_string(), "dport": p.dst.port(),
                "payload": p.payload.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "count": p.count, "interval": p.interval,
            })
        })
        .collect();
    let total: u64 = packets.iter().map(|p| u64::from(p.count)).sum();
    let budget = packets.iter().map(|p| p.interval * f64::from(p.count)).sum::<f64>() + 10.0;
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(FORGE_PY).arg(serde_json::Value::from(spec).to_string());
    let run = Running::spawn(cmd).finish(Duration::from_secs_f64(budget));
    assert!(run.status.success(), "forging datagrams failed: {run}");
    assert_eq!(run.stdout.trim(), total.to_string(), "forged datagrams sent: {run}");
}

/// Watches `lo` (AF_PACKET, read-only) for UDP packets from argv[1]:argv[2] until stdin
/// closes (or argv[3] seconds pass); then prints them as JSON `[dst, dport, payload hex]`.
const SNIFF_PY: &str = r#"
import json, select, socket, struct, sys, time

want_ip, want_port, limit = socket.inet_aton(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("lo", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
seen = []

def take(frame, info):
    if info[2] == socket.PACKET_OUTGOING:
        return  # loopback shows each packet twice: keep the received copy
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if len(ip) < ihl + 8 or ip[9] != 17 or ip[12:16] != want_ip:
        return
    sport, dport, length = struct.unpack("!HHH", ip[ihl:ihl + 6])
    if sport == want_port:
        seen.append([socket.inet_ntoa(ip[16:20]), dport, ip[ihl + 8:ihl + length].hex()])

print("ready", flush=True)
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    ready, _, _ = select.select([s, sys.stdin], [], [], 0.05)
    if s in ready:
        take(*s.recvfrom(65535))
    if sys.stdin in ready and not sys.stdin.buffer.read(1):
        break
s.setblocking(False)
while True:
    try:
        take(*s.recvfrom(65535))
    except BlockingIOError:
        break
print(json.dumps(seen), flush=True)
"#;

/// A running sniffer of UDP packets sent from one address on `lo`.
pub(crate) struct Sniffer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    reaped: bool,
}

/// A packet the sniffer saw: destination, destination port, payload.
pub(crate) type Sniffed = (Ipv4Addr, u16, Vec<u8>);

impl Sniffer {
    /// Starts watching for packets from `from`; returns once the capture is open.
    pub(crate) fn start(from: SocketAddrV4) -> Sniffer {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SNIFF_PY)
            .args([from.ip().to_string(), from.port().to_string(), "60".into()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the python sniffer");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let sniffer = Sniffer { child, stdin, lines, reaped: false };
        let first = sniffer.lines.recv_timeout(Duration::from_secs(10));
        assert_eq!(first.as_deref(), Ok("ready"), "sniffer did not start");
        sniffer
    }

    /// Stops the capture and returns what it saw.
    pub(crate) fn finish(mut self) -> Vec<Sniffed> {
        drop(self.stdin.take()); // EOF: stop
        let json = self.lines.recv_timeout(Duration::from_secs(10)).expect("sniffer's report");
        let _ = wait_for(&mut self.child, Duration::from_secs(5));
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
        let rows: Vec<(String, u16, String)> = serde_json::from_str(&json).expect("sniffer JSON");
        rows.into_iter()
            .map(|(ip, port, hex)| {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                (ip.parse().expect("IPv4"), port, bytes)
            })
            .collect()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces and scratch directories

/// A scratch directory under the system temp dir, removed on drop.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory named after the test and our PID.
    pub(crate) fn new(test: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("shout-faults-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file in it.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) {
        let mut f = std::fs::File::create(self.0.join(name)).expect("create scratch file");
        f.write_all(contents).expect("write scratch file");
    }

    /// A file's contents ("" if absent, so a failed script still shows what it left).
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sh -c SCRIPT` in fresh user, network and PID namespaces (`unshare -rn --pid --fork
/// --kill-child`), with `BIN` (the shout binary), `DIR` (the scratch dir) and `env` set.
/// The script sees only its own loopback (down until it brings it up) and its own PIDs;
/// when it ends or is killed, everything it started dies with its PID namespace.
pub(crate) fn in_namespace(
    script: &str,
    dir: &Scratch,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Finished {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", "--pid", "--fork", "--kill-child", "sh", "-c", script])
        .env("BIN", BIN)
        .env("DIR", dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running::spawn(cmd).finish(timeout)
}
