//! [`StateDir`]: the per-user directory where named VMs live.
//!
//! ```text
//! $KRUNBOX_STATE_DIR  (else $XDG_RUNTIME_DIR/krunbox, else /tmp/krunbox-$UID)   0700
//! ├── .lock            held while a VM directory is claimed or removed
//! ├── .pools/POOL/     a pool of pre-booted VMs (`NamedPool`)
//! │   ├── pool.json    its size and the options its VMs boot with
//! │   └── mN/          a member: a VM directory as below, renamed to NAME
//! │                    when claimed
//! └── NAME/            0700, one per VM
//!     ├── vm.json      the record (0600)
//!     ├── console.log  the guest console (unless --console-log put it elsewhere)
//!     ├── vm.log       the runner's and libkrun's messages
//!     └── ops.sock     the agent's ops socket (0600), bridged to vsock 1025
//! ```

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{Error, VmName};

/// The environment variable that overrides where the state directory is.
pub const STATE_DIR_ENV: &str = "KRUNBOX_STATE_DIR";

/// Longest unix socket path (`sun_path` holds 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The longest socket name a VM directory holds.
const LONGEST_SOCKET: &str = "announce.sock";

/// The per-user state directory, created with mode 0700 and checked to
/// belong to this user and be private before anything is put in it.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Where the state directory is: `$KRUNBOX_STATE_DIR`, else
    /// `$XDG_RUNTIME_DIR/krunbox`, else `/tmp/krunbox-$UID`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty()) {
            return dir.into();
        }
        if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            if run.is_dir() {
                return run.join("krunbox");
            }
        }
        std::env::temp_dir().join(format!("krunbox-{}", nix::unistd::geteuid()))
    }

    /// Opens (creating it if needed) the state directory at its
    /// [default path](StateDir::default_path).
    pub fn open() -> Result<Self, Error> {
        Self::at(Self::default_path())
    }

    /// Opens (creating it if needed) the state directory at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        make_private_dir(&root, true)?;
        Ok(Self { root })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The directory of the VM `name` (which may not exist).
    pub fn vm_dir(&self, name: &VmName) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// The directory of the pools of pre-booted VMs.
    pub(crate) fn pools_dir(&self) -> PathBuf {
        self.root.join(".pools")
    }

    /// Checks that the sockets of VM `name` fit in a socket address.
    pub(crate) fn check_socket_paths(&self, name: &VmName) -> Result<(), Error> {
        check_socket_dir(&self.vm_dir(name))
    }

    /// The names of the VM directories, sorted.
    pub fn names(&self) -> Result<Vec<VmName>, Error> {
        let err = |source| Error::StateDir {
            path: self.root.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(err)? {
            let entry = entry.map_err(err)?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                if let Ok(name) = name.parse() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Takes the directory-wide lock, held while VM directories are
    /// claimed or removed, so that two commands never race on one name.
    pub(crate) fn lock(&self) -> Result<Flock<File>, Error> {
        let path = self.root.join(".lock");
        let err = |source| Error::StateDir {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| err(errno.into()))
    }
}

/// Checks that the sockets of a VM whose directory is `dir` fit in a
/// socket address.
pub(crate) fn check_socket_dir(dir: &Path) -> Result<(), Error> {
    let path = dir.join(LONGEST_SOCKET);
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::PathTooLong {
            path,
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// Creates `dir` with mode 0700 (and its parents, if `parents`), or checks
/// an existing one: a real directory, owned by this user, with no access
/// for group or others.
pub(crate) fn make_private_dir(dir: &Path, parents: bool) -> Result<(), Error> {
    let created = DirBuilder::new().recursive(parents).mode(0o700).create(dir);
    match created {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(Error::StateDir {
                path: dir.to_owned(),
                source,
            })
        }
    }
    check_private(dir)
}

fn check_private(dir: &Path) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| Error::StateDir {
        path: dir.to_owned(),
        source,
    })?;
    let insecure = |reason: String| Error::Insecure {
        path: dir.to_owned(),
        reason,
    };
    if !meta.is_dir() {
        return Err(insecure("it is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(insecure(format!(
            "it belongs to uid {}, not {me}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(insecure(format!(
            "its mode is {:o}, not 700",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn state_dir_is_created_private() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("a/b/state");
        let state = StateDir::at(&root).unwrap();
        let mode = std::fs::metadata(state.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn open_state_dir_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("state");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = StateDir::at(&root).unwrap_err();
        assert!(matches!(err, Error::Insecure { .. }), "{err}");
        assert!(err.to_string().contains("755"), "{err}");
    }

    #[test]
    fn symlinked_state_dir_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            StateDir::at(&link).unwrap_err(),
            Error::Insecure { .. }
        ));
    }

    #[test]
    fn long_socket_paths_are_refused_before_boot() {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::at(base.path().join("s".repeat(70))).unwrap();
        let name: VmName = "n".repeat(40).parse().unwrap();
        assert!(matches!(
            state.check_socket_paths(&name).unwrap_err(),
            Error::PathTooLong { .. }
        ));
        let short: VmName = "a".parse().unwrap();
        state.check_socket_paths(&short).unwrap();
    }
}
