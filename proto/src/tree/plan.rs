//! The sending side of a tree copy: walking a path into a [`CopyPlan`] and
//! turning each item into the entry to send.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::TreeError;
use crate::message::TreeEntry;

/// What one item of a [`CopyPlan`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    /// A directory with its permission bits.
    Dir(u32),
    /// A regular file (its size and mode are read when it is opened).
    File,
    /// A symlink and its target.
    Symlink(String),
}

/// One item to send: its relative entry path and where it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// Relative entry path (`""` for the root).
    pub rel: String,
    /// Path on the sender's disk.
    pub source: PathBuf,
    /// What it is.
    pub kind: PlanKind,
}

/// The items of a tree in send order (parents before children, names
/// sorted). Symlinks are not followed; sockets, fifos and devices are
/// skipped.
#[derive(Debug, Clone, Default)]
pub struct CopyPlan {
    /// The items.
    pub items: Vec<PlanItem>,
}

impl CopyPlan {
    /// Walks `root`.
    pub fn walk(root: &Path) -> Result<Self, TreeError> {
        let mut plan = Self::default();
        let meta = fs::symlink_metadata(root).map_err(TreeError::io("reading", root))?;
        if !(meta.is_dir() || meta.is_file() || meta.file_type().is_symlink()) {
            return Err(TreeError::Invalid(format!(
                "{root:?} is not a file, directory or symlink"
            )));
        }
        plan.visit(root, String::new(), &meta)?;
        Ok(plan)
    }

    fn visit(&mut self, path: &Path, rel: String, meta: &fs::Metadata) -> Result<(), TreeError> {
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(TreeError::io("reading link", path))?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|t| TreeError::NonUtf8(t.into()))?;
            self.push(rel, path, PlanKind::Symlink(target));
        } else if ft.is_file() {
            self.push(rel, path, PlanKind::File);
        } else if ft.is_dir() {
            self.push(rel.clone(), path, PlanKind::Dir(meta.mode() & 0o7777));
            let mut children = fs::read_dir(path)
                .map_err(TreeError::io("reading directory", path))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(TreeError::io("reading directory", path))?;
            children.sort_by_key(|c| c.file_name());
            for child in children {
                let child_path = child.path();
                let name = child
                    .file_name()
                    .into_string()
                    .map_err(|_| TreeError::NonUtf8(child_path.clone()))?;
                let child_rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let meta = fs::symlink_metadata(&child_path)
                    .map_err(TreeError::io("reading", &child_path))?;
                self.visit(&child_path, child_rel, &meta)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, rel: String, source: &Path, kind: PlanKind) {
        self.items.push(PlanItem {
            rel,
            source: source.to_owned(),
            kind,
        });
    }
}

impl PlanItem {
    /// The entry to send, and for files the opened file whose first `size`
    /// bytes are to follow (opened without following symlinks).
    pub fn open(&self) -> Result<(TreeEntry, Option<File>), TreeError> {
        let rel = self.rel.clone();
        Ok(match &self.kind {
            PlanKind::Dir(mode) => (
                TreeEntry::Dir {
                    path: rel,
                    mode: *mode,
                },
                None,
            ),
            PlanKind::Symlink(target) => (
                TreeEntry::Symlink {
                    path: rel,
                    target: target.clone(),
                },
                None,
            ),
            PlanKind::File => {
                let file = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&self.source)
                    .map_err(TreeError::io("opening", &self.source))?;
                let meta = file
                    .metadata()
                    .map_err(TreeError::io("reading", &self.source))?;
                let entry = TreeEntry::File {
                    path: rel,
                    mode: meta.mode() & 0o7777,
                    size: meta.len(),
                };
                (entry, Some(file))
            }
        })
    }
}
