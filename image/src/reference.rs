//! What a user names an image by: a docker-style [`Reference`]
//! (`[registry/]repository[:tag][@sha256:hex]`), normalized the way docker
//! does it, and the [`Source`] an image is loaded from (a registry, an OCI
//! layout directory, a docker-archive file or standard input).
//!
//! Normalization, as in `docker pull`:
//!
//! | given                          | normalized                                |
//! |--------------------------------|-------------------------------------------|
//! | `alpine`                       | `docker.io/library/alpine:latest`         |
//! | `user/app:1.0`                 | `docker.io/user/app:1.0`                  |
//! | `localhost:5000/app`           | `localhost:5000/app:latest`               |
//! | `ghcr.io/o/app@sha256:…`       | `ghcr.io/o/app@sha256:…` (no tag added)   |
//!
//! The first path component is a registry when it contains a `.` or a `:`,
//! is `localhost`, or has an uppercase letter (which a repository cannot).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The tag of references that name neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// The namespace of single-component repositories on the default registry.
const OFFICIAL_NAMESPACE: &str = "library/";

/// Longest `registry/repository`, as docker allows.
const MAX_NAME_LEN: usize = 255;

/// Longest tag.
const MAX_TAG_LEN: usize = 128;

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub registry: String,
    /// The repository path within the registry, e.g. `library/alpine`.
    pub repository: String,
    /// The tag; `latest` when the reference named neither tag nor digest.
    pub tag: Option<String>,
    /// The manifest digest, when the reference pins one.
    pub digest: Option<Digest>,
}

/// A reference string that is not a valid image reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("image reference is empty")]
    Empty,
    /// The repository has an uppercase letter.
    #[error("image reference {reference:?}: repository name must be lowercase")]
    Uppercase {
        /// The reference given.
        reference: String,
    },
    /// A repository path component is empty or has characters (or
    /// separators) a repository cannot.
    #[error("image reference {reference:?}: invalid repository component {component:?}")]
    InvalidRepository {
        /// The reference given.
        reference: String,
        /// The offending component.
        component: String,
    },
    /// The registry is not a host name or address with an optional port.
    #[error("image reference {reference:?}: invalid registry {registry:?}")]
    InvalidRegistry {
        /// The reference given.
        reference: String,
        /// The registry part.
        registry: String,
    },
    /// The tag is empty, too long, or has characters a tag cannot.
    #[error("image reference {reference:?}: invalid tag {tag:?}")]
    InvalidTag {
        /// The reference given.
        reference: String,
        /// The tag part.
        tag: String,
    },
    /// The part after `@` is not a sha256 digest.
    #[error("image reference {reference:?}: invalid digest")]
    InvalidDigest {
        /// The reference given.
        reference: String,
        /// Why the digest is invalid.
        #[source]
        source: DigestError,
    },
    /// `registry/repository` is longer than 255 characters.
    #[error("image reference {reference:?}: name longer than {MAX_NAME_LEN} characters")]
    TooLong {
        /// The reference given.
        reference: String,
    },
    /// A source with a transport prefix (`oci:`, `docker-archive:`) names
    /// no path.
    #[error("image source {source_text:?} names no path")]
    EmptyPath {
        /// The source given.
        source_text: String,
    },
}

impl Reference {
    /// Parses and normalizes a docker-style reference.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match text.split_once('@') {
            Some((name_tag, digest)) => {
                let digest =
                    Digest::parse(digest).map_err(|source| ReferenceError::InvalidDigest {
                        reference: text.to_owned(),
                        source,
                    })?;
                (name_tag, Some(digest))
            }
            None => (text, None),
        };
        let (name, tag) = split_tag(name_tag);
        if let Some(tag) = tag {
            check_tag(text, tag)?;
        }
        let (registry, repository) = split_registry(name);
        check_registry(text, registry)?;
        let repository = normalize_repository(registry, repository);
        check_repository(text, &repository)?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong {
                reference: text.to_owned(),
            });
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry: normalize_registry(registry).to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// Splits `name[:tag]`: the tag is after the last `:` that follows the last
/// `/` (a `:` before it is a registry port).
fn split_tag(name_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    }
}

/// Splits off the registry, if the first component names one.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn normalize_registry(registry: &str) -> &str {
    if registry == "index.docker.io" {
        DEFAULT_REGISTRY
    } else {
        registry
    }
}

fn normalize_repository(registry: &str, repository: &str) -> String {
    if normalize_registry(registry) == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("{OFFICIAL_NAMESPACE}{repository}")
    } else {
        repository.to_owned()
    }
}

/// `host[:port]`: dot-separated labels of letters, digits and inner
/// hyphens, or a bracketed IPv6 address.
fn check_registry(text: &str, registry: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidRegistry {
        reference: text.to_owned(),
        registry: registry.to_owned(),
    };
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(invalid)?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid());
        }
        match after {
            "" => ("", None),
            _ => ("", Some(after.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let host_ok = (host.is_empty() && registry.starts_with('[')) || host.split('.').all(label_ok);
    let port_ok = match port {
        None => true,
        Some(p) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
    };
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Components of `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_repository(text: &str, repository: &str) -> Result<(), ReferenceError> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase {
            reference: text.to_owned(),
        });
    }
    for component in repository.split('/') {
        if !is_path_component(component) {
            return Err(ReferenceError::InvalidRepository {
                reference: text.to_owned(),
                component: component.to_owned(),
            });
        }
    }
    Ok(())
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    // Between alphanumeric runs: one `.`, one or two `_`, or any `-`s.
    bytes
        .split(alnum)
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&b| b == b'-'))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(text: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            reference: text.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Where an image comes from.
///
/// | given               | source                                   |
/// |---------------------|------------------------------------------|
/// | `oci:DIR[:TAG]`     | an OCI image layout directory            |
/// | `docker-archive:F`  | a `docker save` tar file                 |
/// | `-`                 | a `docker save` tar on standard input    |
/// | `docker://REF`, `REF` | a registry reference                   |
///
/// As with skopeo, `DIR` ends at its first `:`, so it cannot contain one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI image layout directory, and the `org.opencontainers.image.ref.name`
    /// to pick from its index.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag to pick; `None` when the index holds one image.
        tag: Option<String>,
    },
    /// A docker-archive (`docker save` output) file.
    DockerArchive(PathBuf),
    /// A docker-archive read from standard input.
    Stdin,
    /// An image in a registry.
    Registry(Reference),
}

impl Source {
    /// Parses a source as the table above shows.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let empty_path = || ReferenceError::EmptyPath {
            source_text: text.to_owned(),
        };
        if text == "-" {
            return Ok(Self::Stdin);
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, tag) = match rest.split_once(':') {
                Some((dir, tag)) => (dir, Some(tag).filter(|t| !t.is_empty())),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(empty_path());
            }
            return Ok(Self::OciLayout {
                dir: dir.into(),
                tag: tag.map(str::to_owned),
            });
        }
        if let Some(file) = text.strip_prefix("docker-archive:") {
            if file.is_empty() {
                return Err(empty_path());
            }
            return Ok(Self::DockerArchive(file.into()));
        }
        let reference = text.strip_prefix("docker://").unwrap_or(text);
        Reference::parse(reference).map(Self::Registry)
    }
}

impl FromStr for Source {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(text: &str) -> String {
        Reference::parse(text).unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(normalized("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(normalized("alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(normalized("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            normalized("docker.io/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            normalized("index.docker.io/library/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(normalized("localhost/app"), "localhost/app:latest");
        assert_eq!(normalized("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(
            normalized("ghcr.io/o/a/b:v1.2-rc_3"),
            "ghcr.io/o/a/b:v1.2-rc_3"
        );
        assert_eq!(normalized("[::1]:5000/x:t"), "[::1]:5000/x:t");
    }

    #[test]
    fn fields() {
        let r = Reference::parse("localhost:5000/ns/app:v1").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "ns/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest, None);
        assert_eq!(r.name(), "localhost:5000/ns/app");
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("alpine@sha256:{hex}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().hex(), hex);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine@sha256:{hex}")
        );
        let both = Reference::parse(&format!("alpine:3@sha256:{hex}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("3"));
        assert!(matches!(
            Reference::parse("alpine@sha256:123"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse(&format!("alpine@md5:{hex}")),
            Err(ReferenceError::InvalidDigest { .. })
        ));
    }

    #[test]
    fn malformed() {
        assert!(matches!(Reference::parse(""), Err(ReferenceError::Empty)));
        assert!(matches!(
            Reference::parse("Alpine"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            Reference::parse("docker.io/User/app"),
            Err(ReferenceError::Uppercase { .. })
        ));
        for bad in ["a//b", "-a", "a-", "a..b", "a___b", "/a", "a/"] {
            assert!(
                matches!(
                    Reference::parse(bad),
                    Err(ReferenceError::InvalidRepository { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["a:", "a:-x", "a:x/y", &format!("a:{}", "t".repeat(129))] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Reference::parse("bad_host.io/x"),
            Err(ReferenceError::InvalidRegistry { .. })
        ));
        assert!(matches!(
            Reference::parse("host.io:port/x"),
            Err(ReferenceError::InvalidRegistry { .. })
        ));
        let long = format!("x/{}", "a".repeat(260));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::TooLong { .. })
        ));
    }

    #[test]
    fn separators() {
        for good in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            assert!(Reference::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!(Source::parse("-").unwrap(), Source::Stdin);
        assert_eq!(
            Source::parse("oci:/tmp/layout:v1").unwrap(),
            Source::OciLayout {
                dir: "/tmp/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Source::parse("oci:rel/dir").unwrap(),
            Source::OciLayout {
                dir: "rel/dir".into(),
                tag: None
            }
        );
        assert_eq!(
            Source::parse("docker-archive:/x/img.tar").unwrap(),
            Source::DockerArchive("/x/img.tar".into())
        );
        assert_eq!(
            Source::parse("docker://alpine").unwrap(),
            Source::Registry(Reference::parse("alpine").unwrap())
        );
        assert!(matches!(
            Source::parse("oci:"),
            Err(ReferenceError::EmptyPath { .. })
        ));
        assert!(matches!(
            Source::parse("docker-archive:"),
            Err(ReferenceError::EmptyPath { .. })
        ));
        assert!(Source::parse("Bad").is_err());
    }
}
