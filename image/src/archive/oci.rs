//! OCI image manifests, wherever they are read from, and the OCI image
//! layout directory as a [`BlobSource`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::Deserialize;

use super::index::{self, check_schema, check_size, descriptor_digest, is_manifest, Selected};
use super::{
    copy_split, parse_json, read_limited, ArchiveError, BlobSource, CopyError, PendingImage,
    PendingLayer, StagedBlob, MAX_JSON,
};
use crate::digest::{Digest, DigestWriter};
use crate::layer::Compression;
use crate::platform::Platform;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The one OCI layout version there is.
const LAYOUT_VERSION: &str = "1.0.0";

/// What an image manifest says the image is made of, before its config
/// is read.
#[derive(Debug, Clone)]
pub(crate) struct ManifestParts {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest.
    pub manifest: Vec<u8>,
    /// The image config blob.
    pub config_digest: Digest,
    /// Its size, as the manifest gives it.
    pub config_size: u64,
    /// The layer blobs, base first.
    pub layers: Vec<ManifestLayer>,
}

/// A layer as a manifest describes it.
#[derive(Debug, Clone)]
pub(crate) struct ManifestLayer {
    /// The blob (compressed, as stored).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// How it is compressed, from its media type.
    pub compression: Compression,
}

/// Reads, checks and parses a selected manifest and its config.
pub(crate) fn pending_image(
    source: &mut dyn BlobSource,
    selected: Selected,
) -> Result<PendingImage, ArchiveError> {
    let manifest = read_sized(source, &selected.digest, selected.size, "manifest")?;
    let parts = parse_manifest(manifest, selected.digest)?;
    let config = read_sized(source, &parts.config_digest, parts.config_size, "config")?;
    parts.into_pending(selected.names, config)
}

/// Parses and checks an image manifest (`digest` is the verified digest
/// of `manifest`): its schema and media types.
pub(crate) fn parse_manifest(
    manifest: Vec<u8>,
    digest: Digest,
) -> Result<ManifestParts, ArchiveError> {
    let location = format!("manifest {digest}");
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
    let mut layers = Vec::with_capacity(parsed.layers().len());
    for layer in parsed.layers() {
        let media_type = layer.media_type().to_string();
        let compression =
            Compression::from_media_type(&media_type).ok_or_else(|| ArchiveError::MediaType {
                location: location.clone(),
                what: "layer",
                media_type,
            })?;
        layers.push(ManifestLayer {
            digest: descriptor_digest(layer, &location)?,
            size: layer.size(),
            compression,
        });
    }
    Ok(ManifestParts {
        config_digest: descriptor_digest(parsed.config(), &location)?,
        config_size: parsed.config().size(),
        digest,
        manifest,
        layers,
    })
}

impl ManifestParts {
    /// The image, given its config (checked against its digest and size
    /// by the caller), named `names`.
    pub(crate) fn into_pending(
        self,
        names: Vec<String>,
        config: Vec<u8>,
    ) -> Result<PendingImage, ArchiveError> {
        let config_digest = self.config_digest;
        let image_config: ImageConfiguration =
            parse_json(&config, format!("config {config_digest}"), "image config")?;
        let diff_ids = diff_ids(&image_config, &config_digest, self.layers.len())?;
        let layers = self
            .layers
            .into_iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| PendingLayer {
                digest: layer.digest,
                size: layer.size,
                compression: layer.compression,
                diff_id,
            })
            .collect();
        Ok(PendingImage {
            names,
            manifest_digest: self.digest,
            manifest: self.manifest,
            config_digest,
            config,
            image_config,
            layers,
        })
    }
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
    check_size(&bytes, digest, size, what)?;
    Ok(bytes)
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
        let location = path.display().to_string();
        index::select(self, &index, &location, tag, &Platform::host())
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
