//! The one road from request to reply, `server::reply_to`, under any configuration and
//! any sequence of datagrams and time gaps: it never panics, never amplifies (a reply is
//! the request transformed, never longer), leaves a refused request untouched, refuses
//! exactly what a plain model of the fixed rules refuses (size, ports, sources, loops),
//! and rate-limits one source as GCRA promises (see `OneSource`).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shout::policy::{Policy, Refusal, REFLECTOR_PORTS};
use shout::server::reply_to;
use shout::transform::{Envelope, Responder};
use shout::{Mode, PolicyConfig, RateLimit};

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    datagrams: Vec<Datagram>,
}

#[derive(Arbitrary, Debug)]
struct Config {
    echo: bool,
    max_datagram: u32,
    deny_privileged_ports: bool,
    reflector_ports: bool,
    deny_ports: Vec<u16>,
    allow_ports: Vec<u16>,
    deny_bad_sources: bool,
    rate_limit: Option<Limit>,
    /// The socket the datagrams arrive on.
    local: Addr,
    /// The server's other sockets (`Policy::set_own_addrs`).
    others: Vec<Addr>,
}

#[derive(Arbitrary, Debug)]
struct Limit {
    /// Raw bits: NaN, infinities, negatives and subnormals included.
    rate: f64,
    burst: u32,
    v4_prefix: u8,
    v6_prefix: u8,
    /// Bounded so the table stays small.
    table_size: u16,
    include_loopback: bool,
    /// The total cap (`--rate-limit-total`), raw bits too.
    total: Option<f64>,
}

#[derive(Arbitrary, Debug)]
struct Datagram {
    src: Addr,
    /// The address it was sent to, as IP_PKTINFO reports it on a wildcard socket.
    dst: Option<Ip>,
    /// Time since the previous datagram.
    after: Gap,
    payload: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Gap {
    Micros(u32),
    /// Long enough to wrap the limiter's 48-bit clock (203 days).
    Days(u8),
}

impl Gap {
    fn micros(&self) -> u64 {
        match *self {
            Gap::Micros(us) => u64::from(us),
            Gap::Days(d) => u64::from(d) * 86_400 * 1_000_000,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Addr {
    ip: Ip,
    port: Port,
}

#[derive(Arbitrary, Debug)]
enum Port {
    /// The interesting ones: 0, privileged, reflectors, the local port.
    Small(u8),
    Reflector(u8),
    Any(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
    /// `::ffff:a.b.c.d`, judged as the IPv4 address.
    Mapped([u8; 4]),
    Loopback4,
    Loopback6,
    Unspecified4,
    Unspecified6,
    Broadcast,
    /// One of a few addresses, so sources repeat and buckets fill.
    Few(u8),
}

impl Ip {
    fn get(self) -> IpAddr {
        match self {
            Ip::V4(b) => Ipv4Addr::from(b).into(),
            Ip::V6(b) => Ipv6Addr::from(b).into(),
            Ip::Mapped(b) => Ipv4Addr::from(b).to_ipv6_mapped().into(),
            Ip::Loopback4 => Ipv4Addr::LOCALHOST.into(),
            Ip::Loopback6 => Ipv6Addr::LOCALHOST.into(),
            Ip::Unspecified4 => Ipv4Addr::UNSPECIFIED.into(),
            Ip::Unspecified6 => Ipv6Addr::UNSPECIFIED.into(),
            Ip::Broadcast => Ipv4Addr::BROADCAST.into(),
            Ip::Few(n) => match n % 4 {
                0 => Ipv4Addr::new(192, 0, 2, 1).into(),
                1 => Ipv4Addr::new(192, 0, 2, 2).into(),
                2 => "2001:db8::1".parse::<Ipv6Addr>().expect("literal").into(),
                _ => "2001:db8::2".parse::<Ipv6Addr>().expect("literal").into(),
            },
        }
    }
}

impl Addr {
    fn get(&self) -> SocketAddr {
        let port = match self.port {
            Port::Small(p) => u16::from(p) * 5,
            Port::Reflector(i) => REFLECTOR_PORTS[usize::from(i) % REFLECTOR_PORTS.len()],
            Port::Any(p) => p,
        };
        SocketAddr::new(self.ip.get(), port)
    }
}

impl Config {
    fn policy(&self) -> PolicyConfig {
        let mut deny_ports = self.deny_ports.clone();
        if self.reflector_ports {
            deny_ports.extend(REFLECTOR_PORTS);
        }
        PolicyConfig {
            deny_privileged_ports: self.deny_privileged_ports,
            deny_ports,
            allow_ports: self.allow_ports.clone(),
            deny_bad_sources: self.deny_bad_sources,
            rate_limit: self.rate_limit.as_ref().map(|l| RateLimit {
                rate: l.rate,
                burst: l.burst,
                v4_prefix: l.v4_prefix,
                v6_prefix: l.v6_prefix,
                table_size: usize::from(l.table_size),
                include_loopback: l.include_loopback,
                total: l.total,
                exempt: Vec::new(),
            }),
        }
    }

    fn mode(&self) -> Mode {
        if self.echo {
            Mode::Echo
        } else {
            Mode::Upper
        }
    }
}

/// What the rules that do not depend on time say, in the documented order
/// (docs/SECURITY.md); `None` where only the rate limit can still refuse.
fn model(
    config: &Config,
    src: SocketAddr,
    local: SocketAddr,
    others: &[SocketAddr],
    dst: Option<IpAddr>,
    len: usize,
) -> Option<Refusal> {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if len > config.max_datagram as usize {
        return Some(Refusal::Oversize);
    }
    let port = src.port();
    if port == 0 {
        return Some(Refusal::PortZero);
    }
    let denied = (config.deny_privileged_ports && port < 1024)
        || config.deny_ports.contains(&port)
        || (config.reflector_ports && REFLECTOR_PORTS.contains(&port));
    if denied && !config.allow_ports.contains(&port) {
        return Some(Refusal::DeniedPort);
    }
    let ip = canonical(src.ip());
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    };
    if config.deny_bad_sources && bad {
        return Some(Refusal::BadSource);
    }
    // From one of our own sockets: same port, and our address (any of ours, for a
    // wildcard socket: loopback or the address this datagram was sent to).
    let ours = |a: SocketAddr| {
        a.port() == port
            && (ip == canonical(a.ip())
                || (a.ip().is_unspecified()
                    && (ip.is_loopback() || dst.map(canonical) == Some(ip))))
    };
    if std::iter::once(local).chain(others.iter().copied()).any(ours) {
        return Some(Refusal::SelfLoop);
    }
    None
}

fuzz_target!(|input: Input| {
    let config = &input.config;
    let mode = config.mode();
    let mut policy = Policy::new(&config.policy(), config.max_datagram as usize);
    let mut responder = Responder::new(mode);
    let local = config.local.get();
    let others: Vec<SocketAddr> = config.others.iter().map(Addr::get).collect();
    if !others.is_empty() {
        policy.set_own_addrs(&others);
    }
    let start = policy.now();
    let mut elapsed_us = 0u64;
    let mut one_source = OneSource::default();
    for d in &input.datagrams {
        elapsed_us += d.after.micros();
        let now = start.after(Duration::from_micros(elapsed_us));
        let src = d.src.get();
        let dst = d.dst.map(Ip::get);
        let request = d.payload.clone();
        let mut payload = d.payload.clone();
        let expected = model(config, src, local, &others, dst, request.len());
        let envelope = Envelope { dst, ..Envelope::from(src) };
        let verdict = reply_to(&policy, &mut responder, &envelope, local, &mut payload, now);
        let answered = verdict.is_ok();
        match verdict {
            Ok(reply) => {
                assert!(reply.len() <= request.len(), "reply longer than its request");
                assert!(mode.is_reply(&request, reply), "reply is not the request transformed");
                assert_eq!(expected, None, "answered what the rules refuse: {src} -> {local}");
            }
            Err(reason) => {
                assert_eq!(payload, request, "a refused request must be left untouched");
                match expected {
                    Some(want) => assert_eq!(reason, want, "{src} -> {local} ({dst:?})"),
                    None => {
                        let limit =
                            config.rate_limit.as_ref().expect("only a limiter refuses here");
                        let total = limit.total.is_some();
                        assert!(
                            reason == Refusal::RateLimited
                                || (total && reason == Refusal::TotalLimited),
                            "{reason} for {src} -> {local} ({dst:?})"
                        );
                        let ip = src.ip().to_canonical();
                        assert!(
                            limit.include_loopback || !ip.is_loopback(),
                            "loopback {ip} rate limited without --limit-loopback"
                        );
                    }
                }
            }
        }
        if expected.is_none() {
            one_source.check(config, src, elapsed_us * TICKS_PER_US, answered);
        }
    }
});

/// `Tick` is a sixteenth of a microsecond (policy.rs); the limiter's arithmetic below
/// is in ticks.
const TICKS_PER_US: u64 = 16;
/// The limiter's cap on an interval or tolerance (policy.rs, `MAX_SPAN`).
const MAX_SPAN: u64 = 1 << 46;

/// GCRA's promise, checked for inputs whose rate-limited datagrams all come from one
/// address (one bucket, never evicted): no more than `burst` at once and one more per
/// interval after that; and a source quiet long enough for its bucket to refill is
/// answered.
#[derive(Default)]
struct OneSource {
    ip: Option<IpAddr>,
    mixed: bool,
    first: u64,
    last: u64,
    admitted: u64,
}

impl OneSource {
    fn check(&mut self, config: &Config, src: SocketAddr, at: u64, admitted: bool) {
        let Some(limit) = &config.rate_limit else { return };
        let ip = src.ip().to_canonical();
        if ip.is_loopback() && !limit.include_loopback {
            return; // exempt: never reaches the table
        }
        let previous = match self.ip {
            None => {
                (self.ip, self.first) = (Some(ip), at);
                None
            }
            Some(seen) if seen != ip => {
                self.mixed = true;
                return;
            }
            Some(_) if self.mixed => return,
            Some(_) => Some(self.last),
        };
        self.last = at;
        self.admitted += u64::from(admitted);
        // The limiter's own arithmetic (policy.rs, Limiter::new), in ticks.
        let interval = (1e6 * TICKS_PER_US as f64 / limit.rate.max(1e-3))
            .round()
            .clamp(1.0, MAX_SPAN as f64) as u64;
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1) - 1)).min(MAX_SPAN);
        let most = 1 + (tolerance + (at - self.first)) / interval;
        assert!(
            self.admitted <= most,
            "{ip} got {} replies in {} ticks; rate {} burst {} allow at most {most}",
            self.admitted,
            at - self.first,
            limit.rate,
            limit.burst
        );
        // The limiter's clock wraps every 2^48 ticks (203 days); within half of that, a
        // bucket idle for burst intervals is full again.
        if let Some(previous) = previous {
            let idle = at - previous;
            // The total cap may refuse a refilled source: its own bucket promises nothing then.
            assert!(
                admitted || idle < tolerance + interval || idle >= 1 << 47 || limit.total.is_some(),
                "{ip} refused after {idle} ticks idle; rate {} burst {} refill in {}",
                limit.rate,
                limit.burst,
                tolerance + interval
            );
        }
    }
}
