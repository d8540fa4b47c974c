//! Entry paths, and the walk that finds an entry's directory inside the
//! root.
//!
//! The walk goes one component at a time with `lstat`. A symlink on the
//! way is followed *inside the root*: its target is spliced into the
//! components still to walk, an absolute target starting again at the
//! root and `..` stopping at the root (as containerd's `fs.RootPath` and
//! filepath-securejoin do). What the walk returns is made of directories
//! it saw, so a path built from it names the same place for the kernel
//! as for the walk, as long as nobody else changes the tree meanwhile.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::unpack::{DirFinish, Unpack};
use super::LayerError;

/// Most symlinks followed in one walk (Linux's own limit); more is an
/// error, which also ends symlink loops.
pub(super) const MAX_SYMLINK_HOPS: u32 = 40;

/// Owner bits a directory needs while the layer writes into it.
const OWNER_RWX: u32 = 0o700;

/// Why an entry's path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathProblem {
    /// It has a `..` component.
    ParentDir,
    /// It holds a NUL byte (only PAX records can carry one).
    Nul,
}

/// The names an entry path (or hard link target) is made of, relative to
/// the root: a leading `/` or `./`, `.` components and empty components
/// are dropped; `..` is refused outright. Empty for the root itself.
pub(super) fn entry_components(path: &Path) -> Result<Vec<&OsStr>, PathProblem> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(PathProblem::Nul);
    }
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::ParentDir => return Err(PathProblem::ParentDir),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(names)
}

/// One step still to walk.
enum Step {
    /// `..` from a symlink target: back one directory, never above the root.
    Up,
    /// A name to look up in the current directory.
    Name(OsString),
}

/// What the walk does with a component that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Creates it (mode 0755), as the layer's own.
    Create,
    /// Stops: the walk finds nothing.
    Stop,
}

impl Unpack<'_> {
    /// The directory the names `dir` lead to, relative to the root, every
    /// missing directory on the way created. `entry` names the entry in
    /// errors.
    pub(super) fn make_dir_path(
        &mut self,
        entry: &Path,
        dir: &[&OsStr],
    ) -> Result<PathBuf, LayerError> {
        self.walk(entry, dir, Missing::Create)?
            .ok_or_else(|| LayerError::BadEntry {
                path: entry.to_owned(),
                problem: "its parent directory could not be created",
            })
    }

    /// The directory the names `dir` lead to, relative to the root, or
    /// `None` if something on the way does not exist.
    pub(super) fn find_dir(
        &mut self,
        entry: &Path,
        dir: &[&OsStr],
    ) -> Result<Option<PathBuf>, LayerError> {
        self.walk(entry, dir, Missing::Stop)
    }

    fn walk(
        &mut self,
        entry: &Path,
        dir: &[&OsStr],
        missing: Missing,
    ) -> Result<Option<PathBuf>, LayerError> {
        let mut steps: VecDeque<Step> = dir.iter().map(|n| Step::Name(n.into())).collect();
        let mut here = PathBuf::new();
        let mut hops = 0;
        let root = fs::symlink_metadata(self.root).map_err(LayerError::write(entry))?;
        self.make_usable(entry, &here, &root)?;
        while let Some(step) = steps.pop_front() {
            let name = match step {
                Step::Up => {
                    here.pop();
                    continue;
                }
                Step::Name(name) => name,
            };
            let next = here.join(&name);
            let full = self.root.join(&next);
            let meta = match fs::symlink_metadata(&full) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if missing == Missing::Stop {
                        return Ok(None);
                    }
                    self.create_parent(entry, &next)?;
                    here = next;
                    continue;
                }
                Err(source) => return Err(LayerError::write(entry)(source)),
            };
            if meta.is_dir() {
                self.make_usable(entry, &next, &meta)?;
                here = next;
            } else if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(LayerError::BadEntry {
                        path: entry.to_owned(),
                        problem: "more than 40 symlinks on its path",
                    });
                }
                let target = fs::read_link(&full).map_err(LayerError::write(entry))?;
                if target.has_root() {
                    here = PathBuf::new();
                }
                splice(&mut steps, &target);
            } else {
                return Err(LayerError::BadEntry {
                    path: entry.to_owned(),
                    problem: "a parent on its path is not a directory",
                });
            }
        }
        Ok(Some(here))
    }

    /// Creates the missing directory `rel` (mode 0755) as this layer's.
    fn create_parent(&mut self, entry: &Path, rel: &Path) -> Result<(), LayerError> {
        let full = self.root.join(rel);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&full)
            .and_then(|()| fs::set_permissions(&full, fs::Permissions::from_mode(0o755)))
            .map_err(LayerError::write(entry))?;
        self.mark(rel);
        Ok(())
    }

    /// Gives the directory `rel` (seen by the walk) owner `rwx` if it lacks
    /// them, so that a process that is not root can write into a `0555`
    /// directory of a lower layer; its mode is put back when the layer is
    /// done.
    pub(super) fn make_usable(
        &mut self,
        entry: &Path,
        rel: &Path,
        meta: &fs::Metadata,
    ) -> Result<(), LayerError> {
        let mode = meta.mode() & 0o7777;
        if !meta.is_dir() || mode & OWNER_RWX == OWNER_RWX {
            return Ok(());
        }
        self.dir_finish
            .entry(rel.to_owned())
            .or_insert_with(|| DirFinish {
                entry: entry.to_owned(),
                mode,
                mtime: None,
            });
        let full = self.root.join(rel);
        fs::set_permissions(&full, fs::Permissions::from_mode(mode | OWNER_RWX))
            .map_err(LayerError::write(entry))
    }

    /// The full path of `rel` if every component of it is still a real
    /// directory (no symlink, nothing missing).
    pub(super) fn real_dir(&self, rel: &Path) -> Option<PathBuf> {
        let mut full = self.root.to_path_buf();
        for name in rel.components() {
            full.push(name);
            if !fs::symlink_metadata(&full).ok()?.is_dir() {
                return None;
            }
        }
        Some(full)
    }
}

/// Puts a symlink's target in front of the steps still to walk.
fn splice(steps: &mut VecDeque<Step>, target: &Path) {
    for component in target.components().rev() {
        match component {
            Component::Normal(name) => steps.push_front(Step::Name(name.into())),
            Component::ParentDir => steps.push_front(Step::Up),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_made_relative() {
        fn names(p: &str) -> Result<Vec<&OsStr>, PathProblem> {
            entry_components(Path::new(p))
        }
        assert_eq!(names("./a/b/"), Ok(vec![OsStr::new("a"), OsStr::new("b")]));
        assert_eq!(
            names("/etc//x"),
            Ok(vec![OsStr::new("etc"), OsStr::new("x")])
        );
        assert_eq!(names("a/./b"), Ok(vec![OsStr::new("a"), OsStr::new("b")]));
        assert_eq!(names("./"), Ok(vec![]));
        assert_eq!(names(""), Ok(vec![]));
        assert_eq!(names("a/../b"), Err(PathProblem::ParentDir));
        assert_eq!(names("../x"), Err(PathProblem::ParentDir));
        assert_eq!(names("a/b\0c"), Err(PathProblem::Nul));
    }
}
