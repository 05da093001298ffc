//! Who gets an answer: the defences that keep an always-on echo server from
//! being a reflector (CERT CA-1996-01).
//!
//! [`Policy::admit`] decides whether a datagram is answered, and nothing else:
//! what the reply holds is the transform's job ([`crate::transform`]), and the
//! two meet in [`crate::server::reply_to`], the only road from a request to a
//! reply.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Source ports refused by default beyond those below 1024: SSDP (1900),
/// WS-Discovery (3702), mDNS (5353) and memcached (11211), all UDP services
/// that answer and so can be played against an echo server.
pub const REFLECTOR_PORTS: [u16; 4] = [1900, 3702, 5353, 11211];

/// Why a datagram was not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Longer than `--max-datagram`.
    Oversize,
    /// Source port 0: cannot be answered, and only forged packets have it.
    PortZero,
    /// A denied source port (privileged ports, known reflectors).
    DeniedPort,
    /// A broadcast, multicast or unspecified source address.
    BadSource,
    /// From the server's own address and port: answering would loop forever.
    SelfLoop,
    /// Over the per-source rate limit.
    RateLimited,
    /// Within its own limit, but over the total cap on limited replies.
    TotalLimited,
    /// Not a STAMP test packet the reflector can answer at its size (shorter
    /// than the mode's base packet).
    StampMalformed,
    /// A STAMP test packet whose HMAC does not check (authenticated mode).
    StampAuth,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Oversize => "oversize",
            Refusal::PortZero => "port_zero",
            Refusal::DeniedPort => "denied_port",
            Refusal::BadSource => "bad_source",
            Refusal::SelfLoop => "self_loop",
            Refusal::RateLimited => "rate_limited",
            Refusal::TotalLimited => "total_limited",
            Refusal::StampMalformed => "stamp_malformed",
            Refusal::StampAuth => "stamp_auth_failed",
        })
    }
}

/// Per-source rate limit settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained replies per second per source prefix.
    pub rate: f64,
    /// Replies a quiet source may get at once.
    pub burst: u32,
    /// IPv4 sources sharing this many leading bits share a bucket.
    pub v4_prefix: u8,
    /// IPv6 sources sharing this many leading bits share a bucket.
    pub v6_prefix: u8,
    /// Buckets in the table (rounded up to a power of two); memory is 8 bytes each.
    pub table_size: usize,
    /// Limit loopback sources too (exempt by default, for local tests and benchmarks).
    pub include_loopback: bool,
    /// Replies per second to all limited sources together (BIND's
    /// `all-per-second`), with a burst of one second's worth; `None` for no cap.
    pub total: Option<f64>,
    /// Sources never limited, by either limit (BIND's `exempt-clients`).
    pub exempt: Vec<Prefix>,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            rate: 100.0,
            burst: 100,
            v4_prefix: 32,
            v6_prefix: 64,
            table_size: 1 << 16,
            include_loopback: false,
            total: None,
            exempt: Vec::new(),
        }
    }
}

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

/// The compiled policy of one server: shared by its workers.
#[derive(Debug)]
pub struct Policy {
    denied: Box<[u64; 1024]>,
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
        let mut denied = Box::new([0u64; 1024]);
        let mut set = |port: u16, on: bool| {
            let (word, bit) = (usize::from(port) / 64, port % 64);
            if on {
                denied[word] |= 1 << bit;
            } else {
                denied[word] &= !(1 << bit);
            }
        };
        if config.deny_privileged_ports {
            (1..1024).for_each(|p| set(p, true));
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
        if let Some(limiter) = &self.limiter {
            limiter.allow(ip, now)?;
        }
        Ok(())
    }
}

/// IPv4-mapped IPv6 sources are judged as the IPv4 addresses they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Sources no real peer has: replies would go to many hosts or to none.
fn is_bad_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    }
}

/// Time since the policy was made, in sixteenths of a microsecond: fine
/// enough for intervals of rates up to millions per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(u64);

/// Ticks per second.
const TICKS_PER_SEC: f64 = 16e6;

impl Tick {
    fn from_duration(d: Duration) -> Tick {
        Tick((d.as_nanos() * 16 / 1000) as u64)
    }

    /// A tick `d` after this one (for tests and simulations).
    pub fn after(self, d: Duration) -> Tick {
        Tick(self.0 + Tick::from_duration(d).0)
    }
}

/// Rate limiting by GCRA (the "virtual scheduling" form of a token bucket):
/// each bucket is one word holding a 16-bit key tag and the 48-bit theoretical
/// arrival time in ticks (wrapping every 203 days, which the arithmetic
/// below tolerates), updated by compare-and-swap. No lock, no
/// allocation after start, and a fixed table whatever the number of sources.
/// Buckets are 4-way set associative; a new source takes the set's entry that
/// is idle longest, so a flood of sources evicts only each other (an evicted
/// source restarts with a full burst: the table errs towards answering).
#[derive(Debug)]
struct Limiter {
    table: Box<[AtomicU64]>,
    set_mask: usize,
    interval: u64,
    tolerance: u64,
    v4_mask: u32,
    v6_mask: u128,
    include_loopback: bool,
    hasher: std::collections::hash_map::RandomState,
    total: Option<TotalCap>,
    exempt: Box<[Prefix]>,
}

const WAYS: usize = 4;
const TAT_BITS: u32 = 48;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;
/// Largest interval or tolerance: a quarter of the circle, so "ahead" and
/// "behind" can never be confused.
const MAX_SPAN: u64 = 1 << 46;
/// Largest table: 2^26 buckets, 512 MiB.
pub const MAX_TABLE: usize = 1 << 26;

impl Limiter {
    fn new(config: &RateLimit) -> Limiter {
        let size = config.table_size.clamp(WAYS, MAX_TABLE).next_power_of_two();
        let interval =
            (TICKS_PER_SEC / config.rate.max(1e-3)).round().clamp(1.0, MAX_SPAN as f64) as u64;
        Limiter {
            table: (0..size).map(|_| AtomicU64::new(0)).collect(),
            set_mask: size / WAYS - 1,
            interval,
            // A full bucket admits `burst` at once: burst - 1 intervals of slack.
            tolerance: interval.saturating_mul(u64::from(config.burst.max(1) - 1)).min(MAX_SPAN),
            v4_mask: u32::MAX.checked_shl(32 - u32::from(config.v4_prefix.min(32))).unwrap_or(0),
            v6_mask: u128::MAX.checked_shl(128 - u32::from(config.v6_prefix.min(128))).unwrap_or(0),
            include_loopback: config.include_loopback,
            hasher: Default::default(),
            total: config.total.map(TotalCap::new),
            exempt: config.exempt.clone().into_boxed_slice(),
        }
    }

    /// How far `tat` lies ahead of `now` (0 if behind), on the 48-bit circle.
    /// A legitimate TAT is never more than `tolerance + interval` ahead, so
    /// anything further is a bucket idle long enough for the clock to wrap: it
    /// counts as fresh.
    fn ahead(&self, tat: u64, now: u64) -> u64 {
        let diff = tat.wrapping_sub(now) & TAT_MASK;
        if diff > self.tolerance + self.interval {
            0
        } else {
            diff
        }
    }

    /// The per-prefix bucket first, so a source over its own limit spends
    /// nothing of the total; then the total cap.
    fn allow(&self, ip: IpAddr, now: Tick) -> Result<(), Refusal> {
        if (ip.is_loopback() && !self.include_loopback)
            || self.exempt.iter().any(|p| p.contains(ip))
        {
            return Ok(());
        }
        if !self.allow_prefix(ip, now) {
            return Err(Refusal::RateLimited);
        }
        match &self.total {
            Some(total) if !total.allow(now) => Err(Refusal::TotalLimited),
            _ => Ok(()),
        }
    }

    fn allow_prefix(&self, ip: IpAddr, now: Tick) -> bool {
        let mut h = self.hasher.build_hasher();
        match ip {
            IpAddr::V4(v4) => h.write_u32(u32::from(v4) & self.v4_mask),
            IpAddr::V6(v6) => h.write_u128(u128::from(v6) & self.v6_mask),
        }
        let hash = h.finish();
        // Tag 0 marks an empty entry, so real tags are never 0.
        let tag = (hash >> TAT_BITS).max(1);
        let set = ((hash as usize) & self.set_mask) * WAYS;
        let ways = &self.table[set..set + WAYS];
        let now = now.0 & TAT_MASK;

        // Our bucket if present, else the entry idle longest (least ahead).
        let mut slot = 0;
        let mut least = u64::MAX;
        for (i, entry) in ways.iter().enumerate() {
            let word = entry.load(Relaxed);
            if word >> TAT_BITS == tag {
                return self.update(entry, word, tag, now);
            }
            let ahead = if word == 0 { 0 } else { self.ahead(word & TAT_MASK, now) };
            if ahead < least {
                least = ahead;
                slot = i;
            }
        }
        // Losing this race to another worker only means one extra reply.
        ways[slot].store((tag << TAT_BITS) | ((now + self.interval) & TAT_MASK), Relaxed);
        true
    }

    fn update(&self, entry: &AtomicU64, mut word: u64, tag: u64, now: u64) -> bool {
        loop {
            let ahead = self.ahead(word & TAT_MASK, now);
            if ahead > self.tolerance {
                return false;
            }
            let next = (tag << TAT_BITS) | ((now + ahead + self.interval) & TAT_MASK);
            match entry.compare_exchange_weak(word, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(current) if current >> TAT_BITS == tag => word = current,
                // Evicted meanwhile by another source: treat as a fresh bucket.
                Err(_) => return true,
            }
        }
    }
}

/// The total cap: one GCRA bucket for every limited source together, a
/// single word (the theoretical arrival time in full 64-bit ticks) updated by
/// compare-and-swap, so it stays lock-free when all workers hit it at once.
#[derive(Debug)]
struct TotalCap {
    tat: AtomicU64,
    interval: u64,
    tolerance: u64,
}

impl TotalCap {
    fn new(rate: f64) -> TotalCap {
        let interval = (TICKS_PER_SEC / rate.max(1e-3)).round().clamp(1.0, MAX_SPAN as f64) as u64;
        // A burst of one second's worth, at least one reply (NaN and negative
        // rates cast to 0: the library takes any f64, the CLI only sane ones).
        let burst = (rate.ceil().min(f64::from(u32::MAX)) as u64).max(1);
        TotalCap { tat: AtomicU64::new(0), interval, tolerance: interval.saturating_mul(burst - 1) }
    }

    fn allow(&self, now: Tick) -> bool {
        let now = now.0;
        let mut tat = self.tat.load(Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(tat, start + self.interval, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

/// An address prefix such as `192.0.2.0/24` or `2001:db8::/32` (a bare
/// address is a single host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    bits: u8,
}

impl Prefix {
    /// Whether `ip` lies in this prefix (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("{s:?} is not an address prefix such as 192.0.2.0/24 or 2001:db8::/32");
        let (addr, bits) = match s.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (s, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b.parse::<u8>().ok().filter(|&b| b <= max).ok_or_else(bad)?,
        };
        Ok(Prefix { addr, bits })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn prefixes_parse_and_match() {
        let p: Prefix = "192.0.2.0/24".parse().unwrap();
        assert!(p.contains("192.0.2.77".parse().unwrap()));
        assert!(p.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        let host: Prefix = "2001:db8::1".parse().unwrap();
        assert_eq!(host.to_string(), "2001:db8::1/128");
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Prefix>().unwrap().contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "host/8", "10.0.0.0/x", "10.0.0.0/"] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
    }
}
