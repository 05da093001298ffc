//! Portable fallback: one datagram per call through socket2, no GRO or GSO.
#![allow(unsafe_code)]

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::UdpSocket;

use socket2::{MaybeUninitSlice, SockRef};

use super::{Queued, RecvMeta, Transmit};

/// GRO is Linux only.
pub fn enable_gro(_sock: &UdpSocket) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Not offered here.
pub fn set_dont_fragment(_sock: &UdpSocket, _ipv6: bool) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "don't-fragment is set on Linux only"))
}

/// Destination addresses are read on Linux only.
pub fn enable_pktinfo(_sock: &UdpSocket, _ipv6: bool) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Receive timestamps are read on Linux only.
pub fn enable_rx_timestamps(_sock: &UdpSocket) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// TTL and traffic class are read on Linux only.
pub fn enable_ttl_tos(_sock: &UdpSocket, _ipv6: bool) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Kernel timestamps (`SO_TIMESTAMPING`) are read on Linux only: the caller
/// falls back to its own clock.
pub fn enable_timestamping(_sock: &UdpSocket) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "kernel timestamps are read on Linux only"))
}

/// The error queue is read on Linux only.
pub fn enable_recv_errors(_sock: &UdpSocket, _ipv6: bool) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// No error queue here: nothing to read.
pub fn recv_errors(_sock: &UdpSocket, _f: &mut dyn FnMut(Queued)) -> io::Result<usize> {
    Ok(0)
}

/// Without `ppoll`: sleeps a little (at most 1 ms), and the caller looks again.
pub fn wait_readable(_socks: &[&UdpSocket], timeout: std::time::Duration) -> io::Result<()> {
    std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
    Ok(())
}

/// Elsewhere workers wake on their read timeout instead.
pub fn wake(_sock: &UdpSocket) {}

/// GSO is Linux only.
pub fn gso_supported(_sock: &UdpSocket) -> bool {
    false
}

/// The kernel drop counter is read on Linux only.
pub fn socket_drops(_sock: &UdpSocket) -> Option<u64> {
    None
}

/// Receives one datagram into the first buffer.
pub fn recv_batch(
    sock: &UdpSocket,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    wait: bool,
) -> io::Result<usize> {
    // Busy polling is Linux only: here every receive blocks (up to the read timeout).
    let _ = wait;
    let buf: &mut [u8] = &mut bufs[0];
    // SAFETY: `u8` and `MaybeUninit<u8>` share a layout, and recv only writes
    // initialised bytes into the slice.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let (len, flags, addr) =
        SockRef::from(sock).recv_from_vectored(&mut [MaybeUninitSlice::new(uninit)])?;
    meta[0] = RecvMeta {
        addr: RecvMeta::sender(&addr),
        len,
        stride: len,
        truncated: flags.is_truncated(),
        ..RecvMeta::default()
    };
    Ok(1)
}

/// Receives one datagram on a connected socket; returns its length, which
/// exceeds `buf` when it was truncated.
pub fn recv_connected(sock: &UdpSocket, buf: &mut [u8], wait: bool) -> io::Result<usize> {
    let mut meta = [RecvMeta::default(); 1];
    recv_batch(sock, &mut [IoSliceMut::new(buf)], &mut meta, wait)?;
    Ok(if meta[0].truncated { buf.len() + 1 } else { meta[0].len })
}

/// Sends the first transmit (never with GSO).
pub fn send_batch(sock: &UdpSocket, txs: &[Transmit<'_>]) -> io::Result<usize> {
    let Some(tx) = txs.first() else { return Ok(0) };
    // No destination address is ever read here (`enable_pktinfo` is refused), so
    // nothing asks to answer from one: the kernel picks the source.
    debug_assert!(tx.src.is_none(), "a source address needs IP_PKTINFO");
    if let (Some(tos), true) = (tx.tos, tx.dst.is_ipv4()) {
        // No control messages here: the socket's class for this one send.
        let sock2 = SockRef::from(sock);
        let before = sock2.tos()?;
        sock2.set_tos(u32::from(tos))?;
        let sent = sock.send_to(tx.contents, tx.dst).map(|_| 1);
        sock2.set_tos(before)?;
        return sent;
    }
    // IPv6 elsewhere keeps the socket's traffic class.
    sock.send_to(tx.contents, tx.dst).map(|_| 1)
}

/// No GSO here, so no GSO errors.
pub fn is_gso_error(_err: &io::Error) -> bool {
    false
}

/// No terminal size off Unix: the live table falls back to `LINES`.
#[cfg(not(unix))]
pub fn stdout_rows() -> Option<u16> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::tests::{check_recv_connected_truncates, pair};

    /// The fallback is compiled and exercised on Linux too, so it cannot rot.
    #[test]
    fn round_trips_one_datagram() {
        let (a, b) = pair();
        let tx = Transmit {
            dst: b.local_addr().unwrap(),
            contents: b"hi",
            segment_size: None,
            src: None,
            tos: None,
        };
        assert_eq!(send_batch(&a, &[tx]).unwrap(), 1);
        let mut buf = [0u8; 16];
        let mut meta = [RecvMeta::default(); 1];
        let n = recv_batch(&b, &mut [IoSliceMut::new(&mut buf)], &mut meta, true).unwrap();
        assert_eq!((n, meta[0].len, meta[0].addr), (1, 2, a.local_addr().unwrap()));
        assert!(!meta[0].truncated);
        assert_eq!(&buf[..2], b"hi");

        check_recv_connected_truncates(recv_connected, &a, &b);
    }
}
