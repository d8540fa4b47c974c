//! OCI indexes and manifests, wherever they are read from, and the OCI
//! image layout directory as a [`BlobSource`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform};
use serde::Deserialize;

use super::{
    copy_split, host_platform, parse_json, read_limited, ArchiveError, BlobSource, CopyError,
    PendingImage, PendingLayer, StagedBlob, MAX_INDEX_DEPTH, MAX_JSON,
};
use crate::digest::{Digest, DigestWriter};
use crate::layer::Compression;
use crate::reference::Reference;

/// The tag of an index entry (OCI image layout).
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full name of an index entry (containerd, Docker ≥ 25).
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Marks BuildKit's attestation manifests, which are not images.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The one OCI layout version there is.
const LAYOUT_VERSION: &str = "1.0.0";

/// A manifest picked from an index, with the names its entries give it.
#[derive(Debug)]
pub(crate) struct Selected {
    pub digest: Digest,
    pub size: u64,
    pub names: Vec<String>,
}

/// The image manifests of an index for the host platform, each with its
/// names; only the entries tagged `tag` when one is given.
pub(crate) fn select(
    source: &mut dyn BlobSource,
    index: &[u8],
    location: &str,
    tag: Option<&str>,
) -> Result<Vec<Selected>, ArchiveError> {
    let index: ImageIndex = parse_json(index, location, "image index")?;
    check_schema(index.schema_version(), location)?;
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
        if let Some(platform) = entry.platform().as_ref().filter(|p| !is_host(p)) {
            other_platforms.push(platform_name(platform));
            continue;
        }
        let (digest, size) = manifest_for_host(source, entry, location, 0)?;
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
            no_platform(location, other_platforms)
        });
    }
    Ok(selected)
}

/// The manifest an index entry stands for on this host: the entry itself,
/// or the host's manifest of the (multi-platform) index it points to.
fn manifest_for_host(
    source: &mut dyn BlobSource,
    entry: &Descriptor,
    location: &str,
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
    let bytes = read_sized(source, &digest, entry.size(), "image index")?;
    let index: ImageIndex = parse_json(&bytes, &location, "image index")?;
    check_schema(index.schema_version(), &location)?;
    let mut other_platforms = Vec::new();
    for nested in index.manifests() {
        if is_attestation(nested) {
            continue;
        }
        if let Some(platform) = nested.platform().as_ref().filter(|p| !is_host(p)) {
            other_platforms.push(platform_name(platform));
            continue;
        }
        let media_type = nested.media_type().to_string();
        if is_manifest(&media_type) || is_index(&media_type) {
            return manifest_for_host(source, nested, &location, depth + 1);
        }
    }
    Err(no_platform(&location, other_platforms))
}

/// Reads, checks and parses a selected manifest and its config.
pub(crate) fn pending_image(
    source: &mut dyn BlobSource,
    selected: Selected,
) -> Result<PendingImage, ArchiveError> {
    let manifest = read_sized(source, &selected.digest, selected.size, "manifest")?;
    let location = format!("manifest {}", selected.digest);
    let parsed: ImageManifest = parse_json(&manifest, &location, "image manifest")?;
    check_schema(parsed.schema_version(), &location)?;
    if let Some(media_type) = parsed.media_type().as_ref().map(|m| m.to_string()) {
        if !is_manifest(&media_type) {
            return Err(ArchiveError::MediaType {
                location,
                what: "manifest",
                media_type,
            });
        }
    }
    let config_media_type = parsed.config().media_type().to_string();
    if config_media_type != OCI_CONFIG && config_media_type != DOCKER_CONFIG {
        return Err(ArchiveError::MediaType {
            location,
            what: "config",
            media_type: config_media_type,
        });
    }
    let config_digest = descriptor_digest(parsed.config(), &location)?;
    let config = read_sized(source, &config_digest, parsed.config().size(), "config")?;
    let image_config: ImageConfiguration =
        parse_json(&config, format!("config {config_digest}"), "image config")?;
    let diff_ids = diff_ids(&image_config, &config_digest, parsed.layers().len())?;
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (layer, diff_id) in parsed.layers().iter().zip(diff_ids) {
        let media_type = layer.media_type().to_string();
        let compression =
            Compression::from_media_type(&media_type).ok_or_else(|| ArchiveError::MediaType {
                location: location.clone(),
                what: "layer",
                media_type,
            })?;
        layers.push(PendingLayer {
            digest: descriptor_digest(layer, &location)?,
            size: layer.size(),
            compression,
            diff_id,
        });
    }
    Ok(PendingImage {
        names: selected.names,
        manifest_digest: selected.digest,
        manifest,
        config_digest,
        config,
        image_config,
        layers,
    })
}

/// The config's `rootfs.diff_ids`, one for each of `layers` layers.
pub(crate) fn diff_ids(
    image_config: &ImageConfiguration,
    config_digest: &Digest,
    layers: usize,
) -> Result<Vec<Digest>, ArchiveError> {
    let listed = image_config.rootfs().diff_ids();
    if listed.len() != layers {
        return Err(ArchiveError::LayerCount {
            config: config_digest.clone(),
            diff_ids: listed.len(),
            layers,
        });
    }
    listed
        .iter()
        .map(|id| {
            Digest::parse(id).map_err(|source| ArchiveError::Digest {
                location: format!("config {config_digest}"),
                source,
            })
        })
        .collect()
}

/// A JSON blob, checked against its descriptor's size.
fn read_sized(
    source: &mut dyn BlobSource,
    digest: &Digest,
    size: u64,
    what: &'static str,
) -> Result<Vec<u8>, ArchiveError> {
    let bytes = source.read_json(digest, what)?;
    if bytes.len() as u64 != size {
        return Err(ArchiveError::SizeMismatch {
            what,
            digest: digest.clone(),
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

fn check_schema(version: u32, location: &str) -> Result<(), ArchiveError> {
    if version == 2 {
        Ok(())
    } else {
        Err(ArchiveError::SchemaVersion {
            location: location.to_owned(),
            version,
        })
    }
}

fn descriptor_digest(descriptor: &Descriptor, location: &str) -> Result<Digest, ArchiveError> {
    Digest::parse(descriptor.digest().as_ref()).map_err(|source| ArchiveError::Digest {
        location: location.to_owned(),
        source,
    })
}

fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

fn annotation<'a>(descriptor: &'a Descriptor, key: &str) -> Option<&'a str> {
    descriptor
        .annotations()
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn is_attestation(descriptor: &Descriptor) -> bool {
    annotation(descriptor, REFERENCE_TYPE) == Some("attestation-manifest")
}

fn is_host(platform: &Platform) -> bool {
    let (os, arch) = host_platform();
    platform.os().to_string() == os && platform.architecture().to_string() == arch
}

fn platform_name(platform: &Platform) -> String {
    match platform.variant() {
        Some(variant) => format!("{}/{}/{variant}", platform.os(), platform.architecture()),
        None => format!("{}/{}", platform.os(), platform.architecture()),
    }
}

fn no_platform(location: &str, available: Vec<String>) -> ArchiveError {
    let (os, arch) = host_platform();
    ArchiveError::NoMatchingPlatform {
        location: location.to_owned(),
        wanted: format!("{os}/{arch}"),
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

/// An OCI image layout directory, read in place.
#[derive(Debug)]
pub(crate) struct LayoutDir {
    dir: PathBuf,
    staging: PathBuf,
    staged: HashMap<Digest, StagedBlob>,
}

#[derive(Deserialize)]
struct LayoutHeader {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

impl LayoutDir {
    /// Opens the layout at `dir` (checking its `oci-layout` file), staging
    /// blobs into `staging`.
    pub(crate) fn open(dir: &Path, staging: &Path) -> Result<Self, ArchiveError> {
        let path = dir.join("oci-layout");
        let header = read_json_file(&path, |path, source| ArchiveError::NotALayout {
            path,
            source,
        })?;
        check_layout_header(&header, &path.display().to_string())?;
        Ok(Self {
            dir: dir.to_owned(),
            staging: staging.to_owned(),
            staged: HashMap::new(),
        })
    }

    /// The images of its `index.json` for this host (tagged `tag`).
    fn select(&mut self, tag: Option<&str>) -> Result<Vec<Selected>, ArchiveError> {
        let path = self.dir.join("index.json");
        let index = self.read_file(&path)?;
        select(self, &index, &path.display().to_string(), tag)
    }

    /// The one image of the layout for this host (tagged `tag`), read and
    /// checked (its layers are staged later, when they are needed).
    pub(crate) fn image(&mut self, tag: Option<&str>) -> Result<PendingImage, ArchiveError> {
        let mut selected = self.select(tag)?;
        if selected.len() > 1 {
            return Err(ArchiveError::Ambiguous {
                location: self.dir.join("index.json").display().to_string(),
                count: selected.len(),
            });
        }
        pending_image(self, selected.remove(0))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn open_blob(&self, digest: &Digest, what: &'static str) -> Result<File, ArchiveError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ArchiveError::MissingBlob {
                what,
                digest: digest.clone(),
                origin: "layout",
            },
            _ => ArchiveError::ReadFile { path, source },
        })
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>, ArchiveError> {
        read_json_file(path, |path, source| ArchiveError::ReadFile { path, source })
    }
}

/// A JSON file of the layout, at most [`MAX_JSON`] bytes; `unreadable`
/// makes the error when it cannot be read.
fn read_json_file(
    path: &Path,
    unreadable: impl FnOnce(PathBuf, io::Error) -> ArchiveError,
) -> Result<Vec<u8>, ArchiveError> {
    File::open(path)
        .and_then(read_limited)
        .map_err(|source| unreadable(path.to_owned(), source))?
        .ok_or_else(|| ArchiveError::TooLarge {
            location: path.display().to_string(),
            limit: MAX_JSON,
        })
}

/// Checks an `oci-layout` file's version.
pub(crate) fn check_layout_header(bytes: &[u8], location: &str) -> Result<(), ArchiveError> {
    let header: LayoutHeader = parse_json(bytes, location, "OCI layout header")?;
    if header.version == LAYOUT_VERSION {
        Ok(())
    } else {
        Err(ArchiveError::LayoutVersion {
            location: location.to_owned(),
            version: header.version,
        })
    }
}

impl BlobSource for LayoutDir {
    fn read_json(&mut self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, ArchiveError> {
        let path = self.blob_path(digest);
        let file = self.open_blob(digest, what)?;
        let bytes = read_limited(file)
            .map_err(|source| ArchiveError::ReadFile {
                path: path.clone(),
                source,
            })?
            .ok_or_else(|| ArchiveError::TooLarge {
                location: path.display().to_string(),
                limit: MAX_JSON,
            })?;
        digest
            .verify(&Digest::of(&bytes))
            .map_err(|source| ArchiveError::DigestMismatch {
                location: path.display().to_string(),
                source,
            })?;
        Ok(bytes)
    }

    fn stage(&mut self, digest: &Digest, what: &'static str) -> Result<StagedBlob, ArchiveError> {
        if let Some(staged) = self.staged.get(digest) {
            return Ok(staged.clone());
        }
        let mut file = self.open_blob(digest, what)?;
        let path = self.staging.join(format!("blob-{}", digest.hex()));
        let stage_err = |source| ArchiveError::Stage {
            path: path.clone(),
            source,
        };
        let out = File::create(&path).map_err(stage_err)?;
        let mut writer = DigestWriter::new(BufWriter::new(out));
        copy_split(&mut file, &mut writer).map_err(|e| match e {
            CopyError::Read(source) => ArchiveError::ReadFile {
                path: self.blob_path(digest),
                source,
            },
            CopyError::Write(source) => stage_err(source),
        })?;
        writer.flush().map_err(stage_err)?;
        let size = writer.len();
        writer
            .verify(digest)
            .map_err(|source| ArchiveError::DigestMismatch {
                location: self.blob_path(digest).display().to_string(),
                source,
            })?;
        let staged = StagedBlob {
            path,
            digest: digest.clone(),
            size,
        };
        self.staged.insert(digest.clone(), staged.clone());
        Ok(staged)
    }
}
