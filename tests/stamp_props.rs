//! Property tests of the STAMP core: a test packet built by the sender,
//! reflected by the reflector and read back by the sender gives back what went
//! in, in every mode; and no input of any length or content makes the
//! reflector panic, grow a reply, or the parser panic.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use shout::stamp::tlv::TlvValue;
use shout::stamp::{
    Arrival, AuthMode, Reflector, ReflectorConfig, Sender, SenderConfig, StampDrop,
    TimestampFormat, TlvIntegrity, TlvRequest,
};

fn format() -> impl Strategy<Value = TimestampFormat> {
    prop_oneof![Just(TimestampFormat::Ntp), Just(TimestampFormat::Ptp)]
}

fn request() -> impl Strategy<Value = TlvRequest> {
    prop_oneof![
        Just(TlvRequest::TimestampInfo),
        (0u8..64).prop_map(|dscp| TlvRequest::ClassOfService { dscp }),
        Just(TlvRequest::DirectMeasurement),
        (1u8..=2, any::<u8>())
            .prop_map(|(id, return_code)| TlvRequest::AccessReport { id, return_code }),
        Just(TlvRequest::FollowUpTelemetry),
        (9u8..=255, 0u16..40).prop_map(|(kind, len)| TlvRequest::Raw { kind, len }),
    ]
}

/// A time between 2001 and 2035, to the nanosecond.
fn time() -> impl Strategy<Value = SystemTime> {
    (1_000_000_000u64..2_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n))
}

fn close(a: SystemTime, b: SystemTime) -> bool {
    let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
    d <= Duration::from_nanos(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn round_trip_gives_back_every_field(
        authenticated in any::<bool>(),
        stateful in any::<bool>(),
        sender_format in format(),
        reflector_format in format(),
        ssid in any::<u16>(),
        seq in any::<u32>(),
        tlvs in proptest::collection::vec(request(), 0..5),
        extra in prop_oneof![Just(0usize), 4usize..200],
        t1 in time(),
        delay in 0u64..1_000_000_000,
        ttl in proptest::option::of(any::<u8>()),
        tos in proptest::option::of(any::<u8>()),
        port in 1u16..,
    ) {
        let mode = if authenticated { AuthMode::Authenticated } else { AuthMode::Unauthenticated };
        let key = authenticated.then(|| b"0123456789abcdef".to_vec());
        let probe = Sender::new(SenderConfig {
            mode, auth_key: key.clone(), ssid, format: sender_format, tlvs: tlvs.clone(), ..Default::default()
        }).unwrap();
        let size = if extra == 0 { 0 } else { probe.packet_len() + extra };
        let sender = Sender::new(SenderConfig {
            mode, auth_key: key.clone(), ssid, format: sender_format, tlvs: tlvs.clone(), size, ..Default::default()
        }).unwrap();
        let mut reflector = Reflector::new(ReflectorConfig {
            mode, auth_key: key, stateful, format: reflector_format, ..Default::default()
        }).unwrap();

        let mut buf = vec![0u8; sender.packet_len()];
        let len = sender.build_test_packet(seq, t1, &mut buf).unwrap();
        prop_assert_eq!(len, sender.packet_len());
        let t2 = t1 + Duration::from_nanos(delay);
        let t3 = t2 + Duration::from_micros(5);
        let rx = Arrival { src: SocketAddr::from(([127, 0, 0, 1], port)), received: t2, ttl, tos };
        prop_assert_eq!(reflector.reflect_with_clock(&mut buf, len, &rx, || t3), Ok(len));

        let r = sender.parse_reflected(&buf[..len]).unwrap();
        prop_assert_eq!(r.sender_seq, seq);
        prop_assert_eq!(r.seq, if stateful { 0 } else { seq });
        prop_assert_eq!(r.ssid, ssid);
        prop_assert_eq!(r.sender_ttl, ttl.unwrap_or(0));
        prop_assert_eq!(r.sender_timestamp.format, sender_format);
        prop_assert_eq!(r.timestamp.format, reflector_format);
        prop_assert!(close(r.sender_timestamp.to_system_time().unwrap(), t1));
        prop_assert!(close(r.receive_timestamp.to_system_time().unwrap(), t2));
        prop_assert!(close(r.timestamp.to_system_time().unwrap(), t3));
        prop_assert!(!r.error_estimate.synchronized());
        prop_assert_eq!(
            r.tlv_integrity,
            if authenticated && !tlvs.is_empty() { TlvIntegrity::Valid } else { TlvIntegrity::Absent }
        );
        // Every requested TLV comes back in order; known ones understood, others flagged U.
        let back: Vec<_> = r.tlvs().map(|t| t.unwrap()).collect();
        for (want, got) in tlvs.iter().zip(&back) {
            prop_assert!(!got.flags.malformed() && !got.flags.integrity_failed());
            match want {
                TlvRequest::Raw { .. } => prop_assert!(got.flags.unrecognized()),
                _ => prop_assert!(!got.flags.unrecognized()),
            }
            if let (TlvRequest::ClassOfService { dscp }, Ok(TlvValue::ClassOfService { dscp1, dscp2, ecn, rp })) =
                (want, got.decode())
            {
                let tos = tos.unwrap_or(0);
                prop_assert_eq!((*dscp, dscp2, ecn, rp), (dscp1, tos >> 2, tos & 3, 1));
            }
            if let Ok(TlvValue::DirectMeasurement { sender_tx, reflector_rx, reflector_tx }) = got.decode() {
                prop_assert_eq!(sender_tx, seq.wrapping_add(1));
                let n = u32::from(stateful);
                prop_assert_eq!((reflector_rx, reflector_tx), (n, n));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_grow(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        authenticated in any::<bool>(),
        stateful in any::<bool>(),
    ) {
        let mode = if authenticated { AuthMode::Authenticated } else { AuthMode::Unauthenticated };
        let key = Some(b"k".to_vec());
        let mut r = Reflector::new(ReflectorConfig { mode, auth_key: key.clone(), stateful, ..Default::default() }).unwrap();
        let s = Sender::new(SenderConfig { mode, auth_key: key, ..Default::default() }).unwrap();
        let mut buf = bytes.clone();
        let rx = Arrival { src: SocketAddr::from(([127, 0, 0, 1], 9)), received: SystemTime::now(), ttl: None, tos: None };
        match r.reflect(&mut buf, bytes.len(), &rx) {
            Ok(n) => prop_assert_eq!(n, bytes.len()),
            Err(_) => prop_assert_eq!(&buf, &bytes, "a dropped request is left as it was"),
        }
        if let Ok(reply) = s.parse_reflected(&bytes) {
            for t in reply.tlvs().flatten() {
                let _ = t.decode();
            }
        }
    }

    #[test]
    fn unauthenticated_tlv_soup_is_answered_at_the_same_length(
        tail in proptest::collection::vec(any::<u8>(), 0..300),
        hdrs in proptest::collection::vec((any::<u8>(), 0u8..12, 0u16..24), 0..6),
    ) {
        // Mostly well-formed TLVs of random type and length, then random bytes.
        let mut p = vec![0u8; 44];
        for (flags, kind, len) in hdrs {
            // No HMAC TLV here: without a key it rightly fails integrity (unit-tested).
            let kind = if kind == 8 { 9 } else { kind };
            p.extend_from_slice(&[flags, kind]);
            p.extend_from_slice(&len.to_be_bytes());
            p.extend(std::iter::repeat_n(0x5a, usize::from(len)));
        }
        p.extend_from_slice(&tail);
        let mut r = Reflector::new(ReflectorConfig { stateful: true, ..Default::default() }).unwrap();
        let rx = Arrival { src: SocketAddr::from(([127, 0, 0, 1], 9)), received: SystemTime::now(), ttl: None, tos: None };
        let len = p.len();
        prop_assert_eq!(r.reflect(&mut p, len, &rx), Ok(len));
        // Every TLV before the first malformed one has U, M and I as the RFC says.
        let s = Sender::new(SenderConfig::default()).unwrap();
        let reply = s.parse_reflected(&p).unwrap();
        for t in reply.tlvs() {
            let Ok(t) = t else { break };
            if t.flags.malformed() { break }
            prop_assert!(!t.flags.integrity_failed());
            prop_assert_eq!(t.flags.0 & 0x1f, 0, "reserved flags zeroed");
        }
    }
}

/// Every length from 0 to 1500, filled three ways, in both modes: a reply of
/// the same length or a drop, never a panic.
#[test]
fn every_length_up_to_1500_gives_a_same_length_reply_or_a_drop() {
    for mode in [AuthMode::Unauthenticated, AuthMode::Authenticated] {
        let key = Some(b"k".to_vec());
        let mut r = Reflector::new(ReflectorConfig {
            mode,
            auth_key: key,
            stateful: true,
            ..Default::default()
        })
        .unwrap();
        let rx = Arrival {
            src: SocketAddr::from(([127, 0, 0, 1], 9)),
            received: SystemTime::now(),
            ttl: Some(64),
            tos: Some(0),
        };
        let base = if mode == AuthMode::Authenticated { 112 } else { 44 };
        for len in 0..=1500usize {
            for fill in [0x00u8, 0xff, 0x80] {
                let mut buf = vec![fill; 1600];
                match r.reflect(&mut buf, len, &rx) {
                    Ok(n) => assert_eq!(n, len),
                    Err(StampDrop::Short) => assert!(len < base),
                    Err(StampDrop::Unpadded) => {
                        assert!((14..44).contains(&len) && mode == AuthMode::Unauthenticated)
                    }
                    Err(StampDrop::Auth) => assert!(len >= base && mode == AuthMode::Authenticated),
                }
                assert!(buf[len..].iter().all(|&b| b == fill), "nothing written past the request");
            }
        }
    }
}
