//! The config's fields, each checked while the parser is on it (so that its
//! error has the field's own line, column and path), the checks the command
//! line shares, and finding a node's place again for errors found later.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use super::{ConfigError, TargetEntry, MAX_BUCKETS, MAX_TARGETS, RESERVED_LABELS};
use super::{INTERVAL_RANGE, MAX_SIZE, RESOLVE_RANGE, TIMEOUT_RANGE};
use crate::probe::Protocol;
use crate::stamp::STAMP_PORT;

/// Where a field is, relative to the document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(super) fn show_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out += k,
            Seg::Key(k) => {
                out.push('.');
                out += k;
            }
            Seg::Index(i) => out += &format!("[{i}]"),
        }
    }
    out
}

/// The flag that sets a config field, for errors about addresses given as
/// arguments (`--stamp-key-file`, not `key_file`).
pub(super) fn flag_of(field: &'static str) -> &'static str {
    match field {
        "key_file" => "--stamp-key-file",
        "size" => "--size",
        "protocol" => "--protocol",
        "interval" => "--interval",
        "timeout" => "--timeout",
        "dscp" => "--dscp",
        "ttl" => "--ttl",
        other => other,
    }
}

/// The default port of each protocol: STAMP's registered port, `shout server`'s
/// default for upper, the echo service's (RFC 862) for echo.
pub fn default_port(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Stamp => STAMP_PORT,
        Protocol::Upper => 8080,
        Protocol::Echo => 7,
    }
}

/// `HOST`, `HOST:PORT`, `IPV6`, `[IPV6]` or `[IPV6]:PORT` as host and port.
///
/// ```
/// use shout::probe::{config::split_address, Protocol};
/// assert_eq!(split_address("192.0.2.1", Protocol::Stamp), Ok(("192.0.2.1".into(), 862)));
/// assert_eq!(split_address("[2001:db8::1]:9", Protocol::Stamp), Ok(("2001:db8::1".into(), 9)));
/// assert_eq!(split_address("2001:db8::1", Protocol::Echo), Ok(("2001:db8::1".into(), 7)));
/// assert!(split_address("host:99999", Protocol::Stamp).is_err());
/// ```
pub fn split_address(address: &str, protocol: Protocol) -> Result<(String, u16), String> {
    let bad = |why: &str| {
        format!("{address:?} is not an address: {why} (expected HOST, HOST:PORT or [IPV6]:PORT)")
    };
    let address = address.trim();
    let port = |text: &str| match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad("the port is not from 1 to 65535")),
        Ok(p) => Ok(p),
    };
    if address.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Ok((ip.to_string(), default_port(protocol)));
    }
    if let Some(rest) = address.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']').ok_or_else(|| bad("no closing ]"))?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address in [ ]"))?;
        let port = match tail {
            "" => default_port(protocol),
            _ => port(tail.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?)?,
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, p)) => (host, port(p)?),
        None => (address, default_port(protocol)),
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.is_empty() || host.len() > 253 || !host.chars().all(valid) {
        return Err(bad("not a host name or IP address"));
    }
    Ok((host.to_string(), port))
}

/// A DSCP by name (`ef`, `af11`..`af43`, `cs0`..`cs7`, `be`/`default`, `va`,
/// `le`) or number 0 to 63.
///
/// ```
/// use shout::probe::config::parse_dscp;
/// assert_eq!(parse_dscp("EF"), Ok(46));
/// assert_eq!(parse_dscp("af41"), Ok(34));
/// assert_eq!(parse_dscp("cs1"), Ok(8));
/// assert_eq!(parse_dscp("63"), Ok(63));
/// assert!(parse_dscp("64").is_err());
/// assert!(parse_dscp("af44").is_err());
/// ```
pub fn parse_dscp(text: &str) -> Result<u8, String> {
    let name = text.trim().to_ascii_lowercase();
    let bad = || {
        format!("{text:?} is not a DSCP: use a name (ef, af11 to af43, cs0 to cs7, be, va, le) or 0 to 63")
    };
    if let Ok(n) = name.parse::<u8>() {
        return if n <= 63 { Ok(n) } else { Err(bad()) };
    }
    let digit = |i: usize| name.as_bytes().get(i).map(|b| b.wrapping_sub(b'0'));
    match name.as_str() {
        "ef" => Ok(46),
        "va" => Ok(44),
        "le" => Ok(1),
        "be" | "default" | "df" => Ok(0),
        _ if name.len() == 3 && name.starts_with("cs") => match digit(2) {
            Some(d @ 0..=7) => Ok(d * 8),
            _ => Err(bad()),
        },
        _ if name.len() == 4 && name.starts_with("af") => match (digit(2), digit(3)) {
            (Some(class @ 1..=4), Some(drop @ 1..=3)) => Ok(class * 8 + drop * 2),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A duration within `range` (`500ms`, `1.5s`, or a number of seconds).
pub fn duration_in(text: &str, range: (Duration, Duration)) -> Result<Duration, String> {
    let d = crate::parse_duration(text)?;
    if (range.0..=range.1).contains(&d) {
        Ok(d)
    } else {
        Err(format!("{text} is out of range: use {} to {}", show(range.0), show(range.1)))
    }
}

fn show(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

/// A Prometheus label name the agent does not use itself.
pub fn check_label(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{name:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
    }
    if name.starts_with("__") {
        return Err(format!("{name:?}: label names starting with __ are Prometheus's own"));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "{name:?} is a label the agent sets itself ({})",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// Checks histogram bucket bounds; an error says which bound (its index,
/// where one bound is to blame) and why.
pub(super) fn check_buckets(buckets: &[f64]) -> Result<(), (Option<usize>, String)> {
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        return Err((
            None,
            format!("give 1 to {MAX_BUCKETS} bucket bounds, not {}", buckets.len()),
        ));
    }
    if let Some(i) = buckets.iter().position(|b| !b.is_finite() || *b < 1e-9 || *b > 3600.0) {
        let b = buckets[i];
        return Err((
            Some(i),
            format!("{b} is no bucket bound: bounds are seconds from 1e-9 (1 ns) to 3600"),
        ));
    }
    // The agent counts in whole nanoseconds: bounds must differ there too.
    let ns = |b: f64| (b * 1e9).round();
    if let Some(i) = buckets.windows(2).position(|w| ns(w[0]) >= ns(w[1])) {
        let (a, b) = (buckets[i], buckets[i + 1]);
        let why = if a < b { " to the nanosecond" } else { "" };
        return Err((Some(i + 1), format!("bucket bounds must increase{why}: {b} follows {a}")));
    }
    Ok(())
}

/// A scalar as the document has it.
enum Scalar<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl Scalar<'_> {
    /// As written (numbers as their decimal text).
    fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.to_string(),
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Reads a scalar and checks it while the parser is on it, so that an error
/// has the scalar's own line, column and path.
struct Check<T>(fn(Scalar<'_>) -> Result<T, String>);

impl<'de, T> Visitor<'de> for Check<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(Scalar::Str(v)).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.0)(Scalar::Int(v.into())).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(Scalar::Int(v.into())).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(Scalar::Float(v)).map_err(E::custom)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        (self.0)(Scalar::Bool(v)).map_err(E::custom)
    }
}

impl<'de, T> DeserializeSeed<'de> for Check<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

fn check<'de, D: Deserializer<'de>, T>(
    d: D,
    f: fn(Scalar<'_>) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(Check(f)).map(Some)
}

pub(super) fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    check(d, |v| duration_in(&v.text(), INTERVAL_RANGE))
}

pub(super) fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    check(d, |v| duration_in(&v.text(), TIMEOUT_RANGE))
}

pub(super) fn resolve_every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    check(d, |v| duration_in(&v.text(), RESOLVE_RANGE))
}

pub(super) fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Protocol>, D::Error> {
    check(d, |v| match v {
        Scalar::Str("stamp") => Ok(Protocol::Stamp),
        Scalar::Str("upper") => Ok(Protocol::Upper),
        Scalar::Str("echo") => Ok(Protocol::Echo),
        other => Err(format!("unknown protocol {:?}: use stamp, upper or echo", other.text())),
    })
}

pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    check(d, |v| match v {
        Scalar::Int(n) if (1..=MAX_SIZE as i128).contains(&n) => Ok(n as usize),
        Scalar::Int(n) if n > 0 => {
            Err(format!("{n} bytes is more than a UDP datagram carries over IPv4 ({MAX_SIZE})"))
        }
        other => Err(format!("{} is not a size in bytes", other.text())),
    })
}

pub(super) fn dscp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    check(d, |v| match v {
        Scalar::Str(_) | Scalar::Int(_) => parse_dscp(&v.text()),
        other => Err(format!(
            "{} is not a DSCP: use a name (ef, af41, cs1, ...) or 0 to 63",
            other.text()
        )),
    })
}

pub(super) fn ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    check(d, |v| match v {
        Scalar::Int(n @ 1..=255) => Ok(n as u8),
        other => Err(format!("{} is not a TTL: use 1 to 255", other.text())),
    })
}

/// Labels: valid names, scalar values (numbers and booleans as written).
pub(super) fn labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Labels;
    impl<'de> Visitor<'de> for Labels {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of label names to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            let name = Check(|v| match v {
                Scalar::Str(name) => check_label(name).map(|()| name.to_string()),
                other => Err(format!("{} is not a Prometheus label name", other.text())),
            });
            while let Some(name) = map.next_key_seed(name.clone())? {
                let value = map.next_value_seed(Check(|v| Ok(v.text())))?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Labels).map(Some)
}

impl<T> Clone for Check<T> {
    fn clone(&self) -> Self {
        Check(self.0)
    }
}

/// The `targets` list, refused as soon as it passes [`MAX_TARGETS`] (at that
/// entry's line), before more memory is spent on it.
pub(super) fn bounded<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TargetEntry>, D::Error> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<TargetEntry>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of targets")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while out.len() < MAX_TARGETS {
                match seq.next_element::<TargetEntry>()? {
                    Some(entry) => out.push(entry),
                    None => return Ok(out),
                }
            }
            // One more is refused while the parser is on it: the error has its line.
            let more = Check::<()>(|_| Err(format!("more than {MAX_TARGETS} targets")));
            seq.next_element_seed(TooMany(more))?;
            Ok(out)
        }
    }
    /// Fails on whatever the entry is, map or scalar.
    struct TooMany(Check<()>);
    impl<'de> DeserializeSeed<'de> for TooMany {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for TooMany {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("no more targets")
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(de::Error::custom(format!("more than {MAX_TARGETS} targets")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            self.0.visit_str(v)
        }
    }
    d.deserialize_seq(Bounded)
}

/// The parser's error, as `FILE:LINE:COLUMN: FIELD: message`.
pub(super) fn yaml_error(file: &Path, err: &yaml_serde::Error) -> ConfigError {
    let at = err.location().map(|l| (l.line(), l.column()));
    let mut message = err.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    // The path the parser puts first (`targets[0].size: ...`) becomes the field.
    let (field, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && path != "." => {
            (Some(path.to_string()), rest.to_string())
        }
        _ => (None, message),
    };
    ConfigError { file: file.to_owned(), at, field, message }
}

/// Where the node at `path` starts in `text`, found by reading the document
/// again up to that node (only on the way to an error).
pub(super) fn locate(text: &str, path: &[Seg<'_>]) -> Option<(usize, usize)> {
    struct Here;
    impl fmt::Display for Here {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("here")
        }
    }
    struct Find<'p, 'a>(&'p [Seg<'a>]);
    impl<'de> DeserializeSeed<'de> for Find<'_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Find<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("anything")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let Some((Seg::Key(want), rest)) = self.0.split_first() else {
                return Err(de::Error::custom(Here));
            };
            while let Some(key) = map.next_key::<String>()? {
                if key == *want {
                    return map.next_value_seed(Find(rest));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let Some((Seg::Index(want), rest)) = self.0.split_first() else {
                return Err(de::Error::custom(Here));
            };
            for _ in 0..*want {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Ok(());
                }
            }
            seq.next_element_seed(Find(rest)).map(|_| ())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Err(E::custom(Here))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Err(E::custom(Here))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Err(E::custom(Here))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Err(E::custom(Here))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Err(E::custom(Here))
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Err(E::custom(Here))
        }
    }
    let err = Find(path).deserialize(yaml_serde::Deserializer::from_str(text)).err()?;
    err.location().map(|l| (l.line(), l.column()))
}
