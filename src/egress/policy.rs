//! An egress allow-list and the decision it makes for one connection.
//!
//! A rule is a host name (exact, or `*.` for any name below a domain) or
//! an address block, each with an optional port:
//!
//! ```text
//! registry.npmjs.org          any port
//! api.example.com:443         one port
//! *.githubusercontent.com:443 names below the domain, not the domain
//! 203.0.113.7                 one address, any port
//! 10.20.0.0/16:5432           a block, one port
//! [2001:db8::]/32:443         IPv6, bracketed when a port follows
//! ```
//!
//! Nothing else is allowed. Addresses of the host's own and of networks
//! behind it ([`Reserved`]: loopback, private ranges, link-local and the
//! cloud metadata address, carrier-grade NAT, unique-local IPv6, …) are
//! denied even when an allowed *name* resolves to them: only a rule naming
//! the address (or a block holding it) opens one, so a name an attacker
//! controls cannot point the guest at the host's loopback.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A host name, lower case, without a trailing dot.
    Host {
        /// The name; with `wildcard`, the domain whose names below match.
        name: String,
        /// `*.name`: any name below `name` (not `name` itself).
        wildcard: bool,
        /// The only port allowed, if one is given.
        port: Option<u16>,
    },
    /// An address block.
    Block {
        /// The block's first address.
        net: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// The only port allowed, if one is given.
        port: Option<u16>,
    },
}

/// Why a rule's text is not a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad egress rule {text:?}: {problem}")]
pub struct RuleError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |problem| RuleError {
            text: text.to_owned(),
            problem,
        };
        let (host, port) =
            split_port(text).ok_or_else(|| bad("the port is not a number 1-65535"))?;
        if host.is_empty() {
            return Err(bad("it names no host or address"));
        }
        if let Some((addr, prefix)) = host.split_once('/') {
            let net: IpAddr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| bad("the block's address is not an IP address"))?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("the prefix length is out of range"))?;
            return Ok(Rule::Block {
                net: mask(net, prefix),
                prefix,
                port,
            });
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(addr) = bare.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(Rule::Block {
                net: addr,
                prefix,
                port,
            });
        }
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let name = normalize(name).ok_or_else(|| bad("it is not a host name"))?;
        Ok(Rule::Host {
            name,
            wildcard,
            port,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |f: &mut fmt::Formatter<'_>, port: &Option<u16>| match port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        };
        match self {
            Rule::Host {
                name,
                wildcard,
                port: p,
            } => {
                write!(f, "{}{name}", if *wildcard { "*." } else { "" })?;
                port(f, p)
            }
            Rule::Block {
                net,
                prefix,
                port: p,
            } => {
                match (net, p) {
                    (IpAddr::V6(_), Some(_)) => write!(f, "[{net}]/{prefix}")?,
                    _ => write!(f, "{net}/{prefix}")?,
                }
                port(f, p)
            }
        }
    }
}

/// `host[:port]`, `[v6]:port`, `v6` (no port): the host part and the port.
/// `None` when a port is there but not a valid one.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    if text.starts_with('[') {
        // [v6] or [v6]/len, then maybe :port after the last ']' or the
        // prefix length.
        let close = text.rfind(']')?;
        let after = &text[close + 1..];
        return match after.rsplit_once(':') {
            Some((head, p)) => Some((&text[..close + 1 + head.len()], Some(port(p)?))),
            None => Some((text, None)),
        };
    }
    match text.matches(':').count() {
        0 => Some((text, None)),
        1 => {
            let (host, p) = text.split_once(':')?;
            Some((host, Some(port(p)?)))
        }
        // A bare IPv6 address: no port.
        _ => Some((text, None)),
    }
}

/// `name` in lower case without a trailing dot, if it is a host name.
fn normalize(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !name.is_empty() && name.len() <= 253 && crate::dns_name::labels_ok(&name, true);
    ok.then_some(name)
}

/// `addr` with the bits past `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let keep = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let keep = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// Whether `addr` is in the block `net`/`prefix`.
fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    // An IPv4-mapped IPv6 address is the IPv4 address.
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    net.is_ipv4() == addr.is_ipv4() && mask(addr, prefix) == net
}

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
}

impl Reserved {
    /// The range `addr` falls in, if it is one of these.
    pub fn of(addr: IpAddr) -> Option<Self> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
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
}

impl Policy {
    /// A policy allowing only `rules`.
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        Self {
            rules: rules.into_iter().collect(),
        }
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
                Rule::Host { port: Some(p), .. } => vec![*p],
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
                name_matches(r, &name) && matches!(r, Rule::Host { port, .. } if port_ok(port))
            })
        });
        match (by_name, dest.addr.and_then(Reserved::of)) {
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
}
