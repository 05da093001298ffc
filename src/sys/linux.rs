//! Linux: `recvmmsg`/`sendmmsg`, UDP GRO/GSO, the socket's drop counter; the error
//! queue (transmit timestamps, ICMP errors) in `errqueue`.
#![allow(unsafe_code)]

use std::io::{self, IoSliceMut};
use std::mem::{self, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::SockAddr;

use super::{RecvMeta, Transmit, BATCH};

mod errqueue;
pub use errqueue::recv_errors;

/// Room for the control messages we use: UDP_GRO or UDP_SEGMENT, plus
/// IP(V6)_PKTINFO, the TTL or hop limit, the traffic class and the receive
/// timestamp (`SCM_TIMESTAMPNS`, or `SCM_TIMESTAMPING`'s three), with margin.
const CMSG_LEN: usize = 256;

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Cmsg([u8; CMSG_LEN]);

/// Turns a `-1` `ssize_t` return into the thread's `errno`.
fn cvt_ssize(ret: isize) -> io::Result<isize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a `-1` return into the thread's `errno`.
fn cvt(ret: libc::c_int) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

fn setsockopt_int(sock: &UdpSocket, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a live `c_int` and its size is passed with it.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// Asks the kernel to coalesce same-size datagrams from one sender (UDP GRO).
/// Receive buffers must then be [`MAX_BUF`](super::MAX_BUF) bytes.
pub fn enable_gro(sock: &UdpSocket) -> io::Result<()> {
    setsockopt_int(sock, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Sets the don't-fragment bit on every datagram (`IP_PMTUDISC_DO`): a send
/// above the known path MTU then fails with `EMSGSIZE` instead of fragmenting.
pub fn set_dont_fragment(sock: &UdpSocket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO)
    } else {
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO)
    }
}

/// Asks for each datagram's destination address (`IP_PKTINFO` or
/// `IPV6_RECVPKTINFO`), for sockets bound to a wildcard address.
pub fn enable_pktinfo(sock: &UdpSocket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
    } else {
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
}

/// Asks for each datagram's TTL (hop limit) and traffic class byte
/// (`IP_RECVTTL` and `IP_RECVTOS`, or their IPv6 twins): what a STAMP
/// reflector reports back to the sender.
pub fn enable_ttl_tos(sock: &UdpSocket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1)
    } else {
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_RECVTOS, 1)
    }
}

/// Asks the kernel to stamp each datagram with the time it was received
/// (`SO_TIMESTAMPNS`): a STAMP reflector's receive timestamp, taken before
/// the datagram waited in the socket's queue. (For the first moments after
/// the first socket asks, Linux stamps at the read instead: it turns host-wide
/// stamping on through a deferred switch.)
pub fn enable_rx_timestamps(sock: &UdpSocket) -> io::Result<()> {
    setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Asks the kernel for software timestamps both ways (`SO_TIMESTAMPING`):
/// each received datagram's arrival (in [`RecvMeta::received`]), and each
/// sent datagram's departure, queued on the socket's error queue for
/// [`recv_errors`] as [`Queued::Sent`], numbered in send order from 0
/// (`OPT_ID`) and without the payload (`OPT_TSONLY`).
pub fn enable_timestamping(sock: &UdpSocket) -> io::Result<()> {
    let flags = libc::SOF_TIMESTAMPING_TX_SOFTWARE
        | libc::SOF_TIMESTAMPING_RX_SOFTWARE
        | libc::SOF_TIMESTAMPING_SOFTWARE
        | libc::SOF_TIMESTAMPING_OPT_ID
        | libc::SOF_TIMESTAMPING_OPT_TSONLY;
    setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPING, flags as i32)
}

/// Queues ICMP errors about what this socket sent on its error queue, with
/// the destination they concern (`IP_RECVERR`/`IPV6_RECVERR`): an unconnected
/// socket otherwise never hears of them. A pending error also fails the next
/// receive once (`ECONNREFUSED`, say: [`is_transient`](super::is_transient)).
pub fn enable_recv_errors(sock: &UdpSocket, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
    } else {
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    }
}

/// A kernel `timespec` since the epoch as a `Duration`; `None` if negative or zero (absent).
fn duration(ts: libc::timespec) -> Option<std::time::Duration> {
    match (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (Ok(secs), Ok(nanos)) if secs != 0 || nanos != 0 => {
            Some(std::time::Duration::new(secs, nanos))
        }
        _ => None,
    }
}

/// Waits until one of `socks` has a datagram or a queued error, or `timeout`
/// passes (to the nanosecond: `ppoll`, not `poll`'s milliseconds).
pub fn wait_readable(socks: &[&UdpSocket], timeout: std::time::Duration) -> io::Result<()> {
    const MAX: usize = 64;
    let mut fds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; MAX];
    let n = socks.len().min(MAX);
    for (fd, sock) in fds.iter_mut().zip(socks) {
        // POLLERR (the error queue) is always reported.
        *fd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    }
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(3600) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the first `n` entries of `fds` are initialised and live, `ts` is a
    // live timespec, and a null signal mask means "unchanged".
    let ret = unsafe { libc::ppoll(fds.as_mut_ptr(), n as libc::nfds_t, &ts, ptr::null()) };
    match cvt(ret) {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other.map(drop),
    }
}

/// Wakes every thread blocked receiving on `sock`, now and from then on:
/// `shutdown(SHUT_RD)` makes receives return at once with no datagram (Linux
/// does this even for unconnected UDP sockets, though it reports `ENOTCONN`).
/// Sending still works.
pub fn wake(sock: &UdpSocket) {
    let _ = socket2::SockRef::from(sock).shutdown(std::net::Shutdown::Read);
}

/// Whether this kernel takes `UDP_SEGMENT` on this socket (UDP GSO).
pub fn gso_supported(sock: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and `len` holds `value`'s size.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ret == 0
}

/// Datagrams the kernel dropped on this socket because its receive queue was
/// full: the counter that `SO_RXQ_OVFL` reports and `/proc/net/udp` shows as drops.
pub fn socket_drops(sock: &UdpSocket) -> Option<u64> {
    // SK_MEMINFO_DROPS is index 8; newer kernels may add fields after it.
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; 16];
    let mut len = mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a live buffer of `len` bytes; the kernel writes at most `len`.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let words = len as usize / mem::size_of::<u32>();
    (ret == 0 && words > SK_MEMINFO_DROPS).then(|| u64::from(info[SK_MEMINFO_DROPS]))
}

/// Receives up to `bufs.len()` datagrams in one call.
///
/// With `wait`, blocks (up to the socket's read timeout) for the first datagram
/// and takes whatever else is queued; without, returns `WouldBlock` at once when
/// nothing is queued. Returns `Ok(0)` when woken by `wake` (`shutdown`).
pub fn recv_batch(
    sock: &UdpSocket,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    wait: bool,
) -> io::Result<usize> {
    let n = bufs.len().min(meta.len()).min(BATCH);
    // Only the `n` slots in use are initialised: at one datagram per call
    // (ping-pong), clearing all 32 would cost more than the rest of the call.
    let mut names = [MaybeUninit::<libc::sockaddr_storage>::uninit(); BATCH];
    let mut ctrl = [MaybeUninit::<Cmsg>::uninit(); BATCH];
    let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
    for i in 0..n {
        // SAFETY: `mmsghdr` is plain data for which all-zero bytes are a valid value.
        let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        hdr.msg_hdr.msg_name = names[i].as_mut_ptr().cast();
        hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // `IoSliceMut` is documented to be ABI compatible with `iovec` on Unix.
        hdr.msg_hdr.msg_iov = (&mut bufs[i] as *mut IoSliceMut<'_>).cast();
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_control = ctrl[i].as_mut_ptr().cast();
        hdr.msg_hdr.msg_controllen = CMSG_LEN as _;
        hdrs[i].write(hdr);
    }
    let got = if n == 1 {
        // One slot (ping-pong): plain recvmsg skips recvmmsg's loop.
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: header 0 is initialised and points at a live name, iovec and
        // control buffer of the sizes it states, all outliving the call.
        let ret = unsafe {
            let hdr = hdrs[0].as_mut_ptr();
            let len = libc::recvmsg(sock.as_raw_fd(), &mut (*hdr).msg_hdr, flags);
            if len >= 0 {
                (*hdr).msg_len = len as libc::c_uint;
            }
            len
        };
        usize::from(cvt_ssize(ret)? >= 0)
    } else {
        // MSG_WAITFORONE: without it a blocking recvmmsg waits until every slot fills.
        let flags = if wait { libc::MSG_WAITFORONE } else { libc::MSG_DONTWAIT };
        // SAFETY: the first `n` headers are initialised and point at live names,
        // iovecs and control buffers of the sizes they state, all outliving the call.
        let ret = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr().cast(),
                n as libc::c_uint,
                flags,
                ptr::null_mut(),
            )
        };
        cvt(ret)?
    };
    // SAFETY: header 0 was initialised above (n >= 1 whenever got >= 1).
    if got > 0 && unsafe { hdrs[0].assume_init_ref() }.msg_hdr.msg_namelen == 0 {
        // No sender: not a datagram but the wake-up of `shutdown(SHUT_RD)`.
        return Ok(0);
    }
    for i in 0..got {
        // SAFETY: headers below `n` were initialised above (and `got` <= `n`).
        let hdr = unsafe { hdrs[i].assume_init_ref() };
        meta[i] = decode(hdr, &names[i]);
    }
    Ok(got)
}

/// What one received header says: the sender the kernel wrote into `name`,
/// the length, truncation, and the control messages.
fn decode(hdr: &libc::mmsghdr, name: &MaybeUninit<libc::sockaddr_storage>) -> RecvMeta {
    let len = hdr.msg_len as usize;
    // Copy only the bytes the kernel wrote: the rest of the slot is uninitialised.
    let mut storage = zeroed_storage();
    let written = (hdr.msg_hdr.msg_namelen as usize).min(mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: the kernel wrote `written` bytes at the start of `name`;
    // `storage` has room for them and does not overlap it.
    unsafe {
        ptr::copy_nonoverlapping(
            name.as_ptr().cast::<u8>(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            written,
        )
    };
    // SAFETY: `storage` is a sockaddr_storage and `msg_namelen` is the
    // length the kernel reported for it.
    let addr = unsafe { SockAddr::new(storage, hdr.msg_hdr.msg_namelen) };
    RecvMeta {
        addr: RecvMeta::sender(&addr),
        len,
        truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        ..parse_cmsgs(&hdr.msg_hdr, len)
    }
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: `sockaddr_storage` is plain data; all-zero bytes are a valid value.
    unsafe { mem::zeroed() }
}

/// Reads the control messages we asked for: the GRO segment size and the
/// destination address. `addr` and `truncated` are left for the caller.
fn parse_cmsgs(hdr: &libc::msghdr, len: usize) -> RecvMeta {
    let mut meta = RecvMeta { len, stride: len, ..RecvMeta::default() };
    // SAFETY: `hdr` came back from recvmmsg with `msg_control`/`msg_controllen`
    // describing the initialised part of our control buffer.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return headers inside the buffer.
        let c = unsafe { &*cmsg };
        // SAFETY: CMSG_DATA of a header inside the buffer stays inside it.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        match (c.cmsg_level, c.cmsg_type) {
            (libc::SOL_UDP, libc::UDP_GRO) if fits::<libc::c_int>(c) => {
                // SAFETY: checked above: the message holds a `c_int`, possibly unaligned.
                let size = unsafe { ptr::read_unaligned(data.cast::<libc::c_int>()) };
                if let Ok(size) = usize::try_from(size) {
                    meta.stride = if size == 0 { len } else { size };
                }
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if fits::<libc::in_pktinfo>(c) => {
                // SAFETY: checked above: the message holds an `in_pktinfo`.
                let info = unsafe { ptr::read_unaligned(data.cast::<libc::in_pktinfo>()) };
                // The local address to answer from: for a broadcast request,
                // the receiving interface's address rather than the broadcast one.
                let local = info.ipi_spec_dst.s_addr;
                meta.dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(local))));
            }
            (libc::IPPROTO_IP, libc::IP_TTL)
            | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
            | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
                if fits::<libc::c_int>(c) =>
            {
                // SAFETY: checked above: the message holds a `c_int`, possibly unaligned.
                let value = unsafe { ptr::read_unaligned(data.cast::<libc::c_int>()) };
                let value = u8::try_from(value).ok();
                if c.cmsg_type == libc::IPV6_TCLASS {
                    meta.tos = value;
                } else {
                    meta.ttl = value;
                }
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if fits::<libc::timespec>(c) => {
                // SAFETY: checked above: the message holds a `timespec`, possibly unaligned.
                let ts = unsafe { ptr::read_unaligned(data.cast::<libc::timespec>()) };
                if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec))
                {
                    meta.received = Some(std::time::Duration::new(secs, nanos));
                }
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) if fits::<[libc::timespec; 3]>(c) => {
                // SAFETY: checked above: three `timespec`s, the first the software stamp.
                let ts = unsafe { ptr::read_unaligned(data.cast::<libc::timespec>()) };
                if meta.received.is_none() {
                    meta.received = duration(ts);
                }
            }
            (libc::IPPROTO_IP, libc::IP_TOS) if fits::<u8>(c) => {
                // SAFETY: checked above: the message holds at least one byte.
                meta.tos = Some(unsafe { *data });
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if fits::<libc::in6_pktinfo>(c) => {
                // SAFETY: checked above: the message holds an `in6_pktinfo`.
                let info = unsafe { ptr::read_unaligned(data.cast::<libc::in6_pktinfo>()) };
                meta.dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            _ => {}
        }
        // SAFETY: as above; returns null after the last header.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    meta
}

/// Whether a control message's length covers a `T` of data (a truncated
/// control buffer, `MSG_CTRUNC`, can leave a header whose data is cut short).
fn fits<T>(c: &libc::cmsghdr) -> bool {
    // SAFETY: CMSG_LEN is a pure size computation.
    let needed = unsafe { libc::CMSG_LEN(mem::size_of::<T>() as u32) } as usize;
    // `cmsg_len` is `usize` on glibc and `u32` on musl.
    #[allow(clippy::unnecessary_cast)]
    let len = c.cmsg_len as usize;
    len >= needed
}

/// Appends one control message at `offset` of `buf`; returns the next offset.
fn put_cmsg<T: Copy>(buf: &mut Cmsg, offset: usize, level: i32, kind: i32, value: T) -> usize {
    let size = mem::size_of::<T>() as u32;
    // SAFETY: CMSG_SPACE and CMSG_LEN are pure size computations.
    let (space, len) = unsafe { (libc::CMSG_SPACE(size) as usize, libc::CMSG_LEN(size) as usize) };
    assert!(offset + space <= CMSG_LEN, "control buffer too small");
    let header = libc::cmsghdr { cmsg_len: len as _, cmsg_level: level, cmsg_type: kind };
    let base = buf.0[offset..].as_mut_ptr();
    // SAFETY: the assert above keeps header and value inside `buf`; both
    // writes are unaligned-safe.
    unsafe {
        ptr::write_unaligned(base.cast::<libc::cmsghdr>(), header);
        ptr::write_unaligned(base.add(len - size as usize).cast::<T>(), value);
    }
    offset + space
}

/// Sends up to [`BATCH`] transmits in one call; returns how many went out.
///
/// An error means the first transmit failed; a count short of `txs.len()`
/// means the one after the last sent did not go (yet): call again with the rest.
pub fn send_batch(sock: &UdpSocket, txs: &[Transmit<'_>]) -> io::Result<usize> {
    let n = txs.len().min(BATCH);
    if let [tx] = txs {
        if tx.segment_size.is_none() && tx.src.is_none() && tx.tos.is_none() {
            // One plain datagram (ping-pong): sendto skips copying a msghdr.
            return sock.send_to(tx.contents, tx.dst).map(|_| 1);
        }
    }
    // As in `recv_batch`, only the slots in use are initialised.
    let mut names = [const { MaybeUninit::<SockAddr>::uninit() }; BATCH];
    let mut iovs = [MaybeUninit::<libc::iovec>::uninit(); BATCH];
    let mut ctrl = [MaybeUninit::<Cmsg>::uninit(); BATCH];
    let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
    for (i, tx) in txs[..n].iter().enumerate() {
        let name = names[i].write(SockAddr::from(tx.dst));
        // sendmsg never writes through iov_base; the cast only satisfies the type.
        let iov = iovs[i].write(libc::iovec {
            iov_base: tx.contents.as_ptr() as *mut libc::c_void,
            iov_len: tx.contents.len(),
        });
        // SAFETY: `mmsghdr` is plain data for which all-zero bytes are a valid value.
        let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        hdr.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
        hdr.msg_hdr.msg_namelen = name.len();
        hdr.msg_hdr.msg_iov = iov;
        hdr.msg_hdr.msg_iovlen = 1;
        if tx.segment_size.is_some() || tx.src.is_some() || tx.tos.is_some() {
            let buf = ctrl[i].write(Cmsg([0; CMSG_LEN]));
            let mut used = 0;
            if let Some(segment) = tx.segment_size {
                used = put_cmsg(buf, used, libc::SOL_UDP, libc::UDP_SEGMENT, segment as u16);
            }
            match tx.src {
                Some(IpAddr::V4(ip)) => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr { s_addr: u32::from(ip).to_be() },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    used = put_cmsg(buf, used, libc::IPPROTO_IP, libc::IP_PKTINFO, info);
                }
                Some(IpAddr::V6(ip)) => {
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr { s6_addr: ip.octets() },
                        ipi6_ifindex: 0,
                    };
                    used = put_cmsg(buf, used, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info);
                }
                None => {}
            }
            if let Some(tos) = tx.tos {
                let (level, kind) = if tx.dst.is_ipv6() {
                    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
                } else {
                    (libc::IPPROTO_IP, libc::IP_TOS)
                };
                used = put_cmsg(buf, used, level, kind, libc::c_int::from(tos));
            }
            hdr.msg_hdr.msg_control = buf.0.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = used as _;
        }
        hdrs[i].write(hdr);
    }
    // SAFETY: the first `n` headers are initialised and point at live names,
    // iovecs and control buffers that outlive the call.
    let ret =
        unsafe { libc::sendmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr().cast(), n as libc::c_uint, 0) };
    cvt(ret)
}

/// Receives one datagram on a connected socket (`recv`), without the
/// `msghdr` that `recvmsg` copies in and the address it copies out: the
/// cheapest look at a socket, which is what a spinning ping-pong repeats.
/// Returns the datagram's real length, which exceeds `buf` when it was
/// truncated. Not for sockets with GRO on: their segment size comes in a
/// control message this does not read.
pub fn recv_connected(sock: &UdpSocket, buf: &mut [u8], wait: bool) -> io::Result<usize> {
    let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
    // SAFETY: `buf` is live and writable for `buf.len()` bytes during the call.
    let ret = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    cvt_ssize(ret).map(|len| len as usize)
}

/// Whether a send error means "this kernel, device or route cannot do GSO
/// here": quinn-udp's lesson is that EIO (no checksum offload) and EINVAL both
/// do; a segment beyond the route's MTU is refused with EINVAL, or EMSGSIZE on
/// newer kernels, though alone it could go out fragmented.
pub fn is_gso_error(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE))
}

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
