//! The two nodes std cannot create exactly as a receiver needs: a fifo
//! (`mkfifo`) and a hard link that never follows a symlink (`linkat` with
//! no flags).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

/// Creates a fifo at `path` with mode 0600 (the caller sets the final
/// mode); fails if anything exists there.
pub(super) fn make_fifo(path: &Path) -> io::Result<()> {
    let path = c_path(path)?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates `link` as another name for `original`. With no flags, a
/// symlink at `original` would be linked itself, never followed; fails if
/// anything exists at `link`.
pub(super) fn hard_link(original: &Path, link: &Path) -> io::Result<()> {
    let (original, link) = (c_path(original)?, c_path(link)?);
    // SAFETY: both are NUL-terminated strings that outlive the call;
    // AT_FDCWD makes relative paths relative to the working directory.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            original.as_ptr(),
            libc::AT_FDCWD,
            link.as_ptr(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
