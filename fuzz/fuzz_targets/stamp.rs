//! The STAMP core under any configuration and any run of datagrams: the
//! reflector never panics, answers with exactly the request's length or drops
//! it untouched, never writes past the request, and keeps its session table
//! within bounds; the sender's parser reads any bytes without panicking; and a
//! packet the sender built is always answered.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shout::stamp::{
    Arrival, AuthMode, Reflector, ReflectorConfig, Sender, SenderConfig, TimestampFormat,
    TlvRequest,
};

#[derive(Arbitrary, Debug)]
struct Input {
    authenticated: bool,
    /// A key in unauthenticated mode too (it then checks HMAC TLVs).
    keyed: bool,
    stateful: bool,
    ptp: bool,
    capacity: u8,
    idle_ms: u16,
    allowed_dscp: u64,
    datagrams: Vec<Datagram>,
}

#[derive(Arbitrary, Debug)]
struct Datagram {
    port: u8,
    ttl: Option<u8>,
    tos: Option<u8>,
    /// Milliseconds since the previous datagram; the clock may also step back.
    gap_ms: i16,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    /// A real test packet, then some of its bytes changed.
    Built { seq: u32, ssid: u16, tlvs: Vec<u8>, extra: u8, flips: Vec<(u16, u8)> },
}

fn request(b: u8) -> TlvRequest {
    match b % 7 {
        0 => TlvRequest::TimestampInfo,
        1 => TlvRequest::ClassOfService { dscp: b >> 2 },
        2 => TlvRequest::DirectMeasurement,
        3 => TlvRequest::AccessReport { id: 1 + (b >> 7), return_code: b },
        4 => TlvRequest::FollowUpTelemetry,
        _ => TlvRequest::Raw { kind: b, len: u16::from(b % 32) },
    }
}

fuzz_target!(|input: Input| {
    let mode = if input.authenticated { AuthMode::Authenticated } else { AuthMode::Unauthenticated };
    let key = (input.authenticated || input.keyed).then(|| b"fuzz-key".to_vec());
    let format = if input.ptp { TimestampFormat::Ptp } else { TimestampFormat::Ntp };
    let capacity = usize::from(input.capacity);
    let mut reflector = Reflector::new(ReflectorConfig {
        mode,
        auth_key: key.clone(),
        stateful: input.stateful,
        format,
        session_capacity: capacity,
        session_idle: Duration::from_millis(u64::from(input.idle_ms)),
        allowed_dscp: input.allowed_dscp,
        ..Default::default()
    })
    .expect("valid configuration");
    let parser = Sender::new(SenderConfig { mode, auth_key: key.clone(), ..Default::default() }).expect("valid");
    let mut now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);

    for d in input.datagrams.iter().take(64) {
        now = if d.gap_ms >= 0 {
            now + Duration::from_millis(d.gap_ms as u64)
        } else {
            now - Duration::from_millis(u64::from(d.gap_ms.unsigned_abs()))
        };
        let (request, built) = match &d.body {
            Body::Raw(bytes) => (bytes.clone(), false),
            Body::Built { seq, ssid, tlvs, extra, flips } => {
                let cfg = SenderConfig {
                    mode,
                    auth_key: key.clone(),
                    ssid: *ssid,
                    format,
                    tlvs: tlvs.iter().take(8).map(|&b| request(b)).collect(),
                    ..Default::default()
                };
                let Ok(min) = Sender::new(cfg.clone()).map(|s| s.packet_len()) else { continue };
                let size = if *extra < 4 { 0 } else { min + usize::from(*extra) };
                let sender = Sender::new(SenderConfig { size, ..cfg }).expect("size above the minimum");
                let mut p = vec![0u8; sender.packet_len()];
                sender.build_test_packet(*seq, now, &mut p).expect("buffer sized to the packet");
                for &(at, x) in flips.iter().take(4) {
                    let at = usize::from(at) % p.len();
                    p[at] ^= x;
                }
                (p, flips.iter().take(4).all(|&(_, x)| x == 0))
            }
        };
        let len = request.len();
        let mut buf = request.clone();
        buf.extend_from_slice(&[0xa5; 16]);
        let rx = Arrival { src: SocketAddr::from(([127, 0, 0, 1], u16::from(d.port))), received: now, ttl: d.ttl, tos: d.tos };
        match reflector.reflect(&mut buf, len, &rx) {
            Ok(n) => assert_eq!(n, len, "a reply is exactly as long as its request"),
            Err(drop) => {
                assert_eq!(&buf[..len], &request[..], "a dropped request is untouched");
                assert!(!built, "an intact test packet is answered, not dropped: {drop}");
            }
        }
        assert!(buf[len..].iter().all(|&b| b == 0xa5), "nothing written past the request");
        assert!(reflector.sessions() <= capacity);

        if let Ok(r) = parser.parse_reflected(&request) {
            assert_eq!(r.len, len);
            for t in r.tlvs().flatten() {
                let _ = t.decode();
            }
            let _ = (r.timestamp.to_system_time(), r.error_estimate.bound());
        }
    }
});
