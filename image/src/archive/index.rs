//! OCI image indexes (and Docker manifest lists), wherever they are read
//! from: which of their entries are images for the wanted platform, and
//! what kind of document a manifest is. Shared by archives, layouts and
//! registry pulls.

use oci_spec::image::{Descriptor, ImageIndex};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{parse_json, ArchiveError, BlobSource, MAX_INDEX_DEPTH};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

/// The tag of an index entry (OCI image layout).
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full name of an index entry (containerd, Docker ≥ 25).
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Marks BuildKit's attestation manifests, which are not images.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The media types of the manifests and indexes this crate reads, for an
/// `Accept` header.
pub(crate) const MANIFEST_MEDIA_TYPES: [&str; 4] =
    [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// A manifest picked from an index, with the names its entries give it.
#[derive(Debug)]
pub(crate) struct Selected {
    pub digest: Digest,
    pub size: u64,
    pub names: Vec<String>,
}

/// What a manifest document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocumentKind {
    /// An image manifest.
    Manifest,
    /// An image index or manifest list.
    Index,
}

/// The fields that tell a manifest from an index.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<IgnoredAny>,
}

/// Whether `bytes` are an image manifest or an index: by `mediaType`, or
/// without one (it is optional in OCI) by whether it lists `manifests`.
/// Anything else (a schema 1 manifest, an artifact) is refused.
pub(crate) fn document_kind(bytes: &[u8], location: &str) -> Result<DocumentKind, ArchiveError> {
    let envelope: Envelope = parse_json(bytes, location, "manifest or index")?;
    check_schema(envelope.schema_version, location)?;
    match envelope.media_type.as_deref() {
        Some(media_type) if is_index(media_type) => Ok(DocumentKind::Index),
        Some(media_type) if is_manifest(media_type) => Ok(DocumentKind::Manifest),
        Some(media_type) => Err(ArchiveError::MediaType {
            location: location.to_owned(),
            what: "manifest",
            media_type: media_type.to_owned(),
        }),
        None if envelope.manifests.is_some() => Ok(DocumentKind::Index),
        None => Ok(DocumentKind::Manifest),
    }
}

/// Parses an index and checks its schema version.
pub(crate) fn parse_index(bytes: &[u8], location: &str) -> Result<ImageIndex, ArchiveError> {
    let index: ImageIndex = parse_json(bytes, location, "image index")?;
    check_schema(index.schema_version(), location)?;
    Ok(index)
}

/// The image manifests of an index for `platform`, each with its names;
/// only the entries tagged `tag` when one is given.
pub(crate) fn select(
    source: &mut dyn BlobSource,
    index: &[u8],
    location: &str,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<Vec<Selected>, ArchiveError> {
    let index = parse_index(index, location)?;
    let mut entries: Vec<&Descriptor> = index.manifests().iter().collect();
    if let Some(tag) = tag {
        entries.retain(|d| annotation(d, REF_NAME) == Some(tag));
        if entries.is_empty() {
            return Err(ArchiveError::TagNotFound {
                location: location.to_owned(),
                tag: tag.to_owned(),
            });
        }
    }
    let mut selected: Vec<Selected> = Vec::new();
    let mut other_platforms = Vec::new();
    for entry in entries {
        if is_attestation(entry) {
            continue;
        }
        if let Some(other) = entry.platform().as_ref().filter(|p| !platform.matches(p)) {
            other_platforms.push(Platform::describe(other));
            continue;
        }
        let (digest, size) = manifest_for(source, entry, location, platform, 0)?;
        let names = names_of(entry);
        match selected.iter_mut().find(|s| s.digest == digest) {
            Some(same) => {
                for name in names {
                    if !same.names.contains(&name) {
                        same.names.push(name);
                    }
                }
            }
            None => selected.push(Selected {
                digest,
                size,
                names,
            }),
        }
    }
    if selected.is_empty() {
        return Err(if other_platforms.is_empty() {
            ArchiveError::Empty {
                location: location.to_owned(),
            }
        } else {
            no_platform(location, platform, other_platforms)
        });
    }
    Ok(selected)
}

/// The manifest an index entry stands for on `platform`: the entry
/// itself, or the platform's manifest of the (multi-platform) index it
/// points to.
fn manifest_for(
    source: &mut dyn BlobSource,
    entry: &Descriptor,
    location: &str,
    platform: &Platform,
    depth: usize,
) -> Result<(Digest, u64), ArchiveError> {
    let digest = descriptor_digest(entry, location)?;
    let media_type = entry.media_type().to_string();
    if is_manifest(&media_type) {
        return Ok((digest, entry.size()));
    }
    if !is_index(&media_type) {
        return Err(ArchiveError::MediaType {
            location: location.to_owned(),
            what: "index entry",
            media_type,
        });
    }
    let location = format!("index {digest}");
    if depth >= MAX_INDEX_DEPTH {
        return Err(ArchiveError::TooDeep { location });
    }
    let bytes = source.read_json(&digest, "image index")?;
    check_size(&bytes, &digest, entry.size(), "image index")?;
    let index = parse_index(&bytes, &location)?;
    let nested = pick_entry(&index, platform, &location)?;
    manifest_for(source, nested, &location, platform, depth + 1)
}

/// The entry of `index` to follow for `platform`: the first one for it
/// (or for no platform in particular) that is a manifest or an index,
/// attestations skipped.
pub(crate) fn pick_entry<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
    location: &str,
) -> Result<&'a Descriptor, ArchiveError> {
    let mut other_platforms = Vec::new();
    for entry in index.manifests() {
        if is_attestation(entry) {
            continue;
        }
        if let Some(other) = entry.platform().as_ref().filter(|p| !platform.matches(p)) {
            other_platforms.push(Platform::describe(other));
            continue;
        }
        let media_type = entry.media_type().to_string();
        if is_manifest(&media_type) || is_index(&media_type) {
            return Ok(entry);
        }
    }
    Err(no_platform(location, platform, other_platforms))
}

/// Checks a blob read against its descriptor's size.
pub(crate) fn check_size(
    bytes: &[u8],
    digest: &Digest,
    size: u64,
    what: &'static str,
) -> Result<(), ArchiveError> {
    if bytes.len() as u64 == size {
        Ok(())
    } else {
        Err(ArchiveError::SizeMismatch {
            what,
            digest: digest.clone(),
            expected: size,
            actual: bytes.len() as u64,
        })
    }
}

pub(crate) fn check_schema(version: u32, location: &str) -> Result<(), ArchiveError> {
    if version == 2 {
        Ok(())
    } else {
        Err(ArchiveError::SchemaVersion {
            location: location.to_owned(),
            version,
        })
    }
}

/// A descriptor's digest, which must be a sha256 one.
pub(crate) fn descriptor_digest(
    descriptor: &Descriptor,
    location: &str,
) -> Result<Digest, ArchiveError> {
    Digest::parse(descriptor.digest().as_ref()).map_err(|source| ArchiveError::Digest {
        location: location.to_owned(),
        source,
    })
}

pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub(crate) fn annotation<'a>(descriptor: &'a Descriptor, key: &str) -> Option<&'a str> {
    descriptor
        .annotations()
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn is_attestation(descriptor: &Descriptor) -> bool {
    annotation(descriptor, REFERENCE_TYPE) == Some("attestation-manifest")
}

fn no_platform(location: &str, platform: &Platform, available: Vec<String>) -> ArchiveError {
    ArchiveError::NoMatchingPlatform {
        location: location.to_owned(),
        wanted: platform.to_string(),
        available,
    }
}

/// The names an index entry gives its image: containerd's full name, and
/// the OCI ref name when it is a full reference (`repo:tag`, not a bare
/// tag). Annotations are free-form: one that is not a valid reference is
/// not a name, and not an error.
fn names_of(descriptor: &Descriptor) -> Vec<String> {
    let mut names = Vec::new();
    let full = annotation(descriptor, CONTAINERD_NAME);
    let ref_name = annotation(descriptor, REF_NAME).filter(|r| r.contains([':', '/']));
    for name in full.into_iter().chain(ref_name) {
        if let Ok(reference) = Reference::parse(name) {
            let name = reference.to_string();
            if reference.digest.is_none() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_manifests_from_indexes() {
        let kind = |json: &str| document_kind(json.as_bytes(), "x");
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(kind(index).unwrap(), DocumentKind::Index);
        let manifest = r#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(kind(manifest).unwrap(), DocumentKind::Manifest);
        let list = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}"}}"#);
        assert_eq!(kind(&list).unwrap(), DocumentKind::Index);
        let v1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            kind(v1),
            Err(ArchiveError::SchemaVersion { version: 1, .. })
        ));
        let artifact = r#"{"schemaVersion":2,"mediaType":"application/vnd.x+json"}"#;
        assert!(matches!(
            kind(artifact),
            Err(ArchiveError::MediaType { .. })
        ));
        assert!(matches!(kind("[]"), Err(ArchiveError::Json { .. })));
    }
}
