//! Whiteouts: entries that remove what the layers below put in the tree.
//!
//! `DIR/.wh.NAME` removes `DIR/NAME`; `DIR/.wh..wh..opq` removes every
//! child of `DIR`. Both remove only what came from the layers below: what
//! this layer put there (recorded in [`Unpack::this_layer`] as it goes)
//! stays, whether it came before or after the whiteout in the stream.

use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::unpack::{Outcome, Unpack};
use super::LayerError;

/// Names starting so are whiteouts.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name of the opaque whiteout.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Reserved for AUFS metadata (`.wh..wh.plnk`, …), besides [`OPAQUE`].
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// Why AUFS metadata entries are skipped.
pub(super) const AUFS_META: &str = "AUFS metadata (.wh..wh.*)";

/// Whether the entry `names` is inside an AUFS metadata directory
/// (`.wh..wh.plnk/…`): skipped, as Docker does.
pub(super) fn in_aufs_meta_dir(names: &[&OsStr]) -> bool {
    let dirs = names.split_last().map_or(&[][..], |(_, dirs)| dirs);
    dirs.iter()
        .any(|name| name.as_bytes().starts_with(AUFS_META_PREFIX))
}

/// A whiteout entry's meaning, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Whiteout<'a> {
    /// Removes the lower children of its directory.
    Opaque,
    /// Removes this name of its directory.
    Remove(&'a OsStr),
    /// AUFS metadata: skipped.
    AufsMeta,
}

impl Whiteout<'_> {
    /// The whiteout an entry's last name makes, if it is one.
    pub(super) fn parse(name: &OsStr) -> Option<Whiteout<'_>> {
        let name = name.as_bytes();
        if name == OPAQUE {
            Some(Whiteout::Opaque)
        } else if name.starts_with(AUFS_META_PREFIX) {
            Some(Whiteout::AufsMeta)
        } else {
            let hidden = name.strip_prefix(WHITEOUT_PREFIX)?;
            Some(Whiteout::Remove(OsStr::from_bytes(hidden)))
        }
    }
}

impl Unpack<'_> {
    /// Applies the whiteout entry `path` (made of `names`, the last one the
    /// whiteout's). Its directory is found inside the root; if it does not
    /// exist there is nothing to remove.
    pub(super) fn whiteout(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        whiteout: Whiteout<'_>,
    ) -> Result<Outcome, LayerError> {
        let bad = |problem| LayerError::BadEntry {
            path: path.to_owned(),
            problem,
        };
        match whiteout {
            Whiteout::AufsMeta => return Ok(Outcome::Skipped(AUFS_META)),
            Whiteout::Remove(name) if name.is_empty() => {
                return Err(bad("it is a whiteout without a name"))
            }
            Whiteout::Remove(name) if name == "." || name == ".." => {
                return Err(bad("it is a whiteout of `.` or `..`"))
            }
            _ => {}
        }
        let dir = names.split_last().map_or(&[][..], |(_, dir)| dir);
        let Some(found) = self.find_dir(path, dir)? else {
            return Ok(Outcome::Applied(0));
        };
        match whiteout {
            Whiteout::Remove(name) => self.remove_lower(path, &found.join(name))?,
            Whiteout::Opaque | Whiteout::AufsMeta => {
                let children =
                    child_names(&self.root.join(&found)).map_err(LayerError::write(path))?;
                for child in children {
                    self.remove_lower(path, &found.join(child))?;
                }
            }
        }
        Ok(Outcome::Applied(0))
    }

    /// Removes what the layers below put at `rel` (reached through no
    /// symlink): all of it if this layer put nothing there, else the lower
    /// children of the directory, recursively.
    fn remove_lower(&mut self, path: &Path, rel: &Path) -> Result<(), LayerError> {
        let full = self.root.join(rel);
        let meta = match fs::symlink_metadata(&full) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LayerError::write(path)(e)),
        };
        if !self.this_layer.contains(rel) {
            remove_tree(&full, &meta).map_err(LayerError::write(path))?;
            self.forget_below(rel);
            return Ok(());
        }
        if meta.is_dir() {
            self.make_usable(path, rel, &meta)?;
            for child in child_names(&full).map_err(LayerError::write(path))? {
                self.remove_lower(path, &rel.join(child))?;
            }
        }
        Ok(())
    }
}

/// Removes `full` (whose `lstat` is `meta`), all of it if a directory,
/// following no symlink; directories without owner `rwx` get them first.
pub(super) fn remove_tree(full: &Path, meta: &Metadata) -> io::Result<()> {
    if !meta.is_dir() {
        return fs::remove_file(full);
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(full, fs::Permissions::from_mode(0o700))?;
    }
    // Names first, so that no directory stays open while going deeper.
    for name in child_names(full)? {
        let child = full.join(name);
        let meta = fs::symlink_metadata(&child)?;
        remove_tree(&child, &meta)?;
    }
    fs::remove_dir(full)
}

/// The names in the directory `full`.
fn child_names(full: &Path) -> io::Result<Vec<OsString>> {
    fs::read_dir(full)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect()
}
