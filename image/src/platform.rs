//! [`Platform`]: which image of a multi-platform index is wanted, as
//! `os/architecture[/variant]` in Go's spelling (`linux/amd64`,
//! `linux/arm64/v8`, `linux/arm/v7`), the way `docker pull --platform`
//! takes it.
//!
//! An index entry matches when its OS and architecture are the wanted
//! ones and, if a variant is wanted, its variant too (an entry without a
//! variant matches any). An entry with no platform at all matches
//! anything: single-platform indexes often leave it out.

use std::fmt;
use std::str::FromStr;

/// An image platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// The OS, e.g. `linux`.
    pub os: String,
    /// The CPU architecture in GOARCH spelling, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// The CPU variant, e.g. `v8` for `arm64`, `v7` for `arm`.
    pub variant: Option<String>,
}

/// A platform string that is not `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {value:?}: expected os/architecture[/variant], e.g. linux/arm64")]
pub struct PlatformError {
    /// The string given.
    pub value: String,
}

impl Platform {
    /// The platform images are picked for by default: Linux (guests are
    /// Linux whatever the host) on the host's CPU architecture.
    pub fn host() -> Self {
        let (os, architecture) = host_platform();
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Whether an index entry's platform is this one (see the
    /// [module docs](self)).
    pub fn matches(&self, entry: &oci_spec::image::Platform) -> bool {
        entry.os().to_string() == self.os
            && entry.architecture().to_string() == self.architecture
            && match (&self.variant, entry.variant()) {
                (Some(wanted), Some(variant)) => wanted == variant,
                _ => true,
            }
    }

    /// How an index entry's platform is shown: `os/architecture[/variant]`.
    pub fn describe(entry: &oci_spec::image::Platform) -> String {
        match entry.variant() {
            Some(variant) => format!("{}/{}/{variant}", entry.os(), entry.architecture()),
            None => format!("{}/{}", entry.os(), entry.architecture()),
        }
    }
}

/// The host's platform as `(os, architecture)`: `linux` and the CPU
/// architecture in GOARCH spelling.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

impl Default for Platform {
    fn default() -> Self {
        Self::host()
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || PlatformError {
            value: value.to_owned(),
        };
        let word = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let parts: Vec<&str> = value.split('/').collect();
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| word(p)) {
            return Err(invalid());
        }
        Ok(Self {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::image::{Arch, Os, PlatformBuilder};

    use super::*;

    fn entry(arch: Arch, variant: Option<&str>) -> oci_spec::image::Platform {
        let mut builder = PlatformBuilder::default().os(Os::Linux).architecture(arch);
        if let Some(variant) = variant {
            builder = builder.variant(variant);
        }
        builder.build().unwrap()
    }

    #[test]
    fn parses_and_shows() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.os, "linux");
        assert_eq!(p.architecture, "arm64");
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!("linux/amd64".parse::<Platform>().unwrap().variant, None);
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "Linux/amd64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_variants_only_when_asked() {
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(arm64.matches(&entry(Arch::ARM64, Some("v8"))));
        assert!(arm64.matches(&entry(Arch::ARM64, None)));
        assert!(v8.matches(&entry(Arch::ARM64, None)));
        assert!(!v8.matches(&entry(Arch::ARM64, Some("v9"))));
        assert!(!arm64.matches(&entry(Arch::Amd64, None)));
        assert_eq!(
            Platform::describe(&entry(Arch::ARM, Some("v7"))),
            "linux/arm/v7"
        );
    }
}
