//! Running an image VM's runner as root of a user namespace of its own,
//! for a caller that is not root.
//!
//! Unpacked without root, an image's tree belongs to the caller on disk:
//! the layer applier cannot give files to other users. libkrun's virtio-fs
//! shows the guest the owners its runner sees, so a runner running as the
//! caller shows a Debian image whose `/etc/shadow` and `/usr/bin/sudo`
//! belong to uid 1000. In a user namespace where the caller's uid and gid
//! are 0 (`0 UID 1`, the mapping any user may make for itself, as
//! `unshare --map-root-user` does), the runner sees the tree as root's,
//! and so does the guest: what is root's in nearly every image. Owners
//! other than root are not kept without root (those entries are root's
//! too); a host path another user owns (a volume, say) shows as the
//! overflow id, 65534.
//!
//! The namespace is made between fork and exec of the runner, where the
//! child is single-threaded (`unshare(CLONE_NEWUSER)` refuses a threaded
//! process, and the caller may be a tokio program).

use std::io;

/// The maps to write, made before the fork (no allocation after it).
#[derive(Debug, Clone)]
pub(crate) struct RootMapping {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl RootMapping {
    /// The caller's effective uid and gid as 0.
    pub(crate) fn for_caller() -> Self {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        Self {
            uid_map: format!("0 {uid} 1\n").into_bytes(),
            gid_map: format!("0 {gid} 1\n").into_bytes(),
        }
    }

    /// Enters a new user namespace with this mapping. Between fork and
    /// exec only: it makes only async-signal-safe calls (unshare, open,
    /// write, close).
    pub(crate) fn enter(&self) -> io::Result<()> {
        // SAFETY: unshare takes a flag word and touches no memory of ours.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // An unprivileged gid_map needs setgroups denied first.
        write_proc(c"/proc/self/setgroups", b"deny")?;
        write_proc(c"/proc/self/uid_map", &self.uid_map)?;
        write_proc(c"/proc/self/gid_map", &self.gid_map)
    }
}

/// Writes `data` to the proc file `path` in one write.
fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `data` is a live buffer of `data.len()` bytes; `fd` is ours.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let error = io::Error::last_os_error();
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    if written != data.len() as isize {
        return Err(error);
    }
    Ok(())
}
