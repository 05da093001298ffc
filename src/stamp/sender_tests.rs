//! Sender tests: test packets byte for byte against RFC 8762 §4.2, sizes and
//! padding, and reading reflected packets back.

use super::*;
use crate::stamp::reflector::{Arrival, Reflector, ReflectorConfig};
use crate::stamp::tlv::TlvValue;
use std::time::UNIX_EPOCH;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn t(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

#[test]
fn unauthenticated_test_packet_is_the_rfc_8762_figure() {
    let s = Sender::new(SenderConfig { ssid: 0x0102, ..Default::default() }).unwrap();
    let mut out = [0xffu8; 64];
    assert_eq!(s.build_test_packet(0x0a0b_0c0d, t(1, 500_000_000), &mut out), Ok(44));
    let mut want = [0u8; 44];
    want[0..4].copy_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d]); // Sequence Number
    want[4..12].copy_from_slice(&[0x83, 0xaa, 0x7e, 0x81, 0x80, 0, 0, 0]); // NTP 1.5 s
    want[12..16].copy_from_slice(&[0x19, 0x80, 0x01, 0x02]); // Error Estimate (S=0, Z=0, 1 s), SSID; 28 MBZ
    assert_eq!(out[..44], want);
}

#[test]
fn authenticated_test_packet_is_the_rfc_8762_figure_with_its_hmac() {
    let cfg = SenderConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(b"stamp-key".to_vec()),
        ssid: 7,
        ..Default::default()
    };
    let s = Sender::new(cfg).unwrap();
    let mut out = [0u8; 112];
    assert_eq!(s.build_test_packet(9, t(1, 500_000_000), &mut out), Ok(112));
    let mut want = [0u8; 112];
    want[3] = 9; // Sequence Number, then 12 MBZ
    want[16..24].copy_from_slice(&[0x83, 0xaa, 0x7e, 0x81, 0x80, 0, 0, 0]); // Timestamp, NTP 1.5 s
    want[24..28].copy_from_slice(&[0x19, 0x80, 0x00, 0x07]); // Error Estimate (1 s), SSID, then 68 MBZ
                                                             // From Python: hmac.new(b"stamp-key", want[:96], sha256).digest()[:16]
    want[96..].copy_from_slice(&hex("5ddad7c9757b49f6e8a83c770aee6d19"));
    assert_eq!(out, want);
}

#[test]
fn tlvs_hmac_tlv_and_padding_come_in_that_order() {
    let cfg = SenderConfig {
        auth_key: Some(b"k".to_vec()),
        tlvs: vec![TlvRequest::TimestampInfo],
        size: 100,
        ..Default::default()
    };
    let s = Sender::new(cfg).unwrap();
    assert_eq!(s.packet_len(), 100);
    let mut out = [0u8; 100];
    s.build_test_packet(3, t(5, 0), &mut out).unwrap();
    assert_eq!(&out[44..52], &[0x80, 3, 0, 4, 0, 0, 0, 0]);
    assert_eq!(&out[52..56], &[0x80, 8, 0, 16]);
    let k = Key::new(b"k").unwrap();
    assert!(k.verify(&[&[0, 0, 0, 3], &out[44..52]], &out[56..72]));
    // 100 - 44 - 8 - 20 = 28 left: a 4-octet header and 24 octets of zeros.
    assert_eq!(&out[72..76], &[0x80, 1, 0, 24]);
    assert!(out[76..].iter().all(|&b| b == 0));
}

#[test]
fn sizes_that_cannot_be_built_are_refused() {
    let size = |size, tlvs: Vec<TlvRequest>| {
        Sender::new(SenderConfig { size, tlvs, ..Default::default() })
    };
    assert!(size(0, vec![]).is_ok());
    assert_eq!(size(43, vec![]).unwrap_err(), SenderError::Size { size: 43, min: 44 });
    assert_eq!(size(46, vec![]).unwrap_err(), SenderError::Size { size: 46, min: 44 });
    assert_eq!(size(48, vec![]).unwrap().packet_len(), 48);
    assert_eq!(size(MAX_PACKET, vec![]).unwrap().packet_len(), MAX_PACKET);
    assert!(size(MAX_PACKET + 1, vec![]).is_err());
    assert!(size(0, vec![TlvRequest::Raw { kind: 1, len: u16::MAX }]).is_err());
    let s = size(0, vec![TlvRequest::DirectMeasurement]).unwrap();
    assert_eq!(s.packet_len(), 60);
    let mut small = [0u8; 59];
    assert_eq!(
        s.build_test_packet(0, t(0, 0), &mut small),
        Err(BufferTooSmall { need: 60, have: 59 })
    );
    let auth = Sender::new(SenderConfig { mode: AuthMode::Authenticated, ..Default::default() });
    assert!(matches!(auth, Err(SenderError::Config(ConfigError::MissingKey))));
}

#[test]
fn a_hand_written_reflected_packet_parses_into_every_field() {
    let s = Sender::new(SenderConfig::default()).unwrap();
    #[rustfmt::skip]
    let reply: [u8; 52] = [
        0, 0, 0, 4,                                     // reflector Sequence Number
        0x83, 0xaa, 0x7e, 0x82, 0, 0, 0, 0,             // T3
        0x40 | 0x19, 0x80,                              // Error Estimate: Z set, so T2 and T3 are PTP
        0x00, 0x05,                                     // SSID
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, // T2
        0, 0, 0, 9,                                     // Session-Sender Sequence Number
        0x83, 0xaa, 0x7e, 0x81, 0x80, 0, 0, 0,          // Session-Sender Timestamp (NTP)
        0x80, 0x01, 0, 0,                               // Session-Sender Error Estimate
        61, 0, 0, 0,                                    // TTL
        0x80, 200, 0, 4, 1, 2, 3, 4,                    // an unknown TLV, U set by the reflector
    ];
    let r = s.parse_reflected(&reply).unwrap();
    assert_eq!((r.seq, r.ssid, r.sender_seq, r.sender_ttl, r.len), (4, 5, 9, 61, 52));
    assert_eq!(r.timestamp.format, TimestampFormat::Ptp);
    assert_eq!(r.receive_timestamp.to_system_time(), Some(t(2, 7)));
    assert_eq!(r.sender_timestamp.to_system_time(), Some(t(1, 500_000_000)));
    assert!(r.sender_error_estimate.synchronized());
    assert_eq!(r.tlv_integrity, TlvIntegrity::Absent);
    let tlvs: Vec<_> = r.tlvs().collect();
    assert_eq!(tlvs.len(), 1);
    let tlv = tlvs[0].unwrap();
    assert!(tlv.flags.unrecognized());
    assert_eq!(tlv.decode(), Ok(TlvValue::Unknown(&[1, 2, 3, 4])));
    assert_eq!(s.parse_reflected(&reply[..43]), Err(ParseError::Short { len: 43, min: 44 }));
}

#[test]
fn authenticated_replies_are_checked() {
    let key = b"secret".to_vec();
    let cfg = SenderConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(key.clone()),
        tlvs: vec![TlvRequest::FollowUpTelemetry],
        ..Default::default()
    };
    let s = Sender::new(cfg).unwrap();
    let mut r = Reflector::new(ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(key),
        stateful: true,
        ..Default::default()
    })
    .unwrap();
    let mut buf = [0u8; 256];
    let len = s.build_test_packet(1, t(10, 0), &mut buf).unwrap();
    let rx =
        Arrival { src: ([127, 0, 0, 1], 5).into(), received: t(10, 1), ttl: Some(1), tos: None };
    assert_eq!(r.reflect(&mut buf, len, &rx), Ok(len));
    let reply = s.parse_reflected(&buf[..len]).unwrap();
    assert_eq!(reply.tlv_integrity, TlvIntegrity::Valid);
    assert_eq!((reply.seq, reply.sender_seq, reply.sender_ttl), (0, 1, 1));
    // One flipped bit in a TLV: the base HMAC still holds, the TLV HMAC does not.
    let mut bad = buf;
    bad[116] ^= 1;
    assert_eq!(s.parse_reflected(&bad[..len]).unwrap().tlv_integrity, TlvIntegrity::Invalid);
    // One flipped bit in the base packet: refused.
    let mut bad = buf;
    bad[20] ^= 1;
    assert_eq!(s.parse_reflected(&bad[..len]), Err(ParseError::Auth));
    // Without a key the HMAC TLV is reported, not judged.
    let plain = Sender::new(SenderConfig::default()).unwrap();
    let mut p = [0u8; 64];
    p[44..48].copy_from_slice(&[0, 8, 0, 16]);
    assert_eq!(plain.parse_reflected(&p).unwrap().tlv_integrity, TlvIntegrity::Unchecked);
}

#[test]
fn usable_tlvs_follow_the_senders_rules() {
    let s = Sender::new(SenderConfig::default()).unwrap();
    let reply = |tail: &[u8]| {
        let mut p = vec![0u8; 44];
        p.extend_from_slice(tail);
        p
    };
    #[rustfmt::skip]
    let p = reply(&[
        0x00, 3, 0, 4, 5, 2, 5, 2,      // understood: used
        0x80, 99, 0, 0,                 // U: skipped
        0x00, 6, 0, 4, 0x10, 1, 0, 0,   // used
        0x40, 5, 0, 4, 0, 0, 0, 0,      // M: stop here
        0x00, 3, 0, 4, 5, 2, 5, 2,
    ]);
    let r = s.parse_reflected(&p).unwrap();
    let used: Vec<_> = r.usable_tlvs().collect();
    assert_eq!(
        used,
        [
            TlvValue::TimestampInfo {
                sync_src_in: 5,
                timestamp_in: 2,
                sync_src_out: 5,
                timestamp_out: 2
            },
            TlvValue::AccessReport { id: 1, return_code: 1 },
        ]
    );
    // One I flag anywhere: nothing is used.
    let p = reply(&[0x00, 3, 0, 4, 5, 2, 5, 2, 0x20, 6, 0, 4, 0x10, 1, 0, 0]);
    assert_eq!(s.parse_reflected(&p).unwrap().usable_tlvs().count(), 0);
}
