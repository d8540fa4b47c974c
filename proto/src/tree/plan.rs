//! The sending side of a tree copy: walking a path into a [`CopyPlan`] and
//! turning each item into the entry to send.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::TreeError;
use crate::message::{SkipReason, TreeEntry};

/// What one item of a [`CopyPlan`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    /// A directory with its permission bits.
    Dir(u32),
    /// A regular file (its size and mode are read when it is opened).
    File,
    /// A symlink and its target (raw bytes, as the filesystem holds it).
    Symlink(PathBuf),
    /// A named pipe with its permission bits.
    Fifo(u32),
    /// A regular file already planned under this earlier relative path
    /// (same device and inode): a hard link to it.
    HardLink(PathBuf),
    /// Something that is not sent (a device node or a socket), reported.
    Skipped(SkipReason),
}

/// One item to send: its relative entry path and where it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// Relative entry path (empty for the root); any bytes but NUL.
    pub rel: PathBuf,
    /// Path on the sender's disk.
    pub source: PathBuf,
    /// What it is.
    pub kind: PlanKind,
}

/// The items of a tree in send order (parents before children, names
/// sorted). Symlinks are not followed; the second and later names of a
/// regular file are [`PlanKind::HardLink`]s to the first; device nodes and
/// sockets are [`PlanKind::Skipped`] items, so they can be reported.
#[derive(Debug, Clone, Default)]
pub struct CopyPlan {
    /// The items.
    pub items: Vec<PlanItem>,
}

/// The state of one walk: the plan, and the first path of each file with
/// more than one link.
struct Walk {
    plan: CopyPlan,
    linked: HashMap<(u64, u64), PathBuf>,
}

/// What a device node or socket is, `None` for what can be sent.
fn skip_reason(ft: fs::FileType) -> Option<SkipReason> {
    if ft.is_socket() {
        Some(SkipReason::Socket)
    } else if ft.is_char_device() {
        Some(SkipReason::CharDevice)
    } else if ft.is_block_device() {
        Some(SkipReason::BlockDevice)
    } else if ft.is_dir() || ft.is_file() || ft.is_symlink() || ft.is_fifo() {
        None
    } else {
        Some(SkipReason::Other)
    }
}

impl CopyPlan {
    /// Walks `root`. A root that cannot be sent (a device node or a
    /// socket) is an error, not an empty tree.
    pub fn walk(root: &Path) -> Result<Self, TreeError> {
        let meta = fs::symlink_metadata(root).map_err(TreeError::io("reading", root))?;
        if let Some(reason) = skip_reason(meta.file_type()) {
            return Err(TreeError::Invalid(format!(
                "{root:?} is a {reason}, which cannot be copied"
            )));
        }
        let mut walk = Walk {
            plan: Self::default(),
            linked: HashMap::new(),
        };
        walk.visit(root, PathBuf::new(), &meta)?;
        Ok(walk.plan)
    }

    /// The items that are not sent, with why.
    pub fn skipped(&self) -> impl Iterator<Item = (&PlanItem, SkipReason)> {
        self.items.iter().filter_map(|item| match item.kind {
            PlanKind::Skipped(reason) => Some((item, reason)),
            _ => None,
        })
    }
}

impl Walk {
    fn visit(&mut self, path: &Path, rel: PathBuf, meta: &fs::Metadata) -> Result<(), TreeError> {
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(TreeError::io("reading link", path))?;
            self.push(rel, path, PlanKind::Symlink(target));
        } else if ft.is_file() {
            let kind = if meta.nlink() > 1 {
                match self.linked.get(&(meta.dev(), meta.ino())) {
                    Some(first) => PlanKind::HardLink(first.clone()),
                    None => {
                        self.linked.insert((meta.dev(), meta.ino()), rel.clone());
                        PlanKind::File
                    }
                }
            } else {
                PlanKind::File
            };
            self.push(rel, path, kind);
        } else if ft.is_fifo() {
            self.push(rel, path, PlanKind::Fifo(meta.mode() & 0o7777));
        } else if ft.is_dir() {
            self.push(rel.clone(), path, PlanKind::Dir(meta.mode() & 0o7777));
            let mut children = fs::read_dir(path)
                .map_err(TreeError::io("reading directory", path))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(TreeError::io("reading directory", path))?;
            children.sort_by_key(|c| c.file_name());
            for child in children {
                let child_path = child.path();
                let child_rel = rel.join(child.file_name());
                let meta = fs::symlink_metadata(&child_path)
                    .map_err(TreeError::io("reading", &child_path))?;
                self.visit(&child_path, child_rel, &meta)?;
            }
        } else if let Some(reason) = skip_reason(ft) {
            self.push(rel, path, PlanKind::Skipped(reason));
        }
        Ok(())
    }

    fn push(&mut self, rel: PathBuf, source: &Path, kind: PlanKind) {
        self.plan.items.push(PlanItem {
            rel,
            source: source.to_owned(),
            kind,
        });
    }
}

impl PlanItem {
    /// The entry to send, and for files the opened file whose first `size`
    /// bytes are to follow (opened without following symlinks, and without
    /// blocking should it have been replaced by a fifo since the walk).
    pub fn open(&self) -> Result<(TreeEntry, Option<File>), TreeError> {
        let path = self.rel.as_path().into();
        Ok(match &self.kind {
            PlanKind::Dir(mode) => (TreeEntry::Dir { path, mode: *mode }, None),
            PlanKind::Symlink(target) => (
                TreeEntry::Symlink {
                    path,
                    target: target.as_path().into(),
                },
                None,
            ),
            PlanKind::Fifo(mode) => (TreeEntry::Fifo { path, mode: *mode }, None),
            PlanKind::HardLink(first) => (
                TreeEntry::HardLink {
                    path,
                    target: first.as_path().into(),
                },
                None,
            ),
            PlanKind::Skipped(reason) => (
                TreeEntry::Skipped {
                    path,
                    reason: *reason,
                },
                None,
            ),
            PlanKind::File => {
                let file = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                    .open(&self.source)
                    .map_err(TreeError::io("opening", &self.source))?;
                let meta = file
                    .metadata()
                    .map_err(TreeError::io("reading", &self.source))?;
                if !meta.is_file() {
                    return Err(TreeError::Invalid(format!(
                        "{:?} is no longer a regular file",
                        self.source
                    )));
                }
                let entry = TreeEntry::File {
                    path,
                    mode: meta.mode() & 0o7777,
                    size: meta.len(),
                };
                (entry, Some(file))
            }
        })
    }
}
