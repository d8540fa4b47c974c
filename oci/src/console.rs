//! Consoles: a process with `process.terminal`, and `--console-socket`,
//! as runc does them.
//!
//! `create` (and a detached `exec`) opens a pty pair on the host and sends
//! its master over the caller's console socket (one `SCM_RIGHTS` message,
//! what containerd's shim and conmon wait for). The slave, in raw mode,
//! becomes the stdio and the controlling terminal of the process that
//! pumps the guest process (the monitor, or the exec's child). The guest
//! process runs on a pty of its own in the guest, whose line discipline
//! does the echoing and the line editing: the host's slave only carries
//! bytes. A resize of the master reaches the pumping process as
//! `SIGWINCH`, which passes the new size on to the guest's pty.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use krunbox::client::WinSize;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// Why a console could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// `process.terminal` without `--console-socket`.
    #[error("process.terminal is set but no --console-socket was given")]
    NoSocket,
    /// The pty pair could not be opened or put in raw mode.
    #[error("cannot open a pty")]
    Pty(#[source] nix::Error),
    /// The caller's console socket did not take the master.
    #[error("cannot send the console to {}", socket.display())]
    Send {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The pumping process could not make the slave its terminal.
    #[error("cannot make the console this process's controlling terminal")]
    Attach(#[source] std::io::Error),
}

/// Opens a pty pair, sends the master to `socket`: the slave, raw.
pub(crate) fn open(socket: Option<&Path>) -> Result<OwnedFd, ConsoleError> {
    let socket = socket.ok_or(ConsoleError::NoSocket)?;
    let pty = nix::pty::openpty(None, None).map_err(ConsoleError::Pty)?;
    let mut mode = tcgetattr(&pty.slave).map_err(ConsoleError::Pty)?;
    cfmakeraw(&mut mode);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &mode).map_err(ConsoleError::Pty)?;
    let send_error = |source| ConsoleError::Send {
        socket: socket.to_owned(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(send_error)?;
    let fds = [pty.master.as_raw_fd()];
    // runc sends the pty's name with the descriptor; callers read it and
    // need at least one byte.
    let name = b"/dev/ptmx";
    sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|errno| send_error(errno.into()))?;
    Ok(pty.slave)
}

/// In the pumping process, whose stdio is the slave: makes it this
/// process's controlling terminal (a session of its own), so that a
/// resize of the master arrives as `SIGWINCH`.
pub(crate) fn attach() -> Result<(), ConsoleError> {
    nix::unistd::setsid().map_err(|errno| ConsoleError::Attach(errno.into()))?;
    rustix::process::ioctl_tiocsctty(std::io::stdin().as_fd())
        .map_err(|errno| ConsoleError::Attach(errno.into()))
}

/// The console's size (this process's stdin), or 24×80 where it has none.
pub(crate) fn size() -> WinSize {
    match rustix::termios::tcgetwinsize(std::io::stdin().as_fd()) {
        Ok(size) if size.ws_row > 0 && size.ws_col > 0 => WinSize {
            rows: size.ws_row,
            cols: size.ws_col,
        },
        _ => WinSize::default(),
    }
}
