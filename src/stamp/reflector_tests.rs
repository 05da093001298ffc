//! Reflector tests: replies checked byte for byte against the RFC 8762 §4.3
//! figures, HMAC values computed independently (Python's hmac module), and the
//! RFC 8972 TLV rules.

use super::*;
use crate::stamp::packet::{AUTHENTICATED, UNAUTHENTICATED};
use std::time::UNIX_EPOCH;

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn arrival(port: u16, ttl: Option<u8>, tos: Option<u8>) -> Arrival {
    Arrival {
        src: SocketAddr::from(([127, 0, 0, 1], port)),
        received: at(1, 500_000_000),
        ttl,
        tos,
    }
}

fn unauth_request(seq: u32, ssid: u16) -> Vec<u8> {
    let mut p = vec![0u8; 44];
    p[0..4].copy_from_slice(&seq.to_be_bytes());
    p[4..12].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    p[12..14].copy_from_slice(&[0x80, 0x01]);
    p[14..16].copy_from_slice(&ssid.to_be_bytes());
    p
}

fn reflect(r: &mut Reflector, p: &mut [u8], rx: &Arrival) -> Result<usize, StampDrop> {
    let len = p.len();
    r.reflect_with_clock(p, len, rx, || at(2, 0))
}

#[test]
fn unauthenticated_reply_is_the_rfc_8762_figure() {
    let mut r = Reflector::new(ReflectorConfig::default()).unwrap();
    let mut p = unauth_request(5, 0xabcd);
    p[20] = 0xee; // MBZ garbage is ignored
    assert_eq!(reflect(&mut r, &mut p, &arrival(9, Some(63), None)), Ok(44));
    #[rustfmt::skip]
    let want: [u8; 44] = [
        0x00, 0x00, 0x00, 0x05,                         // Sequence Number (stateless: the sender's)
        0x83, 0xaa, 0x7e, 0x82, 0x00, 0x00, 0x00, 0x00, // Timestamp: NTP 1970-01-01T00:00:02
        0x19, 0x80,                                     // Error Estimate: S=0 Z=0 Scale 25 Mult 128 (1 s)
        0xab, 0xcd,                                     // SSID
        0x83, 0xaa, 0x7e, 0x81, 0x80, 0x00, 0x00, 0x00, // Receive Timestamp: 1.5 s
        0x00, 0x00, 0x00, 0x05,                         // Session-Sender Sequence Number
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // Session-Sender Timestamp
        0x80, 0x01, 0x00, 0x00,                         // Session-Sender Error Estimate, MBZ
        0x3f, 0x00, 0x00, 0x00,                         // Ses-Sender TTL 63, MBZ
    ];
    assert_eq!(p, want);
}

#[test]
fn authenticated_reply_is_the_rfc_8762_figure_with_its_hmac() {
    let cfg = ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(b"stamp-key".to_vec()),
        format: TimestampFormat::Ptp,
        ..Default::default()
    };
    let mut r = Reflector::new(cfg).unwrap();
    let mut p = vec![0u8; 112];
    p[3] = 9;
    p[16..24].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    p[24..28].copy_from_slice(&[0x00, 0x01, 0x00, 0x07]);
    // The sender's HMAC, from Python: hmac.new(b"stamp-key", p[:96], sha256).digest()[:16]
    p[96..].copy_from_slice(&hex("d45671967df2584c9ac9ef78beb0a5b3"));
    let mut rx = arrival(9, Some(64), None);
    rx.received = at(1_700_000_000, 5);
    let len = p.len();
    assert_eq!(r.reflect_with_clock(&mut p, len, &rx, || at(1_700_000_001, 0)), Ok(112));
    let mut want = [0u8; 112];
    want[0..4].copy_from_slice(&[0, 0, 0, 9]); // Sequence Number, then 12 MBZ
    want[16..24].copy_from_slice(&[0x65, 0x53, 0xf1, 0x01, 0, 0, 0, 0]); // Timestamp (PTP)
    want[24..28].copy_from_slice(&[0x59, 0x80, 0x00, 0x07]); // Error Estimate (Z=1, 1 s), SSID, then 4 MBZ
    want[32..40].copy_from_slice(&[0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 5]); // Receive Timestamp, then 8 MBZ
    want[48..52].copy_from_slice(&[0, 0, 0, 9]); // Session-Sender Sequence Number, then 12 MBZ
    want[64..72].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    want[72..74].copy_from_slice(&[0x00, 0x01]); // Session-Sender Error Estimate, then 6 MBZ
    want[80] = 64; // Ses-Sender TTL, then 15 MBZ
    want[96..].copy_from_slice(&hex("50873ad90aa32dc4efc0773218f09939"));
    assert_eq!(p, want);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn short_and_bad_hmac_are_dropped_untouched() {
    let mut r = Reflector::new(ReflectorConfig::default()).unwrap();
    let mut p = unauth_request(1, 0);
    let rx = arrival(9, None, None);
    assert_eq!(r.reflect(&mut p, 13, &rx), Err(StampDrop::Short));
    assert_eq!(r.reflect(&mut p, 43, &rx), Err(StampDrop::Unpadded));
    assert_eq!(p, unauth_request(1, 0));
    let mut a = Reflector::new(ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(b"k".to_vec()),
        ..Default::default()
    })
    .unwrap();
    let mut p = vec![0u8; 112];
    assert_eq!(a.reflect(&mut p, 112, &rx), Err(StampDrop::Auth));
    assert_eq!(p, vec![0u8; 112]);
    assert_eq!(a.reflect(&mut p, 111, &rx), Err(StampDrop::Short));
    assert_eq!(StampDrop::Auth.to_string(), "auth_failed");
    assert!(matches!(
        Reflector::new(ReflectorConfig { mode: AuthMode::Authenticated, ..Default::default() }),
        Err(ConfigError::MissingKey)
    ));
    assert!(
        Reflector::new(ReflectorConfig { auth_key: Some(vec![]), ..Default::default() }).is_err()
    );
}

#[test]
fn stateful_numbers_each_session_from_zero_and_degrades_when_full() {
    let cfg = ReflectorConfig { stateful: true, session_capacity: 2, ..Default::default() };
    let mut r = Reflector::new(cfg).unwrap();
    let seq_of = |r: &mut Reflector, port, ssid, sender_seq| {
        let mut p = unauth_request(sender_seq, ssid);
        reflect(r, &mut p, &arrival(port, None, None)).unwrap();
        u32::from_be_bytes(p[0..4].try_into().unwrap())
    };
    assert_eq!(seq_of(&mut r, 1, 1, 100), 0);
    assert_eq!(seq_of(&mut r, 1, 1, 105), 1, "a lost test packet does not advance the count");
    assert_eq!(seq_of(&mut r, 1, 2, 100), 0, "another SSID is another session");
    assert_eq!(seq_of(&mut r, 2, 1, 77), 77, "a full table answers statelessly");
    assert_eq!(seq_of(&mut r, 1, 1, 106), 2);
    assert_eq!(r.sessions(), 2);
}

/// An unauthenticated request with `tlvs` after the base packet.
fn with_tlvs(tlvs: &[u8]) -> Vec<u8> {
    let mut p = unauth_request(3, 1);
    p.extend_from_slice(tlvs);
    p
}

#[test]
fn known_tlvs_are_answered_and_unknown_ones_get_u() {
    let cfg = ReflectorConfig { allowed_dscp: 1 << 46, ..Default::default() };
    let mut r = Reflector::new(cfg).unwrap();
    #[rustfmt::skip]
    let mut p = with_tlvs(&[
        0x80, 1, 0, 2, 0xaa, 0xbb,                  // Extra Padding
        0x80, 3, 0, 4, 0, 0, 0, 0,                  // Timestamp Information
        0x80, 4, 0, 4, 0xb8, 0, 0xff, 0xff,         // Class of Service, DSCP1 = 46
        0x80, 200, 0, 0,                            // unknown, zero length
        0x9f, 6, 0, 4, 0x1f, 2, 9, 9,               // Access Report, ID 1, reserved bits set
    ]);
    let len = reflect(&mut r, &mut p, &arrival(9, None, Some(0x29))).unwrap();
    assert_eq!(len, p.len());
    #[rustfmt::skip]
    assert_eq!(&p[44..], &[
        0x00, 1, 0, 2, 0xaa, 0xbb,
        0x00, 3, 0, 4, 5, 2, 5, 2,                  // local free-running, SW local
        0x00, 4, 0, 4, 0xb8, 0xa4, 0, 0,            // DSCP2 10 and ECN 1 as received, RP 0
        0x80, 200, 0, 0,
        0x00, 6, 0, 4, 0x10, 2, 0, 0,
    ][..]);
    assert_eq!(r.reply_dscp(), Some(46));
    // A DSCP the policy does not allow: RP = 1 and the reply keeps the received DSCP.
    let mut p = with_tlvs(&[0x80, 4, 0, 4, 0xb8, 0, 0, 0]);
    let mut strict = Reflector::new(ReflectorConfig::default()).unwrap();
    reflect(&mut strict, &mut p, &arrival(9, None, Some(0))).unwrap();
    assert_eq!(strict.reply_dscp(), None);
    assert_eq!(&p[44..], &[0x00, 4, 0, 4, 0xb8, 0x01, 0, 0]);
}

#[test]
fn a_malformed_tlv_gets_m_and_the_rest_is_copied() {
    let mut r = Reflector::new(ReflectorConfig::default()).unwrap();
    #[rustfmt::skip]
    let tail = [
        0x80, 3, 0, 4, 0, 0, 0, 0,                  // fine
        0x80, 5, 0, 4, 1, 2, 3, 4,                  // Direct Measurement must be 12 octets
        0x80, 3, 0, 4, 0, 0, 0, 0,                  // after the malformed one: untouched
    ];
    let mut p = with_tlvs(&tail);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..52], &[0x00, 3, 0, 4, 5, 2, 5, 2]);
    assert_eq!(&p[52..60], &[0x40, 5, 0, 4, 1, 2, 3, 4]);
    assert_eq!(&p[60..], &tail[16..]);
    // Length running past the end: M on it, bytes kept.
    let mut p = with_tlvs(&[0x80, 1, 0, 9, 1, 2]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..], &[0x40, 1, 0, 9, 1, 2]);
    // A stub shorter than a header has no flags to set: copied as it came.
    let mut p = with_tlvs(&[0x80, 1, 0, 0, 0x80, 1]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..], &[0x00, 1, 0, 0, 0x80, 1]);
    // Access ID other than 1 or 2.
    let mut p = with_tlvs(&[0x80, 6, 0, 4, 0x30, 1, 0, 0]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..], &[0x40, 6, 0, 4, 0x30, 1, 0, 0]);
    // TWAMP-Light zero padding is not TLVs and comes back as it was.
    let mut p = with_tlvs(&[0; 20]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..], &[0; 20]);
}

#[test]
fn hmac_tlv_is_checked_and_re_signed_or_every_tlv_gets_i() {
    let key = b"stamp-key".to_vec();
    let cfg = ReflectorConfig { auth_key: Some(key.clone()), ..Default::default() };
    let mut r = Reflector::new(cfg).unwrap();
    let mut p = unauth_request(9, 1);
    p.extend_from_slice(&[0x80, 200, 0, 0, 0x80, 8, 0, 16]);
    // From Python: hmac.new(b"stamp-key", seq 9 + TLV 80c80000, sha256).digest()[:16]
    p.extend_from_slice(&hex("940d9e41cd1b39f7b7bfc8232a7db2d1"));
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..52], &[0x80, 200, 0, 0, 0x00, 8, 0, 16]);
    let k = Key::new(&key).unwrap();
    assert!(k.verify(&[&p[0..4], &p[44..48]], &p[52..68]), "re-signed over the reply");
    // A wrong HMAC: nothing processed, I everywhere.
    let mut p = unauth_request(9, 1);
    p.extend_from_slice(&[0x80, 3, 0, 4, 0, 0, 0, 0, 0x80, 8, 0, 16]);
    p.extend_from_slice(&[0u8; 16]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..56], &[0xa0, 3, 0, 4, 0, 0, 0, 0, 0xa0, 8, 0, 16]);
    assert_eq!(&p[56..], &[0u8; 16]);
    // Without a key an HMAC TLV cannot be checked: I as well.
    let mut plain = Reflector::new(ReflectorConfig::default()).unwrap();
    let mut p = unauth_request(9, 1);
    p.extend_from_slice(&[0x80, 8, 0, 16]);
    p.extend_from_slice(&[7u8; 16]);
    reflect(&mut plain, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(p[44], 0xa0);
}

#[test]
fn authenticated_tlvs_without_an_hmac_tlv_fail_integrity() {
    let cfg = ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(b"k".to_vec()),
        ..Default::default()
    };
    let mut r = Reflector::new(cfg).unwrap();
    let key = Key::new(b"k").unwrap();
    let sign = |p: &mut Vec<u8>| {
        let tag = key.tag(&[&p[..96]]);
        p[96..112].copy_from_slice(&tag);
    };
    let mut p = vec![0u8; 112];
    p.extend_from_slice(&[0x80, 3, 0, 4, 0, 0, 0, 0]);
    sign(&mut p);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[112..], &[0xa0, 3, 0, 4, 0, 0, 0, 0]);
    // The one exception: a lone Extra Padding TLV.
    let mut p = vec![0u8; 112];
    p.extend_from_slice(&[0x80, 1, 0, 2, 5, 5]);
    sign(&mut p);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[112..], &[0x00, 1, 0, 2, 5, 5]);
    assert!(key.verify(&[&p[..96]], &p[96..112]), "reply signed");
    assert_eq!(AUTHENTICATED.len + UNAUTHENTICATED.len, 156);
}

#[test]
fn stateful_fills_direct_measurement_and_follow_up_telemetry() {
    let cfg = ReflectorConfig { stateful: true, ..Default::default() };
    let mut r = Reflector::new(cfg).unwrap();
    #[rustfmt::skip]
    let tlvs = [
        0x80, 5, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
        0x80, 7, 0, 16, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    ];
    let mut first = with_tlvs(&tlvs);
    reflect(&mut r, &mut first, &arrival(9, None, None)).unwrap();
    assert_eq!(&first[48..60], &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(&first[64..80], &[0u8; 16], "no previous packet yet");
    let mut second = with_tlvs(&tlvs);
    reflect(&mut r, &mut second, &arrival(9, None, None)).unwrap();
    assert_eq!(&second[48..60], &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2]);
    // Previous reflected packet: seq 0, sent at the clock's 2 s.
    let mut want = [0u8; 16];
    want[4..8].copy_from_slice(&[0x83, 0xaa, 0x7e, 0x82]);
    want[12] = timestamp_method::SW_LOCAL;
    assert_eq!(&second[64..80], &want);
    // Stateless: counters and follow-up zeroed.
    let mut s = Reflector::new(ReflectorConfig::default()).unwrap();
    let mut p = with_tlvs(&tlvs);
    reflect(&mut s, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[48..60], &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&p[64..80], &[0u8; 16]);
}

#[test]
fn zero_length_tlvs() {
    let mut r = Reflector::new(ReflectorConfig::default()).unwrap();
    // Extra Padding may be empty; an empty unknown TLV is still answered with U.
    let mut p = with_tlvs(&[0x80, 1, 0, 0, 0x00, 99, 0, 0]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..], &[0x00, 1, 0, 0, 0x80, 99, 0, 0]);
    // A fixed-size type with no value is malformed.
    let mut p = with_tlvs(&[0x80, 4, 0, 0, 0x80, 3, 0, 4, 0, 0, 0, 0]);
    reflect(&mut r, &mut p, &arrival(9, None, None)).unwrap();
    assert_eq!(&p[44..], &[0x40, 4, 0, 0, 0x80, 3, 0, 4, 0, 0, 0, 0]);
}

#[test]
fn reflectors_move_to_worker_threads_and_senders_are_shared() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    send::<Reflector>();
    shared::<crate::stamp::Sender>();
}

#[test]
#[should_panic]
fn a_length_past_the_buffer_is_the_callers_bug_not_the_peers() {
    let mut r = Reflector::new(ReflectorConfig::default()).unwrap();
    let mut p = unauth_request(1, 0);
    let _ = r.reflect(&mut p, 45, &arrival(9, None, None));
}

#[test]
fn unpadded_twamp_light_packets_are_answered_whole_only_from_named_prefixes() {
    let allowed = arrival(9, Some(64), None);
    let other = Arrival { src: SocketAddr::from(([192, 0, 2, 1], 9)), ..allowed };
    let mut r = Reflector::new(ReflectorConfig {
        unpadded_from: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let full = unauth_request(7, 0);
    let mut out = [0xa5u8; 44];
    // The 14-octet packet of RFC 5357 §4.1.2, and one with some padding.
    for len in [14, 30, 43] {
        out = [0xa5; 44];
        assert_eq!(r.reflect_unpadded(&full[..len], &mut out, &other), Err(StampDrop::Unpadded));
        assert_eq!(out, [0xa5; 44], "untouched for a sender not named");
        assert_eq!(r.reflect_unpadded(&full[..len], &mut out, &allowed), Ok(44));
        let mut padded = full.clone();
        assert_eq!(r.reflect(&mut padded, 44, &allowed), Ok(44));
        // As the zero-padded request would be answered, but for the transmit time.
        assert_eq!(out[..4], padded[..4]);
        assert_eq!(out[12..], padded[12..], "{len}");
    }
    // Not short: too short for TWAMP-Light, or a full packet.
    assert_eq!(r.reflect_unpadded(&full[..13], &mut out, &allowed), Err(StampDrop::Short));
    assert_eq!(r.reflect_unpadded(&full, &mut out, &allowed), Err(StampDrop::Short));
    // Authenticated mode: a 48-octet authenticated TWAMP packet is merely short.
    let mut a = Reflector::new(ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(b"k".to_vec()),
        unpadded_from: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let mut p = vec![0u8; 48];
    assert_eq!(a.reflect(&mut p, 48, &allowed), Err(StampDrop::Short));
    assert_eq!(a.reflect_unpadded(&p, &mut out, &allowed), Err(StampDrop::Short));
}
