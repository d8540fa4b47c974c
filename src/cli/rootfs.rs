//! Which rootfs `demo` and `bench` boot when none is given.

use std::path::PathBuf;

/// The lab's guest rootfs, exported to commands run in it.
const LAB_ROOTFS_ENV: &str = "KRUNBOX_TEST_ROOTFS";

/// No rootfs was given and the default one is not there.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Neither `XDG_DATA_HOME` nor `HOME` is set.
    #[error("no --rootfs given, and no default rootfs: neither XDG_DATA_HOME nor HOME is set")]
    NoDefault,
    /// The default rootfs has not been built.
    #[error("no --rootfs given, and the default rootfs {} does not exist", .0.display())]
    Missing(PathBuf),
}

impl RootfsError {
    /// What to do about it.
    pub fn advice(&self) -> &'static str {
        "run `cargo xtask setup` in a krunbox checkout (it builds the default rootfs from \
         busybox-static), or pass --rootfs DIR"
    }
}

/// `given`; else `$KRUNBOX_TEST_ROOTFS` (set in the lab); else the
/// default rootfs, which must exist.
pub fn resolve(given: Option<PathBuf>) -> Result<PathBuf, RootfsError> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os(LAB_ROOTFS_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let dir = krunbox::host::default_rootfs_dir().ok_or(RootfsError::NoDefault)?;
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(RootfsError::Missing(dir))
    }
}
