//! The host terminal for `krunbox exec -t`: raw mode for the session's
//! length, and its window size.

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd};

use krunbox::client::WinSize;
use nix::sys::termios::{self, SetArg, Termios};

use super::error::CliError;

/// Puts standard input in raw mode and restores it when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on standard input, which must be a terminal.
    pub fn enter() -> Result<Self, CliError> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(CliError::NotATty);
        }
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(CliError::Terminal)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(CliError::Terminal)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The window size of the terminal on standard output (or input), or
/// 24×80 when there is none.
pub fn window_size() -> WinSize {
    let fallback = WinSize { rows: 24, cols: 80 };
    for fd in [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass,
        // which lives across the call; on a non-terminal it fails.
        let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_row > 0 && ws.ws_col > 0 {
            return WinSize {
                rows: ws.ws_row,
                cols: ws.ws_col,
            };
        }
    }
    fallback
}
