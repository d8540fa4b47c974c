//! [`Store`]: where images are kept, content-addressed, unpacked once.
//!
//! ```text
//! $KRUNBOX_IMAGE_STORE  (else $XDG_DATA_HOME/krunbox/images,
//!                        else ~/.local/share/krunbox/images)
//! ├── lock                 flock'ed (exclusive) while names, roots or blobs change
//! ├── names.json           {"version":1,"names":{"docker.io/library/alpine:latest":"sha256:…"}}
//! ├── blobs/sha256/<hex>   manifests, configs, layers: verified, fsynced, read-only,
//! │                        put in place by link or no-clobber rename, never rewritten
//! ├── roots/<hex>/         the unpacked tree of the image whose manifest is sha256:<hex>
//! ├── roots/<hex>.json     its record: manifest, config and layer digests, run config,
//! │                        size, created, skipped entries; written after the tree is in
//! │                        place; neither is changed afterwards
//! └── tmp/load-XXXX/       one load's staging directory, flock'ed while the load runs
//! ```
//!
//! # A load
//!
//! 1. A staging directory is made in `tmp/` (under the store lock, and
//!    locked itself before the store lock is released).
//! 2. The archive's members, or the layout's layers, are copied into it,
//!    each hashed on the way and checked against its digest; manifests
//!    and configs are checked against theirs.
//! 3. Each image whose root is not in the store yet has its layers applied,
//!    in order, to a tree in the staging directory, each layer's
//!    uncompressed stream checked against the config's `diff_ids`.
//! 4. Under the store lock: blobs are put in place, each tree is renamed to
//!    `roots/<hex>` (unless another load got there first: then it is
//!    dropped with the staging directory), its record written, and
//!    `names.json` replaced (temp file, fsync, rename).
//!
//! A [pull](Store::pull) fetches the manifest, config and layers into a
//! staging directory in step 2 (blobs the store has already are linked
//! there instead of fetched), then goes on as a load does.
//!
//! Nothing a load does is visible before step 4, so a load that fails
//! leaves no blob, root or name: only a staging directory, removed when the
//! load ends, or by the next [`Store::open`] or [`Store::prune`] if the
//! process died (an unlocked directory in `tmp/` belongs to nobody). A root
//! already in the store is reused: loading an image again unpacks nothing.

mod error;
mod files;
mod gc;
mod lookup;
mod records;
mod unpack;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use self::error::io_err;
pub use self::error::StoreError;
pub(crate) use self::files::Staging;
use self::files::{
    put_blob_bytes, put_blob_file, remove_if_unused, sync_filesystem, sync_parent, StoreLock,
};
pub use self::gc::{PruneReport, Removal};
pub use self::lookup::ImageSummary;
use self::records::NameTable;
pub use self::records::SkippedFile;
use self::unpack::{unpack, Unpacked};
use crate::archive::{BlobSource, DockerArchive, LayoutDir, PendingImage};
use crate::config::RunConfig;
use crate::digest::Digest;
use crate::layer::ApplyOptions;

/// The environment variable that overrides where the store is.
pub const STORE_DIR_ENV: &str = "KRUNBOX_IMAGE_STORE";

/// An image store directory (see the [module docs](self) for its layout).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    apply_options: ApplyOptions,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The digest of its manifest: the image's ID.
    pub manifest_digest: Digest,
    /// The digest of its image config.
    pub config_digest: Digest,
    /// The names that refer to it, sorted (none for an image loaded
    /// without a name).
    pub names: Vec<String>,
    /// Its unpacked tree. Do not modify it: it is shared by every user of
    /// the image.
    pub root: PathBuf,
    /// What it runs.
    pub config: RunConfig,
    /// Bytes of the regular files of its tree.
    pub size: u64,
    /// Its layer blobs, base first.
    pub layers: Vec<Digest>,
    /// The `created` time of its config, as given there.
    pub created: Option<String>,
    /// Layer entries the unpack did not create.
    pub skipped: Vec<SkippedFile>,
}

impl Image {
    /// The short ID: the first 12 hex digits of the manifest digest.
    pub fn id(&self) -> &str {
        self.manifest_digest.short()
    }
}

impl Store {
    /// Where the store is: `$KRUNBOX_IMAGE_STORE`, else
    /// `$XDG_DATA_HOME/krunbox/images`, else
    /// `~/.local/share/krunbox/images`.
    pub fn default_dir() -> Result<PathBuf, StoreError> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var(STORE_DIR_ENV) {
            return Ok(dir.into());
        }
        if let Some(data) = var("XDG_DATA_HOME").map(PathBuf::from) {
            if data.is_absolute() {
                return Ok(data.join("krunbox/images"));
            }
        }
        let home = var("HOME").ok_or(StoreError::NoDirectory)?;
        Ok(PathBuf::from(home).join(".local/share/krunbox/images"))
    }

    /// Opens the store at its [default directory](Store::default_dir).
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(Self::default_dir()?)
    }

    /// Opens the store at `dir`, creating it if needed, and removes what
    /// interrupted loads left in `tmp/`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = Self {
            dir: dir.into(),
            apply_options: ApplyOptions::default(),
        };
        for sub in ["blobs/sha256", "roots", "tmp"] {
            let path = store.dir.join(sub);
            fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
        }
        let _lock = store.lock()?;
        store.clean_tmp()?;
        Ok(store)
    }

    /// Uses `options` to apply layers (by default: [`ApplyOptions::default`]).
    pub fn with_apply_options(mut self, options: ApplyOptions) -> Self {
        self.apply_options = options;
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the images of a docker-archive (`docker save` output, either
    /// form, optionally gzip- or zstd-compressed) read from `reader`.
    /// Either all of them are loaded or, on error, none.
    pub fn load_archive(&self, reader: impl Read) -> Result<Vec<Image>, StoreError> {
        let staging = self.staging()?;
        let mut archive = DockerArchive::stage(reader, staging.path())?;
        let images = archive.images()?;
        self.load(&mut archive, &staging, images)
    }

    /// Loads the image of the OCI layout at `dir` tagged `tag`
    /// (`org.opencontainers.image.ref.name`), or its only image.
    pub fn load_oci_layout(&self, dir: &Path, tag: Option<&str>) -> Result<Image, StoreError> {
        let staging = self.staging()?;
        let mut layout = LayoutDir::open(dir, staging.path())?;
        let image = layout.image(tag)?;
        let mut images = self.load(&mut layout, &staging, vec![image])?;
        Ok(images.remove(0))
    }

    /// Unpacks what is not in the store yet, then puts it all in place and
    /// names it under the lock: the commit of every load and pull.
    pub(crate) fn load(
        &self,
        source: &mut dyn BlobSource,
        staging: &Staging,
        images: Vec<PendingImage>,
    ) -> Result<Vec<Image>, StoreError> {
        let images = merge_duplicates(images);
        let mut trees = Vec::with_capacity(images.len());
        for image in &images {
            trees.push(match self.has_record(&image.manifest_digest) {
                true => None,
                false => Some(self.unpack(source, image, staging)?),
            });
        }
        if trees.iter().any(Option::is_some) {
            sync_filesystem(staging.path())?;
        }
        let _lock = self.lock()?;
        for (image, tree) in images.iter().zip(trees) {
            // A root seen before the lock may have been pruned since.
            let tree = match tree {
                None if !self.has_record(&image.manifest_digest) => {
                    let unpacked = self.unpack(source, image, staging)?;
                    sync_filesystem(staging.path())?;
                    Some(unpacked)
                }
                tree => tree,
            };
            if let Some(unpacked) = tree {
                self.place(image, unpacked)?;
            }
        }
        let mut table = NameTable::read(&self.names_path())?;
        let mut changed = false;
        for image in &images {
            for name in &image.names {
                changed |= table.set(name, &image.manifest_digest);
            }
        }
        if changed {
            table.write(&self.names_path(), &self.tmp_dir())?;
        }
        images
            .iter()
            .map(|image| self.image_from(&table, &image.manifest_digest))
            .collect()
    }

    fn unpack(
        &self,
        source: &mut dyn BlobSource,
        image: &PendingImage,
        staging: &Staging,
    ) -> Result<Unpacked, StoreError> {
        unpack(source, image, staging.path(), &self.apply_options)
    }

    /// Puts an unpacked image's blobs, tree and record in place. Hold the
    /// lock.
    fn place(&self, image: &PendingImage, unpacked: Unpacked) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        let manifest = self.blob_path(&image.manifest_digest);
        put_blob_bytes(&manifest, &image.manifest, &tmp)?;
        put_blob_bytes(&self.blob_path(&image.config_digest), &image.config, &tmp)?;
        for layer in &unpacked.layers {
            put_blob_file(&self.blob_path(&layer.digest), &layer.path, &tmp)?;
        }
        sync_parent(&manifest)?;
        let root = self.root_path(&image.manifest_digest);
        // Another load's tree may be there already: then this one is
        // dropped with the staging directory.
        if fs::symlink_metadata(&root).is_err() {
            fs::rename(&unpacked.tree, &root).map_err(io_err("move into place", &root))?;
            sync_parent(&root)?;
        }
        let record = self.record_path(&image.manifest_digest);
        if !record.exists() {
            unpacked.record.write(&record, &tmp)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<StoreLock, StoreError> {
        StoreLock::acquire(&self.dir.join("lock"))
    }

    /// A new staging directory, locked.
    pub(crate) fn staging(&self) -> Result<Staging, StoreError> {
        let _lock = self.lock()?;
        Staging::create(&self.tmp_dir())
    }

    /// Removes the entries of `tmp/` no load is using. Hold the lock.
    /// Best effort: what cannot be removed now is tried again next time.
    fn clean_tmp(&self) -> Result<u64, StoreError> {
        let tmp = self.tmp_dir();
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(io_err("read directory", &tmp))? {
            let entry = entry.map_err(io_err("read directory", &tmp))?;
            if remove_if_unused(&entry.path()).unwrap_or(false) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn has_record(&self, digest: &Digest) -> bool {
        self.record_path(digest).exists()
    }

    /// Where the blob `digest` is kept (if the store has it).
    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn root_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("roots").join(digest.hex())
    }

    fn record_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("roots")
            .join(format!("{}.json", digest.hex()))
    }

    fn names_path(&self) -> PathBuf {
        self.dir.join("names.json")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }
}

/// One image per manifest digest, with the names of all.
fn merge_duplicates(images: Vec<PendingImage>) -> Vec<PendingImage> {
    let mut merged: Vec<PendingImage> = Vec::with_capacity(images.len());
    let mut index = HashMap::new();
    for image in images {
        match index.get(&image.manifest_digest) {
            Some(&i) => {
                let same: &mut PendingImage = &mut merged[i];
                image.names.into_iter().for_each(|name| same.add_name(name));
            }
            None => {
                index.insert(image.manifest_digest.clone(), merged.len());
                merged.push(image);
            }
        }
    }
    merged
}
