//! Unpacking an image: its layers applied in order to a fresh tree in the
//! load's staging directory, each checked against its `diff_id`.

use std::fs::{self, File, Permissions};
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{io_err, StoreError};
use super::files::tree_size;
use super::records::{RootRecord, SkippedFile, RECORD_VERSION};
use crate::archive::{ArchiveError, BlobSource, PendingImage, PendingLayer, StagedBlob};
use crate::config::RunConfig;
use crate::digest::DigestReader;
use crate::layer::{apply, decompressed, Applied, ApplyOptions};

/// A tree unpacked in a staging directory, not yet in the store.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// The tree.
    pub tree: PathBuf,
    /// Its record.
    pub record: RootRecord,
    /// The staged layer blobs it was made from.
    pub layers: Vec<StagedBlob>,
}

/// Applies the layers of `image` to a new tree in `staging`.
pub(crate) fn unpack(
    source: &mut dyn BlobSource,
    image: &PendingImage,
    staging: &Path,
    options: &ApplyOptions,
) -> Result<Unpacked, StoreError> {
    let tree = staging.join(format!("root-{}", image.manifest_digest.hex()));
    fs::create_dir(&tree)
        .and_then(|()| fs::set_permissions(&tree, Permissions::from_mode(0o755)))
        .map_err(io_err("create directory", &tree))?;
    let mut skipped = Vec::new();
    let mut layers = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let staged = source.stage(&layer.digest, "layer")?;
        if staged.size != layer.size {
            return Err(ArchiveError::SizeMismatch {
                what: "layer",
                digest: layer.digest.clone(),
                expected: layer.size,
                actual: staged.size,
            }
            .into());
        }
        let applied = apply_layer(&tree, &staged, layer, options)?;
        skipped.extend(applied.skipped.into_iter().map(|entry| SkippedFile {
            layer: layer.digest.clone(),
            path: entry.path.to_string_lossy().into_owned(),
            reason: entry.reason.to_owned(),
        }));
        layers.push(staged);
    }
    let config = &image.image_config;
    let record = RootRecord {
        version: RECORD_VERSION,
        manifest_digest: image.manifest_digest.clone(),
        config_digest: image.config_digest.clone(),
        layers: image.layers.iter().map(|l| l.digest.clone()).collect(),
        config: RunConfig::from_image_config(config),
        os: config.os().to_string(),
        architecture: config.architecture().to_string(),
        size: tree_size(&tree),
        created: config.created().clone(),
        unpacked_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        skipped,
    };
    Ok(Unpacked {
        tree,
        record,
        layers,
    })
}

/// Applies one staged layer, hashing its uncompressed stream to check it
/// against the layer's `diff_id`.
fn apply_layer(
    tree: &Path,
    staged: &StagedBlob,
    layer: &PendingLayer,
    options: &ApplyOptions,
) -> Result<Applied, StoreError> {
    let file = File::open(&staged.path).map_err(io_err("open", &staged.path))?;
    let tar = decompressed(layer.compression, BufReader::new(file))
        .map_err(io_err("decompress", &staged.path))?;
    let mut reader = DigestReader::new(tar);
    let applied = apply(tree, &mut reader, options).map_err(|source| StoreError::Layer {
        layer: layer.digest.clone(),
        source,
    })?;
    // The tar reader stops at the end-of-archive blocks; the diff_id
    // covers the whole stream.
    let diff_id = reader
        .drain()
        .map_err(io_err("read the end of layer", &staged.path))?;
    layer
        .diff_id
        .verify(&diff_id)
        .map_err(|source| StoreError::DiffId {
            layer: layer.digest.clone(),
            source,
        })?;
    Ok(applied)
}
