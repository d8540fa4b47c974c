//! The store's JSON records: `names.json` (name → manifest digest) and
//! `roots/<hex>.json` (what an unpacked root is).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{io_err, StoreError};
use super::files::write_atomic;
use crate::config::RunConfig;
use crate::digest::Digest;

/// The version of both record formats.
pub(crate) const RECORD_VERSION: u32 = 1;

/// What `roots/<hex>.json` says about the root `roots/<hex>/`. Written
/// once, after the root is in place; never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RootRecord {
    pub version: u32,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    /// Layer blobs, base first.
    pub layers: Vec<Digest>,
    pub config: RunConfig,
    pub os: String,
    pub architecture: String,
    /// Bytes of the regular files of the root.
    pub size: u64,
    /// The image config's `created`, as it gives it.
    pub created: Option<String>,
    /// When the root was unpacked (seconds since the epoch).
    pub unpacked_at: u64,
    /// Layer entries that were not created.
    pub skipped: Vec<SkippedFile>,
}

/// A layer entry the unpack did not create (a device node when not root,
/// an unknown entry type, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The layer it is in.
    pub layer: Digest,
    /// Its path as the layer gives it (lossily shown if not UTF-8).
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

impl RootRecord {
    /// Every blob the root was made from.
    pub(crate) fn blobs(&self) -> impl Iterator<Item = &Digest> {
        [&self.manifest_digest, &self.config_digest]
            .into_iter()
            .chain(&self.layers)
    }

    /// Reads the record at `path`; `None` if there is none.
    pub(crate) fn read(path: &Path) -> Result<Option<Self>, StoreError> {
        let Some(bytes) = read_optional(path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Record {
                path: path.to_owned(),
                source,
            })
    }

    /// Writes the record to `path` atomically.
    pub(crate) fn write(&self, path: &Path, tmp: &Path) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| StoreError::Record {
            path: path.to_owned(),
            source,
        })?;
        write_atomic(path, &bytes, tmp)
    }
}

/// `names.json`: each name (a normalized reference) and the manifest
/// digest of the image it names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NameTable {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    names: BTreeMap<String, Digest>,
}

impl NameTable {
    /// Reads the table at `path`; empty if there is none.
    pub(crate) fn read(path: &Path) -> Result<Self, StoreError> {
        let Some(bytes) = read_optional(path)? else {
            return Ok(Self::default());
        };
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Record {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the table to `path` atomically. Hold the store lock.
    pub(crate) fn write(&mut self, path: &Path, tmp: &Path) -> Result<(), StoreError> {
        self.version = RECORD_VERSION;
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| StoreError::Record {
            path: path.to_owned(),
            source,
        })?;
        write_atomic(path, &bytes, tmp)
    }

    /// The image `name` names.
    pub(crate) fn get(&self, name: &str) -> Option<&Digest> {
        self.names.get(name)
    }

    /// Points `name` at `digest`; whether that changed anything.
    pub(crate) fn set(&mut self, name: &str, digest: &Digest) -> bool {
        self.names.insert(name.to_owned(), digest.clone()).as_ref() != Some(digest)
    }

    /// Removes `name`; the image it named.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Digest> {
        self.names.remove(name)
    }

    /// The names of the image `digest`, sorted.
    pub(crate) fn names_of(&self, digest: &Digest) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, d)| *d == digest)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether any name refers to `digest`.
    pub(crate) fn refers_to(&self, digest: &Digest) -> bool {
        self.names.values().any(|d| d == digest)
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}
