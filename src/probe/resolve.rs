//! From [`Target`]s to [`TargetSpec`]s: host names resolved, at load and again
//! every `resolve_every`; mesh members that are this host skipped.
//!
//! A name that stops resolving keeps its last good address and is reported
//! ([`Resolved::failed`], which the agent counts in
//! `shout_probe_resolve_failures_total{target}`); it is never fatal. A name
//! that never resolved is left out until it does.
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use shout::probe::{config, resolve::Resolver};
//!
//! let text = "mesh:\n  members: [10.0.0.1, 10.0.0.2, 10.0.0.3]\n";
//! let config = config::parse(text, "mesh.yaml".as_ref()).unwrap();
//! let own: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
//! let mut resolver = Resolver::new(config.targets, own);
//! let specs = resolver.resolve(&|_, _| Err(std::io::ErrorKind::NotFound.into())).specs;
//! let probed: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
//! assert_eq!(probed, ["10.0.0.1", "10.0.0.3"]);
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::config::Target;
use super::TargetSpec;

/// How a host name becomes addresses (the system resolver, or a test's table).
pub type Lookup<'a> = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + 'a;

/// The targets with their current addresses.
#[derive(Clone, Debug)]
pub struct Resolver {
    targets: Vec<Target>,
    /// The last good address of each target.
    last: Vec<Option<SocketAddr>>,
    /// This host's addresses: mesh members there are not probed.
    own: Vec<IpAddr>,
}

/// One round of resolution.
#[derive(Debug, Default, PartialEq)]
pub struct Resolved {
    /// Every target with an address, mesh members on this host left out.
    pub specs: Vec<TargetSpec>,
    /// Names that did not resolve this round, with why (the last good address,
    /// if any, is still probed).
    pub failed: Vec<(String, String)>,
    /// Mesh members skipped as this host's own.
    pub skipped: Vec<String>,
}

impl Resolver {
    /// A resolver for `targets`; `own` are this host's addresses
    /// ([`own_addresses`] on a real host).
    pub fn new(targets: Vec<Target>, own: Vec<IpAddr>) -> Resolver {
        let n = targets.len();
        Resolver { targets, last: vec![None; n], own }
    }

    /// The same resolver for a reloaded configuration: a target equal to one
    /// it had keeps its last good address.
    pub fn retarget(&self, targets: Vec<Target>, own: Vec<IpAddr>) -> Resolver {
        let mut next = Resolver::new(targets, own);
        for (i, t) in next.targets.iter().enumerate() {
            if let Some(j) = self.targets.iter().position(|old| old == t) {
                next.last[i] = self.last[j];
            }
        }
        next
    }

    /// Whether any target has a host name (else there is nothing to re-resolve).
    pub fn has_names(&self) -> bool {
        self.targets.iter().any(|t| t.ip().is_none())
    }

    /// Resolves every name (IP addresses need no look-up) with `lookup`.
    pub fn resolve(&mut self, lookup: &Lookup<'_>) -> Resolved {
        let mut out = Resolved::default();
        for (i, target) in self.targets.iter().enumerate() {
            let addrs = match target.ip() {
                Some(ip) => Ok(vec![SocketAddr::new(ip, target.port)]),
                None => lookup(&target.host, target.port).and_then(|a| {
                    if a.is_empty() {
                        Err(io::Error::new(io::ErrorKind::NotFound, "no address"))
                    } else {
                        Ok(a)
                    }
                }),
            };
            match addrs {
                Ok(addrs) => {
                    if target.mesh && addrs.iter().any(|a| self.own.contains(&a.ip())) {
                        out.skipped.push(target.name.clone());
                        self.last[i] = None;
                        continue;
                    }
                    // Keep the address in use while the name still has it:
                    // a round-robin answer must not move the target each round.
                    let keep = self.last[i].filter(|a| addrs.contains(a));
                    self.last[i] = Some(keep.unwrap_or(addrs[0]));
                }
                Err(err) => out.failed.push((target.name.clone(), err.to_string())),
            }
            if let Some(addr) = self.last[i] {
                out.specs.push(target.spec(addr));
            }
        }
        out
    }
}

/// The system resolver (`getaddrinfo`).
pub fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in (host, port).to_socket_addrs()? {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The addresses of this host's interfaces (`getifaddrs`).
pub fn own_addresses() -> io::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        let Some(addr) = ifa.address else { continue };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use crate::probe::config;

    /// A resolver's table a test rewrites between rounds.
    struct Table(RefCell<HashMap<String, Vec<IpAddr>>>);

    impl Table {
        fn new(entries: &[(&str, &str)]) -> Table {
            let t = Table(RefCell::new(HashMap::new()));
            for (name, ip) in entries {
                t.set(name, &[ip]);
            }
            t
        }
        fn set(&self, name: &str, ips: &[&str]) {
            self.0
                .borrow_mut()
                .insert(name.into(), ips.iter().map(|i| i.parse().unwrap()).collect());
        }
        fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            match self.0.borrow().get(host) {
                Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
                None => {
                    Err(io::Error::new(io::ErrorKind::NotFound, format!("{host}: no such name")))
                }
            }
        }
    }

    fn targets(text: &str) -> Vec<config::Target> {
        config::parse(text, "t.yaml".as_ref()).unwrap_or_else(|e| panic!("{e}")).targets
    }

    #[test]
    fn mesh_members_that_are_this_host_are_skipped_by_address_or_name() {
        let t = targets("mesh:\n  members: [a.example, b.example, 10.0.0.3, '[2001:db8::4]']\ntargets: [{address: 10.0.0.9}]\n");
        let table = Table::new(&[("a.example", "10.0.0.1"), ("b.example", "10.0.0.2")]);
        let own: Vec<IpAddr> =
            ["10.0.0.2", "127.0.0.1", "2001:db8::4"].iter().map(|i| i.parse().unwrap()).collect();
        let mut r = Resolver::new(t, own);
        let round = r.resolve(&|h, p| table.lookup(h, p));
        let names: Vec<&str> = round.specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["10.0.0.9", "a.example", "10.0.0.3"]);
        assert_eq!(round.skipped, ["b.example", "[2001:db8::4]"]);
        assert_eq!(round.specs[1].addr, "10.0.0.1:862".parse().unwrap());
        // An explicit target at our own address is probed: only the mesh skips.
        let mut r = Resolver::new(
            targets("targets: [{address: 10.0.0.2}]"),
            vec!["10.0.0.2".parse().unwrap()],
        );
        assert_eq!(r.resolve(&|h, p| table.lookup(h, p)).specs.len(), 1);
    }

    #[test]
    fn a_name_that_stops_resolving_keeps_its_last_address_and_is_counted() {
        let table = Table::new(&[("a.example", "192.0.2.1")]);
        let mut r = Resolver::new(
            targets(
                "targets: [{address: a.example}, {address: 'b.example:9'}, {address: 192.0.2.7}]",
            ),
            vec![],
        );
        assert!(r.has_names());
        let first = r.resolve(&|h, p| table.lookup(h, p));
        assert_eq!(first.specs.len(), 2, "b.example never resolved: left out");
        assert_eq!(first.failed.len(), 1);
        assert!(first.failed[0].1.contains("no such name"), "{:?}", first.failed);
        table.0.borrow_mut().remove("a.example");
        table.set("b.example", &["192.0.2.2"]);
        let second = r.resolve(&|h, p| table.lookup(h, p));
        let addrs: Vec<String> =
            second.specs.iter().map(|s| format!("{}={}", s.name, s.addr)).collect();
        assert_eq!(
            addrs,
            ["a.example=192.0.2.1:862", "b.example:9=192.0.2.2:9", "192.0.2.7=192.0.2.7:862"]
        );
        assert_eq!(second.failed[0].0, "a.example");
        assert_eq!(second.failed.len(), 1, "IP addresses are never looked up");
        // A name that moves is followed; one that still has its address keeps it.
        table.set("a.example", &["192.0.2.3", "192.0.2.1"]);
        let third = r.resolve(&|h, p| table.lookup(h, p));
        assert_eq!(third.specs[0].addr, "192.0.2.1:862".parse().unwrap());
        table.set("a.example", &["192.0.2.3"]);
        let fourth = r.resolve(&|h, p| table.lookup(h, p));
        assert_eq!(fourth.specs[0].addr, "192.0.2.3:862".parse().unwrap());
    }

    #[test]
    fn a_reload_keeps_the_last_address_of_unchanged_targets() {
        let table = Table::new(&[("a.example", "192.0.2.1")]);
        let mut r = Resolver::new(targets("targets: [{address: a.example}]"), vec![]);
        r.resolve(&|h, p| table.lookup(h, p));
        table.0.borrow_mut().remove("a.example");
        r.resolve(&|h, p| table.lookup(h, p));
        let mut next =
            r.retarget(targets("targets: [{address: a.example}, {address: 192.0.2.9}]"), vec![]);
        let round = next.resolve(&|h, p| table.lookup(h, p));
        assert_eq!(round.specs.len(), 2, "a.example still has its last good address");
        assert_eq!(round.failed.len(), 1);
    }

    #[test]
    fn this_hosts_addresses_include_loopback() {
        let own = own_addresses().unwrap();
        assert!(own.contains(&"127.0.0.1".parse().unwrap()), "{own:?}");
    }
}
