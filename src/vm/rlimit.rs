//! Resource limits of the guest workload, applied by libkrun's init before
//! it starts the workload (and so inherited by everything it runs).

use std::fmt;
use std::str::FromStr;

/// A Linux resource that [`Rlimit`] limits. The numbers are the guest's
/// (Linux) `RLIMIT_*` values, whatever the host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // The variants are the RLIMIT_* names.
pub enum Resource {
    Cpu = 0,
    Fsize = 1,
    Data = 2,
    Stack = 3,
    Core = 4,
    Rss = 5,
    Nproc = 6,
    Nofile = 7,
    Memlock = 8,
    As = 9,
    Locks = 10,
    Sigpending = 11,
    Msgqueue = 12,
    Nice = 13,
    Rtprio = 14,
    Rttime = 15,
}

const NAMES: [(&str, Resource); 16] = [
    ("cpu", Resource::Cpu),
    ("fsize", Resource::Fsize),
    ("data", Resource::Data),
    ("stack", Resource::Stack),
    ("core", Resource::Core),
    ("rss", Resource::Rss),
    ("nproc", Resource::Nproc),
    ("nofile", Resource::Nofile),
    ("memlock", Resource::Memlock),
    ("as", Resource::As),
    ("locks", Resource::Locks),
    ("sigpending", Resource::Sigpending),
    ("msgqueue", Resource::Msgqueue),
    ("nice", Resource::Nice),
    ("rtprio", Resource::Rtprio),
    ("rttime", Resource::Rttime),
];

/// A limit for the guest workload: `resource` capped at `soft`, which
/// the workload may raise up to `hard`. Written `NAME=SOFT[:HARD]` with a
/// lower-case `RLIMIT_*` name, numbers or `unlimited` (e.g.
/// `nofile=1024:4096`, `core=0`).
///
/// ```
/// use krunbox::vm::{Resource, Rlimit};
///
/// let limit: Rlimit = "nofile=1024:4096".parse()?;
/// assert_eq!(limit, Rlimit::new(Resource::Nofile, 1024, 4096));
/// # Ok::<(), krunbox::vm::RlimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// What is limited.
    pub resource: Resource,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// A limit that cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    /// Not `NAME=SOFT[:HARD]`.
    #[error("expected NAME=SOFT[:HARD] (e.g. nofile=1024:4096), got {0:?}")]
    Syntax(String),
    /// An unknown resource name.
    #[error("unknown resource {0:?}; one of: {names}", names = names())]
    Resource(String),
    /// A limit that is neither a number nor `unlimited`.
    #[error("limit {0:?} is neither a number nor \"unlimited\"")]
    Value(String, #[source] std::num::ParseIntError),
    /// The soft limit is above the hard one.
    #[error("the soft limit of {resource} ({soft}) is above its hard limit ({hard})")]
    SoftAboveHard {
        /// The resource's name.
        resource: String,
        /// The soft limit.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
}

/// `RLIM_INFINITY`.
const UNLIMITED: u64 = u64::MAX;

fn names() -> String {
    NAMES.map(|(name, _)| name).join(", ")
}

impl Rlimit {
    /// Limits `resource` to `soft`, raisable to `hard` (`u64::MAX`:
    /// unlimited).
    pub fn new(resource: Resource, soft: u64, hard: u64) -> Self {
        Self {
            resource,
            soft,
            hard,
        }
    }

    /// Checks that the soft limit is not above the hard one.
    pub(crate) fn check(&self) -> Result<(), RlimitError> {
        if self.soft > self.hard {
            return Err(RlimitError::SoftAboveHard {
                resource: self.resource.to_string(),
                soft: self.soft,
                hard: self.hard,
            });
        }
        Ok(())
    }

    /// libkrun's syntax, `NUMBER=SOFT:HARD`.
    pub(crate) fn to_libkrun(self) -> String {
        format!("{}={}:{}", self.resource as u32, self.soft, self.hard)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES
            .iter()
            .find(|(_, r)| r == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

impl FromStr for Resource {
    type Err = RlimitError;

    fn from_str(text: &str) -> Result<Self, RlimitError> {
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_prefix("rlimit_").unwrap_or(&lower);
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| RlimitError::Resource(text.to_owned()))
    }
}

impl FromStr for Rlimit {
    type Err = RlimitError;

    fn from_str(text: &str) -> Result<Self, RlimitError> {
        let (name, values) = text
            .split_once('=')
            .ok_or_else(|| RlimitError::Syntax(text.to_owned()))?;
        let (soft, hard) = values.split_once(':').unwrap_or((values, values));
        let limit = Self::new(name.parse()?, parse_value(soft)?, parse_value(hard)?);
        limit.check()?;
        Ok(limit)
    }
}

fn parse_value(text: &str) -> Result<u64, RlimitError> {
    if text == "unlimited" {
        return Ok(UNLIMITED);
    }
    text.parse()
        .map_err(|e| RlimitError::Value(text.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_by_name() {
        let l: Rlimit = "nofile=1024:4096".parse().unwrap();
        assert_eq!(l.to_libkrun(), "7=1024:4096");
        let l: Rlimit = "RLIMIT_CORE=0".parse().unwrap();
        assert_eq!(l, Rlimit::new(Resource::Core, 0, 0));
        let l: Rlimit = "stack=8388608:unlimited".parse().unwrap();
        assert_eq!(l.hard, u64::MAX);
    }

    #[test]
    fn bad_limits_say_why() {
        let err = "files=10".parse::<Rlimit>().unwrap_err();
        assert!(err.to_string().contains("nofile"), "{err}");
        assert!(matches!(
            "nofile".parse::<Rlimit>(),
            Err(RlimitError::Syntax(_))
        ));
        assert!(matches!(
            "nofile=lots".parse::<Rlimit>(),
            Err(RlimitError::Value(..))
        ));
        let err = "nofile=10:5".parse::<Rlimit>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the soft limit of nofile (10) is above its hard limit (5)"
        );
    }

    #[test]
    fn every_resource_has_a_name() {
        for (name, resource) in NAMES {
            assert_eq!(resource.to_string(), name);
            assert_eq!(name.parse::<Resource>().unwrap(), resource);
        }
    }
}
