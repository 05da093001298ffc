//! The probe's configuration: a YAML file (docs/PROBE.md) or addresses from the
//! command line, checked, its defaults inherited and its mesh expanded, into one
//! [`Target`] per probed address. Names are not resolved here (see
//! [`resolve`](super::resolve)): a target becomes a [`TargetSpec`] once its host
//! has an address.
//!
//! Every error names the file, the line and column, and the field:
//!
//! ```
//! use std::path::Path;
//! use shout::probe::config;
//!
//! let text = "targets:\n  - address: 192.0.2.1\n    interval: 1ms\n";
//! let err = config::parse(text, Path::new("probe.yaml")).unwrap_err();
//! assert!(err.to_string().starts_with("probe.yaml:3:15: targets[0].interval: "), "{err}");
//!
//! let text = "defaults: {interval: 500ms}\ntargets:\n  - address: 192.0.2.1\n";
//! let config = config::parse(text, Path::new("probe.yaml")).unwrap();
//! assert_eq!(config.targets[0].interval, std::time::Duration::from_millis(500));
//! assert_eq!(config.targets[0].port, 862);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Protocol, TargetSpec};
use crate::stamp::key::read_key_file;
use crate::stamp::STAMP_PORT;

pub use super::engine::{DEFAULT_BUCKETS, MAX_BUCKETS, MAX_TARGETS};
/// The largest config file read: 100,000 targets with labels fit in far less.
pub const MAX_FILE: u64 = 64 << 20;
/// Probe intervals: from 10 ms to an hour.
pub const INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(3600));
/// How long a probe may wait for its answer: from 1 ms to a minute.
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(60));
/// How often host names are resolved again: from 1 s to a day.
pub const RESOLVE_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// Largest UDP payload over IPv4, and so the largest probe.
pub const MAX_SIZE: usize = 65_507;
/// The smallest upper/echo probe: `SB`, a sequence number and a send time
/// (`shout bench`'s numbered payload, which uppercasing leaves unchanged).
pub const MIN_NUMBERED: usize = 28;
/// The smallest STAMP test packets, unauthenticated and authenticated
/// (RFC 8762 §4.2); larger ones carry an Extra Padding TLV of 4 octets or more.
pub const MIN_STAMP: (usize, usize) = (44, 112);
/// Label names the agent itself puts on series.
pub const RESERVED_LABELS: [&str; 4] = ["target", "direction", "le", "quantile"];

/// A whole configuration, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Every target, in file order (targets, then mesh members).
    pub targets: Vec<Target>,
    /// How often host names are resolved again.
    pub resolve_every: Duration,
    /// Histogram bucket bounds in seconds, increasing.
    pub buckets: Vec<f64>,
}

/// One target before its host name is resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The `target` label: the address as written.
    pub name: String,
    /// The host as written, without port or brackets.
    pub host: String,
    /// The UDP port.
    pub port: u16,
    /// Whether it came from the mesh: then it is skipped where it is this host.
    pub mesh: bool,
    /// The kind of probe.
    pub protocol: Protocol,
    /// Time between two probes.
    pub interval: Duration,
    /// How long a probe waits for its answer.
    pub timeout: Duration,
    /// Bytes of UDP payload per probe.
    pub size: usize,
    /// DSCP codepoint.
    pub dscp: Option<u8>,
    /// TTL or hop limit.
    pub ttl: Option<u8>,
    /// STAMP session identifier.
    pub ssid: u16,
    /// STAMP HMAC key.
    pub key: Option<Vec<u8>>,
    /// Extra labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

impl Target {
    /// The host as an IP address, if it is one (then no name is resolved).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// This target probing `addr`.
    pub fn spec(&self, addr: SocketAddr) -> TargetSpec {
        TargetSpec {
            name: self.name.clone(),
            addr,
            protocol: self.protocol,
            interval: self.interval,
            timeout: self.timeout,
            size: self.size,
            dscp: self.dscp,
            ttl: self.ttl,
            ssid: self.ssid,
            key: self.key.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Why a configuration was refused: where, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    /// The file (`command line` for addresses given as arguments).
    pub file: PathBuf,
    /// Line and column (from 1), where the error has a place.
    pub at: Option<(usize, usize)>,
    /// The field, as a path (`targets[3].interval`), where there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn describe(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some((line, column)) = self.at {
            out += &format!(":{line}:{column}");
        }
        out += ": ";
        if let Some(field) = &self.field {
            out += field;
            out += ": ";
        }
        out + &self.message
    }

    fn whole(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError { file: file.to_owned(), at: None, field: None, message: message.into() }
    }
}

/// The per-target settings: the `defaults` block, or the quick flags of the
/// command line. Every one is optional; unset ones are inherited.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `stamp`, `upper` or `echo`.
    #[serde(default, deserialize_with = "protocol")]
    pub protocol: Option<Protocol>,
    /// Time between two probes.
    #[serde(default, deserialize_with = "interval")]
    pub interval: Option<Duration>,
    /// How long a probe waits for its answer.
    #[serde(default, deserialize_with = "timeout")]
    pub timeout: Option<Duration>,
    /// Bytes of UDP payload.
    #[serde(default, deserialize_with = "size")]
    pub size: Option<usize>,
    /// DSCP, by name or number.
    #[serde(default, deserialize_with = "dscp")]
    pub dscp: Option<u8>,
    /// TTL or hop limit, 1 to 255.
    #[serde(default, deserialize_with = "ttl")]
    pub ttl: Option<u8>,
    /// STAMP session identifier.
    #[serde(default)]
    pub ssid: Option<u16>,
    /// The HMAC key file of authenticated STAMP.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Extra Prometheus labels.
    #[serde(default, deserialize_with = "labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A `targets` entry or the `mesh` block: [`Settings`] and more, written out
/// because serde's `deny_unknown_fields` does not work through `flatten`.
macro_rules! with_settings {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($field: $ty,)*
            #[serde(default, deserialize_with = "protocol")]
            protocol: Option<Protocol>,
            #[serde(default, deserialize_with = "interval")]
            interval: Option<Duration>,
            #[serde(default, deserialize_with = "timeout")]
            timeout: Option<Duration>,
            #[serde(default, deserialize_with = "size")]
            size: Option<usize>,
            #[serde(default, deserialize_with = "dscp")]
            dscp: Option<u8>,
            #[serde(default, deserialize_with = "ttl")]
            ttl: Option<u8>,
            #[serde(default)]
            ssid: Option<u16>,
            #[serde(default)]
            key_file: Option<PathBuf>,
            #[serde(default, deserialize_with = "labels")]
            labels: Option<BTreeMap<String, String>>,
        }

        impl $name {
            fn settings(&self) -> Settings {
                Settings {
                    protocol: self.protocol,
                    interval: self.interval,
                    timeout: self.timeout,
                    size: self.size,
                    dscp: self.dscp,
                    ttl: self.ttl,
                    ssid: self.ssid,
                    key_file: self.key_file.clone(),
                    labels: self.labels.clone(),
                }
            }
        }
    };
}

with_settings! {
    /// One `targets` entry.
    struct TargetEntry {
        address: String,
    }
}

with_settings! {
    /// The `mesh` block.
    struct MeshEntry {
        members: Vec<String>,
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Settings,
    #[serde(default, deserialize_with = "bounded")]
    targets: Vec<TargetEntry>,
    #[serde(default)]
    mesh: Option<MeshEntry>,
    #[serde(default, deserialize_with = "resolve_every")]
    resolve_every: Option<Duration>,
    #[serde(default)]
    buckets: Option<Vec<f64>>,
}

/// Reads and checks the file at `path` (key files are read too).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read = || -> std::io::Result<String> {
        use std::io::Read;
        let file = std::fs::File::open(path)?;
        let mut text = String::new();
        // One byte over the bound tells a file at the bound from a larger one.
        file.take(MAX_FILE + 1).read_to_string(&mut text)?;
        Ok(text)
    };
    let text = read().map_err(|err| ConfigError::whole(path, format!("cannot read it: {err}")))?;
    if text.len() as u64 > MAX_FILE {
        return Err(ConfigError::whole(path, format!("larger than {MAX_FILE} bytes")));
    }
    parse(&text, path)
}

/// Checks a config file's text; `path` names it in errors and anchors
/// relative `key_file`s.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = File::deserialize(yaml_serde::Deserializer::from_str(text))
        .map_err(|err| yaml_error(path, &err))?;
    let fail = |at: &[Seg<'_>], message: String| {
        let place = locate(text, at);
        ConfigError { file: path.to_owned(), at: place, field: Some(show_path(at)), message }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut keys: HashMap<PathBuf, Vec<u8>> = HashMap::new();
    let mut all = Collect::default();
    let defaults_at =
        |field: &'static str| -> Vec<Seg<'static>> { vec![Seg::Key("defaults"), Seg::Key(field)] };
    for (i, entry) in file.targets.iter().enumerate() {
        let at = |field: &'static str| vec![Seg::Key("targets"), Seg::Index(i), Seg::Key(field)];
        let target = build(
            &entry.address,
            false,
            &entry.settings(),
            &file.defaults,
            dir,
            &mut keys,
            &|field: &'static str, own: bool| if own { at(field) } else { defaults_at(field) },
        )
        .map_err(|(at, message)| fail(&at, message))?;
        all.add(target, at("address")).map_err(|(at, m)| fail(&at, m))?;
    }
    if let Some(mesh) = &file.mesh {
        if mesh.members.is_empty() {
            return Err(fail(
                &[Seg::Key("mesh"), Seg::Key("members")],
                "a mesh needs members".into(),
            ));
        }
        for (i, member) in mesh.members.iter().enumerate() {
            let member_at = vec![Seg::Key("mesh"), Seg::Key("members"), Seg::Index(i)];
            let target = build(
                member,
                true,
                &mesh.settings(),
                &file.defaults,
                dir,
                &mut keys,
                &|field: &'static str, own: bool| {
                    if field == "address" {
                        member_at.clone()
                    } else if own {
                        vec![Seg::Key("mesh"), Seg::Key(field)]
                    } else {
                        defaults_at(field)
                    }
                },
            )
            .map_err(|(at, message)| fail(&at, message))?;
            all.add(target, member_at.clone()).map_err(|(at, m)| fail(&at, m))?;
            if all.targets.len() > MAX_TARGETS {
                return Err(fail(&member_at, format!("more than {MAX_TARGETS} targets")));
            }
        }
    }
    if all.targets.is_empty() {
        return Err(ConfigError::whole(
            path,
            "no targets: give `targets:` or `mesh: {members: [...]}`",
        ));
    }
    let targets = all.targets;
    let buckets = match file.buckets {
        None => DEFAULT_BUCKETS.to_vec(),
        Some(b) => check_buckets(&b).map(|()| b).map_err(|m| fail(&[Seg::Key("buckets")], m))?,
    };
    Ok(Config {
        targets,
        resolve_every: file.resolve_every.unwrap_or(Duration::from_secs(60)),
        buckets,
    })
}

/// The configuration of addresses given on the command line, with `settings`
/// from the quick flags; relative key files are relative to the working directory.
pub fn from_addresses(addresses: &[String], settings: &Settings) -> Result<Config, ConfigError> {
    let file = Path::new("command line");
    if addresses.len() > MAX_TARGETS {
        return Err(ConfigError::whole(file, format!("more than {MAX_TARGETS} targets")));
    }
    let mut keys = HashMap::new();
    let mut targets: Vec<Target> = Vec::new();
    for address in addresses {
        let target = build(
            address,
            false,
            settings,
            &Settings::default(),
            Path::new("."),
            &mut keys,
            &|field: &'static str, _| vec![Seg::Key(field)],
        )
        .map_err(|(at, message)| ConfigError {
            file: file.to_owned(),
            at: None,
            field: Some(show_path(&at)),
            message,
        })?;
        if targets.iter().any(|t| t.name == target.name) {
            return Err(ConfigError {
                file: file.to_owned(),
                at: None,
                field: Some("address".into()),
                message: format!("duplicate target {address}"),
            });
        }
        targets.push(target);
    }
    if targets.is_empty() {
        return Err(ConfigError::whole(file, "no targets: give addresses or --config FILE"));
    }
    Ok(Config {
        targets,
        resolve_every: Duration::from_secs(60),
        buckets: DEFAULT_BUCKETS.to_vec(),
    })
}

/// A target's labels, sorted.
type Labels = Vec<(String, String)>;
/// Where something is in the document.
type Place = Vec<Seg<'static>>;

/// The targets so far, and what makes two of them one.
#[derive(Default)]
struct Collect {
    targets: Vec<Target>,
    /// Host, port, protocol and labels: the same probe twice.
    probes: HashMap<(String, u16, Protocol, Labels), Place>,
    /// Name and labels: the same series twice.
    series: HashMap<(String, Labels), Place>,
}

impl Collect {
    fn add(
        &mut self,
        target: Target,
        at: Vec<Seg<'static>>,
    ) -> Result<(), (Vec<Seg<'static>>, String)> {
        let probe =
            (target.host.to_ascii_lowercase(), target.port, target.protocol, target.labels.clone());
        if let Some(first) = self.probes.get(&probe) {
            let message = format!(
                "duplicate target: {} is probed already by {}",
                target.name,
                show_path(first)
            );
            return Err((at, message));
        }
        let series = (target.name.clone(), target.labels.clone());
        if let Some(first) = self.series.get(&series) {
            let message = format!(
                "duplicate target: {} with the same labels is the same series as {}",
                target.name,
                show_path(first)
            );
            return Err((at, message));
        }
        self.probes.insert(probe, at.clone());
        self.series.insert(series, at);
        self.targets.push(target);
        Ok(())
    }
}

/// Where a field is, relative to the document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn show_path(path: &[Seg<'_>]) -> String {
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

/// One target from an address and its settings over the defaults; an error
/// names the field (`place(field, set_on_the_target_itself)`).
#[allow(clippy::type_complexity)]
fn build(
    address: &str,
    mesh: bool,
    own: &Settings,
    defaults: &Settings,
    dir: &Path,
    keys: &mut HashMap<PathBuf, Vec<u8>>,
    place: &dyn Fn(&'static str, bool) -> Vec<Seg<'static>>,
) -> Result<Target, (Vec<Seg<'static>>, String)> {
    macro_rules! pick {
        ($field:ident) => {
            match (&own.$field, &defaults.$field) {
                (Some(v), _) => (Some(v.clone()), true),
                (None, d) => (d.clone(), false),
            }
        };
    }
    let (protocol, _) = pick!(protocol);
    let protocol = protocol.unwrap_or(Protocol::Stamp);
    let (host, port) = split_address(address, protocol).map_err(|m| (place("address", true), m))?;
    let (key_file, key_own) = pick!(key_file);
    let key = match key_file {
        None => None,
        Some(_) if protocol != Protocol::Stamp => {
            return Err((
                place("key_file", key_own),
                "key_file is for protocol stamp (authenticated STAMP)".into(),
            ))
        }
        Some(file) => {
            let file = dir.join(file);
            if let Some(key) = keys.get(&file) {
                Some(key.clone())
            } else {
                let key = read_key_file(&file)
                    .map_err(|e| (place("key_file", key_own), e.to_string()))?;
                keys.insert(file, key.clone());
                Some(key)
            }
        }
    };
    let (size, size_own) = pick!(size);
    let min = match (protocol, key.is_some()) {
        (Protocol::Stamp, false) => MIN_STAMP.0,
        (Protocol::Stamp, true) => MIN_STAMP.1,
        _ => MIN_NUMBERED,
    };
    let size = match size {
        None if protocol == Protocol::Stamp => min,
        None => 64,
        Some(n) if n < min => {
            let what = match (protocol, key.is_some()) {
                (Protocol::Stamp, false) => "an unauthenticated STAMP test packet",
                (Protocol::Stamp, true) => "an authenticated STAMP test packet",
                _ => "an upper/echo probe (sequence number and send time)",
            };
            return Err((
                place("size", size_own),
                format!("{n} bytes is too small: {what} is at least {min}"),
            ));
        }
        Some(n) if protocol == Protocol::Stamp && n > min && n < min + 4 => {
            return Err((place("size", size_own), format!("{n} bytes cannot be built: STAMP pads in TLVs of at least 4 bytes, so use {min} or {} and up", min + 4)));
        }
        Some(n) => n,
    };
    let mut labels = defaults.labels.clone().unwrap_or_default();
    labels.extend(own.labels.clone().unwrap_or_default());
    Ok(Target {
        name: address.to_string(),
        host,
        port,
        mesh,
        protocol,
        interval: pick!(interval).0.unwrap_or(Duration::from_secs(1)),
        timeout: pick!(timeout).0.unwrap_or(Duration::from_secs(2)),
        size,
        dscp: pick!(dscp).0,
        ttl: pick!(ttl).0,
        ssid: pick!(ssid).0.unwrap_or(0),
        key,
        labels: labels.into_iter().collect(),
    })
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

fn check_buckets(buckets: &[f64]) -> Result<(), String> {
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        return Err(format!("give 1 to {MAX_BUCKETS} bucket bounds"));
    }
    if buckets.iter().any(|b| !b.is_finite() || *b <= 0.0 || *b > 3600.0) {
        return Err("bucket bounds are seconds above 0 and at most 3600".into());
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bucket bounds must increase".into());
    }
    Ok(())
}

// --- the fields, each checked where it is read, so that its error has a place

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
        f.write_str("a value")
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

fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    check(d, |v| duration_in(&v.text(), INTERVAL_RANGE))
}

fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    check(d, |v| duration_in(&v.text(), TIMEOUT_RANGE))
}

fn resolve_every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    check(d, |v| duration_in(&v.text(), RESOLVE_RANGE))
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Protocol>, D::Error> {
    check(d, |v| match v {
        Scalar::Str("stamp") => Ok(Protocol::Stamp),
        Scalar::Str("upper") => Ok(Protocol::Upper),
        Scalar::Str("echo") => Ok(Protocol::Echo),
        other => Err(format!("unknown protocol {:?}: use stamp, upper or echo", other.text())),
    })
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    check(d, |v| match v {
        Scalar::Int(n) if (1..=MAX_SIZE as i128).contains(&n) => Ok(n as usize),
        Scalar::Int(n) if n > 0 => {
            Err(format!("{n} bytes is more than a UDP datagram carries over IPv4 ({MAX_SIZE})"))
        }
        other => Err(format!("{} is not a size in bytes", other.text())),
    })
}

fn dscp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    check(d, |v| match v {
        Scalar::Str(_) | Scalar::Int(_) => parse_dscp(&v.text()),
        other => Err(format!(
            "{} is not a DSCP: use a name (ef, af41, cs1, ...) or 0 to 63",
            other.text()
        )),
    })
}

fn ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    check(d, |v| match v {
        Scalar::Int(n @ 1..=255) => Ok(n as u8),
        other => Err(format!("{} is not a TTL: use 1 to 255", other.text())),
    })
}

/// Labels: valid names, scalar values (numbers and booleans as written).
fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
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
fn bounded<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TargetEntry>, D::Error> {
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
fn yaml_error(file: &Path, err: &yaml_serde::Error) -> ConfigError {
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
fn locate(text: &str, path: &[Seg<'_>]) -> Option<(usize, usize)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new("p.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, Path::new("p.yaml")).unwrap_err()
    }

    /// The error's `file:line:column: field` prefix and its message.
    fn err_at(text: &str) -> (String, String) {
        let err = parse_err(text);
        let (line, column) = err.at.unwrap_or_else(|| panic!("no place in {err}"));
        (
            format!("{}:{line}:{column}: {}", err.file.display(), err.field.unwrap_or_default()),
            err.message,
        )
    }

    const GOOD: &str = "\
defaults:
  protocol: stamp
  interval: 1s
  timeout: 2s
  dscp: ef
  ttl: 64
  ssid: 7
  labels: {site: ams, tier: 1}
targets:
  - address: 192.0.2.1:862
    labels: {role: core}
    interval: 500ms
  - address: '[2001:db8::1]'
    protocol: echo
    size: 100
    dscp: 10
  - address: probe.example.net:9000
    protocol: upper
    labels: {site: fra}
resolve_every: 30s
buckets: [0.001, 0.01, 0.1]
";

    #[test]
    fn a_good_file_gives_every_target_its_settings() {
        let config = parse_ok(GOOD);
        assert_eq!(config.resolve_every, Duration::from_secs(30));
        assert_eq!(config.buckets, [0.001, 0.01, 0.1]);
        let [a, b, c] = &config.targets[..] else { panic!("{:?}", config.targets) };
        assert_eq!((a.name.as_str(), a.host.as_str(), a.port), ("192.0.2.1:862", "192.0.2.1", 862));
        assert_eq!(
            (a.protocol, a.interval, a.timeout),
            (Protocol::Stamp, Duration::from_millis(500), Duration::from_secs(2))
        );
        assert_eq!((a.size, a.dscp, a.ttl, a.ssid), (44, Some(46), Some(64), 7));
        let labels =
            |t: &Target| t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        assert_eq!(labels(a), ["role=core", "site=ams", "tier=1"]);
        assert_eq!(
            (b.host.as_str(), b.port, b.protocol, b.size, b.dscp),
            ("2001:db8::1", 7, Protocol::Echo, 100, Some(10))
        );
        assert_eq!(b.interval, Duration::from_secs(1), "inherited from defaults");
        assert_eq!((c.host.as_str(), c.port, c.size), ("probe.example.net", 9000, 64));
        assert_eq!(labels(c), ["site=fra", "tier=1"], "a target's label overrides the default's");
        assert!(c.ip().is_none() && a.ip().is_some());
        let spec = a.spec("192.0.2.1:862".parse().unwrap());
        assert_eq!(
            (spec.name.as_str(), spec.interval, spec.labels.len()),
            ("192.0.2.1:862", a.interval, 3)
        );
    }

    #[test]
    fn without_defaults_the_documented_ones_apply() {
        let config = parse_ok("targets: [{address: 192.0.2.1}]");
        let t = &config.targets[0];
        assert_eq!(
            (t.protocol, t.port, t.interval, t.timeout),
            (Protocol::Stamp, 862, Duration::from_secs(1), Duration::from_secs(2))
        );
        assert_eq!((t.size, t.dscp, t.ttl, t.ssid, t.key.is_none()), (44, None, None, 0, true));
        assert_eq!(
            (config.resolve_every, config.buckets.len()),
            (Duration::from_secs(60), DEFAULT_BUCKETS.len())
        );
    }

    #[test]
    fn every_error_names_file_line_column_and_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "targets:\n  - address: 192.0.2.1\n    colour: red\n",
                "p.yaml:3:5: targets[0]",
                "unknown field `colour`",
            ),
            (
                "defaults:\n  intervall: 1s\ntargets: [{address: 192.0.2.1}]\n",
                "p.yaml:2:3: defaults",
                "unknown field `intervall`",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    interval: 1ms\n",
                "p.yaml:3:15: targets[0].interval",
                "10ms to 1h",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    interval: 2h\n",
                "p.yaml:3:15: targets[0].interval",
                "out of range",
            ),
            (
                "defaults:\n  timeout: -1s\ntargets: [{address: 192.0.2.1}]\n",
                "p.yaml:2:12: defaults.timeout",
                "negative",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    dscp: af44\n",
                "p.yaml:3:11: targets[0].dscp",
                "not a DSCP",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    dscp: 64\n",
                "p.yaml:3:11: targets[0].dscp",
                "0 to 63",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    ttl: 0\n",
                "p.yaml:3:10: targets[0].ttl",
                "1 to 255",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    size: 70000\n",
                "p.yaml:3:11: targets[0].size",
                "65507",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    protocol: icmp\n",
                "p.yaml:3:15: targets[0].protocol",
                "stamp, upper or echo",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    labels: {target: x}\n",
                "p.yaml:3:14: targets[0].labels",
                "sets itself",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    labels: {9lives: x}\n",
                "p.yaml:3:14: targets[0].labels",
                "not a Prometheus label name",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n  - address: 192.0.2.1\n",
                "p.yaml:3:14: targets[1].address",
                "duplicate target",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n  - address: 192.0.2.1:862\n",
                "p.yaml:3:14: targets[1].address",
                "probed already by targets[0].address",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    size: 43\n",
                "p.yaml:3:11: targets[0].size",
                "at least 44",
            ),
            (
                "defaults:\n  size: 20\n  protocol: echo\ntargets:\n  - address: 192.0.2.1\n",
                "p.yaml:2:9: defaults.size",
                "at least 28",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    size: 46\n",
                "p.yaml:3:11: targets[0].size",
                "use 44 or 48",
            ),
            ("targets:\n  - address: 'host:0'\n", "p.yaml:2:14: targets[0].address", "port"),
            (
                "targets:\n  - address: 'a b'\n",
                "p.yaml:2:14: targets[0].address",
                "not a host name",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    protocol: echo\n    key_file: k\n",
                "p.yaml:4:15: targets[0].key_file",
                "protocol stamp",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    key_file: /nonexistent/k\n",
                "p.yaml:3:15: targets[0].key_file",
                "/nonexistent/k",
            ),
            (
                "targets: [{address: 192.0.2.1}]\nbuckets: [1, 0.5]\n",
                "p.yaml:2:10: buckets",
                "increase",
            ),
            (
                "targets: [{address: 192.0.2.1}]\nresolve_every: 0s\n",
                "p.yaml:2:16: resolve_every",
                "1s to 24h",
            ),
            (
                "targets: [{address: 192.0.2.1}]\nmesh: {members: []}\n",
                "p.yaml:2:17: mesh.members",
                "needs members",
            ),
            (
                "targets: [{address: 192.0.2.1}]\nmesh: {members: [192.0.2.1]}\n",
                "p.yaml:2:18: mesh.members[0]",
                "duplicate",
            ),
            (
                "targets:\n  - address: 192.0.2.1\n    ssid: 70000\n",
                "p.yaml:3:11: targets[0].ssid",
                "u16",
            ),
        ];
        for (text, at, message) in cases {
            let (got_at, got) = err_at(text);
            assert_eq!(&got_at, at, "{text}: {got}");
            assert!(got.contains(message), "{text}: {got:?} lacks {message:?}");
        }
    }

    #[test]
    fn the_whole_error_reads_as_file_line_column_field_message() {
        let err = parse_err("targets:\n  - address: 192.0.2.1\n    colour: red\n").to_string();
        assert!(
            err.starts_with("p.yaml:3:5: targets[0]: unknown field `colour`, expected one of"),
            "{err}"
        );
        assert!(!err.contains(" at line "), "the place is said once: {err}");
    }

    #[test]
    fn zero_targets_are_refused() {
        for text in ["{}", "targets: []", "defaults: {interval: 1s}", ""] {
            let err = parse_err(text);
            assert!(err.message.contains("no targets"), "{text:?}: {err}");
        }
        let err = from_addresses(&[], &Settings::default()).unwrap_err();
        assert!(err.to_string().contains("no targets"), "{err}");
    }

    #[test]
    fn more_than_the_bound_of_targets_is_refused_at_the_entry_that_passes_it() {
        let mut text = String::from("targets:\n");
        for i in 0..=MAX_TARGETS {
            text += &format!("- address: 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255);
        }
        let err = parse_err(&text);
        assert_eq!(err.at.map(|a| a.0), Some(MAX_TARGETS + 2), "{err}");
        assert!(err.message.contains("more than 100000 targets"), "{err}");
        // Exactly the bound is fine.
        let cut = text.rfind("- address").unwrap();
        assert_eq!(parse_ok(&text[..cut]).targets.len(), MAX_TARGETS);
    }

    #[test]
    fn mesh_members_inherit_mesh_settings_then_defaults() {
        let text = "\
defaults: {interval: 2s, labels: {site: ams}}
mesh:
  members: [10.0.0.1, '10.0.0.2:9862', h3.example.net]
  labels: {mesh: dc1}
  ttl: 9
targets:
  - address: 192.0.2.1
";
        let config = parse_ok(text);
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["192.0.2.1", "10.0.0.1", "10.0.0.2:9862", "h3.example.net"]);
        let m = &config.targets[2];
        assert!(m.mesh && !config.targets[0].mesh);
        assert_eq!((m.port, m.ttl, m.interval), (9862, Some(9), Duration::from_secs(2)));
        assert_eq!(m.labels, [("mesh".into(), "dc1".into()), ("site".into(), "ams".into())]);
        assert_eq!(config.targets[0].ttl, None, "mesh settings stay in the mesh");
    }

    #[test]
    fn key_files_are_read_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("shout-probe-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("stamp.key");
        std::fs::write(&key, "00112233445566778899aabbccddeeff\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = "defaults: {key_file: stamp.key}\ntargets: [{address: 192.0.2.1}, {address: 192.0.2.2, size: 120}]\n";
        let config = parse(text, &dir.join("probe.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.targets[0].key.as_deref().map(<[u8]>::len), Some(16));
        assert_eq!(
            (config.targets[0].size, config.targets[1].size),
            (112, 120),
            "authenticated sizes"
        );
        let err = parse(
            "defaults: {key_file: stamp.key}\ntargets: [{address: 192.0.2.1, size: 44}]\n",
            &dir.join("probe.yaml"),
        )
        .unwrap_err();
        assert!(err.message.contains("at least 112"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn command_line_addresses_take_the_quick_flags() {
        let settings = Settings {
            protocol: Some(Protocol::Upper),
            interval: Some(Duration::from_millis(100)),
            ..Settings::default()
        };
        let config = from_addresses(&["127.0.0.1".into(), "[::1]:9000".into()], &settings).unwrap();
        assert_eq!(config.targets[0].port, 8080);
        assert_eq!((config.targets[1].host.as_str(), config.targets[1].port), ("::1", 9000));
        assert!(config
            .targets
            .iter()
            .all(|t| t.interval == Duration::from_millis(100) && t.size == 64));
        let err = from_addresses(&["a:1".into(), "a:1".into()], &Settings::default()).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        let err = from_addresses(&["a:x".into()], &Settings::default()).unwrap_err();
        assert!(err.to_string().starts_with("command line: address: "), "{err}");
    }

    #[test]
    fn dscp_names_and_numbers() {
        let named = [
            ("be", 0),
            ("default", 0),
            ("le", 1),
            ("cs0", 0),
            ("cs7", 56),
            ("af11", 10),
            ("af23", 22),
            ("af43", 38),
            ("va", 44),
            ("ef", 46),
        ];
        for (name, value) in named {
            assert_eq!(parse_dscp(name), Ok(value), "{name}");
        }
        for bad in ["cs8", "af50", "af10", "x", "-1", ""] {
            assert!(parse_dscp(bad).is_err(), "{bad}");
        }
        let config = parse_ok("defaults: {dscp: 46}\ntargets: [{address: 192.0.2.1}, {address: 192.0.2.2, dscp: AF41}]\n");
        assert_eq!((config.targets[0].dscp, config.targets[1].dscp), (Some(46), Some(34)));
    }

    #[test]
    fn durations_take_units_or_seconds() {
        let config = parse_ok(
            "defaults: {interval: 0.25, timeout: 1500ms}\ntargets: [{address: 192.0.2.1}]\n",
        );
        assert_eq!(config.targets[0].interval, Duration::from_millis(250));
        assert_eq!(config.targets[0].timeout, Duration::from_millis(1500));
    }
}
