//! Errors of the image store.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::archive::ArchiveError;
use crate::digest::{Digest, DigestError, DigestMismatch};
use crate::layer::LayerError;
use crate::reference::ReferenceError;
#[cfg(feature = "registry")]
use crate::registry::RegistryError;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No store directory: none of the variables it derives from is set.
    #[error("no image store directory: set $KRUNBOX_IMAGE_STORE, $XDG_DATA_HOME or $HOME")]
    NoDirectory,
    /// A file system operation on the store failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was done, e.g. "create directory".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The store lock could not be taken.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Errno,
    },
    /// The archive or layout is not a valid image.
    #[error("cannot load the image")]
    Load(#[from] ArchiveError),
    /// The image could not be pulled from its registry.
    #[cfg(feature = "registry")]
    #[error("cannot pull the image")]
    Pull(#[from] RegistryError),
    /// A layer could not be applied.
    #[error("cannot apply layer {layer}")]
    Layer {
        /// The layer blob.
        layer: Digest,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A layer's uncompressed content is not what the image config's
    /// `rootfs.diff_ids` says it is.
    #[error("layer {layer} does not match its diff_id in the image config")]
    DiffId {
        /// The layer blob.
        layer: Digest,
        /// The diff_id listed and the digest found.
        #[source]
        source: DigestMismatch,
    },
    /// A store record (`names.json`, `roots/<hex>.json`) is not valid.
    #[error("invalid store record {}", path.display())]
    Record {
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No image has this name, digest or ID.
    #[error("no image {name_or_id:?} in the store")]
    NotFound {
        /// What was looked up.
        name_or_id: String,
    },
    /// An ID prefix that more than one image has.
    #[error("image ID {prefix:?} is ambiguous: {count} images match")]
    AmbiguousId {
        /// The prefix.
        prefix: String,
        /// How many images have it.
        count: usize,
    },
    /// A `sha256:` image ID that is not a valid digest.
    #[error("invalid image ID {id:?}")]
    InvalidId {
        /// The ID given.
        id: String,
        /// Why it is invalid.
        #[source]
        source: DigestError,
    },
    /// A name to tag with that is not a valid reference.
    #[error("invalid image name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is invalid.
        #[source]
        source: ReferenceError,
    },
    /// A name to tag with that pins a digest: names carry tags.
    #[error("cannot name an image {name:?}: a name takes a tag, not a digest")]
    DigestName {
        /// The name given.
        name: String,
    },
}

/// `map_err` for a failed file system operation.
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}
