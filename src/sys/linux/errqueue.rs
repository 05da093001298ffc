//! The socket's error queue (`MSG_ERRQUEUE`): the kernel's transmit
//! timestamps (`SO_TIMESTAMPING`, `OPT_ID`) and ICMP errors about what the
//! socket sent, as [`Queued`] values.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::SockAddr;

use super::{cvt, duration, fits, Cmsg, CMSG_LEN};
use crate::sys::{Queued, BATCH};

/// Error-queue messages read per [`recv_errors`] call: bounds the time one
/// call takes whatever arrives.
const MAX_QUEUED: usize = 256;

/// Reads the socket's error queue without waiting, up to 256
/// messages, [`BATCH`] per `recvmmsg`, handing each to `f`; returns how many
/// were read.
pub fn recv_errors(sock: &UdpSocket, f: &mut dyn FnMut(Queued)) -> io::Result<usize> {
    let mut read = 0;
    while read < MAX_QUEUED {
        let mut names = [MaybeUninit::<libc::sockaddr_storage>::zeroed(); BATCH];
        let mut ctrl = [MaybeUninit::<Cmsg>::uninit(); BATCH];
        // The payload (an ICMP error quotes ours) is not needed: truncated away.
        let mut data = [[0u8; 8]; BATCH];
        let mut iovs = [MaybeUninit::<libc::iovec>::uninit(); BATCH];
        let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
        for i in 0..BATCH {
            let iov = iovs[i].write(libc::iovec {
                iov_base: data[i].as_mut_ptr().cast(),
                iov_len: data[i].len(),
            });
            // SAFETY: `mmsghdr` is plain data for which all-zero bytes are a valid value.
            let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
            hdr.msg_hdr.msg_name = names[i].as_mut_ptr().cast();
            hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = ctrl[i].as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = CMSG_LEN as _;
            hdrs[i].write(hdr);
        }
        let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
        // SAFETY: all BATCH headers are initialised and point at live names,
        // iovecs, payload and control buffers of the sizes they state, all
        // outliving the call.
        let ret = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr().cast(),
                BATCH as libc::c_uint,
                flags,
                ptr::null_mut(),
            )
        };
        let got = match cvt(ret) {
            Ok(got) => got,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        for i in 0..got {
            // SAFETY: headers below BATCH were initialised above (and `got` <= BATCH).
            let hdr = unsafe { hdrs[i].assume_init_ref() };
            // SAFETY: zero-initialised above; the kernel wrote `msg_namelen` bytes of it.
            let storage = unsafe { names[i].assume_init() };
            // SAFETY: `storage` is a sockaddr_storage and `msg_namelen` its length.
            let dst = unsafe { SockAddr::new(storage, hdr.msg_hdr.msg_namelen) }.as_socket();
            f(parse_queued(&hdr.msg_hdr, dst));
        }
        read += got;
        if got < BATCH {
            break;
        }
    }
    Ok(read)
}

/// What one error-queue message says: its extended error and timestamp.
fn parse_queued(hdr: &libc::msghdr, dst: Option<std::net::SocketAddr>) -> Queued {
    let mut err: Option<libc::sock_extended_err> = None;
    let mut at = None;
    // SAFETY: `hdr` came back from recvmsg with `msg_control`/`msg_controllen`
    // describing the initialised part of our control buffer.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return headers inside the buffer.
        let c = unsafe { &*cmsg };
        // SAFETY: CMSG_DATA of a header inside the buffer stays inside it.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        match (c.cmsg_level, c.cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_RECVERR) | (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
                if fits::<libc::sock_extended_err>(c) =>
            {
                // SAFETY: checked above: the message holds a `sock_extended_err`.
                err = Some(unsafe { ptr::read_unaligned(data.cast::<libc::sock_extended_err>()) });
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) if fits::<[libc::timespec; 3]>(c) => {
                // SAFETY: checked above: the message holds three `timespec`s; the first is software.
                let ts = unsafe { ptr::read_unaligned(data.cast::<libc::timespec>()) };
                at = duration(ts);
            }
            _ => {}
        }
        // SAFETY: as above; returns null after the last header.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    match (err, at, dst) {
        (Some(e), Some(at), _) if e.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING => {
            Queued::Sent { id: e.ee_data, at }
        }
        // Destination unreachable: ICMP type 3, ICMPv6 type 1.
        (Some(e), _, Some(dst))
            if (e.ee_origin == libc::SO_EE_ORIGIN_ICMP && e.ee_type == 3)
                || (e.ee_origin == libc::SO_EE_ORIGIN_ICMP6 && e.ee_type == 1) =>
        {
            Queued::Unreachable { dst }
        }
        _ => Queued::Other,
    }
}
