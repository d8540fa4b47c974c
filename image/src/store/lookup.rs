//! Finding images: by name, digest or ID prefix; listing; naming.

use std::fs;
use std::path::PathBuf;

use super::error::{io_err, StoreError};
use super::records::{NameTable, RootRecord};
use super::{Image, Store};
use crate::digest::{is_lower_hex, Digest, SHA256_HEX_LEN, SHA256_PREFIX, SHORT_ID_LEN};
use crate::reference::Reference;

/// An image as [`Store::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The digest of its manifest.
    pub id: Digest,
    /// The names that refer to it, sorted.
    pub names: Vec<String>,
    /// Bytes of the regular files of its tree.
    pub size: u64,
    /// The `created` time of its config, as given there.
    pub created: Option<String>,
    /// When it was unpacked (seconds since the epoch).
    pub unpacked_at: u64,
}

impl Store {
    /// The image `name_or_id` refers to: a name (normalized as a
    /// reference, so `alpine` finds `docker.io/library/alpine:latest`), a
    /// manifest digest (`sha256:…`, or a reference pinning one), or a
    /// prefix of at least 12 hex digits of a manifest digest (as `docker
    /// images` shows IDs). A name is looked up before an ID prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Image, StoreError> {
        let table = NameTable::read(&self.names_path())?;
        let digest = self.resolve(&table, name_or_id)?;
        self.image_from(&table, &digest)
    }

    /// Every image in the store, most recently unpacked first.
    pub fn list(&self) -> Result<Vec<ImageSummary>, StoreError> {
        let table = NameTable::read(&self.names_path())?;
        let mut images = Vec::new();
        for digest in self.root_digests()? {
            let Some(record) = RootRecord::read(&self.record_path(&digest))? else {
                continue;
            };
            images.push(ImageSummary {
                names: table.names_of(&digest),
                id: digest,
                size: record.size,
                created: record.created,
                unpacked_at: record.unpacked_at,
            });
        }
        images.sort_by(|a, b| b.unpacked_at.cmp(&a.unpacked_at).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// Names the image `image` (a name or ID, as [`get`](Store::get) takes)
    /// `name` too, taking the name from any image that had it.
    pub fn tag(&self, image: &str, name: &str) -> Result<Image, StoreError> {
        let reference = Reference::parse(name).map_err(|source| StoreError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        if reference.digest.is_some() {
            return Err(StoreError::DigestName {
                name: name.to_owned(),
            });
        }
        let _lock = self.lock()?;
        let mut table = NameTable::read(&self.names_path())?;
        let digest = self.resolve(&table, image)?;
        if table.set(&reference.to_string(), &digest) {
            table.write(&self.names_path(), &self.tmp_dir())?;
        }
        self.image_from(&table, &digest)
    }

    /// The manifest digest `name_or_id` refers to.
    pub(super) fn resolve(
        &self,
        table: &NameTable,
        name_or_id: &str,
    ) -> Result<Digest, StoreError> {
        let not_found = || StoreError::NotFound {
            name_or_id: name_or_id.to_owned(),
        };
        if name_or_id.starts_with(SHA256_PREFIX) {
            let digest = Digest::parse(name_or_id).map_err(|source| StoreError::InvalidId {
                id: name_or_id.to_owned(),
                source,
            })?;
            return self.existing(digest).ok_or_else(not_found);
        }
        if let Ok(reference) = Reference::parse(name_or_id) {
            let found = match reference.digest {
                Some(digest) => self.existing(digest),
                None => table.get(&reference.to_string()).cloned(),
            };
            if let Some(digest) = found {
                return Ok(digest);
            }
        }
        if (SHORT_ID_LEN..=SHA256_HEX_LEN).contains(&name_or_id.len()) && is_lower_hex(name_or_id) {
            let mut matches = self.root_digests()?;
            matches.retain(|d| d.hex().starts_with(name_or_id));
            return match matches.len() {
                0 => Err(not_found()),
                1 => Ok(matches.remove(0)),
                count => Err(StoreError::AmbiguousId {
                    prefix: name_or_id.to_owned(),
                    count,
                }),
            };
        }
        Err(not_found())
    }

    fn existing(&self, digest: Digest) -> Option<Digest> {
        self.has_record(&digest).then_some(digest)
    }

    /// The image `digest`, named as `table` says.
    pub(super) fn image_from(
        &self,
        table: &NameTable,
        digest: &Digest,
    ) -> Result<Image, StoreError> {
        let record =
            RootRecord::read(&self.record_path(digest))?.ok_or_else(|| StoreError::NotFound {
                name_or_id: digest.to_string(),
            })?;
        Ok(Image {
            names: table.names_of(digest),
            root: self.root_path(digest),
            manifest_digest: record.manifest_digest,
            config_digest: record.config_digest,
            config: record.config,
            size: record.size,
            layers: record.layers,
            created: record.created,
            skipped: record.skipped,
        })
    }

    /// The digests of every root that has a record.
    pub(super) fn root_digests(&self) -> Result<Vec<Digest>, StoreError> {
        Ok(self
            .roots_entries()?
            .into_iter()
            .filter_map(|name| Digest::from_hex(name.strip_suffix(".json")?).ok())
            .collect())
    }

    /// The names of the entries of `roots/`.
    pub(super) fn roots_entries(&self) -> Result<Vec<String>, StoreError> {
        let roots: PathBuf = self.dir.join("roots");
        let mut names = Vec::new();
        for entry in fs::read_dir(&roots).map_err(io_err("read directory", &roots))? {
            let entry = entry.map_err(io_err("read directory", &roots))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
}
