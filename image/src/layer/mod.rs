//! Applying one OCI image layer to a directory, as the image spec's
//! `layer.md` says, treating the layer as hostile input.
//!
//! A layer is a tar stream (compressed: see [`Compression`] and
//! [`decompressed`]) of the changes it makes to the layers below it:
//!
//! - files, directories, symlinks, hard links and fifos are created with
//!   the mode (setuid, setgid and sticky bits included), modification time
//!   and, with [`ApplyOptions::keep_owners`], owner of their header; device
//!   nodes only by root; other types are skipped and listed in
//!   [`Applied::skipped`];
//! - an entry replaces whatever is at its path, except that a directory
//!   over a directory keeps its contents;
//! - a whiteout `DIR/.wh.NAME` removes `DIR/NAME` (a whole tree if it is
//!   a directory) of the layers below; an opaque whiteout
//!   `DIR/.wh..wh..opq` removes every child of `DIR` from the layers below.
//!   Neither removes what this layer itself puts there, before or after
//!   the whiteout in the stream. Whiteouts create nothing.
//!
//! # Hostile layers
//!
//! Nothing outside `root` is created, changed or removed, whatever the
//! layer holds:
//!
//! - entry paths are relative to the root (a leading `/` or `./` is
//!   dropped); a path with a `..` component is refused ([`LayerError::Escapes`]);
//! - the directories above an entry are walked one component at a time
//!   with `lstat`, and a symlink among them is followed *inside the root*:
//!   an absolute target starts again at the root and `..` stops at the
//!   root, as containerd's `fs.RootPath` does. So a merged-`/usr` image's
//!   `lib -> usr/lib` sends a later `lib/x86_64-linux-gnu/foo` to
//!   `usr/lib/x86_64-linux-gnu/foo`, and `evil -> /` sends `evil/pwned` to
//!   `pwned` in the root. At most 40 symlinks are followed in one walk;
//! - an entry's own name is never followed: what is there (a symlink too)
//!   is removed first, files are opened `O_CREAT | O_EXCL | O_NOFOLLOW`,
//!   owners and times are set without following (`lchown`, `fchown`,
//!   `utimensat(AT_SYMLINK_NOFOLLOW)`), modes on an open file, a node just
//!   made, or a directory whose every component was checked again;
//! - hard link targets are found the same way, inside the root, and must
//!   be existing non-directories; the link is made with `linkat` without
//!   following;
//! - every entry's size is checked against [`ApplyOptions::max_entry_size`]
//!   before anything is written, and the headers of one entry (long names,
//!   PAX records) may take at most 1 MiB of the stream, since the `tar`
//!   crate reads those into memory.
//!
//! The walk checks each component, then works with paths made of what it
//! checked: this relies on nobody else changing the tree under `root` while
//! a layer is applied (it is a private unpack directory).
//!
//! # Permissions and times
//!
//! Directory modes and times are set once the whole layer is in: writing
//! into a directory changes its time, and a read-only directory could not
//! be filled. A directory of a lower layer that lacks owner `rwx` gets them
//! while the layer is applied and its mode back at the end, so that a
//! process that is not root can apply layers with `0555` directories.
//! Times are whole seconds from the header (access time = modification
//! time); lower directories a layer writes into get the time of the write,
//! as on overlayfs.
//!
//! # Not applied
//!
//! PAX extended attributes (`SCHILY.xattr.*`, so `security.capability`
//! file capabilities too), ACLs and sub-second PAX times are ignored.
//! Sparse files are written out in full. AUFS metadata entries
//! (`.wh..wh.*` other than the opaque marker) are skipped.

mod budget;
mod compression;
mod create;
mod resolve;
mod unpack;
mod whiteout;

#[cfg(test)]
mod tests;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use self::compression::{decompressed, Compression};
use self::unpack::Unpack;

/// Largest entry [`ApplyOptions::default`] accepts: 64 GiB.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 64 << 30;

/// How a layer is applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Keep the entries' uid/gid (chown). Default: whether this process is
    /// root (`geteuid() == 0`). Device nodes are created only when this is
    /// set and the process is root.
    pub keep_owners: bool,
    /// Upper bound on one entry's declared size (default
    /// [`DEFAULT_MAX_ENTRY_SIZE`]): larger is refused before writing.
    pub max_entry_size: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            keep_owners: nix::unistd::geteuid().is_root(),
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
        }
    }
}

/// What applying a layer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Entries applied (files, dirs, links, fifos, device nodes, whiteouts).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries not created, with why (device nodes when not root, unknown
    /// types, AUFS metadata).
    pub skipped: Vec<SkippedEntry>,
}

/// An entry of the layer that was not created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    /// Its path as the layer gives it.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: &'static str,
}

/// Why a layer could not be applied. Each variant names the entry (its
/// path as the layer gives it, lossily shown where not UTF-8).
///
/// After an error the tree under `root` is half-applied: throw it away.
/// Nothing outside it was touched.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The tar stream could not be read between entries: broken, cut off
    /// inside a header, or with more than 1 MiB of headers for one entry.
    #[error("reading the layer's tar stream")]
    Read {
        /// What the `tar` crate or the decompressor said.
        #[source]
        source: io::Error,
    },
    /// An entry's content could not be read: the stream broke or ended
    /// inside it (then the source is of kind `UnexpectedEof`).
    #[error("reading the content of layer entry {path:?}")]
    ReadEntry {
        /// The entry.
        path: PathBuf,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// A header field (mode, owner, time, device numbers) is not a number.
    #[error("unreadable header of layer entry {path:?}")]
    Header {
        /// The entry.
        path: PathBuf,
        /// What the `tar` crate said.
        #[source]
        source: io::Error,
    },
    /// The entry's path has a `..` component.
    #[error("layer entry {path:?} has a `..` component")]
    Escapes {
        /// The entry.
        path: PathBuf,
    },
    /// A hard link's target has a `..` component.
    #[error("layer entry {path:?} is a hard link to {target:?}, which has a `..` component")]
    LinkEscapes {
        /// The entry.
        path: PathBuf,
        /// Its target as the layer gives it.
        target: PathBuf,
    },
    /// The entry declares more bytes than [`ApplyOptions::max_entry_size`].
    #[error("layer entry {path:?} declares {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// The entry.
        path: PathBuf,
        /// Its declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Creating, changing or removing something in the root for the entry
    /// failed.
    #[error("applying layer entry {path:?}")]
    Write {
        /// The entry.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The entry cannot be applied as it is (a hard link to a directory or
    /// to nothing, a parent that is a file, a symlink loop, …).
    #[error("layer entry {path:?}: {problem}")]
    BadEntry {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `root` is not a directory (a symlink to one is refused too).
    #[error("unpack root {root:?} is not a directory")]
    Root {
        /// The root given.
        root: PathBuf,
        /// Why it is unusable.
        #[source]
        source: io::Error,
    },
}

impl LayerError {
    /// Maps an OS error while applying the entry `path`.
    fn write(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
        move |source| LayerError::Write {
            path: path.to_owned(),
            source,
        }
    }

    /// Maps a read error inside the content of the entry `path`.
    fn read_entry(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
        move |source| LayerError::ReadEntry {
            path: path.to_owned(),
            source,
        }
    }
}

/// Applies the layer tar stream `layer` (decompressed) on top of the tree
/// at `root`, which holds the layers below it. See the module docs for
/// what that means and what a hostile layer cannot do.
///
/// # Example
///
/// ```no_run
/// use krunbox_image::layer::{apply, decompressed, ApplyOptions, Compression};
///
/// let blob = std::fs::File::open("layer.tar.gz")?;
/// let tar = decompressed(Compression::Gzip, std::io::BufReader::new(blob))?;
/// let applied = apply(std::path::Path::new("rootfs"), tar, &ApplyOptions::default())?;
/// println!("{} entries, {} bytes", applied.entries, applied.bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn apply(root: &Path, layer: impl Read, options: &ApplyOptions) -> Result<Applied, LayerError> {
    check_root(root)?;
    let (stream, gate) = budget::cap_headers(layer);
    let mut archive = tar::Archive::new(stream);
    let mut entries = archive
        .entries()
        .map_err(|source| LayerError::Read { source })?;
    let mut unpack = Unpack::new(root, options);
    loop {
        gate.headers();
        let Some(entry) = entries.next() else {
            break;
        };
        gate.content();
        let mut entry = entry.map_err(|source| LayerError::Read { source })?;
        unpack.entry(&mut entry)?;
    }
    unpack.finish()
}

/// `root` must be a directory itself, not a symlink to one.
fn check_root(root: &Path) -> Result<(), LayerError> {
    let unusable = |source| LayerError::Root {
        root: root.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(root).map_err(unusable)?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(unusable(io::Error::from_raw_os_error(libc::ENOTDIR)))
    }
}
