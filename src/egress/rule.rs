//! One entry of an egress allow-list, as written and as parsed.
//!
//! ```text
//! registry.npmjs.org          any port
//! api.example.com:443         one port
//! *.githubusercontent.com:443 names below the domain, not the domain
//! *                           any name or address outside the reserved ranges
//! 203.0.113.7                 one address, any port
//! 10.20.0.0/16:5432           a block, one port
//! [2001:db8::]/32:443         IPv6, bracketed when a port follows
//! ```

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
    /// `*[:port]`: any name, and any address outside the [`Reserved`](super::Reserved)
    /// ranges (the public internet, as far as addresses tell).
    Public {
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
        if host == "*" {
            return Ok(Rule::Public { port });
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
            Rule::Public { port: p } => {
                f.write_str("*")?;
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
pub(crate) fn normalize(name: &str) -> Option<String> {
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
pub(crate) fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    // An IPv4-mapped IPv6 address is the IPv4 address.
    let addr = addr.to_canonical();
    net.is_ipv4() == addr.is_ipv4() && mask(addr, prefix) == net
}
