//! Tests of the bench's STAMP reading and sums.

use super::*;

#[test]
fn other_sizes_count_and_list_what_differed() {
    let mut a = OtherSizes::default();
    for len in [44, 100, 64, 100, 44, 1500] {
        a.note(len, 44);
    }
    assert_eq!((a.replies, a.min, a.max), (4, 64, 1500));
    assert_eq!(a.sizes(), [64, 100, 1500]);
    let mut many = OtherSizes::default();
    for len in (0..40).rev().map(|i| 50 + i) {
        many.note(len, 44);
    }
    assert_eq!((many.replies, many.min, many.max), (40, 50, 89));
    assert_eq!(many.sizes().len(), MAX_SIZES, "the first 16 kept");
    a.add(&many);
    assert_eq!((a.replies, a.min, a.max), (44, 50, 1500));
    assert_eq!(a.sizes().len(), MAX_SIZES);
    let mut none = OtherSizes::default();
    none.add(&OtherSizes::default());
    assert_eq!(none, OtherSizes::default());
}

#[test]
fn widening_finds_the_latest_sent() {
    assert_eq!(widen(5, 0), 5);
    assert_eq!(widen(5, 10), 5);
    assert_eq!(widen(5, 5), 5, "none that low was sent: the caller finds it unsent");
    let next = (3 << 32) + 10;
    assert_eq!(widen(9, next), (3 << 32) + 9);
    assert_eq!(widen(0xFFFF_FFFF, next), (2 << 32) + 0xFFFF_FFFF);
}

#[test]
fn signed_quantiles_cross_zero() {
    let mut s = Signed::default();
    for v in [-3_000, -1_000, 1_000, 2_000] {
        s.record(v);
    }
    let [min, mean, p50, _p99, max] = s.summary().unwrap();
    assert!((min + 3.0).abs() < 0.01 && (max - 2.0).abs() < 0.01, "{min} {max}");
    assert!((mean + 0.25).abs() < 0.01, "{mean}");
    assert!(p50.abs() <= 1.01, "{p50}");
    assert_eq!(Signed::default().summary(), None);
}

#[test]
fn packets_read_back_through_a_reflector() {
    use crate::stamp::{Arrival, Reflector, ReflectorConfig, SenderConfig};
    let cfg = SenderConfig { ssid: 3, ..SenderConfig::default() };
    let format = StampFormat { sender: Sender::new(cfg).unwrap() };
    let mut reflector =
        Reflector::new(ReflectorConfig { stateful: true, ..ReflectorConfig::default() }).unwrap();
    let rx = Arrival {
        src: "127.0.0.1:4000".parse().unwrap(),
        received: SystemTime::now(),
        ttl: Some(250),
        tos: None,
    };
    let mut buf = [0u8; 44];
    let seq = (5 << 32) + 17;
    format.fill(&mut buf, seq);
    let len = reflector.reflect(&mut buf, 44, &rx).unwrap();
    let (got, e) = format.read(&buf[..len], seq + 3).unwrap();
    assert_eq!(got, seq, "the 32 bits on the wire widened to the probe sent");
    assert_eq!((e.reflector_seq, e.forward_ttl), (0, 250), "its own count, from 0");
    let (t1, t2, t3) = (e.t1_ns.unwrap(), e.t2_ns.unwrap(), e.t3_ns.unwrap());
    assert!(t1 > 1_600_000_000_000_000_000 && t2 >= t1 - 1_000_000 && t3 >= t2, "{e:?}");
    assert_eq!(format.read(&buf[..43], seq + 3), Err(Unusable::Mismatch), "short");
    let other = StampFormat { sender: Sender::new(SenderConfig::default()).unwrap() };
    assert_eq!(other.read(&buf[..len], seq + 3), Err(Unusable::Mismatch), "another SSID");
}

#[test]
fn reflected_tlvs_are_marked_and_counted_by_type() {
    use crate::stamp::{Arrival, Reflector, ReflectorConfig, SenderConfig, TlvRequest};
    let key = b"0123456789abcdef".to_vec();
    let tlvs = vec![
        TlvRequest::TimestampInfo,
        TlvRequest::Raw { kind: 99, len: 4 },
        TlvRequest::Raw { kind: 200, len: 0 },
    ];
    let cfg = SenderConfig { auth_key: Some(key.clone()), tlvs, ..SenderConfig::default() };
    let format = StampFormat { sender: Sender::new(cfg).unwrap() };
    let rcfg = ReflectorConfig { auth_key: Some(key), ..ReflectorConfig::default() };
    let mut reflector = Reflector::new(rcfg).unwrap();
    let rx = Arrival {
        src: "127.0.0.1:4000".parse().unwrap(),
        received: SystemTime::now(),
        ttl: Some(64),
        tos: None,
    };
    let len = format.sender.packet_len();
    let mut buf = vec![0u8; len];
    format.fill(&mut buf, 0);
    let n = reflector.reflect(&mut buf, len, &rx).unwrap();
    let (_, e) = format.read(&buf[..n], 1).unwrap();
    let mut tally = StampTally::default();
    tally.on_answer(0, 1_000, &e, (None, None), 0);
    tally.on_answer(1, 1_000, &e, (None, None), 0);
    let c = |k: u8| count(&tally, k);
    assert_eq!(c(3), TlvCount { carried: 2, ..TlvCount::default() }, "processed");
    for k in [99, 200] {
        assert_eq!(c(k), TlvCount { carried: 2, unrecognized: 2, ..TlvCount::default() });
    }
    assert_eq!(c(8).carried, 2, "the HMAC TLV came back too");
    assert_eq!(c(4), TlvCount::default(), "not sent, not carried");
    // A flipped bit in a TLV breaks the reflector's HMAC TLV.
    buf[44 + 5] ^= 1;
    assert_eq!(format.read(&buf[..n], 1), Err(Unusable::TlvAuth));
    let mut marks = TlvMarks::default();
    marks.note(0, TlvFlags(TlvFlags::M | TlvFlags::I));
    marks.note(255, TlvFlags(TlvFlags::I));
    tally.on_answer(2, 1_000, &StampEcho { tlvs: marks, ..e }, (None, None), 0);
    assert_eq!(
        count(&tally, 0),
        TlvCount { carried: 1, malformed: 1, integrity_failed: 1, ..TlvCount::default() }
    );
    assert_eq!(
        count(&tally, 255),
        TlvCount { carried: 1, integrity_failed: 1, ..TlvCount::default() }
    );
    let mut sum = StampTally::default();
    sum.add(&tally);
    sum.add(&tally);
    assert_eq!(count(&sum, 3).carried, 4, "flows add up");
}

fn count(t: &StampTally, k: u8) -> TlvCount {
    t.tlvs.by_kind[usize::from(k)]
}

fn echo(reflector_seq: u32) -> StampEcho {
    StampEcho {
        reflector_seq,
        t1_ns: None,
        t2_ns: None,
        t3_ns: None,
        forward_ttl: 0,
        tlvs: TlvMarks::default(),
        cos: None,
    }
}

#[test]
fn loss_splits_by_the_reflectors_count() {
    // 20 sent; 2 and 7 never reached the reflector, 11 was dropped on the
    // way back, 19 unanswered at the end.
    let mut t = StampTally::default();
    let mut r = 0;
    let mut answered = 0;
    for seq in 0..20u64 {
        if [2, 7].contains(&seq) {
            continue;
        }
        if seq != 11 && seq != 19 {
            t.on_answer(seq, 1_000, &echo(r), (None, None), 0);
            answered += 1;
        }
        r += 1;
    }
    t.split(20 - answered, answered);
    assert_eq!((t.forward_lost, t.backward_lost, t.unsplit_lost), (2, 1, 1));
    assert_eq!(t.own_seq, 14, "numbers differ from the first gap on");
}

#[test]
fn class_of_service_is_tallied_each_way() {
    let mut t = StampTally::default();
    let cos = |dscp, rp| Some(CosEcho { dscp, ecn: 0, rp });
    t.on_answer(0, 1_000, &StampEcho { cos: cos(0, 0), ..echo(0) }, (Some(64), Some(0xb8)), 0);
    t.on_answer(1, 1_000, &StampEcho { cos: cos(10, 1), ..echo(1) }, (Some(64), Some(0x01)), 0);
    // No processed TLV (U set, say): the reply's class still counts.
    t.on_answer(2, 1_000, &echo(2), (Some(64), Some(0xb8)), 0);
    let c = t.cos;
    assert_eq!((c.replies, c.refused), (2, 1));
    assert_eq!((c.forward_dscp, c.forward_ecn), ((1 << 0) | (1 << 10), 1));
    assert_eq!((c.backward_dscp, c.backward_ecn), ((1 << 46) | 1, 0b11));
}

#[test]
fn the_other_modes_replies_are_recognised() {
    use crate::stamp::{Arrival, Reflector, ReflectorConfig, SenderConfig};
    let key = b"0123456789abcdef".to_vec();
    let rx = Arrival {
        src: "127.0.0.1:4000".parse().unwrap(),
        received: SystemTime::now(),
        ttl: Some(64),
        tos: None,
    };
    let keyed = SenderConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(key.clone()),
        ..SenderConfig::default()
    };
    let keyed = StampFormat { sender: Sender::new(keyed).unwrap() };
    let plain = SenderConfig { size: 112, ..SenderConfig::default() };
    let plain = StampFormat { sender: Sender::new(plain).unwrap() };
    let seq = (2 << 32) + 9;

    // An authenticated reply to an unauthenticated sender: the reflector has a key.
    let rcfg = ReflectorConfig {
        mode: AuthMode::Authenticated,
        auth_key: Some(key),
        ..ReflectorConfig::default()
    };
    let mut reflector = Reflector::new(rcfg).unwrap();
    let mut buf = [0u8; 112];
    keyed.fill(&mut buf, seq);
    let n = reflector.reflect(&mut buf, 112, &rx).unwrap();
    assert_eq!(plain.authenticated_reply(&buf[..n], seq + 1), Some(seq));
    assert_eq!(keyed.authenticated_reply(&buf[..n], seq + 1), None, "we have the key");
    let mut sent = [0u8; 112];
    keyed.fill(&mut sent, seq);
    assert_eq!(plain.authenticated_reply(&sent, seq + 1), None, "a test packet, not a reply");

    // An unauthenticated reply is none, to either; the keyed sender names it.
    let mut reflector = Reflector::new(ReflectorConfig::default()).unwrap();
    let mut buf = [0u8; 112];
    plain.fill(&mut buf, seq);
    let n = reflector.reflect(&mut buf, 112, &rx).unwrap();
    assert_eq!(plain.authenticated_reply(&buf[..n], seq + 1), None);
    let mut buf = [0u8; 112];
    keyed.fill(&mut buf, seq);
    let n = reflector.reflect(&mut buf, 112, &rx).unwrap();
    assert_eq!(plain.authenticated_reply(&buf[..n], seq + 1), None);
    assert_eq!(keyed.read(&buf[..n], seq + 1).unwrap_err(), Unusable::Unauthenticated(seq));
}
