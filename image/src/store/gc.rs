//! Removing images and collecting what nothing refers to.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use super::error::{io_err, StoreError};
use super::files::{remove_tree, sync_parent};
use super::records::{NameTable, RootRecord};
use super::Store;
use crate::digest::Digest;
use crate::reference::Reference;

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// The names removed.
    pub untagged: Vec<String>,
    /// The image removed, when no name referred to it any more.
    pub deleted: Option<Digest>,
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Images (roots and records) no name referred to, and trees left
    /// without a record.
    pub roots: Vec<Digest>,
    /// Blobs no remaining image was made from.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Leftovers of interrupted loads and removals in `tmp/`.
    pub tmp_entries: u64,
}

impl Store {
    /// Removes a name or an image. A name (`alpine`) is removed, and its
    /// image too if no other name refers to it; an ID or digest removes
    /// the image and every name of it. Blobs stay until [`prune`](Store::prune).
    pub fn remove(&self, name_or_id: &str) -> Result<Removal, StoreError> {
        let _lock = self.lock()?;
        let mut table = NameTable::read(&self.names_path())?;
        let name = Reference::parse(name_or_id)
            .ok()
            .filter(|r| r.digest.is_none())
            .map(|r| r.to_string())
            .filter(|name| table.get(name).is_some());
        let (digest, untagged) = match name {
            Some(name) => (table.remove(&name).expect("checked"), vec![name]),
            None => {
                let digest = self.resolve(&table, name_or_id)?;
                let names = table.names_of(&digest);
                names.iter().for_each(|name| drop(table.remove(name)));
                (digest, names)
            }
        };
        if !untagged.is_empty() {
            table.write(&self.names_path(), &self.tmp_dir())?;
        }
        let deleted = if table.refers_to(&digest) {
            None
        } else {
            self.delete_root(&digest)?;
            Some(digest)
        };
        Ok(Removal { untagged, deleted })
    }

    /// Removes the images no name refers to, the blobs no remaining image
    /// was made from, and what interrupted loads left in `tmp/`.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _lock = self.lock()?;
        let table = NameTable::read(&self.names_path())?;
        let mut report = PruneReport::default();
        let mut kept = HashSet::new();
        let entries = self.roots_entries()?;
        for name in &entries {
            if let Some(digest) = name
                .strip_suffix(".json")
                .and_then(|h| Digest::from_hex(h).ok())
            {
                match RootRecord::read(&self.record_path(&digest))? {
                    Some(record) if table.refers_to(&digest) => {
                        kept.extend(record.blobs().cloned());
                    }
                    _ => {
                        self.delete_root(&digest)?;
                        report.roots.push(digest);
                    }
                }
            } else if let Ok(digest) = Digest::from_hex(name) {
                // A tree whose record was never written (a crash).
                if !entries.contains(&format!("{name}.json")) {
                    self.delete_root(&digest)?;
                    report.roots.push(digest);
                }
            }
        }
        self.prune_blobs(&kept, &mut report)?;
        report.tmp_entries = self.clean_tmp()?;
        Ok(report)
    }

    fn prune_blobs(
        &self,
        kept: &HashSet<Digest>,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        let blobs = self.dir.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_err("read directory", &blobs))? {
            let entry = entry.map_err(io_err("read directory", &blobs))?;
            let name = entry.file_name();
            let keep = name
                .to_str()
                .and_then(|hex| Digest::from_hex(hex).ok())
                .is_some_and(|digest| kept.contains(&digest));
            if keep {
                continue;
            }
            let path = entry.path();
            let size = entry.metadata().map_or(0, |m| m.len());
            remove_entry(&path).map_err(io_err("remove", &path))?;
            report.blobs += 1;
            report.blob_bytes += size;
        }
        sync_parent(&blobs.join("x"))
    }

    /// Removes an image's record (so that it is gone at once), then its
    /// tree: moved into `tmp/` first, so that a removal cut short never
    /// leaves half a tree in `roots/`. Hold the lock.
    fn delete_root(&self, digest: &Digest) -> Result<(), StoreError> {
        let record = self.record_path(digest);
        match fs::remove_file(&record) {
            Ok(()) => sync_parent(&record)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &record)(e)),
        }
        let root = self.root_path(digest);
        if fs::symlink_metadata(&root).is_err() {
            return Ok(());
        }
        let tmp = self.tmp_dir();
        let grave = tempfile::Builder::new()
            .prefix("rm-")
            .tempdir_in(&tmp)
            .map_err(io_err("create a directory in", &tmp))?
            .keep();
        fs::rename(&root, grave.join("root")).map_err(io_err("move out of place", &root))?;
        sync_parent(&root)?;
        // Whatever cannot be removed now stays in tmp/ for the next prune.
        let _ = remove_tree(&grave);
        Ok(())
    }
}

fn remove_entry(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path)?.is_dir() {
        true => remove_tree(path),
        false => fs::remove_file(path),
    }
}
