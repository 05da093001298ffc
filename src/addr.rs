//! Addresses as users write them: `HOST:PORT`, `[IPv6]:PORT`, an IPv6 scope
//! by interface name or index (`[fe80::1%eth0]:PORT`), and, where the caller
//! has one, a default port. Every way to get one wrong gets its own message:
//! a missing port, a link-local address without a scope, an interface that
//! does not exist.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};

/// Why a text names no address.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// No `:PORT`, and the caller has no default.
    #[error("{0:?} has no port: write HOST:PORT, or [IPv6]:PORT")]
    MissingPort(String),
    /// The port is not a number from 0 to 65535.
    #[error("{text:?} has an invalid port {port:?}: use 0 to 65535")]
    BadPort {
        /// The address as written.
        text: String,
        /// The port as written.
        port: String,
    },
    /// Between the brackets is no IPv6 address.
    #[error("{0:?} is not an IPv6 address in brackets: write [IPv6]:PORT, e.g. [::1]:8080")]
    BadIpv6(String),
    /// A link-local IPv6 address names no interface, so no route can be chosen.
    #[error("{0:?} is a link-local IPv6 address without a scope: name the interface, e.g. [fe80::1%eth0]:PORT")]
    NoScope(String),
    /// The scope names an interface that does not exist.
    #[error("{text:?}: no interface {scope:?} (the scope is an interface name or index, as `ip link` lists them)")]
    UnknownScope {
        /// The address as written.
        text: String,
        /// The scope as written.
        scope: String,
    },
    /// The name did not resolve.
    #[error("invalid address {text:?} ({source}); expected HOST:PORT or [IPv6]:PORT")]
    Resolve {
        /// The address as written.
        text: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The name resolved to nothing.
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
}

/// Every address `text` names, in the resolver's order, without repeats;
/// `default_port` is used where `text` has no `:PORT` (else that is an error).
///
/// ```
/// use shout::addr::parse_target;
/// assert_eq!(parse_target("127.0.0.1:8080", None).unwrap(), ["127.0.0.1:8080".parse().unwrap()]);
/// assert_eq!(parse_target("[::1]", Some(862)).unwrap(), ["[::1]:862".parse().unwrap()]);
/// assert!(parse_target("127.0.0.1", None).unwrap_err().to_string().contains("no port"));
/// ```
pub fn parse_target(text: &str, default_port: Option<u16>) -> Result<Vec<SocketAddr>, AddrError> {
    let port_or_default = |port: Option<&str>| match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| AddrError::BadPort { text: text.to_string(), port: p.to_string() }),
        None => default_port.ok_or_else(|| AddrError::MissingPort(text.to_string())),
    };
    // [IPv6]:PORT, [IPv6%scope]:PORT, or either without the port.
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) =
            rest.split_once(']').ok_or_else(|| AddrError::BadIpv6(text.to_string()))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| AddrError::BadIpv6(text.to_string()))?),
        };
        let port = port_or_default(port)?;
        return ipv6(text, inside, port).map(|a| vec![a]);
    }
    // A bare IP address (IPv6 possibly scoped): no port.
    if text.parse::<IpAddr>().is_ok() || (text.matches(':').count() > 1 && text.contains('%')) {
        let port = port_or_default(None)?;
        return match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Ok(vec![SocketAddr::from((ip, port))]),
            _ => ipv6(text, text, port).map(|a| vec![a]),
        };
    }
    // HOST:PORT, or a host name alone.
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port_or_default(Some(port))?),
        Some(_) => return Err(AddrError::BadIpv6(text.to_string())),
        None => (text, port_or_default(None)?),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|source| AddrError::Resolve { text: text.to_string(), source })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(AddrError::NoAddress(text.to_string()));
    }
    Ok(addrs)
}

/// `host` (`IPv6` or `IPv6%scope`) with `port`; `text` is the whole address, for errors.
fn ipv6(text: &str, host: &str, port: u16) -> Result<SocketAddr, AddrError> {
    let (ip, scope) = match host.split_once('%') {
        Some((ip, scope)) => (ip, Some(scope)),
        None => (host, None),
    };
    let ip: Ipv6Addr = ip.parse().map_err(|_| AddrError::BadIpv6(text.to_string()))?;
    let scope_id = match scope {
        Some(scope) => scope_id(scope).ok_or_else(|| AddrError::UnknownScope {
            text: text.to_string(),
            scope: scope.to_string(),
        })?,
        // fe80::/10: the same address exists on every link; the kernel cannot pick one.
        None if ip.segments()[0] & 0xffc0 == 0xfe80 => {
            return Err(AddrError::NoScope(text.to_string()))
        }
        None => 0,
    };
    Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id)))
}

/// The interface index a scope names (a name or a number), if that interface exists.
#[cfg(unix)]
fn scope_id(scope: &str) -> Option<u32> {
    match scope.parse::<u32>() {
        Ok(index) => crate::sys::interface_exists(index).then_some(index),
        Err(_) => crate::sys::interface_index(scope),
    }
}

#[cfg(not(unix))]
fn scope_id(scope: &str) -> Option<u32> {
    scope.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, default_port: Option<u16>) -> String {
        parse_target(text, default_port).unwrap_err().to_string()
    }

    #[test]
    fn addresses_with_ports_hosts_and_defaults() {
        let one = |t: &str, d| parse_target(t, d).unwrap()[0];
        assert_eq!(one("127.0.0.1:8080", None), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(one("[::1]:9", None), "[::1]:9".parse().unwrap());
        assert_eq!(one("::1", Some(862)), "[::1]:862".parse().unwrap());
        assert_eq!(one("[::1]", Some(862)), "[::1]:862".parse().unwrap());
        assert_eq!(one("10.0.0.1", Some(862)), "10.0.0.1:862".parse().unwrap());
        assert_eq!(one("localhost", Some(862)).port(), 862);
        assert!(one("localhost:8080", None).ip().is_loopback());
    }

    #[test]
    fn a_scope_is_an_interface_name_or_an_existing_index() {
        let lo = crate::sys::interface_index("lo").expect("lo");
        let want = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 9, 0, lo));
        assert_eq!(parse_target("[fe80::1%lo]:9", None).unwrap(), [want]);
        assert_eq!(parse_target(&format!("[fe80::1%{lo}]:9"), None).unwrap(), [want]);
        assert_eq!(parse_target("fe80::1%lo", Some(9)).unwrap(), [want]);
        assert!(err("[fe80::1%nosuchif0]:9", None).contains("no interface \"nosuchif0\""));
        assert!(err("[fe80::1%4000000000]:9", None).contains("no interface \"4000000000\""));
    }

    #[test]
    fn each_mistake_says_what_is_missing() {
        assert!(err("127.0.0.1", None).contains("has no port"));
        assert!(err("[::1]", None).contains("has no port"));
        assert!(err("localhost", None).contains("has no port"));
        assert!(err("[fe80::1]:9", None).contains("link-local IPv6 address without a scope"));
        assert!(err("127.0.0.1:99999", None).contains("invalid port \"99999\""));
        assert!(err("[::1:9", None).contains("not an IPv6 address"));
        assert!(err("[nonsense]:9", None).contains("not an IPv6 address"));
        assert!(err("::1:9000:x", None).contains("not an IPv6 address"));
    }
}
