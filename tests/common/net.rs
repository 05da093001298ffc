//! Plain UDP sockets on loopback, `/proc` readers (socket queues and drops, RSS), unique
//! loopback addresses and reproducible random payloads.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::RECV_TIMEOUT;

/// Source ports the server refuses by default that a test can bind for real as root.
pub(crate) const DENIED_PORTS: [u16; 9] = [7, 19, 53, 123, 1023, 1900, 3702, 5353, 11211];

/// A loopback socket of the same family as `peer`, port 0, with a receive timeout.
pub(crate) fn socket_for(peer: SocketAddr) -> UdpSocket {
    let bind = if peer.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
    let s = UdpSocket::bind(bind).expect("bind loopback port 0");
    s.set_read_timeout(Some(RECV_TIMEOUT)).expect("timeout");
    s
}

/// Sends `payload` to `to` and returns the first datagram that comes back from `to`.
pub(crate) fn request(sock: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    sock.send_to(payload, to).expect("send_to");
    recv_from_peer(sock, to)
        .unwrap_or_else(|| panic!("no reply from {to} to a {} B datagram", payload.len()))
}

/// Next datagram from `from` within the socket's read timeout (others are ignored).
pub(crate) fn recv_from_peer(sock: &UdpSocket, from: SocketAddr) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, src)) if src == from => return Some(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// ASCII-only uppercase, the server's transform.
pub(crate) fn upper(b: &[u8]) -> Vec<u8> {
    b.to_ascii_uppercase()
}

/// Whether `[::1]` can be bound here.
pub(crate) fn ipv6_loopback_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
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
// Addresses and payloads

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

/// How long a test listens to be sure that nothing (more) arrives.
pub(crate) const SILENCE: Duration = Duration::from_millis(300);

/// Asserts that no datagram arrives on any of `socks` for `quiet`: a reply that
/// must never come fails the test the moment it arrives, instead of a bare sleep
/// followed by one look. `what` names each socket in the failure.
pub(crate) fn assert_silent(socks: &[(&str, &UdpSocket)], quiet: Duration) {
    let deadline = Instant::now() + quiet;
    let mut buf = vec![0u8; 65_536];
    for (_, sock) in socks {
        sock.set_nonblocking(true).expect("nonblocking");
    }
    loop {
        for (what, sock) in socks {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                panic!("{what}: expected silence, got {n} B from {from}: {:?}", &buf[..n.min(64)]);
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (_, sock) in socks {
        sock.set_nonblocking(false).expect("blocking");
    }
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
