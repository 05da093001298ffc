//! Rate limits: the per-source-prefix GCRA table and the total cap on
//! limited replies, both lock-free, fixed in size, and allocation-free per
//! datagram. [`crate::policy`] asks them last, after the cheap checks.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Which limit a datagram is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Over {
    /// Its source prefix's own rate.
    Prefix,
    /// The total cap on limited replies.
    Total,
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

/// IPv4-mapped IPv6 sources are judged as the IPv4 addresses they are.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Time since the policy was made, in sixteenths of a microsecond: fine
/// enough for intervals of rates up to millions per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(u64);

/// Ticks per second.
const TICKS_PER_SEC: f64 = 16e6;

impl Tick {
    pub(crate) fn from_duration(d: Duration) -> Tick {
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
pub(crate) struct Limiter {
    pub(crate) table: Box<[AtomicU64]>,
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
    pub(crate) fn new(config: &RateLimit) -> Limiter {
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
    pub(crate) fn allow(&self, ip: IpAddr, now: Tick) -> Result<(), Over> {
        if (ip.is_loopback() && !self.include_loopback)
            || self.exempt.iter().any(|p| p.contains(ip))
        {
            return Ok(());
        }
        if !self.allow_prefix(ip, now) {
            return Err(Over::Prefix);
        }
        match &self.total {
            Some(total) if !total.allow(now) => Err(Over::Total),
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
