//! File system steps the store is made of: the store lock, staging
//! directories, atomic writes, blob placement, and removing or measuring
//! an unpacked tree (which may hold read-only directories, and is walked
//! without recursion and without following symlinks).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::{io_err, StoreError};

/// The exclusive store lock, held while names, roots or blobs change.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _lock: Flock<File>,
}

impl StoreLock {
    /// Takes the lock on `path` (created if needed), waiting for it.
    pub(crate) fn acquire(path: &Path) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open lock file", path))?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| StoreError::Lock {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self { _lock: lock })
    }
}

/// A private directory under `tmp/` where one load stages blobs and
/// unpacks trees; locked (`flock` on the directory) while it is in use,
/// removed on drop.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Staging {
    /// Creates and locks a staging directory in `tmp`. Call it with the
    /// store lock held, so that a cleanup never sees it unlocked.
    pub(crate) fn create(tmp: &Path) -> Result<Self, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(tmp)
            .map_err(io_err("create a staging directory in", tmp))?
            .keep();
        let file = File::open(&dir).map_err(io_err("open", &dir))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Self { dir, _lock: lock }),
            Err((_, source)) => {
                let _ = fs::remove_dir(&dir);
                Err(StoreError::Lock { path: dir, source })
            }
        }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // What cannot be removed now is removed by the next cleanup.
        let _ = remove_tree(&self.dir);
    }
}

/// Removes an entry of `tmp/` unless a load is using it (holds its lock).
/// Whether it was removed.
pub(crate) fn remove_if_unused(path: &Path) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        fs::remove_file(path)?;
        return Ok(true);
    }
    match Flock::lock(File::open(path)?, FlockArg::LockExclusiveNonblock) {
        Ok(_lock) => remove_tree(path).map(|()| true),
        Err((_, Errno::EWOULDBLOCK)) => Ok(false),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// Writes `bytes` to `path` atomically: a temp file in `tmp`, fsynced,
/// renamed over `path`, and the directory fsynced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], tmp: &Path) -> Result<(), StoreError> {
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(io_err("create a file in", tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(io_err("write", file.path()))?;
    file.persist(path)
        .map_err(|e| e.error)
        .map_err(io_err("write", path))?;
    sync_parent(path)
}

/// Puts a blob at `target` from `bytes` unless it is there already.
pub(crate) fn put_blob_bytes(target: &Path, bytes: &[u8], tmp: &Path) -> Result<(), StoreError> {
    if target.exists() {
        return Ok(());
    }
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(io_err("create a file in", tmp))?;
    file.write_all(bytes)
        .and_then(|()| {
            file.as_file()
                .set_permissions(Permissions::from_mode(0o444))
        })
        .and_then(|()| file.as_file().sync_all())
        .map_err(io_err("write", file.path()))?;
    match file.persist_noclobber(target) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("write blob", target)(e.error)),
    }
}

/// Puts a staged (verified) file at `target` unless a blob is there
/// already: hard-linked, so that the staged file stays for other images of
/// the same load; copied where hard links are not possible.
pub(crate) fn put_blob_file(target: &Path, staged: &Path, tmp: &Path) -> Result<(), StoreError> {
    if target.exists() {
        return Ok(());
    }
    let file = File::open(staged).map_err(io_err("open", staged))?;
    file.set_permissions(Permissions::from_mode(0o444))
        .and_then(|()| file.sync_all())
        .map_err(io_err("sync", staged))?;
    match fs::hard_link(staged, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => {
            let bytes = fs::read(staged).map_err(io_err("read", staged))?;
            put_blob_bytes(target, &bytes, tmp)
        }
    }
}

/// Flushes the file system holding `dir` to disk: one `syncfs` for every
/// file of the trees just unpacked there, rather than an fsync a file.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<(), StoreError> {
    #[cfg(target_os = "linux")]
    {
        let handle = File::open(dir).map_err(io_err("open", dir))?;
        nix::unistd::syncfs(&handle)
            .map_err(|errno| io_err("sync the file system of", dir)(errno.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        nix::unistd::sync();
        Ok(())
    }
}

/// fsyncs the directory holding `path`.
pub(crate) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Removes `path` and all below it, giving directories owner `rwx` first
/// (an image may have read-only ones) and never following symlinks. A
/// missing `path` is not an error.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    // (path, children already removed)
    let mut stack = vec![(path.to_owned(), false)];
    while let Some((path, emptied)) = stack.pop() {
        if emptied {
            fs::remove_dir(&path)?;
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_dir() {
            fs::remove_file(&path)?;
            continue;
        }
        if meta.mode() & 0o700 != 0o700 {
            fs::set_permissions(&path, Permissions::from_mode(0o700))?;
        }
        stack.push((path.clone(), true));
        for child in fs::read_dir(&path)? {
            stack.push((child?.path(), false));
        }
    }
    Ok(())
}

/// Bytes of the regular files under `path` (each hard-linked file once),
/// without following symlinks; directories that cannot be read are
/// skipped, so this is a lower bound.
pub(crate) fn tree_size(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(children) = fs::read_dir(&path) {
                stack.extend(children.flatten().map(|c| c.path()));
            }
        } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino()))) {
            total += meta.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_read_only_trees() {
        let top = tempfile::tempdir().unwrap();
        let tree = top.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/", tree.join("a/up")).unwrap();
        fs::set_permissions(tree.join("a/b"), Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(tree.join("a"), Permissions::from_mode(0o000)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&tree).unwrap();
    }

    #[test]
    fn sizes_count_hard_links_once() {
        let tree = tempfile::tempdir().unwrap();
        fs::write(tree.path().join("f"), b"12345").unwrap();
        fs::hard_link(tree.path().join("f"), tree.path().join("g")).unwrap();
        fs::create_dir(tree.path().join("d")).unwrap();
        fs::write(tree.path().join("d/h"), b"123").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tree.path().join("l")).unwrap();
        assert_eq!(tree_size(tree.path()), 8);
    }

    #[test]
    fn staging_is_locked_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = Staging::create(tmp.path()).unwrap();
        fs::write(staging.path().join("x"), b"x").unwrap();
        assert!(!remove_if_unused(staging.path()).unwrap());
        let path = staging.path().to_owned();
        drop(staging);
        assert!(!path.exists());
        fs::create_dir(&path).unwrap();
        assert!(remove_if_unused(&path).unwrap());
    }
}
