//! One layer being applied: its bookkeeping, what each entry's type asks
//! for, and the directory modes and times set once the layer is in.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;
use tar::EntryType;

use super::create::set_mtime;
use super::resolve::{entry_components, PathProblem};
use super::whiteout::{self, Whiteout};
use super::{Applied, ApplyOptions, LayerError, SkippedEntry};

/// One layer being applied to a root.
pub(super) struct Unpack<'a> {
    /// The tree the layer goes on.
    pub(super) root: &'a Path,
    pub(super) options: &'a ApplyOptions,
    /// Device nodes are made only by root keeping owners.
    may_mknod: bool,
    /// What this layer put in the tree (real paths relative to the root),
    /// with all their ancestors: whiteouts leave these alone.
    pub(super) this_layer: BTreeSet<PathBuf>,
    /// Directory modes and times to set once the layer is in.
    pub(super) dir_finish: BTreeMap<PathBuf, DirFinish>,
    applied: Applied,
}

/// A directory's mode and time, set when the layer is in.
#[derive(Debug)]
pub(super) struct DirFinish {
    /// The entry it is for, named in errors.
    pub(super) entry: PathBuf,
    pub(super) mode: u32,
    /// `None` for a lower directory whose mode is only put back.
    pub(super) mtime: Option<i64>,
}

/// The header fields of an entry that become metadata.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attrs {
    /// Permission bits with setuid, setgid and sticky.
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Seconds since the epoch.
    pub(super) mtime: i64,
}

/// What an entry's type asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    HardLink,
    Fifo,
    Device(SFlag),
    /// Not a file system object (a PAX global header): passed over.
    Ignored,
    Unknown,
}

/// What became of an entry.
pub(super) enum Outcome {
    /// Applied, with this many bytes of content written.
    Applied(u64),
    Skipped(&'static str),
    Ignored,
}

impl Kind {
    fn of(entry_type: EntryType, path: &[u8]) -> Kind {
        match entry_type {
            t if t.is_dir() => Kind::Dir,
            // Pre-POSIX archives mark directories by a trailing slash only.
            EntryType::Regular if path.ends_with(b"/") => Kind::Dir,
            t if t.is_file() || t.is_contiguous() || t.is_gnu_sparse() => Kind::File,
            t if t.is_symlink() => Kind::Symlink,
            t if t.is_hard_link() => Kind::HardLink,
            t if t.is_fifo() => Kind::Fifo,
            t if t.is_character_special() => Kind::Device(SFlag::S_IFCHR),
            t if t.is_block_special() => Kind::Device(SFlag::S_IFBLK),
            t if t.is_pax_global_extensions() => Kind::Ignored,
            _ => Kind::Unknown,
        }
    }
}

impl Attrs {
    fn of(header: &tar::Header, path: &Path) -> Result<Attrs, LayerError> {
        let unreadable = |source| LayerError::Header {
            path: path.to_owned(),
            source,
        };
        let id = |value: u64| {
            u32::try_from(value).map_err(|_| LayerError::BadEntry {
                path: path.to_owned(),
                problem: "its uid or gid does not fit in 32 bits",
            })
        };
        let old = header.as_old();
        let mode = or_zero_if_blank(&old.mode, header.mode().map(u64::from));
        let uid = or_zero_if_blank(&old.uid, header.uid());
        let gid = or_zero_if_blank(&old.gid, header.gid());
        let mtime = or_zero_if_blank(&old.mtime, header.mtime());
        Ok(Attrs {
            mode: mode.map_err(unreadable)? as u32 & 0o7777,
            uid: id(uid.map_err(unreadable)?)?,
            gid: id(gid.map_err(unreadable)?)?,
            mtime: i64::try_from(mtime.map_err(unreadable)?).unwrap_or(i64::MAX),
        })
    }
}

/// A numeric header field left blank (NULs or spaces) reads as 0, as
/// Go's archive/tar (docker's) reads it; anything else unparsable is an
/// error.
fn or_zero_if_blank(field: &[u8], parsed: std::io::Result<u64>) -> std::io::Result<u64> {
    match parsed {
        Err(_) if field.iter().all(|b| matches!(b, 0 | b' ')) => Ok(0),
        other => other,
    }
}

impl<'a> Unpack<'a> {
    pub(super) fn new(root: &'a Path, options: &'a ApplyOptions) -> Self {
        Unpack {
            root,
            options,
            may_mknod: options.keep_owners && nix::unistd::geteuid().is_root(),
            this_layer: BTreeSet::new(),
            dir_finish: BTreeMap::new(),
            applied: Applied::default(),
        }
    }

    /// Applies one entry, reading its content to the end.
    pub(super) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), LayerError> {
        let path = PathBuf::from(OsString::from_vec(entry.path_bytes().into_owned()));
        let size = entry.size();
        if size > self.options.max_entry_size {
            return Err(LayerError::TooLarge {
                path,
                size,
                max: self.options.max_entry_size,
            });
        }
        let names = entry_components(&path).map_err(|problem| match problem {
            PathProblem::ParentDir => LayerError::Escapes { path: path.clone() },
            PathProblem::Nul => LayerError::BadEntry {
                path: path.clone(),
                problem: "its path holds a NUL byte",
            },
        })?;
        let outcome = match names.last().and_then(|name| Whiteout::parse(name)) {
            _ if whiteout::in_aufs_meta_dir(&names) => Outcome::Skipped(whiteout::AUFS_META),
            Some(whiteout) => self.whiteout(&path, &names, whiteout)?,
            None => self.create(&path, &names, entry)?,
        };
        let written = match outcome {
            Outcome::Applied(written) => {
                self.applied.entries += 1;
                self.applied.bytes += written;
                written
            }
            Outcome::Skipped(reason) => {
                self.applied.skipped.push(SkippedEntry {
                    path: path.clone(),
                    reason,
                });
                0
            }
            Outcome::Ignored => 0,
        };
        let rest = io::copy(entry, &mut io::sink()).map_err(LayerError::read_entry(&path))?;
        if written + rest != size {
            return Err(LayerError::ReadEntry {
                path,
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "the layer ends inside it"),
            });
        }
        Ok(())
    }

    /// Creates what a (non-whiteout) entry describes.
    fn create<R: Read>(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Outcome, LayerError> {
        let kind = Kind::of(entry.header().entry_type(), &entry.path_bytes());
        match kind {
            Kind::Ignored => return Ok(Outcome::Ignored),
            Kind::Unknown => return Ok(Outcome::Skipped("unknown entry type")),
            Kind::Device(_) if !self.may_mknod => {
                return Ok(Outcome::Skipped("device node (needs root)"))
            }
            Kind::Dir => {}
            _ if names.is_empty() => {
                return Err(LayerError::BadEntry {
                    path: path.to_owned(),
                    problem: "only a directory can stand for the root",
                })
            }
            _ => {}
        }
        let attrs = Attrs::of(entry.header(), path)?;
        let written = match kind {
            Kind::Dir => self.directory(path, names, &attrs).map(|()| 0)?,
            Kind::File => self.file(path, names, &attrs, entry)?,
            Kind::Symlink => {
                let target = link_target(path, entry)?;
                self.symlink(path, names, &attrs, &target).map(|()| 0)?
            }
            Kind::HardLink => {
                let target = link_target(path, entry)?;
                self.hard_link(path, names, &target).map(|()| 0)?
            }
            Kind::Fifo => self
                .special(path, names, &attrs, SFlag::S_IFIFO, 0)
                .map(|()| 0)?,
            Kind::Device(flag) => {
                let dev = device_number(path, entry.header())?;
                self.special(path, names, &attrs, flag, dev).map(|()| 0)?
            }
            Kind::Ignored | Kind::Unknown => 0,
        };
        Ok(Outcome::Applied(written))
    }

    /// Records that the layer put something at `rel` (and so, everything
    /// above it is the layer's too).
    pub(super) fn mark(&mut self, rel: &Path) {
        for ancestor in rel.ancestors() {
            if ancestor.as_os_str().is_empty() || !self.this_layer.insert(ancestor.to_owned()) {
                break;
            }
        }
    }

    /// Forgets the directory modes to set at and below `rel`, removed.
    pub(super) fn forget_below(&mut self, rel: &Path) {
        let gone: Vec<PathBuf> = self
            .dir_finish
            .range(rel.to_path_buf()..)
            .map(|(dir, _)| dir)
            .take_while(|dir| dir.starts_with(rel))
            .cloned()
            .collect();
        for dir in gone {
            self.dir_finish.remove(&dir);
        }
    }

    /// Sets the directories' modes and times, deepest first, where they
    /// are still directories reached without a symlink.
    pub(super) fn finish(mut self) -> Result<Applied, LayerError> {
        let dirs = std::mem::take(&mut self.dir_finish);
        for (rel, finish) in dirs.iter().rev() {
            let Some(full) = self.real_dir(rel) else {
                continue;
            };
            fs::set_permissions(&full, fs::Permissions::from_mode(finish.mode))
                .map_err(LayerError::write(&finish.entry))?;
            if let Some(mtime) = finish.mtime {
                set_mtime(&full, mtime).map_err(LayerError::write(&finish.entry))?;
            }
        }
        Ok(self.applied)
    }
}

/// A symlink's or hard link's target as the layer gives it.
fn link_target<R: Read>(path: &Path, entry: &tar::Entry<'_, R>) -> Result<PathBuf, LayerError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(PathBuf::from(OsStr::from_bytes(&target))),
        _ => Err(LayerError::BadEntry {
            path: path.to_owned(),
            problem: "it is a link without a target",
        }),
    }
}

/// A device entry's major and minor numbers as a `dev_t`.
fn device_number(path: &Path, header: &tar::Header) -> Result<libc::dev_t, LayerError> {
    let unreadable = |source| LayerError::Header {
        path: path.to_owned(),
        source,
    };
    let major = header.device_major().map_err(unreadable)?;
    let minor = header.device_minor().map_err(unreadable)?;
    match (major, minor) {
        (Some(major), Some(minor)) => Ok(nix::sys::stat::makedev(major.into(), minor.into())),
        _ => Err(LayerError::BadEntry {
            path: path.to_owned(),
            problem: "it is a device node in an old header without device numbers",
        }),
    }
}

#[cfg(test)]
mod blank_fields {
    use super::or_zero_if_blank;

    #[test]
    fn blank_numeric_fields_are_zero_and_garbage_is_an_error() {
        let bad = || Err(std::io::Error::other("not a number"));
        assert_eq!(or_zero_if_blank(&[0; 8], bad()).unwrap(), 0);
        assert_eq!(or_zero_if_blank(b"        ", bad()).unwrap(), 0);
        assert!(or_zero_if_blank(b"12x4\0\0\0\0", bad()).is_err());
        assert_eq!(or_zero_if_blank(b"0000755\0", Ok(0o755)).unwrap(), 0o755);
    }
}
