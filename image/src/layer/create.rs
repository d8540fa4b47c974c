//! Creating what an entry describes at its real place in the root.
//!
//! Each creator finds the place (its directory walked inside the root),
//! removes what is there without following it, creates the entry without
//! following anything, then sets owner (when kept), mode and time. The
//! owner comes before the mode because `chown` clears setuid and setgid.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::resolve::{entry_components, PathProblem};
use super::unpack::{Attrs, DirFinish, Unpack};
use super::whiteout::remove_tree;
use super::LayerError;

/// Size of the buffer file content is copied through.
const COPY_BUFFER: usize = 64 * 1024;

/// Where an entry goes.
pub(super) struct Place {
    /// Relative to the root, through no symlink.
    pub(super) rel: PathBuf,
    /// The root joined with `rel`.
    pub(super) full: PathBuf,
}

impl Unpack<'_> {
    /// The real place of the entry with the (non-empty) `names`: its
    /// directory walked inside the root, missing directories created; its
    /// own name is not followed.
    fn place(&mut self, path: &Path, names: &[&OsStr]) -> Result<Place, LayerError> {
        let Some((name, dir)) = names.split_last() else {
            return Err(LayerError::BadEntry {
                path: path.to_owned(),
                problem: "only a directory can stand for the root",
            });
        };
        let rel = self.make_dir_path(path, dir)?.join(name);
        let full = self.root.join(&rel);
        Ok(Place { rel, full })
    }

    /// Removes what is at `place` (a whole tree for a directory), unless
    /// `keep_dir` and it is a directory: then returns `true`. The place is
    /// the layer's from now on.
    fn clear(&mut self, path: &Path, place: &Place, keep_dir: bool) -> Result<bool, LayerError> {
        let kept = match fs::symlink_metadata(&place.full) {
            Ok(meta) if keep_dir && meta.is_dir() => true,
            Ok(meta) => {
                remove_tree(&place.full, &meta).map_err(LayerError::write(path))?;
                self.forget_below(&place.rel);
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(LayerError::write(path)(e)),
        };
        self.mark(&place.rel);
        Ok(kept)
    }

    /// A directory: a directory already there keeps its contents. Its mode
    /// and time are set when the layer is in. No names: the root itself.
    pub(super) fn directory(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        attrs: &Attrs,
    ) -> Result<(), LayerError> {
        let rel = if names.is_empty() {
            PathBuf::new()
        } else {
            let place = self.place(path, names)?;
            if !self.clear(path, &place, true)? {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&place.full)
                    .map_err(LayerError::write(path))?;
            }
            place.rel
        };
        self.set_owner(path, &self.root.join(&rel), attrs)?;
        let finish = DirFinish {
            entry: path.to_owned(),
            mode: attrs.mode,
            mtime: Some(attrs.mtime),
        };
        self.dir_finish.insert(rel, finish);
        Ok(())
    }

    /// A regular file with the entry's content; returns its length.
    pub(super) fn file(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        attrs: &Attrs,
        content: &mut impl Read,
    ) -> Result<u64, LayerError> {
        let place = self.place(path, names)?;
        self.clear(path, &place, false)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&place.full)
            .map_err(LayerError::write(path))?;
        let written = copy_content(path, content, &mut file)?;
        if self.options.keep_owners {
            std::os::unix::fs::fchown(&file, Some(attrs.uid), Some(attrs.gid))
                .map_err(LayerError::write(path))?;
        }
        file.set_permissions(fs::Permissions::from_mode(attrs.mode))
            .map_err(LayerError::write(path))?;
        drop(file);
        set_mtime(&place.full, attrs.mtime).map_err(LayerError::write(path))?;
        Ok(written)
    }

    /// A symlink; its target is stored as given (only ever resolved inside
    /// the root, by this module).
    pub(super) fn symlink(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        attrs: &Attrs,
        target: &Path,
    ) -> Result<(), LayerError> {
        let place = self.place(path, names)?;
        self.clear(path, &place, false)?;
        std::os::unix::fs::symlink(target, &place.full).map_err(LayerError::write(path))?;
        self.set_owner(path, &place.full, attrs)?;
        set_mtime(&place.full, attrs.mtime).map_err(LayerError::write(path))
    }

    /// A hard link to `target`, a path in the root found as an entry's is;
    /// it must be an existing non-directory (a symlink is linked itself).
    pub(super) fn hard_link(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        target: &Path,
    ) -> Result<(), LayerError> {
        let bad = |problem| LayerError::BadEntry {
            path: path.to_owned(),
            problem,
        };
        let target_names = entry_components(target).map_err(|problem| match problem {
            PathProblem::ParentDir => LayerError::LinkEscapes {
                path: path.to_owned(),
                target: target.to_owned(),
            },
            PathProblem::Nul => bad("its hard link target holds a NUL byte"),
        })?;
        let Some((target_name, target_dir)) = target_names.split_last() else {
            return Err(bad("it is a hard link to the root"));
        };
        let Some(found) = self.find_dir(path, target_dir)? else {
            return Err(bad("its hard link target does not exist"));
        };
        let target_rel = found.join(target_name);
        let target_full = self.root.join(&target_rel);
        match fs::symlink_metadata(&target_full) {
            Ok(meta) if meta.is_dir() => return Err(bad("it is a hard link to a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad("its hard link target does not exist"))
            }
            Err(e) => return Err(LayerError::write(path)(e)),
        }
        let place = self.place(path, names)?;
        if place.rel == target_rel {
            return Err(bad("it is a hard link to itself"));
        }
        self.clear(path, &place, false)?;
        nix::unistd::linkat(
            AT_FDCWD,
            &target_full,
            AT_FDCWD,
            &place.full,
            AtFlags::empty(),
        )
        .map_err(|errno| LayerError::write(path)(errno.into()))
    }

    /// A fifo (`kind` `S_IFIFO`) or a device node (`S_IFCHR`, `S_IFBLK`).
    pub(super) fn special(
        &mut self,
        path: &Path,
        names: &[&OsStr],
        attrs: &Attrs,
        kind: SFlag,
        dev: libc::dev_t,
    ) -> Result<(), LayerError> {
        let place = self.place(path, names)?;
        self.clear(path, &place, false)?;
        let private = Mode::S_IRUSR | Mode::S_IWUSR;
        let made = if kind == SFlag::S_IFIFO {
            nix::unistd::mkfifo(&place.full, private)
        } else {
            nix::sys::stat::mknod(&place.full, kind, private, dev)
        };
        made.map_err(|errno| LayerError::write(path)(errno.into()))?;
        self.set_owner(path, &place.full, attrs)?;
        // Follows nothing: what is at the place was just made by mknod.
        fs::set_permissions(&place.full, fs::Permissions::from_mode(attrs.mode))
            .map_err(LayerError::write(path))?;
        set_mtime(&place.full, attrs.mtime).map_err(LayerError::write(path))
    }

    /// `lchown`s `full` to the entry's owner when owners are kept.
    fn set_owner(&self, path: &Path, full: &Path, attrs: &Attrs) -> Result<(), LayerError> {
        if !self.options.keep_owners {
            return Ok(());
        }
        std::os::unix::fs::lchown(full, Some(attrs.uid), Some(attrs.gid))
            .map_err(LayerError::write(path))
    }
}

/// Copies an entry's content into its file; returns the bytes copied.
fn copy_content(path: &Path, content: &mut impl Read, file: &mut File) -> Result<u64, LayerError> {
    let mut buf = vec![0; COPY_BUFFER];
    let mut written = 0;
    loop {
        let n = match content.read(&mut buf) {
            Ok(0) => return Ok(written),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LayerError::read_entry(path)(e)),
        };
        file.write_all(&buf[..n]).map_err(LayerError::write(path))?;
        written += n as u64;
    }
}

/// Sets the access and modification times of `full` (not following a
/// symlink) to `mtime` seconds.
pub(super) fn set_mtime(full: &Path, mtime: i64) -> io::Result<()> {
    let time = TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        AT_FDCWD,
        full,
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}
