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
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Protocol, TargetSpec};
use crate::stamp::load_key;
use fields::{check_buckets, flag_of, locate, show_path, yaml_error, Seg};
pub use fields::{check_label, default_port, duration_in, parse_dscp, split_address};

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
    /// Where the file gives `buckets` (line and column), for errors about
    /// them found later ([`Config::buckets_error`]); `None` where they are the default.
    pub buckets_at: Option<(usize, usize)>,
}

impl Config {
    /// An error about this config's `buckets`, read from `file`: it names the
    /// file, the place of `buckets` (where the file gives them) and the field,
    /// as every other config error does. For what only the agent finds, such
    /// as buckets that differ from the running agent's at reload.
    pub fn buckets_error(&self, file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            at: self.buckets_at,
            field: Some("buckets".into()),
            message: message.into(),
        }
    }
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
    #[serde(default, deserialize_with = "fields::protocol")]
    pub protocol: Option<Protocol>,
    /// Time between two probes.
    #[serde(default, deserialize_with = "fields::interval")]
    pub interval: Option<Duration>,
    /// How long a probe waits for its answer.
    #[serde(default, deserialize_with = "fields::timeout")]
    pub timeout: Option<Duration>,
    /// Bytes of UDP payload.
    #[serde(default, deserialize_with = "fields::size")]
    pub size: Option<usize>,
    /// DSCP, by name or number.
    #[serde(default, deserialize_with = "fields::dscp")]
    pub dscp: Option<u8>,
    /// TTL or hop limit, 1 to 255.
    #[serde(default, deserialize_with = "fields::ttl")]
    pub ttl: Option<u8>,
    /// STAMP session identifier.
    #[serde(default)]
    pub ssid: Option<u16>,
    /// The HMAC key file of authenticated STAMP.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Extra Prometheus labels.
    #[serde(default, deserialize_with = "fields::labels")]
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
            #[serde(default, deserialize_with = "fields::protocol")]
            protocol: Option<Protocol>,
            #[serde(default, deserialize_with = "fields::interval")]
            interval: Option<Duration>,
            #[serde(default, deserialize_with = "fields::timeout")]
            timeout: Option<Duration>,
            #[serde(default, deserialize_with = "fields::size")]
            size: Option<usize>,
            #[serde(default, deserialize_with = "fields::dscp")]
            dscp: Option<u8>,
            #[serde(default, deserialize_with = "fields::ttl")]
            ttl: Option<u8>,
            #[serde(default)]
            ssid: Option<u16>,
            #[serde(default)]
            key_file: Option<PathBuf>,
            #[serde(default, deserialize_with = "fields::labels")]
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
    #[serde(default, deserialize_with = "fields::bounded")]
    targets: Vec<TargetEntry>,
    #[serde(default)]
    mesh: Option<MeshEntry>,
    #[serde(default, deserialize_with = "fields::resolve_every")]
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
    let (buckets, buckets_at) = match file.buckets {
        None => (DEFAULT_BUCKETS.to_vec(), None),
        Some(b) => {
            check_buckets(&b).map_err(|(i, m)| match i {
                Some(i) => fail(&[Seg::Key("buckets"), Seg::Index(i)], m),
                None => fail(&[Seg::Key("buckets")], m),
            })?;
            (b, locate(text, &[Seg::Key("buckets")]))
        }
    };
    Ok(Config {
        targets,
        resolve_every: file.resolve_every.unwrap_or(Duration::from_secs(60)),
        buckets,
        buckets_at,
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
            &|field: &'static str, _| vec![Seg::Key(flag_of(field))],
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
        buckets_at: None,
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
                "a STAMP key is for protocol stamp (authenticated STAMP)".into(),
            ))
        }
        Some(file) => {
            let file = dir.join(file);
            if let Some(key) = keys.get(&file) {
                Some(key.clone())
            } else {
                let key = load_key(&file).map_err(|e| {
                    (
                        place("key_file", key_own),
                        format!("the STAMP key file {}: {e}", file.display()),
                    )
                })?;
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

#[path = "config_fields.rs"]
mod fields;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
