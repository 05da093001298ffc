//! The probing thread's sockets ([`Sock`]): one per address family and
//! marking ([`SockKey`]: DSCP, TTL), opened with kernel timestamps, TTL and
//! TOS reception and the error queue; the targets routed to each by address
//! and STAMP session; the probes built for its next `sendmmsg`.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;

use socket2::{Domain, Socket, Type};

use super::engine::{Agent, Target};
use super::target::Protocol;
use crate::bench::stamp::SEND_TTL;
use crate::sys::{self, RecvMeta, BATCH};

/// Probes per socket whose transmit timestamp can still be matched.
pub(super) const TX_IDS: usize = 1 << 14;
/// Asked for on both directions; the kernel caps it at `net.core.[rw]mem_max`.
const SOCKET_BUFFER: usize = 4 << 20;
/// No target index.
pub(super) const NONE: u32 = u32::MAX;

/// Which socket a target's probes leave from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct SockKey {
    v6: bool,
    pub(super) dscp: Option<u8>,
    pub(super) ttl: Option<u8>,
}

impl SockKey {
    pub(super) fn of(t: &Target) -> SockKey {
        let stamp = t.spec.protocol == Protocol::Stamp;
        SockKey {
            v6: t.spec.addr.is_ipv6(),
            dscp: t.spec.dscp,
            // As STAMP senders do, so the reflector's report gives the hop count.
            ttl: t.spec.ttl.or(stamp.then_some(SEND_TTL)),
        }
    }
}

/// A probe built and waiting for its socket's next `sendmmsg`.
pub(super) struct Outgoing {
    pub(super) target: u32,
    pub(super) seq: u64,
    pub(super) tag: u64,
    pub(super) due_ns: u64,
    pub(super) len: usize,
}

pub(super) struct Sock {
    pub(super) key: SockKey,
    pub(super) sock: UdpSocket,
    /// The kernel's number (`OPT_ID`) for the next datagram sent.
    pub(super) next_id: u32,
    /// Which probe each recent number was: (target index, sequence number).
    pub(super) ids: Box<[(u32, u64)]>,
    pub(super) by_addr: HashMap<SocketAddr, Vec<u32>>,
    /// STAMP targets by (authenticated, SSID), to attribute stray replies.
    pub(super) by_ssid: HashMap<(bool, u16), Vec<u32>>,
    /// STAMP targets by (address, authenticated, SSID): many sessions to one reflector.
    pub(super) by_session: HashMap<(SocketAddr, bool, u16), Vec<u32>>,
    pub(super) chunk: usize,
    pub(super) storage: Vec<u8>,
    pub(super) meta: [RecvMeta; BATCH],
    pub(super) out: Vec<u8>,
    pub(super) outgoing: Vec<Outgoing>,
}

impl Sock {
    pub(super) fn open(key: SockKey, agent: &Agent) -> io::Result<Sock> {
        let domain = if key.v6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM, Some(socket2::Protocol::UDP))?;
        let any: SocketAddr = if key.v6 {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            ([0, 0, 0, 0], 0).into()
        };
        socket.bind(&any.into())?;
        socket.set_nonblocking(true)?;
        // Best effort: a small queue shows as socket drops, not as an error.
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        if let Some(ttl) = key.ttl {
            let set = if key.v6 {
                socket.set_unicast_hops_v6(u32::from(ttl))
            } else {
                socket.set_ttl(u32::from(ttl))
            };
            set.map_err(|e| io::Error::new(e.kind(), format!("setting TTL {ttl}: {e}")))?;
        }
        if let Some(dscp) = key.dscp {
            let tos = u32::from(dscp) << 2;
            let set = if key.v6 { set_tclass(&socket, tos) } else { socket.set_tos(tos) };
            set.map_err(|e| io::Error::new(e.kind(), format!("setting DSCP {dscp}: {e}")))?;
        }
        let sock: UdpSocket = socket.into();
        // Each best effort: without them the backward TTL is unknown, the
        // clock stands in for the kernel's timestamps, unreachables go uncounted.
        let _ = sys::enable_ttl_tos(&sock, key.v6);
        if sys::enable_timestamping(&sock).is_err() {
            agent.health.kernel_rx.store(false, Ordering::Relaxed);
            agent.health.kernel_tx.store(false, Ordering::Relaxed);
        }
        let _ = sys::enable_recv_errors(&sock, key.v6);
        Ok(Sock {
            key,
            sock,
            next_id: 0,
            ids: vec![(NONE, 0); TX_IDS].into_boxed_slice(),
            by_addr: HashMap::new(),
            by_ssid: HashMap::new(),
            by_session: HashMap::new(),
            chunk: 0,
            storage: Vec::new(),
            meta: [RecvMeta::default(); BATCH],
            out: Vec::new(),
            outgoing: Vec::with_capacity(BATCH),
        })
    }
}

#[cfg(target_os = "linux")]
fn set_tclass(socket: &Socket, tclass: u32) -> io::Result<()> {
    socket.set_tclass_v6(tclass)
}

#[cfg(not(target_os = "linux"))]
fn set_tclass(_socket: &Socket, _tclass: u32) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "IPv6 traffic class is set on Linux only"))
}
