//! The server's sockets: binding each address (a `SO_REUSEPORT` group of one
//! socket per worker), adopting sockets made elsewhere, and the options every
//! served socket gets (receive buffer, GRO, `IP_PKTINFO`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::counters::{Counts, WorkerStats};
use crate::sys;

/// How often a worker blocked in a receive looks at the stop flag where the
/// platform cannot wake it (everywhere but Linux), and how often the server
/// looks at the flags.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(50);
/// Socket receive buffer asked for; the kernel caps it at `net.core.rmem_max`.
const RECV_BUFFER: usize = 4 << 20;

/// One served socket and what its worker counts.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) socket: UdpSocket,
    /// The address it is bound to, with the real port.
    pub(crate) local: SocketAddr,
    pub(crate) stats: Arc<WorkerStats>,
}

impl Slot {
    /// The worker's counters, with the kernel's drop counter read now.
    pub(crate) fn counts(&self) -> Counts {
        if let Some(drops) = sys::socket_drops(&self.socket) {
            self.stats.set_kernel_drops(drops);
        }
        self.stats.counts()
    }
}

/// Prepares each group of sockets bound to one address: the addresses, in
/// order, and a slot per socket.
pub(crate) fn slots(
    groups: Vec<Vec<UdpSocket>>,
    offload: bool,
    ttl_tos: bool,
) -> io::Result<(Vec<SocketAddr>, Vec<Slot>)> {
    let mut local_addrs = Vec::new();
    let mut slots = Vec::new();
    for sockets in groups {
        let local = sockets[0].local_addr()?;
        for socket in sockets {
            prepare(&socket, local, offload)?;
            if ttl_tos {
                // What a STAMP reflector reports back; where the platform
                // cannot tell, it reports 0 ("unknown").
                match sys::enable_ttl_tos(&socket, local.is_ipv6()) {
                    Err(err) if err.kind() != io::ErrorKind::Unsupported => return Err(err),
                    _ => {}
                }
            }
            slots.push(Slot { socket, local, stats: Arc::default() });
        }
        local_addrs.push(local);
    }
    Ok((local_addrs, slots))
}

/// Binds `workers` sockets to `addr` (a reuseport group when more than one),
/// all on the same port, so port 0 resolves once for the group.
pub(crate) fn bind_group(addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    // A reuseport group would silently share the port with any other
    // process of ours already on it; a plain bind first says "in use".
    let addr = if workers > 1 { claim(addr)? } else { addr };
    let first = bind_socket(addr, workers > 1)?;
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_socket(local, true)?);
    }
    Ok(sockets)
}

/// Makes a socket handed over by systemd or a test harness behave like ours:
/// blocking, and with at least our receive buffer unless it was given more.
pub(crate) fn adopt(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    #[cfg(not(target_os = "linux"))]
    socket.set_read_timeout(Some(STOP_POLL))?;
    let sock = socket2::SockRef::from(socket);
    if sock.recv_buffer_size().is_ok_and(|size| size < RECV_BUFFER) {
        let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    }
    Ok(())
}

/// Turns on what the reply loop uses: GRO (best effort) and, on a wildcard
/// address, the destination of each datagram.
fn prepare(socket: &UdpSocket, local: SocketAddr, offload: bool) -> io::Result<()> {
    if offload {
        // Best effort: without GRO the kernel hands us datagrams one by one.
        let _ = sys::enable_gro(socket);
    }
    if local.ip().is_unspecified() {
        // To answer from the address each request was sent to, and
        // to recognise our own address in a self-loop check.
        match sys::enable_pktinfo(socket, local.is_ipv6()) {
            Err(err) if err.kind() != io::ErrorKind::Unsupported => return Err(err),
            // Where the platform cannot tell, the kernel picks the source.
            _ => {}
        }
    }
    Ok(())
}

/// Binds `addr` without `SO_REUSEPORT` and lets go, to learn that it is free
/// (and, for port 0, which port to take). The port could be taken in between;
/// the reuseport bind that follows then still fails unless it is ours.
fn claim(addr: SocketAddr) -> io::Result<SocketAddr> {
    let probe = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())?;
    probe.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))
}

fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Lets `[::]:P` and `0.0.0.0:P` be bound side by side, as most servers do.
        socket.set_only_v6(true)?;
    }
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    // Linux workers are woken by `sys::wake`; elsewhere they poll the stop flag.
    #[cfg(not(target_os = "linux"))]
    socket.set_read_timeout(Some(STOP_POLL))?;
    Ok(socket.into())
}
