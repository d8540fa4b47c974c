//! Published ports: a host TCP port that reaches a guest server through
//! TSI (libkrun's port map).

use std::fmt;
use std::net::{Ipv4Addr, TcpListener};
use std::num::ParseIntError;
use std::str::FromStr;

use crate::runner::NetMode;

/// A guest TCP port published on the host: when a guest program listens on
/// `guest`, TSI listens on the host's `host` port instead and hands the
/// connections in. Written `HOST:GUEST`, as `docker -p`.
///
/// ```
/// use krunbox::vm::PublishedPort;
///
/// let port: PublishedPort = "8080:80".parse()?;
/// assert_eq!((port.host, port.guest), (8080, 80));
/// # Ok::<(), krunbox::vm::PortError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublishedPort {
    /// The port on the host.
    pub host: u16,
    /// The port the guest program listens on.
    pub guest: u16,
}

/// A port mapping that cannot work, found before boot.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Not `HOST:GUEST`.
    #[error("expected HOST_PORT:GUEST_PORT, got {0:?}")]
    Syntax(String),
    /// A side is not a number from 1 to 65535.
    #[error("{side} port {text:?} is not a port number (1 to 65535)")]
    Number {
        /// "host" or "guest".
        side: &'static str,
        /// What was given.
        text: String,
        /// Why it does not parse.
        #[source]
        source: Option<ParseIntError>,
    },
    /// Two mappings for one host port.
    #[error("host port {0} is published twice")]
    HostTwice(u16),
    /// Two mappings for one guest port.
    #[error("guest port {0} is published twice")]
    GuestTwice(u16),
    /// Ports are published through TSI, which `NetMode::None` turns off.
    #[error("publishing ports needs TSI networking (--net tsi or egress); this VM has {0:?}")]
    NeedsTsi(NetMode),
    /// The host port cannot be listened on (in use, or privileged).
    #[error("host port {port} is not available")]
    Unavailable {
        /// The host port.
        port: u16,
        /// What binding it said.
        #[source]
        source: std::io::Error,
    },
}

impl PublishedPort {
    /// `host` on the host reaches `guest` in the guest.
    pub fn new(host: u16, guest: u16) -> Self {
        Self { host, guest }
    }
}

impl fmt::Display for PublishedPort {
    /// libkrun's port map syntax, `HOST:GUEST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.guest)
    }
}

impl FromStr for PublishedPort {
    type Err = PortError;

    fn from_str(text: &str) -> Result<Self, PortError> {
        let (host, guest) = text
            .split_once(':')
            .ok_or_else(|| PortError::Syntax(text.to_owned()))?;
        Ok(Self {
            host: parse_port("host", host)?,
            guest: parse_port("guest", guest)?,
        })
    }
}

fn parse_port(side: &'static str, text: &str) -> Result<u16, PortError> {
    let error = |source| PortError::Number {
        side,
        text: text.to_owned(),
        source,
    };
    match text.parse::<u16>() {
        Ok(0) => Err(error(None)),
        Ok(port) => Ok(port),
        Err(e) => Err(error(Some(e))),
    }
}

/// Checks a VM's published ports: TSI on, no port twice, none zero, and
/// each host port free to listen on right now (on all interfaces, as a
/// guest server bound to 0.0.0.0 would be). The last check is a snapshot:
/// another program can still take the port before the guest listens.
pub(crate) fn check(ports: &[PublishedPort], net: NetMode) -> Result<(), PortError> {
    if ports.is_empty() {
        return Ok(());
    }
    if net == NetMode::None {
        return Err(PortError::NeedsTsi(net));
    }
    for (i, port) in ports.iter().enumerate() {
        for side in [("host", port.host), ("guest", port.guest)] {
            if side.1 == 0 {
                return Err(PortError::Number {
                    side: side.0,
                    text: "0".into(),
                    source: None,
                });
            }
        }
        let earlier = &ports[..i];
        if earlier.iter().any(|p| p.host == port.host) {
            return Err(PortError::HostTwice(port.host));
        }
        if earlier.iter().any(|p| p.guest == port.guest) {
            return Err(PortError::GuestTwice(port.guest));
        }
    }
    for port in ports {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port.host)).map_err(|source| {
            PortError::Unavailable {
                port: port.host,
                source,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_print() {
        let port: PublishedPort = "8080:80".parse().unwrap();
        assert_eq!(port, PublishedPort::new(8080, 80));
        assert_eq!(port.to_string(), "8080:80");
    }

    #[test]
    fn malformed_mappings_are_named() {
        for bad in [
            "8080",
            "8080:",
            ":80",
            "a:80",
            "8080:70000",
            "0:80",
            "1:2:3",
        ] {
            assert!(bad.parse::<PublishedPort>().is_err(), "{bad} parsed");
        }
        let err = "x:80".parse::<PublishedPort>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port \"x\" is not a port number (1 to 65535)"
        );
    }

    #[test]
    fn conflicts_are_found_before_boot() {
        let p = PublishedPort::new;
        let err = check(&[p(18080, 80), p(18080, 81)], NetMode::Tsi).unwrap_err();
        assert!(matches!(err, PortError::HostTwice(18080)), "{err}");
        let err = check(&[p(18080, 80), p(18081, 80)], NetMode::Tsi).unwrap_err();
        assert!(matches!(err, PortError::GuestTwice(80)), "{err}");
        let err = check(&[p(18080, 80)], NetMode::None).unwrap_err();
        assert!(matches!(err, PortError::NeedsTsi(NetMode::None)), "{err}");
        assert!(check(&[], NetMode::None).is_ok());
    }

    #[test]
    fn a_host_port_in_use_is_refused() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = check(&[PublishedPort::new(port, 80)], NetMode::Tsi).unwrap_err();
        assert!(
            matches!(err, PortError::Unavailable { port: p, .. } if p == port),
            "{err}"
        );
        drop(taken);
        assert!(check(&[PublishedPort::new(port, 80)], NetMode::Tsi).is_ok());
    }
}
