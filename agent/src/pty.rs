//! Pseudo-terminals for interactive execs.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use krunbox_proto::WinSize;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::{openpty, Winsize};

/// A pty pair; the slave end goes to the child, the master stays here.
#[derive(Debug)]
pub struct Pty {
    /// The master end: read for output, write for input.
    pub master: File,
    slave: OwnedFd,
}

fn winsize(ws: WinSize) -> Winsize {
    Winsize {
        ws_row: ws.rows,
        ws_col: ws.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn nix_io(err: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(err as i32)
}

impl Pty {
    /// Opens a pty of the given size.
    pub fn open(ws: WinSize) -> io::Result<Self> {
        let pair = openpty(Some(&winsize(ws)), None).map_err(nix_io)?;
        for fd in [&pair.master, &pair.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(nix_io)?;
        }
        Ok(Self {
            master: File::from(pair.master),
            slave: pair.slave,
        })
    }

    /// Makes the slave the child's stdin, stdout, stderr and controlling
    /// terminal, in a new session.
    pub fn attach(&self, cmd: &mut Command) -> io::Result<()> {
        cmd.stdin(Stdio::from(self.slave.try_clone()?))
            .stdout(Stdio::from(self.slave.try_clone()?))
            .stderr(Stdio::from(self.slave.try_clone()?));
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (setsid, ioctl).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// Closes the parent's copy of the slave (after the child has started),
    /// so that reading the master ends when the child's side closes.
    pub fn close_slave(self) -> File {
        drop(self.slave);
        self.master
    }
}

/// Sets the window size of the terminal whose master is `master`.
pub fn resize(master: &File, ws: WinSize) -> io::Result<()> {
    let size = winsize(ws);
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which
    // points to a live, initialized value for the duration of the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
