//! Tests of the Linux batched I/O and socket options, on real loopback sockets.

use super::*;
use crate::sys::tests::{check_recv_connected_truncates, pair};
use crate::sys::Queued;
use std::time::Duration;

#[test]
fn ttl_and_traffic_class_arrive_when_asked_for() {
    for (bind, ipv6) in [("127.0.0.1:0", false), ("[::1]:0", true)] {
        let Ok(rx) = UdpSocket::bind(bind) else { continue }; // no IPv6 here
        let tx = UdpSocket::bind(bind).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        enable_ttl_tos(&rx, ipv6).unwrap();
        let sock = socket2::SockRef::from(&tx);
        if ipv6 {
            sock.set_unicast_hops_v6(17).unwrap();
            setsockopt_int(&tx, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 0xb8).unwrap();
        } else {
            sock.set_ttl(17).unwrap();
            sock.set_tos(0xb8).unwrap();
        }
        tx.send_to(b"stamp", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let mut meta = [RecvMeta::default(); 2];
        let mut bufs = [IoSliceMut::new(&mut buf)];
        assert_eq!(recv_batch(&rx, &mut bufs, &mut meta, true).unwrap(), 1);
        assert_eq!((meta[0].ttl, meta[0].tos), (Some(17), Some(0xb8)), "{bind}");
    }
}

#[test]
fn a_transmit_s_traffic_class_is_its_own() {
    for (bind, ipv6) in [("127.0.0.1:0", false), ("[::1]:0", true)] {
        let Ok(rx) = UdpSocket::bind(bind) else { continue }; // no IPv6 here
        let tx = UdpSocket::bind(bind).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        enable_ttl_tos(&rx, ipv6).unwrap();
        let dst = rx.local_addr().unwrap();
        let plain = Transmit { dst, contents: b"a", segment_size: None, src: None, tos: None };
        let ef = Transmit { contents: b"b", tos: Some(0xb8), ..plain };
        let af41 = Transmit { contents: b"c", tos: Some(0x88), ..plain };
        assert_eq!(send_batch(&tx, &[plain, ef, af41, plain]).unwrap(), 4);
        assert_eq!(send_batch(&tx, &[ef]).unwrap(), 1, "alone, too");
        let mut buf = [0u8; 16];
        let mut meta = [RecvMeta::default(); 1];
        let mut seen = Vec::new();
        for _ in 0..5 {
            let mut bufs = [IoSliceMut::new(&mut buf)];
            assert_eq!(recv_batch(&rx, &mut bufs, &mut meta, true).unwrap(), 1);
            seen.push((buf[0], meta[0].tos));
        }
        let want = [(b'a', Some(0)), (b'b', Some(0xb8)), (b'c', Some(0x88)), (b'a', Some(0))];
        assert_eq!(seen[..4], want, "{bind}");
        assert_eq!(seen[4], (b'b', Some(0xb8)), "{bind}");
    }
}

#[test]
fn receive_timestamps_arrive_when_asked_for() {
    use std::time::SystemTime;
    let (rx, tx) =
        (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    let mut meta = [RecvMeta::default(); 1];
    tx.send_to(b"before", rx.local_addr().unwrap()).unwrap();
    recv_batch(&rx, &mut [IoSliceMut::new(&mut buf)], &mut meta, true).unwrap();
    assert_eq!(meta[0].received, None, "not asked for");
    enable_rx_timestamps(&rx).unwrap();
    // The kernel turns receive stamping on for the host a moment later
    // (a deferred static key); until then it stamps at the read instead.
    std::thread::sleep(Duration::from_millis(200));
    let since = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let sent = since(SystemTime::now());
    tx.send_to(b"stamped", rx.local_addr().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // it waits in the queue
    let read = since(SystemTime::now());
    recv_batch(&rx, &mut [IoSliceMut::new(&mut buf)], &mut meta, true).unwrap();
    let at = meta[0].received.expect("a kernel receive timestamp");
    assert!(
        sent <= at && at <= read,
        "{sent:?} <= {at:?} <= {read:?}: taken on arrival, not on reading"
    );
}

#[test]
fn transmit_timestamps_and_unreachables_come_from_the_error_queue() {
    use std::time::SystemTime;
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    enable_timestamping(&tx).unwrap();
    enable_recv_errors(&tx, false).unwrap();
    let before = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let to = |dst| Transmit { dst, contents: b"probe", segment_size: None, src: None, tos: None };
    let dst = rx.local_addr().unwrap();
    assert_eq!(send_batch(&tx, &[to(dst), to(dst), to(dst)]).unwrap(), 3);
    let after = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let mut got = Vec::new();
    // Loopback stamps within the send call; allow a moment anyway.
    for _ in 0..100 {
        recv_errors(&tx, &mut |q| got.push(q)).unwrap();
        if got.len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ids: Vec<u32> = got
        .iter()
        .map(|q| match *q {
            Queued::Sent { id, at } => {
                assert!(before <= at && at <= after, "{before:?} <= {at:?} <= {after:?}");
                id
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [0, 1, 2], "numbered in send order");
    // A port nobody listens on: the ICMP port unreachable names it.
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    got.clear();
    tx.send_to(b"anyone?", closed).unwrap();
    for _ in 0..200 {
        recv_errors(&tx, &mut |q| got.push(q)).unwrap();
        if got.iter().any(|q| matches!(q, Queued::Unreachable { .. })) {
            break;
        }
        wait_readable(&[&tx], Duration::from_millis(10)).unwrap();
    }
    assert!(got.contains(&Queued::Unreachable { dst: closed }), "{got:?}");
}

#[test]
fn a_send_failed_by_a_queued_icmp_error_keeps_the_numbering() {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    enable_timestamping(&tx).unwrap();
    enable_recv_errors(&tx, false).unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    tx.send_to(b"0", closed).unwrap();
    wait_readable(&[&tx], Duration::from_millis(200)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The ICMP error is pending on the socket: the next send reports it.
    let failed = tx.send_to(b"1", rx.local_addr().unwrap());
    let _ = tx.send_to(b"2", rx.local_addr().unwrap());
    std::thread::sleep(Duration::from_millis(20));
    let mut got = Vec::new();
    recv_errors(&tx, &mut |q| got.push(q)).unwrap();
    let ids: Vec<u32> = got
        .iter()
        .filter_map(|q| if let Queued::Sent { id, .. } = q { Some(*id) } else { None })
        .collect();
    // What the probe agent relies on: a send that fails takes no number,
    // so the numbers still match the sends that went out.
    assert_eq!(failed.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(ids, [0, 1], "{got:?}");
}

#[test]
fn recv_connected_reports_the_real_length_and_never_blocks_when_asked() {
    let (a, b) = pair();
    let mut buf = [0u8; 10];
    let err = recv_connected(&b, &mut buf, false).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let len = check_recv_connected_truncates(recv_connected, &a, &b);
    assert_eq!(len, 100, "truncated, and said so");
    a.send_to(b"", b.local_addr().unwrap()).unwrap();
    assert_eq!(recv_connected(&b, &mut buf, true).unwrap(), 0);
}
