//! Batched socket I/O: the only place with `unsafe`.
//!
//! Linux gets `recvmmsg`/`sendmmsg` with UDP GRO and GSO (`linux.rs`); other
//! platforms get one datagram per call through socket2 (`fallback.rs`). Both offer
//! the same functions, so the server and the bench never ask which one they run on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[cfg(unix)]
mod ifname;
#[cfg(unix)]
pub use ifname::*;
#[cfg(unix)]
mod term;
#[cfg(unix)]
pub use term::*;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

// Also built for tests on Linux, where its own test keeps it working.
#[cfg(any(not(target_os = "linux"), test))]
#[cfg_attr(target_os = "linux", allow(dead_code, unreachable_pub))]
mod fallback;
#[cfg(not(target_os = "linux"))]
pub use fallback::*;

/// The largest UDP payload over IPv4: 65,535 − 20 (IP) − 8 (UDP).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// The largest UDP payload over IPv6 without jumbograms: 65,535 − 8 (UDP).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// Datagrams handled per system call.
pub const BATCH: usize = 32;

/// The most a buffer can need: a whole UDP datagram, or one GRO buffer of many.
pub const MAX_BUF: usize = 65_536;

/// What arrived in one receive slot.
#[derive(Clone, Copy, Debug)]
pub struct RecvMeta {
    /// The sender.
    pub addr: SocketAddr,
    /// Bytes written into the slot's buffer.
    pub len: usize,
    /// Size of each datagram in the buffer: equal to `len` unless GRO coalesced
    /// several same-size datagrams from this sender (the last may be shorter).
    pub stride: usize,
    /// The datagram did not fit the buffer (`MSG_TRUNC`): the rest is lost.
    pub truncated: bool,
    /// The address it was sent to, where the socket reports it
    /// (`enable_pktinfo`): tells which address a wildcard socket was reached on.
    pub dst: Option<IpAddr>,
    /// The TTL or hop limit it arrived with, where asked for ([`enable_ttl_tos`]).
    pub ttl: Option<u8>,
    /// The traffic class byte it arrived with (DSCP and ECN), where asked for.
    pub tos: Option<u8>,
    /// When the kernel received it, since the Unix epoch, where asked for
    /// (`enable_rx_timestamps`).
    pub received: Option<std::time::Duration>,
}

impl RecvMeta {
    /// The sender as an IP socket address; anything else (impossible for UDP)
    /// becomes the port-0 sentinel of [`RecvMeta::default`], which the policy refuses.
    fn sender(addr: &socket2::SockAddr) -> SocketAddr {
        addr.as_socket().unwrap_or(RecvMeta::default().addr)
    }
}

impl Default for RecvMeta {
    fn default() -> Self {
        RecvMeta {
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            len: 0,
            stride: 0,
            truncated: false,
            dst: None,
            ttl: None,
            tos: None,
            received: None,
        }
    }
}

/// One message from a socket's error queue ([`recv_errors`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// The kernel's software transmit timestamp of the datagram numbered `id`
    /// (counted from 0 in send order since [`enable_timestamping`]), since the Unix epoch.
    Sent {
        /// The datagram's number (`SOF_TIMESTAMPING_OPT_ID`).
        id: u32,
        /// When it left, since the Unix epoch.
        at: std::time::Duration,
    },
    /// An ICMP or ICMPv6 destination unreachable about a datagram sent to `dst`.
    Unreachable {
        /// Where the datagram that drew it went.
        dst: SocketAddr,
    },
    /// Any other error queued (an ICMP time exceeded, say): counted, not matched.
    Other,
}

/// One datagram to send, or with `segment_size`, several same-size ones (GSO).
#[derive(Clone, Copy, Debug)]
pub struct Transmit<'a> {
    /// Where it goes.
    pub dst: SocketAddr,
    /// The bytes; split into `segment_size` pieces when that is set.
    pub contents: &'a [u8],
    /// GSO segment size, for a buffer holding several datagrams.
    pub segment_size: Option<usize>,
    /// Source address to send from (`IP_PKTINFO`), so a wildcard socket answers
    /// from the address it was asked on; `None` lets the kernel choose.
    pub src: Option<IpAddr>,
    /// The traffic class byte (DSCP and ECN) for this send alone (`IP_TOS` or
    /// `IPV6_TCLASS` as a control message); `None` keeps the socket's.
    pub tos: Option<u8>,
}

impl Transmit<'_> {
    /// How many datagrams this transmit puts on the wire.
    pub fn datagrams(&self) -> u64 {
        segments(self.contents.len(), self.segment_size.unwrap_or(0))
    }
}

/// Whether a receive error is about one datagram or peer (an ICMP error from an
/// earlier reply, memory pressure), not about the socket.
pub fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | OutOfMemory
    ) || matches!(
        err.raw_os_error(),
        Some(
            libc::ENOBUFS
                | libc::ENOMEM
                | libc::EHOSTDOWN
                | libc::EPERM
                | libc::EMSGSIZE
                | libc::EPROTO
        )
    )
}

/// Datagrams in a buffer of `len` bytes cut every `stride` bytes (GRO/GSO);
/// a stride of 0, or one covering the buffer, means a single datagram.
pub fn segments(len: usize, stride: usize) -> u64 {
    if stride == 0 || len <= stride {
        1
    } else {
        len.div_ceil(stride) as u64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::segments;
    use std::io;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// Two loopback sockets, `b` connected to `a` and with a read timeout, so a
    /// test of either implementation never waits forever.
    pub(crate) fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (a, b)
    }

    /// The `recv_connected` contract both implementations keep: a truncated
    /// datagram fills the buffer and reports a length beyond it; returns that
    /// length so a caller can check more.
    pub(crate) fn check_recv_connected_truncates(
        recv_connected: fn(&UdpSocket, &mut [u8], bool) -> io::Result<usize>,
        a: &UdpSocket,
        b: &UdpSocket,
    ) -> usize {
        let mut buf = [0u8; 10];
        a.send_to(&[b'x'; 100], b.local_addr().unwrap()).unwrap();
        let len = recv_connected(b, &mut buf, true).unwrap();
        assert!(len > buf.len(), "truncation shows: {len}");
        assert_eq!(buf, [b'x'; 10]);
        len
    }

    #[test]
    fn segments_counts_gro_buffers() {
        assert_eq!(segments(0, 0), 1);
        assert_eq!(segments(100, 100), 1);
        assert_eq!(segments(250, 100), 3);
        assert_eq!(segments(300, 100), 3);
    }
}
