//! What the runner gives up of its caller's first thing: the caller's
//! environment and descriptors, and any privilege an exec could gain.
//!
//! - **environment**: the runner starts from an empty environment plus
//!   [`KEPT_ENV`] (what the dynamic loader needs to find libkrun and
//!   libkrunfw); the caller's variables (API keys, tokens) never reach it.
//!   The guest's environment is the VM's own, passed to libkrun
//!   explicitly, so this changes nothing inside the guest.
//! - **file descriptors**: every descriptor above the event pipe
//!   ([`crate::runner::EVENT_FD`]) that the caller let the runner inherit
//!   is closed first thing.
//! - **no new privileges** (`PR_SET_NO_NEW_PRIVS`): nothing the runner
//!   could exec gains privileges from setuid bits or file capabilities.

use std::io;

/// The caller's variables a runner keeps: what the dynamic loader reads
/// to find libkrun and libkrunfw. Nothing else of the caller's
/// environment reaches the runner.
pub const KEPT_ENV: &[&str] = &["LD_LIBRARY_PATH"];

/// Closes every descriptor above [`crate::runner::EVENT_FD`]: whatever the caller
/// let the runner inherit. Called first thing in the runner, before it
/// opens anything of its own.
pub(crate) fn close_inherited_fds() -> io::Result<()> {
    let first = crate::runner::EVENT_FD as u32 + 1;
    // SAFETY: close_range takes integers only and closes descriptors of
    // this process; nothing in it holds one as an owned handle yet (the
    // runner has opened nothing at this point).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(err);
    }
    // Kernels before 5.9: each descriptor the limit allows.
    let limit = rlimit_nofile();
    for fd in first..limit {
        // SAFETY: as above; EBADF for a descriptor not open is expected.
        unsafe { libc::close(fd as i32) };
    }
    Ok(())
}

/// The soft `RLIMIT_NOFILE`, at most 1 << 20.
fn rlimit_nofile() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return 1024;
    }
    limit.rlim_cur.min(1 << 20) as u32
}

/// Sets `PR_SET_NO_NEW_PRIVS` on the runner.
pub(crate) fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integers only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
