//! Sending and receiving file trees safely, shared by host and agent.
//!
//! The sender walks a path into a [`CopyPlan`] and turns each item into a
//! [`TreeEntry`] (plus the file's bytes). The receiver, a [`TreeReceiver`],
//! treats everything it is sent as hostile:
//!
//! - each entry path (raw bytes) must pass
//!   [`crate::path::entry_components`] (no absolute paths, no `..`, no
//!   empty components, no NUL);
//! - an entry's parent must be a directory the receiver itself created in
//!   this copy, so nothing is ever created below a symlink;
//! - files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and exactly the
//!   declared number of bytes is accepted; fifos with `mkfifo`;
//! - a hard link's target must pass the same path rules and be a regular
//!   file this receiver created in this copy (its device and inode are
//!   remembered), so nothing outside the tree is ever linked;
//! - device nodes and sockets are never created: the sender reports them
//!   as [`TreeEntry::Skipped`], and the receiver lists them
//!   ([`TreeReceiver::skipped`]);
//! - everything lands in a private staging name next to the destination and
//!   is renamed into place only when the whole tree has arrived; a failed or
//!   dropped copy removes the staging name and leaves no partial file.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::message::{SkipReason, TreeEntry};
use crate::path::{entry_components, PathError};

mod node;
mod plan;
mod staging;
mod stream;

pub use plan::{CopyPlan, PlanItem, PlanKind};
pub use staging::{sweep_stale, temp_sibling};
pub use stream::TreeStreamError;

/// Why a tree could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A filesystem operation failed.
    #[error("{what} {path:?}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An entry path was not a plain relative path.
    #[error("rejected tree entry")]
    BadPath(#[source] PathError),
    /// The entries broke the tree rules (order, parents, sizes, limits).
    #[error("invalid tree: {0}")]
    Invalid(String),
    /// A hard link's target is not a regular file the receiver created in
    /// this copy (missing, a directory, a symlink, or outside the tree).
    #[error("hard link to {target:?}, which is not a regular file of this tree")]
    BadHardLink {
        /// The target entry path (lossy where not UTF-8).
        target: String,
    },
    /// A file name is not UTF-8 where text is needed (provisioning).
    #[error("file name {0:?} is not UTF-8")]
    NonUtf8(PathBuf),
}

impl TreeError {
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }

    /// The closest [`io::ErrorKind`].
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Self::Io { source, .. } => source.kind(),
            Self::BadPath(_) | Self::NonUtf8(_) => io::ErrorKind::InvalidInput,
            Self::Invalid(_) | Self::BadHardLink { .. } => io::ErrorKind::InvalidData,
        }
    }
}

/// A file written under a temporary name and renamed over its destination
/// on [`AtomicFile::commit`]; dropped uncommitted, it removes itself.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    temp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest` (mode 0600 until commit).
    pub fn create(dest: &Path) -> Result<Self, TreeError> {
        let temp = temp_sibling(dest);
        let file = create_exclusive(&temp)?;
        Ok(Self {
            file: Some(file),
            temp,
            dest: dest.to_owned(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is present until commit")
    }

    /// Sets `mode`, flushes and renames the file to its destination.
    pub fn commit(mut self, mode: u32) -> Result<(), TreeError> {
        let file = self.file.take().expect("file is present until commit");
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(TreeError::io("setting mode of", &self.temp))?;
        drop(file);
        fs::rename(&self.temp, &self.dest).map_err(TreeError::io("renaming into", &self.dest))?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn create_exclusive(path: &Path) -> Result<File, TreeError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(path)
        .map_err(TreeError::io("creating", path))
}

/// Bytes a receiver holds per directory besides its two paths (set and
/// list entries, allocation headers), measured: about 190 bytes a
/// directory for 60 bytes of paths.
const DIR_OVERHEAD: usize = 128;
/// Bytes a receiver holds per regular file: its device and inode, for
/// checking hard links, in a hash set.
const FILE_OVERHEAD: usize = 32;
/// Bytes a receiver holds per skipped entry besides its path.
const SKIPPED_OVERHEAD: usize = 64;

/// Bounds on what a receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// Most entries in one tree.
    pub max_entries: u64,
    /// Most file bytes in one tree.
    pub max_bytes: u64,
    /// Permission bits kept from entry modes (e.g. `0o1777` drops setuid
    /// and setgid from an untrusted sender).
    pub mode_mask: u32,
    /// Most memory spent remembering what was received: each directory's
    /// paths (to check parents and set modes at the end), each regular
    /// file's device and inode (to check hard links) and each skipped
    /// entry's path, counted with a fixed overhead each. The default,
    /// 64 MiB, admits some 300,000 directories of 60-byte paths, or two
    /// million files.
    pub max_dir_path_bytes: u64,
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: u64::MAX,
            mode_mask: 0o7777,
            max_dir_path_bytes: 64 << 20,
        }
    }
}

#[derive(Debug)]
struct OpenTreeFile {
    file: File,
    path: PathBuf,
    remaining: u64,
    mode: u32,
}

/// An entry the sender did not send, as a receiver lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    /// Its relative path in the tree.
    pub rel: PathBuf,
    /// What it is.
    pub reason: SkipReason,
}

/// Receives a tree entry by entry into a staging name and renames it into
/// place at [`TreeReceiver::finish`]. See the module docs for the rules.
#[derive(Debug)]
pub struct TreeReceiver {
    dest: PathBuf,
    staging: Option<PathBuf>,
    root_is_dir: bool,
    dirs: HashSet<Vec<u8>>,
    dir_modes: Vec<(PathBuf, u32)>,
    /// Device and inode of every regular file created in this copy.
    files: HashSet<(u64, u64)>,
    skipped: Vec<SkippedEntry>,
    file: Option<OpenTreeFile>,
    limits: TreeLimits,
    entries: u64,
    bytes: u64,
    remembered: u64,
    done: bool,
}

impl TreeReceiver {
    /// A receiver whose tree root becomes `dest` (an existing directory is
    /// merged into; an existing file or symlink is replaced).
    pub fn new(dest: impl Into<PathBuf>, limits: TreeLimits) -> Self {
        Self {
            dest: dest.into(),
            staging: None,
            root_is_dir: false,
            dirs: HashSet::new(),
            dir_modes: Vec::new(),
            files: HashSet::new(),
            skipped: Vec::new(),
            file: None,
            limits,
            entries: 0,
            bytes: 0,
            remembered: 0,
            done: false,
        }
    }

    /// Entries received so far (skipped ones included).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The entries the sender reported as skipped, so far.
    pub fn skipped(&self) -> &[SkippedEntry] {
        &self.skipped
    }

    /// Counts `bytes` more against [`TreeLimits::max_dir_path_bytes`].
    fn remember(&mut self, bytes: usize) -> Result<(), TreeError> {
        self.remembered += bytes as u64;
        if self.remembered > self.limits.max_dir_path_bytes {
            return Err(TreeError::Invalid(format!(
                "remembered paths exceed {} bytes",
                self.limits.max_dir_path_bytes
            )));
        }
        Ok(())
    }

    /// The staged path of `original`, which must be a regular file this
    /// receiver created in this copy (reached through directories it
    /// created, so no symlink is followed on the way).
    fn link_source(&self, original: &[u8]) -> Result<PathBuf, TreeError> {
        let bad = || TreeError::BadHardLink {
            target: String::from_utf8_lossy(original).into_owned(),
        };
        let parts = entry_components(original).map_err(TreeError::BadPath)?;
        let (Some(staging), Some((_, parents))) = (&self.staging, parts.split_last()) else {
            return Err(bad());
        };
        if !self.root_is_dir || !self.dirs.contains(&parents.join(&b'/')) {
            return Err(bad());
        }
        let source = staging.join(OsStr::from_bytes(original));
        let meta = fs::symlink_metadata(&source).map_err(|_| bad())?;
        if !meta.is_file() || !self.files.contains(&(meta.dev(), meta.ino())) {
            return Err(bad());
        }
        Ok(source)
    }

    /// File bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether a file's data is expected next.
    pub fn in_file(&self) -> bool {
        self.file.is_some()
    }

    /// Handles one entry. Returns `true` after [`TreeEntry::End`].
    pub fn entry(&mut self, entry: &TreeEntry) -> Result<bool, TreeError> {
        if self.file.is_some() {
            return Err(TreeError::Invalid("entry before the file's end".into()));
        }
        if self.done {
            return Err(TreeError::Invalid("entry after the end".into()));
        }
        let Some(rel) = entry.path().map(|p| p.as_bytes()) else {
            if self.staging.is_none() {
                return Err(TreeError::Invalid("empty tree".into()));
            }
            self.done = true;
            return Ok(true);
        };
        let shown = || String::from_utf8_lossy(rel);
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(TreeError::Invalid(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        let parts = entry_components(rel).map_err(TreeError::BadPath)?;
        let target = match (&self.staging, parts.split_last()) {
            (None, None) => {
                // What interrupted copies to the same place left behind.
                sweep_stale(&self.dest);
                let staging = temp_sibling(&self.dest);
                self.staging = Some(staging.clone());
                staging
            }
            (None, Some(_)) => {
                return Err(TreeError::Invalid("first entry is not the root".into()))
            }
            (Some(_), None) => return Err(TreeError::Invalid("second root entry".into())),
            (Some(staging), Some((_, parents))) => {
                if !self.root_is_dir || !self.dirs.contains(&parents.join(&b'/')) {
                    return Err(TreeError::Invalid(format!(
                        "parent of {:?} is not a directory of this tree",
                        shown()
                    )));
                }
                staging.join(OsStr::from_bytes(rel))
            }
        };
        let mask = self.limits.mode_mask;
        match entry {
            TreeEntry::Dir { mode, .. } => {
                self.remember(rel.len() + target.as_os_str().len() + DIR_OVERHEAD)?;
                DirBuilder::new()
                    .mode(0o700)
                    .create(&target)
                    .map_err(TreeError::io("creating directory", &target))?;
                if parts.is_empty() {
                    self.root_is_dir = true;
                }
                self.dirs.insert(rel.to_vec());
                self.dir_modes.push((target, mode & mask));
            }
            TreeEntry::File { mode, size, .. } => {
                if self.bytes.saturating_add(*size) > self.limits.max_bytes {
                    return Err(TreeError::Invalid(format!(
                        "more than {} bytes",
                        self.limits.max_bytes
                    )));
                }
                self.remember(FILE_OVERHEAD)?;
                let file = create_exclusive(&target)?;
                let meta = file.metadata().map_err(TreeError::io("reading", &target))?;
                self.files.insert((meta.dev(), meta.ino()));
                self.file = Some(OpenTreeFile {
                    file,
                    path: target,
                    remaining: *size,
                    mode: mode & mask,
                });
            }
            TreeEntry::Symlink { target: link, .. } => {
                if link.is_empty() || link.contains(&0) {
                    return Err(TreeError::Invalid(format!("bad symlink target {link:?}")));
                }
                std::os::unix::fs::symlink(link.as_path(), &target)
                    .map_err(TreeError::io("creating symlink", &target))?;
            }
            TreeEntry::Fifo { mode, .. } => {
                node::make_fifo(&target).map_err(TreeError::io("creating fifo", &target))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode & mask))
                    .map_err(TreeError::io("setting mode of", &target))?;
            }
            TreeEntry::HardLink {
                target: original, ..
            } => {
                let source = self.link_source(original)?;
                node::hard_link(&source, &target)
                    .map_err(TreeError::io("creating hard link", &target))?;
            }
            TreeEntry::Skipped { reason, .. } => {
                if parts.is_empty() {
                    return Err(TreeError::Invalid("the root is skipped".into()));
                }
                self.remember(rel.len() + SKIPPED_OVERHEAD)?;
                self.skipped.push(SkippedEntry {
                    rel: OsStr::from_bytes(rel).into(),
                    reason: *reason,
                });
            }
            TreeEntry::End => unreachable!("handled above"),
        }
        Ok(false)
    }

    /// Writes bytes of the current file; more than declared is an error.
    pub fn data(&mut self, bytes: &[u8]) -> Result<(), TreeError> {
        let Some(open) = self.file.as_mut() else {
            return Err(TreeError::Invalid("file data outside a file".into()));
        };
        if bytes.len() as u64 > open.remaining {
            return Err(TreeError::Invalid(format!(
                "more data than declared for {:?}",
                open.path
            )));
        }
        open.file
            .write_all(bytes)
            .map_err(TreeError::io("writing", &open.path))?;
        open.remaining -= bytes.len() as u64;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Ends the current file; fewer bytes than declared is an error.
    pub fn end_file(&mut self) -> Result<(), TreeError> {
        let Some(open) = self.file.take() else {
            return Err(TreeError::Invalid("end of file outside a file".into()));
        };
        if open.remaining != 0 {
            return Err(TreeError::Invalid(format!(
                "{} bytes missing from {:?}",
                open.remaining, open.path
            )));
        }
        open.file
            .set_permissions(fs::Permissions::from_mode(open.mode))
            .map_err(TreeError::io("setting mode of", &open.path))?;
        Ok(())
    }

    /// After [`TreeEntry::End`]: sets directory modes and moves the tree
    /// into place. Returns the entries created (skipped ones not counted)
    /// and the file bytes written.
    pub fn finish(mut self) -> Result<(u64, u64), TreeError> {
        if !self.done || self.file.is_some() {
            return Err(TreeError::Invalid("tree not complete".into()));
        }
        // Deepest first, so a read-only parent does not block its children.
        for (path, mode) in self.dir_modes.iter().rev() {
            if self.root_is_dir && Some(path) == self.staging.as_ref() {
                continue;
            }
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(TreeError::io("setting mode of", path))?;
        }
        let staging = self.staging.clone().expect("done implies a root");
        let dest_is_dir = fs::symlink_metadata(&self.dest)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if self.root_is_dir && dest_is_dir {
            merge_into(&staging, &self.dest)?;
            fs::remove_dir(&staging).map_err(TreeError::io("removing", &staging))?;
        } else {
            move_over(&staging, &self.dest, self.root_is_dir)?;
        }
        self.staging = None;
        if self.root_is_dir {
            let mode = self.dir_modes.first().map(|(_, m)| *m).unwrap_or(0o755);
            fs::set_permissions(&self.dest, fs::Permissions::from_mode(mode))
                .map_err(TreeError::io("setting mode of", &self.dest))?;
        }
        let skipped = self.skipped.len() as u64;
        Ok((self.entries - skipped, self.bytes))
    }
}

impl Drop for TreeReceiver {
    fn drop(&mut self) {
        if let Some(staging) = self.staging.take() {
            staging::remove_tree(&staging);
        }
    }
}

/// Moves the children of `from` into the existing directory `into`,
/// recursing where both sides are directories and replacing anything else.
fn merge_into(from: &Path, into: &Path) -> Result<(), TreeError> {
    for child in fs::read_dir(from).map_err(TreeError::io("reading directory", from))? {
        let child = child.map_err(TreeError::io("reading directory", from))?;
        let src = child.path();
        let dst = into.join(child.file_name());
        let src_is_dir = child
            .file_type()
            .map_err(TreeError::io("reading", &src))?
            .is_dir();
        let dst_is_dir = fs::symlink_metadata(&dst)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if src_is_dir && dst_is_dir {
            merge_into(&src, &dst)?;
            let mode = fs::metadata(&src)
                .map_err(TreeError::io("reading", &src))?
                .mode();
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(TreeError::io("setting mode of", &dst))?;
            fs::remove_dir(&src).map_err(TreeError::io("removing", &src))?;
        } else {
            move_over(&src, &dst, src_is_dir)?;
        }
    }
    Ok(())
}

/// Renames `src` to `dst`, replacing a file or symlink at `dst`. A
/// directory cannot be renamed over a non-directory, so for a directory
/// `src` such a `dst` is removed first (a symlink is never followed).
fn move_over(src: &Path, dst: &Path, src_is_dir: bool) -> Result<(), TreeError> {
    let dst_is_other = fs::symlink_metadata(dst).is_ok_and(|m| !m.is_dir());
    if src_is_dir && dst_is_other {
        fs::remove_file(dst).map_err(TreeError::io("replacing", dst))?;
    }
    fs::rename(src, dst).map_err(TreeError::io("renaming into", dst))
}
