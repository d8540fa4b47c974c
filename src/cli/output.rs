//! Writing a guest's output to this process's standard output and error:
//! every byte, or a clear end.
//!
//! - A descriptor that another process made non-blocking (they share the
//!   open file) answers `EAGAIN` when full: the write waits for room
//!   instead of dropping the bytes.
//! - A reader that went away (`EPIPE`, as in `krunbox exec … | head -n1`)
//!   is [`WriteEnd::ReaderGone`]: the command is stopped with SIGPIPE and
//!   krunbox exits with [`EXIT_BROKEN_PIPE`], as a process killed by
//!   SIGPIPE shows to a shell.
//! - Any other failure is [`WriteEnd::Failed`], reported as krunbox's own.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Exit status of `exec` and `run` when their output's reader went away:
/// 128 + SIGPIPE, what a shell reports for a process SIGPIPE killed.
pub const EXIT_BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// Why output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteEnd {
    /// The reader closed the pipe.
    #[error("the reader of {0} went away")]
    ReaderGone(&'static str),
    /// Writing failed otherwise.
    #[error("writing the command's {what}")]
    Failed {
        /// `standard output` or `standard error`.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Which of this process's streams.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Self::Stdout => "standard output",
            Self::Stderr => "standard error",
        }
    }
}

/// Writes all of `bytes` to `stream`, waiting for room as long as it takes.
pub fn write_all(stream: Stream, bytes: &[u8]) -> Result<(), WriteEnd> {
    match stream {
        Stream::Stdout => write_fd(io::stdout().as_fd(), bytes),
        Stream::Stderr => write_fd(io::stderr().as_fd(), bytes),
    }
    .map_err(|source| match source.raw_os_error() {
        Some(libc::EPIPE) => WriteEnd::ReaderGone(stream.name()),
        _ => WriteEnd::Failed {
            what: stream.name(),
            source,
        },
    })
}

fn write_fd(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;

    #[test]
    fn a_full_non_blocking_pipe_is_waited_on_not_dropped() {
        let (read, write) = nix::unistd::pipe().unwrap();
        nix::fcntl::fcntl(
            &write,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let mut all = Vec::new();
            std::fs::File::from(read).read_to_end(&mut all).unwrap();
            all.len()
        });
        let bytes = vec![7u8; 1 << 20];
        write_fd(write.as_fd(), &bytes).unwrap();
        drop(write);
        assert_eq!(reader.join().unwrap(), 1 << 20);
    }

    #[test]
    fn a_closed_pipe_is_epipe() {
        let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
        drop(read);
        // Rust ignores SIGPIPE, so the write fails instead of killing us.
        let err = write_fd(write.as_fd(), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }
}
