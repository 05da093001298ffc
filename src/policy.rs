//! Who gets an answer: the defences that keep an always-on echo server from
//! being a reflector (CERT CA-1996-01).
//!
//! [`Policy::admit`] decides whether a datagram is answered, and nothing else:
//! what the reply holds is the transform's job ([`crate::transform`]), and the
//! two meet in [`crate::server::reply_to`], the only road from a request to a
//! reply.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub use crate::counters::Refusal;
use crate::limit::{canonical, Limiter, Over};
pub use crate::limit::{Prefix, RateLimit, Tick, MAX_TABLE};

/// Source ports refused by default beyond those below 1024: SSDP (1900),
/// WS-Discovery (3702), mDNS (5353) and memcached (11211), all UDP services
/// that answer and so can be played against an echo server.
pub const REFLECTOR_PORTS: [u16; 4] = [1900, 3702, 5353, 11211];

/// The defences, as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Refuse source ports below 1024 (OpenBSD inetd's rule for its echo service).
    pub deny_privileged_ports: bool,
    /// Further source ports to refuse.
    pub deny_ports: Vec<u16>,
    /// Ports to answer even if a rule above refuses them.
    pub allow_ports: Vec<u16>,
    /// Refuse broadcast, multicast and unspecified sources.
    pub deny_bad_sources: bool,
    /// The rate limit, or `None` for none.
    pub rate_limit: Option<RateLimit>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            deny_privileged_ports: true,
            deny_ports: REFLECTOR_PORTS.to_vec(),
            allow_ports: Vec::new(),
            deny_bad_sources: true,
            rate_limit: Some(RateLimit::default()),
        }
    }
}

impl PolicyConfig {
    /// Everything off: answer whatever can be answered (port 0 and self-loops
    /// are still refused: they can never be answered sensibly).
    pub fn open() -> Self {
        PolicyConfig {
            deny_privileged_ports: false,
            deny_ports: Vec::new(),
            allow_ports: Vec::new(),
            deny_bad_sources: false,
            rate_limit: None,
        }
    }
}

/// The first port that needs no privilege to bind: ports below are refused
/// as sources unless allowed.
const FIRST_UNPRIVILEGED: u16 = 1024;
/// 64-bit words in a bitmap with one bit per port.
const PORT_WORDS: usize = (u16::MAX as usize + 1) / 64;

/// The compiled policy of one server: shared by its workers.
#[derive(Debug)]
pub struct Policy {
    denied: Box<[u64; PORT_WORDS]>,
    /// Every address the server is bound to: a datagram from any of them is a loop.
    own: Vec<SocketAddr>,
    deny_bad_sources: bool,
    limiter: Option<Limiter>,
    max_datagram: usize,
    epoch: Instant,
}

impl Policy {
    /// Compiles `config` for a server answering datagrams of at most
    /// `max_datagram` bytes.
    pub fn new(config: &PolicyConfig, max_datagram: usize) -> Policy {
        let mut denied = Box::new([0u64; PORT_WORDS]);
        let mut set = |port: u16, on: bool| {
            let (word, bit) = (usize::from(port) / 64, port % 64);
            if on {
                denied[word] |= 1 << bit;
            } else {
                denied[word] &= !(1 << bit);
            }
        };
        if config.deny_privileged_ports {
            (1..FIRST_UNPRIVILEGED).for_each(|p| set(p, true));
        }
        config.deny_ports.iter().for_each(|&p| set(p, true));
        config.allow_ports.iter().for_each(|&p| set(p, false));
        Policy {
            denied,
            own: Vec::new(),
            deny_bad_sources: config.deny_bad_sources,
            limiter: config.rate_limit.as_ref().map(Limiter::new),
            max_datagram,
            epoch: Instant::now(),
        }
    }

    /// Tells the policy every address the server is bound to, so that a
    /// datagram from one of its sockets to another is refused as a loop too.
    pub fn set_own_addrs(&mut self, addrs: &[SocketAddr]) {
        self.own = addrs.to_vec();
    }

    /// A timestamp for [`admit`](Policy::admit): take one per batch, not per datagram.
    pub fn now(&self) -> Tick {
        Tick::from_duration(self.epoch.elapsed())
    }

    /// Decides whether a datagram of `len` bytes from `src`, sent to our
    /// socket `local` (with `dst` the address it was sent to, where known), is
    /// answered. The checks run cheapest first; the rate limit, which spends a
    /// token, runs last.
    #[inline]
    pub fn admit(
        &self,
        src: SocketAddr,
        local: SocketAddr,
        dst: Option<IpAddr>,
        len: usize,
        now: Tick,
    ) -> Result<(), Refusal> {
        if len > self.max_datagram {
            return Err(Refusal::Oversize);
        }
        let port = src.port();
        if port == 0 {
            return Err(Refusal::PortZero);
        }
        if self.denied[usize::from(port) / 64] & (1 << (port % 64)) != 0 {
            return Err(Refusal::DeniedPort);
        }
        let ip = canonical(src.ip());
        if self.deny_bad_sources && is_bad_source(ip) {
            return Err(Refusal::BadSource);
        }
        let own = |a: &SocketAddr| {
            a.port() == port
                && (ip == canonical(a.ip())
                    || (a.ip().is_unspecified()
                        && (ip.is_loopback() || dst.map(canonical) == Some(ip))))
        };
        if own(&local) || self.own.iter().any(own) {
            return Err(Refusal::SelfLoop);
        }
        match self.limiter.as_ref().map(|l| l.allow(ip, now)) {
            Some(Err(Over::Prefix)) => Err(Refusal::RateLimited),
            Some(Err(Over::Total)) => Err(Refusal::TotalLimited),
            _ => Ok(()),
        }
    }
}

/// Sources no real peer has: replies would go to many hosts or to none.
fn is_bad_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const LOCAL: &str = "10.0.0.1:7000";

    #[test]
    fn refuses_unanswerable_and_reflector_sources() {
        let p = Policy::new(&PolicyConfig::default(), 65_527);
        let now = p.now();
        let verdict = |src: &str| p.admit(addr(src), addr(LOCAL), None, 10, now);
        assert_eq!(verdict("10.0.0.2:0"), Err(Refusal::PortZero));
        for port in [7, 19, 53, 123, 1023, 1900, 3702, 5353, 11211] {
            assert_eq!(
                verdict(&format!("10.0.0.2:{port}")),
                Err(Refusal::DeniedPort),
                "port {port}"
            );
        }
        assert_eq!(verdict("255.255.255.255:5000"), Err(Refusal::BadSource));
        assert_eq!(verdict("224.0.0.1:5000"), Err(Refusal::BadSource));
        assert_eq!(verdict("0.0.0.0:5000"), Err(Refusal::BadSource));
        assert_eq!(verdict("[ff02::1]:5000"), Err(Refusal::BadSource));
        assert_eq!(verdict("10.0.0.1:7000"), Err(Refusal::SelfLoop));
        assert_eq!(verdict("[::ffff:10.0.0.1]:7000"), Err(Refusal::SelfLoop));
        assert_eq!(verdict("10.0.0.2:7000"), Ok(()));
        assert_eq!(verdict("10.0.0.2:1024"), Ok(()));
        assert_eq!(
            p.admit(addr("10.0.0.2:5000"), addr(LOCAL), None, 65_528, now),
            Err(Refusal::Oversize)
        );
    }

    #[test]
    fn self_loop_on_a_wildcard_socket_uses_the_destination() {
        let p = Policy::new(&PolicyConfig::open(), 100);
        let now = p.now();
        let local = addr("0.0.0.0:7000");
        let dst = Some("192.0.2.5".parse().unwrap());
        assert_eq!(p.admit(addr("192.0.2.5:7000"), local, dst, 1, now), Err(Refusal::SelfLoop));
        assert_eq!(p.admit(addr("127.0.0.1:7000"), local, None, 1, now), Err(Refusal::SelfLoop));
        assert_eq!(p.admit(addr("192.0.2.6:7000"), local, dst, 1, now), Ok(()));
    }

    #[test]
    fn allow_ports_override_denials() {
        let config = PolicyConfig { allow_ports: vec![53], ..PolicyConfig::default() };
        let p = Policy::new(&config, 100);
        assert_eq!(p.admit(addr("10.0.0.2:53"), addr(LOCAL), None, 1, p.now()), Ok(()));
    }

    fn limited(rate: f64, burst: u32) -> Policy {
        let config = PolicyConfig {
            rate_limit: Some(RateLimit { rate, burst, ..RateLimit::default() }),
            ..PolicyConfig::open()
        };
        Policy::new(&config, 100)
    }

    /// Replies admitted to a source sending `pps` for `secs`, on simulated time.
    fn admitted(p: &Policy, src: &str, pps: u64, secs: u64, start: Tick) -> u64 {
        let step = Duration::from_nanos(1_000_000_000 / pps);
        (0..pps * secs)
            .filter(|&i| {
                let t = start.after(step * i as u32);
                p.admit(addr(src), addr(LOCAL), None, 1, t).is_ok()
            })
            .count() as u64
    }

    #[test]
    fn flood_gets_rate_times_time_plus_burst() {
        let p = limited(100.0, 50);
        let got = admitted(&p, "10.1.1.1:5000", 1000, 5, p.now());
        let expected = 100 * 5 + 50;
        assert!(got.abs_diff(expected) <= expected / 100, "got {got}, expected {expected}");
    }

    #[test]
    fn just_under_the_rate_is_not_limited() {
        let p = limited(100.0, 10);
        assert_eq!(admitted(&p, "10.1.1.1:5000", 99, 5, p.now()), 99 * 5);
    }

    #[test]
    fn sources_in_one_prefix_share_a_bucket_and_others_do_not() {
        let p = limited(10.0, 5);
        let now = p.now();
        let ok = |src: &str| p.admit(addr(src), addr(LOCAL), None, 1, now).is_ok();
        assert_eq!((0..5).filter(|_| ok("[2001:db8::1]:5000")).count(), 5);
        assert!(!ok("[2001:db8::2]:6000"), "same /64 shares the bucket");
        assert!(ok("[2001:db8:0:1::1]:5000"), "another /64 has its own");
        assert!(ok("127.0.0.1:5000"), "loopback is exempt by default");
    }

    #[test]
    fn recovers_after_one_refill_period() {
        let p = limited(100.0, 20);
        let start = p.now();
        admitted(&p, "10.1.1.1:5000", 1000, 2, start);
        let later = start.after(Duration::from_secs(2) + Duration::from_millis(200));
        let ok = (0..20)
            .filter(|_| p.admit(addr("10.1.1.1:5000"), addr(LOCAL), None, 1, later).is_ok())
            .count();
        assert_eq!(ok, 20, "a full burst again after burst/rate = 200 ms");
    }

    #[test]
    fn a_million_sources_keep_the_table_and_serve_a_regular() {
        let p = limited(100.0, 10);
        let size = p.limiter.as_ref().unwrap().table.len();
        let mut t = p.now();
        let mut served = 0;
        for i in 0..1_000_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            let _ = p.admit(SocketAddr::from((ip, 4000)), addr(LOCAL), None, 1, t);
            if i % 1000 == 0 {
                t = t.after(Duration::from_millis(10)); // the regular sends at 100/s
                served += p.admit(addr("10.9.9.9:5000"), addr(LOCAL), None, 1, t).is_ok() as u32;
            }
        }
        assert_eq!(p.limiter.as_ref().unwrap().table.len(), size);
        assert_eq!(served, 1000, "the regular source stays within its rate and is served");
    }

    #[test]
    fn total_cap_holds_a_million_new_sources_to_cap_times_time_plus_burst() {
        let config = PolicyConfig {
            rate_limit: Some(RateLimit {
                total: Some(1000.0),
                exempt: vec!["10.9.9.0/24".parse().unwrap()],
                ..RateLimit::default()
            }),
            ..PolicyConfig::open()
        };
        let p = Policy::new(&config, 100);
        let start = p.now();
        let (mut answered, mut total_limited, mut regular) = (0, 0, 0);
        // 1,000,000 sources, each new, over 2 s; an exempt regular every 10 ms.
        for i in 0..1_000_000u32 {
            let t = start.after(Duration::from_micros(u64::from(i) * 2));
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            match p.admit(SocketAddr::from((ip, 4000)), addr(LOCAL), None, 1, t) {
                Ok(()) => answered += 1,
                Err(Refusal::TotalLimited) => total_limited += 1,
                Err(other) => panic!("{other}"),
            }
            if i % 5000 == 0 {
                regular += p.admit(addr("10.9.9.9:5000"), addr(LOCAL), None, 1, t).is_ok() as u32;
            }
        }
        assert!((2900..=3001).contains(&answered), "1000/s for 2 s + 1000 burst: {answered}");
        assert_eq!(answered + total_limited, 1_000_000);
        assert_eq!(regular, 200, "the exempt source is always answered");
    }

    #[test]
    fn a_source_over_its_own_limit_spends_nothing_of_the_total() {
        let config = PolicyConfig {
            rate_limit: Some(RateLimit {
                rate: 10.0,
                burst: 10,
                total: Some(20.0),
                ..RateLimit::default()
            }),
            ..PolicyConfig::open()
        };
        let p = Policy::new(&config, 100);
        let now = p.now();
        let verdicts: Vec<_> =
            (0..100).map(|_| p.admit(addr("10.1.1.1:5000"), addr(LOCAL), None, 1, now)).collect();
        assert_eq!(verdicts.iter().filter(|v| v.is_ok()).count(), 10);
        assert!(verdicts[10..].iter().all(|v| *v == Err(Refusal::RateLimited)));
        let others = (0..20)
            .filter(|i| {
                let src = SocketAddr::from(([10, 2, 0, *i as u8], 5000));
                p.admit(src, addr(LOCAL), None, 1, now).is_ok()
            })
            .count();
        assert_eq!(others, 10, "the other 10 of the total's burst of 20");
    }
}
