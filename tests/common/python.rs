//! Python helpers: availability, scripts run with a timeout, forged datagrams (raw sockets)
//! and a loopback sniffer.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::process::{run_command, spawn_line_reader, ChildGuard, Run, Running};

/// Whether `python3` runs; prints a SKIPPED note otherwise.
pub(crate) fn python3_or_skip(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED {test}: python3 not found on PATH");
    }
    ok
}

/// Runs `python3 -c SCRIPT ARGS` with a timeout.
pub(crate) fn run_python<S: AsRef<OsStr>>(script: &str, args: &[S], timeout: Duration) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run_command(cmd, None, timeout)
}

// ---------------------------------------------------------------------------------------------
// Forged datagrams and a sniffer (root)

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
    guard: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

/// A packet the sniffer saw: destination, destination port, payload.
pub(crate) type Sniffed = (Ipv4Addr, u16, Vec<u8>);

impl Sniffer {
    /// Starts watching for packets from `from`; returns once the capture is open.
    pub(crate) fn start(from: SocketAddrV4) -> Sniffer {
        let child = Command::new("python3")
            .arg("-c")
            .arg(SNIFF_PY)
            .args([from.ip().to_string(), from.port().to_string(), "60".into()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the python sniffer");
        let mut guard = ChildGuard::new(child);
        let stdin = guard.child_mut().stdin.take();
        let lines = spawn_line_reader(guard.child_mut().stdout.take().expect("piped stdout"));
        let sniffer = Sniffer { guard, stdin, lines };
        let first = sniffer.lines.recv_timeout(Duration::from_secs(10));
        assert_eq!(first.as_deref(), Ok("ready"), "sniffer did not start");
        sniffer
    }

    /// Stops the capture and returns what it saw.
    pub(crate) fn finish(mut self) -> Vec<Sniffed> {
        drop(self.stdin.take()); // EOF: stop
        let json = self.lines.recv_timeout(Duration::from_secs(10)).expect("sniffer's report");
        let _ = self.guard.wait_timeout(Duration::from_secs(5));
        self.guard.kill();
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
