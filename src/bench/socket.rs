//! A flow's socket: connected to the target on a port of its own, and the
//! kernel's count of replies it dropped there.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::config::BenchConfig;
use crate::sys;

/// Asked for on both directions; the kernel caps it at `net.core.[rw]mem_max`.
const SOCKET_BUFFER: usize = 4 << 20;

/// A socket of the target's family, on an ephemeral port, connected to the
/// target: the kernel then passes only the target's datagrams, and reports
/// "port unreachable" as `ECONNREFUSED`.
pub(super) fn connect(config: &BenchConfig) -> io::Result<UdpSocket> {
    let target = config.target;
    let socket = Socket::new(Domain::for_address(target), Type::DGRAM, Some(Protocol::UDP))?;
    let any = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    socket.bind(&any.into())?;
    // Best effort: a small receive queue shows up as "dropped here", not as an error.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.connect(&target.into()).map_err(|err| socket_error(err, target, "connecting to"))?;
    // The tick at which a waiting flow looks at the clock: timeouts, the end.
    let tick = (config.timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(10));
    socket.set_read_timeout(Some(tick))?;
    if config.stamp.is_some() {
        // As STAMP senders do: the reflector's report of the TTL it saw is
        // then 255 minus the hops on the way there.
        let ttl = u32::from(super::stamp::SEND_TTL);
        let set =
            if target.is_ipv4() { socket.set_ttl(ttl) } else { socket.set_unicast_hops_v6(ttl) };
        set.map_err(|err| io::Error::new(err.kind(), format!("--stamp: setting TTL 255: {err}")))?;
    }
    if let Some(dscp) = config.dscp {
        // DSCP in the upper six bits, ECN (the lower two) left to the stack.
        let tos = u32::from(dscp) << 2;
        let set = if target.is_ipv4() { socket.set_tos(tos) } else { socket.set_tclass_v6(tos) };
        set.map_err(|err| io::Error::new(err.kind(), format!("--dscp {dscp}: {err}")))?;
    }
    let sock: UdpSocket = socket.into();
    if config.stamp.is_some() {
        sys::enable_ttl_tos(&sock, target.is_ipv6()).map_err(|err| {
            io::Error::new(err.kind(), format!("--stamp: cannot read the replies' TTL: {err}"))
        })?;
    }
    if config.gso {
        if !sys::gso_supported(&sock) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "--gso: this system has no UDP GSO (Linux 4.18 or later needed)",
            ));
        }
        sys::enable_gro(&sock).map_err(|err| {
            io::Error::new(err.kind(), format!("--gso: cannot enable UDP GRO: {err}"))
        })?;
    }
    Ok(sock)
}

/// Names the target in an error, and says plainly when nothing listens there.
pub(super) fn socket_error(err: io::Error, target: SocketAddr, doing: &str) -> io::Error {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("no server at {target} (port unreachable)"),
        ),
        kind => io::Error::new(kind, format!("{doing} {target}: {err}")),
    }
}

/// The socket's kernel drop counter at the end of the warmup.
#[derive(Default)]
pub(super) struct Drops {
    at_start: Option<Option<u64>>,
}

impl Drops {
    pub(super) fn note_start(&mut self, sock: &UdpSocket, now_ns: u64, measure_from_ns: u64) {
        if self.at_start.is_none() && now_ns >= measure_from_ns {
            self.at_start = Some(sys::socket_drops(sock));
        }
    }

    pub(super) fn since_start(&self, sock: &UdpSocket) -> Option<u64> {
        let start = self.at_start.flatten().unwrap_or(0);
        sys::socket_drops(sock).map(|now| now.saturating_sub(start))
    }
}
