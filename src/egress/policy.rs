//! An egress allow-list and the decision it makes for one connection.
//!
//! A [`Rule`] is a host name (exact, or `*.` for any name below a domain),
//! an address block, or `*` (any name or public address), each with an
//! optional port. Nothing else is allowed. Addresses of the host's own and of networks
//! behind it ([`Reserved`]: loopback, private ranges, link-local and the
//! cloud metadata address, carrier-grade NAT, unique-local IPv6, …) are
//! denied even when an allowed *name* resolves to them: only a rule naming
//! the address (or a block holding it) opens one, so a name an attacker
//! controls cannot point the guest at the host's loopback.

use std::fmt;
use std::net::IpAddr;

use super::rule::{contains, normalize};
pub use super::rule::{Rule, RuleError};

/// The address ranges of the host and of networks behind it, denied
/// unless a rule names the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// 127.0.0.0/8, ::1: the host's own services.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7: networks behind the host.
    Private,
    /// 169.254/16 (the cloud metadata address among them), fe80::/10.
    LinkLocal,
    /// 100.64/10: carrier-grade NAT, often a cloud's internal network.
    SharedAddressSpace,
    /// 0.0.0.0/8, ::: "this host".
    Unspecified,
    /// Multicast and broadcast.
    Multicast,
    /// An address of one of the host's own interfaces (its public
    /// address, say, where its services listen too).
    HostAddress,
    /// 198.18.0.0/15: the egress mode's own addresses inside its wall
    /// (RFC 2544's benchmarking range, not reachable on the internet).
    Internal,
}

impl Reserved {
    /// The range `addr` falls in, if it is one of these.
    pub fn of(addr: IpAddr) -> Option<Self> {
        let addr = addr.to_canonical();
        match addr {
            IpAddr::V4(a) => {
                let o = a.octets();
                if a.is_loopback() {
                    Some(Reserved::Loopback)
                } else if a.is_private() {
                    Some(Reserved::Private)
                } else if a.is_link_local() {
                    Some(Reserved::LinkLocal)
                } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                    Some(Reserved::SharedAddressSpace)
                } else if o[0] == 0 {
                    Some(Reserved::Unspecified)
                } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
                    Some(Reserved::Internal)
                } else if a.is_multicast() || a.is_broadcast() {
                    Some(Reserved::Multicast)
                } else {
                    None
                }
            }
            IpAddr::V6(a) => {
                let first = a.segments()[0];
                if a.is_loopback() {
                    Some(Reserved::Loopback)
                } else if a.is_unspecified() {
                    Some(Reserved::Unspecified)
                } else if (first & 0xfe00) == 0xfc00 {
                    Some(Reserved::Private)
                } else if (first & 0xffc0) == 0xfe80 {
                    Some(Reserved::LinkLocal)
                } else if a.is_multicast() {
                    Some(Reserved::Multicast)
                } else {
                    None
                }
            }
        }
    }
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reserved::Loopback => "the host's loopback",
            Reserved::Private => "a private network",
            Reserved::LinkLocal => "a link-local address (cloud metadata among them)",
            Reserved::SharedAddressSpace => "carrier-grade NAT space",
            Reserved::Unspecified => "the unspecified address",
            Reserved::Multicast => "multicast or broadcast",
            Reserved::HostAddress => "an address of the host itself",
            Reserved::Internal => "the egress mode's own range 198.18.0.0/15",
        })
    }
}

/// Where a connection goes, as far as it is known: the name the guest
/// asked for (CONNECT, Host, TLS SNI, a DNS question), the address it
/// reaches, the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host name, if the guest gave one.
    pub name: Option<String>,
    /// The address, if known (resolved, or the guest's own).
    pub addr: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

/// The policy's answer for one [`Destination`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this rule.
    Allowed(Rule),
    /// Denied, and why.
    Denied(Denial),
}

/// Why a destination is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No rule matches its name or address (and port).
    NoRule,
    /// Its name is allowed but it reaches a reserved range no rule names.
    Reserved(Reserved),
    /// Its name is allowed but resolves to no address.
    Unresolved,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NoRule => f.write_str("no rule allows it"),
            Denial::Reserved(range) => write!(f, "it reaches {range}, which no rule names"),
            Denial::Unresolved => f.write_str("its name resolves to no address"),
        }
    }
}

/// An allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    host_addrs: Vec<IpAddr>,
}

impl Policy {
    /// A policy allowing only `rules`.
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        Self {
            rules: rules.into_iter().collect(),
            host_addrs: Vec::new(),
        }
    }

    /// The same, also denying `addrs` (the host's own interfaces'
    /// addresses) as [`Reserved::HostAddress`] unless a rule names them.
    pub fn with_host_addresses(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.host_addrs = addrs.into_iter().collect();
        self
    }

    /// The reserved range `addr` is in, the host's own addresses
    /// included.
    fn reserved(&self, addr: IpAddr) -> Option<Reserved> {
        let plain = addr.to_canonical();
        Reserved::of(addr).or_else(|| {
            self.host_addrs
                .contains(&plain)
                .then_some(Reserved::HostAddress)
        })
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the guest may resolve `name` (to any port of it).
    pub fn may_resolve(&self, name: &str) -> bool {
        let Some(name) = normalize(name) else {
            return false;
        };
        self.rules.iter().any(|r| name_matches(r, &name))
    }

    /// The ports a guest may reach `name` at without the proxy: each
    /// matching rule's port, 80 and 443 for a rule without one (a
    /// transparent listener cannot cover every port).
    pub fn ports_for(&self, name: &str) -> Vec<u16> {
        let Some(name) = normalize(name) else {
            return Vec::new();
        };
        let mut ports: Vec<u16> = self
            .rules
            .iter()
            .filter(|r| name_matches(r, &name))
            .flat_map(|r| match r {
                Rule::Host { port: Some(p), .. } | Rule::Public { port: Some(p) } => vec![*p],
                _ => vec![80, 443],
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The decision for `dest`. An address rule decides by address; a
    /// name rule by name, and then the address it reaches must not be
    /// reserved.
    pub fn decide(&self, dest: &Destination) -> Decision {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == dest.port);
        if let Some(addr) = dest.addr {
            for rule in &self.rules {
                if let Rule::Block { net, prefix, port } = rule {
                    if contains(*net, *prefix, addr) && port_ok(port) {
                        return Decision::Allowed(rule.clone());
                    }
                }
            }
        }
        let name = dest.name.as_deref().and_then(normalize);
        let by_name = name.and_then(|name| {
            self.rules.iter().find(|r| {
                name_matches(r, &name)
                    && matches!(r, Rule::Host { port, .. } | Rule::Public { port } if port_ok(port))
            })
        });
        // An address alone (no name) passes a public rule.
        let by_name = by_name.or_else(|| {
            self.rules
                .iter()
                .find(|r| matches!(r, Rule::Public { port } if port_ok(port)))
                .filter(|_| dest.name.is_none() && dest.addr.is_some())
        });
        match (by_name, dest.addr.and_then(|a| self.reserved(a))) {
            (Some(_), Some(range)) => Decision::Denied(Denial::Reserved(range)),
            (Some(rule), None) => Decision::Allowed(rule.clone()),
            (None, _) => Decision::Denied(Denial::NoRule),
        }
    }
}

fn name_matches(rule: &Rule, name: &str) -> bool {
    match rule {
        Rule::Host {
            name: rule_name,
            wildcard: false,
            ..
        } => name == rule_name,
        Rule::Host {
            name: domain,
            wildcard: true,
            ..
        } => name
            .strip_suffix(domain.as_str())
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        Rule::Public { .. } => true,
        Rule::Block { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn dest(name: Option<&str>, addr: Option<&str>, port: u16) -> Destination {
        Destination {
            name: name.map(str::to_owned),
            addr: addr.map(|a| a.parse().unwrap()),
            port,
        }
    }

    #[test]
    fn rules_parse_and_print_back() {
        for (text, shown) in [
            ("registry.npmjs.org", "registry.npmjs.org"),
            ("API.Example.COM.:443", "api.example.com:443"),
            ("*.githubusercontent.com:443", "*.githubusercontent.com:443"),
            ("203.0.113.7", "203.0.113.7/32"),
            ("10.20.3.4/16:5432", "10.20.0.0/16:5432"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("[2001:db8::]/32:443", "[2001:db8::]/32:443"),
            ("[2001:db8::5]:8443", "[2001:db8::5]/128:8443"),
        ] {
            assert_eq!(rule(text).to_string(), shown, "{text}");
        }
        for bad in [
            "",
            ":443",
            "example.com:0",
            "example.com:http",
            "10.0.0.0/33",
            "exa mple.com",
            "-bad.example",
            "[2001:db8::]:99999",
        ] {
            assert!(bad.parse::<Rule>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn names_and_addresses_decide_with_their_ports() {
        let policy = Policy::new(["pypi.org:443", "*.example.com", "203.0.113.0/24:22"].map(rule));
        let allowed = |d: &Destination| matches!(policy.decide(d), Decision::Allowed(_));
        assert!(allowed(&dest(Some("pypi.org"), Some("151.101.0.223"), 443)));
        assert!(allowed(&dest(Some("PyPI.org."), None, 443)));
        assert!(!allowed(&dest(Some("pypi.org"), None, 80)));
        assert!(allowed(&dest(Some("a.b.example.com"), None, 8080)));
        assert!(!allowed(&dest(Some("example.com"), None, 80)));
        assert!(!allowed(&dest(Some("badexample.com"), None, 80)));
        assert!(allowed(&dest(None, Some("203.0.113.9"), 22)));
        assert!(!allowed(&dest(None, Some("203.0.113.9"), 23)));
        assert!(!allowed(&dest(None, Some("198.51.100.1"), 443)));
        assert!(policy.may_resolve("x.example.com") && !policy.may_resolve("evil.org"));
    }

    #[test]
    fn an_allowed_name_cannot_reach_the_host_or_the_metadata_address() {
        let policy = Policy::new(["attacker.example:80", "127.0.0.1:5432"].map(rule));
        for (addr, range) in [
            ("127.0.0.1", Reserved::Loopback),
            ("169.254.169.254", Reserved::LinkLocal),
            ("10.1.2.3", Reserved::Private),
            ("::ffff:192.168.1.1", Reserved::Private),
            ("::1", Reserved::Loopback),
            ("fd00::1", Reserved::Private),
            ("100.100.100.200", Reserved::SharedAddressSpace),
            ("0.0.0.0", Reserved::Unspecified),
        ] {
            assert_eq!(
                policy.decide(&dest(Some("attacker.example"), Some(addr), 80)),
                Decision::Denied(Denial::Reserved(range)),
                "{addr}"
            );
        }
        // A rule naming the address opens it, on its port only.
        assert!(matches!(
            policy.decide(&dest(None, Some("127.0.0.1"), 5432)),
            Decision::Allowed(_)
        ));
        assert_eq!(
            policy.decide(&dest(None, Some("127.0.0.1"), 22)),
            Decision::Denied(Denial::NoRule)
        );
        assert_eq!(
            Policy::default().decide(&dest(Some("pypi.org"), Some("151.101.0.223"), 443)),
            Decision::Denied(Denial::NoRule)
        );
    }

    #[test]
    fn the_public_rule_opens_every_name_and_address_but_the_hosts() {
        let policy =
            Policy::new(["*:443"].map(rule)).with_host_addresses(["198.51.100.4".parse().unwrap()]);
        let allowed = |d: &Destination| matches!(policy.decide(d), Decision::Allowed(_));
        assert!(allowed(&dest(Some("pypi.org"), Some("151.101.0.223"), 443)));
        assert!(allowed(&dest(None, Some("151.101.0.223"), 443)));
        assert!(
            !allowed(&dest(None, Some("151.101.0.223"), 80)),
            "its port only"
        );
        assert!(policy.may_resolve("anything.example") && policy.ports_for("a.b") == [443]);
        for (addr, range) in [
            ("127.0.0.1", Reserved::Loopback),
            ("169.254.169.254", Reserved::LinkLocal),
            ("198.51.100.4", Reserved::HostAddress),
            ("::ffff:198.51.100.4", Reserved::HostAddress),
            ("198.19.1.0", Reserved::Internal),
        ] {
            let denied = Decision::Denied(Denial::Reserved(range));
            assert_eq!(
                policy.decide(&dest(None, Some(addr), 443)),
                denied,
                "{addr}"
            );
            assert_eq!(
                policy.decide(&dest(Some("x.test"), Some(addr), 443)),
                denied
            );
        }
        assert_eq!(rule("*").to_string(), "*");
        assert_eq!(rule("*:8080").to_string(), "*:8080");
    }
}
