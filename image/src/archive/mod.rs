//! Images out of a docker-archive (`docker save` output) or an OCI image
//! layout directory, checked and ready for the [store](crate::store).
//!
//! A docker-archive comes in two forms:
//!
//! ```text
//! Docker ≥ 25 (OCI in a tar)          legacy (Docker < 25, podman)
//! ├── oci-layout                      ├── manifest.json   [{Config, RepoTags, Layers}]
//! ├── index.json   image manifests    ├── <config-hex>.json
//! ├── manifest.json  RepoTags         ├── <layer-id>/layer.tar   (or <hex>.tar)
//! └── blobs/sha256/<hex>              └── repositories    (ignored)
//! ```
//!
//! A tar is read once, front to back, and a layer may come before the
//! manifest that says what it is; so every member is streamed into the
//! store's staging directory first, its sha256 computed on the way (and
//! checked against its name when the name is a digest), and only then are
//! `index.json` (preferred) or `manifest.json` read and the images
//! assembled. A legacy image has no manifest blob: one is written for it
//! (OCI media types, layers as found), so that it has a manifest digest
//! like every other image, the same for every load of the same archive.
//!
//! An OCI layout directory (`oci-layout`, `index.json`, `blobs/sha256/`)
//! is read in place; only the layers of an image not yet in the store are
//! copied (and verified) into the staging directory.
//!
//! In an index, entries for another platform (the host's is
//! `linux/amd64` on x86_64 and `linux/arm64` on aarch64) and attestation
//! manifests are skipped; a nested index (a multi-platform image) is
//! resolved to the host's manifest.

mod docker;
mod index;
mod oci;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;

pub(crate) use self::docker::DockerArchive;
pub(crate) use self::index::{
    check_size, descriptor_digest, document_kind, parse_index, pick_entry, DocumentKind,
    MANIFEST_MEDIA_TYPES,
};
pub(crate) use self::oci::{parse_manifest, LayoutDir, ManifestLayer, ManifestParts};
use crate::digest::{Digest, DigestError, DigestMismatch};
use crate::layer::Compression;
pub use crate::platform::host_platform;
use crate::reference::ReferenceError;

/// Largest JSON document read (manifest, index, image config,
/// `manifest.json`).
pub const MAX_JSON: u64 = 16 << 20;

/// A docker-archive or OCI layout that cannot be read, is not an image, or
/// does not match its own digests.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive stream could not be read as a tar.
    #[error("cannot read the archive")]
    Read {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file of an OCI layout could not be read.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A blob could not be copied into the store's staging directory.
    #[error("cannot stage {} for the store", path.display())]
    Stage {
        /// The staging file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The tar has neither `index.json` nor `manifest.json`.
    #[error("the archive holds neither index.json nor manifest.json: it is not an image")]
    NotAnImage,
    /// A directory without a readable `oci-layout` file.
    #[error("{} is not an OCI image layout", path.display())]
    NotALayout {
        /// The `oci-layout` file looked for.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// An `oci-layout` file of a version other than 1.0.0.
    #[error("{location}: unsupported OCI layout version {version:?}")]
    LayoutVersion {
        /// The `oci-layout` file.
        location: String,
        /// The version it gives.
        version: String,
    },
    /// A blob whose content does not match the digest it is named by.
    #[error("blob {location} does not match its digest")]
    DigestMismatch {
        /// The archive member or file.
        location: String,
        /// The digests.
        #[source]
        source: DigestMismatch,
    },
    /// A blob whose size is not the size its descriptor gives.
    #[error("{what} {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// What the blob is ("manifest", "config", "layer").
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The blob's size.
        actual: u64,
    },
    /// A blob a manifest or index refers to is not there.
    #[error("{what} {digest} is not in the {origin}")]
    MissingBlob {
        /// What the blob is ("manifest", "config", "layer").
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// "archive" or "layout".
        origin: &'static str,
    },
    /// A path `manifest.json` names is not a file in the archive.
    #[error("{what} {path:?} named by manifest.json is not in the archive")]
    MissingMember {
        /// What the member is ("config", "layer").
        what: &'static str,
        /// The path given.
        path: String,
    },
    /// A JSON document that does not parse as what it should be.
    #[error("{location} is not a valid {what}")]
    Json {
        /// The member, file or blob.
        location: String,
        /// What it should be ("image manifest", "image index", …).
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document larger than [`MAX_JSON`].
    #[error("{location} is larger than {limit} bytes")]
    TooLarge {
        /// The member, file or blob.
        location: String,
        /// The limit.
        limit: u64,
    },
    /// A descriptor's digest that is not a sha256 digest.
    #[error("{location}: invalid digest")]
    Digest {
        /// Where the descriptor is.
        location: String,
        /// Why.
        #[source]
        source: DigestError,
    },
    /// A media type this crate does not handle (an artifact rather than an
    /// image, a foreign layer format, a schema 1 manifest).
    #[error("{location}: unsupported media type {media_type:?} for {what}")]
    MediaType {
        /// Where the descriptor or document is.
        location: String,
        /// What it describes ("manifest", "config", "layer").
        what: &'static str,
        /// The media type.
        media_type: String,
    },
    /// A manifest or index whose `schemaVersion` is not 2.
    #[error("{location}: unsupported schema version {version}")]
    SchemaVersion {
        /// The document.
        location: String,
        /// Its version.
        version: u32,
    },
    /// An index with no manifest for the platform wanted (the host's,
    /// unless a pull asks for another).
    #[error("{location}: no image for {wanted} (it has {})", available.join(", "))]
    NoMatchingPlatform {
        /// The index.
        location: String,
        /// The platform wanted, e.g. `linux/amd64`.
        wanted: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// No index entry has the `org.opencontainers.image.ref.name` asked for.
    #[error("{location}: no image tagged {tag:?}")]
    TagNotFound {
        /// The index.
        location: String,
        /// The tag.
        tag: String,
    },
    /// An OCI layout holding several images, loaded without a tag.
    #[error("{location} holds {count} images; name one with oci:DIR:TAG")]
    Ambiguous {
        /// The index.
        location: String,
        /// How many images it holds.
        count: usize,
    },
    /// An index or `manifest.json` that lists no image.
    #[error("{location} lists no image")]
    Empty {
        /// The index or `manifest.json`.
        location: String,
    },
    /// Indexes nested deeper than [`MAX_INDEX_DEPTH`].
    #[error("{location}: indexes nested more than {MAX_INDEX_DEPTH} deep")]
    TooDeep {
        /// The innermost index read.
        location: String,
    },
    /// An image config whose `rootfs.diff_ids` do not pair with the
    /// manifest's layers.
    #[error("config {config} has {diff_ids} diff_ids for {layers} layers")]
    LayerCount {
        /// The image config.
        config: Digest,
        /// How many diff_ids it lists.
        diff_ids: usize,
        /// How many layers the manifest lists.
        layers: usize,
    },
    /// A `RepoTags` entry of `manifest.json` that is not a valid reference.
    #[error("manifest.json: invalid RepoTags entry {tag:?}")]
    RepoTag {
        /// The entry.
        tag: String,
        /// Why it is invalid.
        #[source]
        source: ReferenceError,
    },
}

/// Most levels of indexes within indexes followed.
pub const MAX_INDEX_DEPTH: usize = 4;

/// A blob's verified content in a file of the store's staging directory.
#[derive(Debug, Clone)]
pub(crate) struct StagedBlob {
    /// The file.
    pub path: PathBuf,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// Where the blobs of an image come from, verified.
pub(crate) trait BlobSource {
    /// The content of a JSON blob, checked against `digest` and
    /// [`MAX_JSON`].
    fn read_json(&mut self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, ArchiveError>;

    /// A staged file with the blob's content, checked against `digest`.
    fn stage(&mut self, digest: &Digest, what: &'static str) -> Result<StagedBlob, ArchiveError>;
}

/// Blobs staged and verified already, by digest: the [`BlobSource`] of a
/// docker-archive (every member is staged first) and of a pull.
#[derive(Debug)]
pub(crate) struct StagedBlobs {
    blobs: HashMap<Digest, StagedBlob>,
    /// Where they came from, for errors: "archive", "pull".
    origin: &'static str,
}

impl StagedBlobs {
    /// None yet, from `origin`.
    pub(crate) fn new(origin: &'static str) -> Self {
        Self {
            blobs: HashMap::new(),
            origin,
        }
    }

    /// Adds a blob (replacing one with the same digest: same content).
    pub(crate) fn insert(&mut self, blob: StagedBlob) {
        self.blobs.insert(blob.digest.clone(), blob);
    }

    /// Whether the blob `digest` is staged.
    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }
}

impl BlobSource for StagedBlobs {
    fn read_json(&mut self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, ArchiveError> {
        let blob = self.stage(digest, what)?;
        read_staged(&blob, &digest.to_string())
    }

    fn stage(&mut self, digest: &Digest, what: &'static str) -> Result<StagedBlob, ArchiveError> {
        self.blobs
            .get(digest)
            .cloned()
            .ok_or_else(|| ArchiveError::MissingBlob {
                what,
                digest: digest.clone(),
                origin: self.origin,
            })
    }
}

/// A staged JSON blob's content (at most [`MAX_JSON`] bytes); `location`
/// names it in errors.
pub(crate) fn read_staged(blob: &StagedBlob, location: &str) -> Result<Vec<u8>, ArchiveError> {
    File::open(&blob.path)
        .and_then(read_limited)
        .map_err(|source| ArchiveError::Stage {
            path: blob.path.clone(),
            source,
        })?
        .ok_or_else(|| ArchiveError::TooLarge {
            location: location.to_owned(),
            limit: MAX_JSON,
        })
}

/// An image of an archive or layout, checked and ready for the store.
#[derive(Debug)]
pub(crate) struct PendingImage {
    /// Its names, normalized references.
    pub names: Vec<String>,
    /// The digest of its manifest.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: Vec<u8>,
    /// The digest of its image config.
    pub config_digest: Digest,
    /// The image config.
    pub config: Vec<u8>,
    /// The image config, parsed.
    pub image_config: ImageConfiguration,
    /// Its layers, base first.
    pub layers: Vec<PendingLayer>,
}

/// A layer of a [`PendingImage`].
#[derive(Debug, Clone)]
pub(crate) struct PendingLayer {
    /// The digest of the blob (compressed, as stored).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// How it is compressed.
    pub compression: Compression,
    /// The digest of the uncompressed tar, from the image config.
    pub diff_id: Digest,
}

impl PendingImage {
    /// Adds `name` unless the image has it already.
    pub(crate) fn add_name(&mut self, name: String) {
        if !self.names.contains(&name) {
            self.names.push(name);
        }
    }
}

/// Reads at most [`MAX_JSON`] bytes of `reader`: `None` when there are
/// more.
fn read_limited(reader: impl io::Read) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(reader, MAX_JSON + 1), &mut bytes)?;
    Ok((bytes.len() as u64 <= MAX_JSON).then_some(bytes))
}

/// Which side of a copy failed.
#[derive(Debug)]
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `reader` to `writer`, telling read errors from write errors
/// (which `io::copy` does not); the bytes copied.
fn copy_split(reader: &mut impl io::Read, writer: &mut impl io::Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// Parses a JSON document, naming it in the error.
fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    location: impl Into<String>,
    what: &'static str,
) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
        location: location.into(),
        what,
        source,
    })
}
