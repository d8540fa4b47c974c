//! The report of a seccomp violation: the filter traps (`SIGSYS`), and the
//! handler writes which call it was to the runner's log (stderr) and, as a
//! [`crate::runner::RunnerEvent::Failed`] line, to the event pipe, then
//! lets `SIGSYS` end the runner (its parent sees that signal).
//!
//! The handler runs in whatever thread made the call, possibly inside
//! libkrun, so it only formats into a buffer on its stack and makes
//! async-signal-safe calls (`write`, `sigaction`, `raise`).

use std::fmt::Write as _;
use std::io;

use crate::runner::EVENT_FD;

/// Installs the handler for `SIGSYS`.
pub(super) fn install_handler() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid value (no flags, empty mask);
    // the fields set below make it a SA_SIGINFO handler.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: the handler only makes async-signal-safe calls; the old
    // action is not wanted.
    let rc = unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let call = syscall_of(info);
    let mut buf = Buf::default();
    let _ = writeln!(buf, "krunbox runner: {}", Violation(call));
    write_all(libc::STDERR_FILENO, buf.bytes());
    let mut buf = Buf::default();
    let _ = writeln!(
        buf,
        r#"{{"event":"failed","message":"{}","errno":null}}"#,
        Violation(call)
    );
    write_all(EVENT_FD, buf.bytes());
    // SAFETY: resetting SIGSYS to its default action and raising it are
    // async-signal-safe; the signal stays blocked until this handler
    // returns, and then ends the process.
    unsafe {
        libc::signal(libc::SIGSYS, libc::SIG_DFL);
        libc::raise(libc::SIGSYS);
    }
}

/// The number of the call that trapped.
fn syscall_of(info: *const libc::siginfo_t) -> i32 {
    // The kernel's siginfo for SIGSYS: si_signo, si_errno, si_code (three
    // ints, padded to 16 bytes), then the `_sigsys` member of the union:
    // `void *_call_addr; int _syscall; unsigned int _arch;`.
    const SYSCALL_OFFSET: usize = 16 + std::mem::size_of::<*const u8>();
    // SAFETY: the kernel passes a complete siginfo (128 bytes) to an
    // SA_SIGINFO handler; for SIGSYS from seccomp the int at this offset
    // is the call's number. An unaligned read is not needed: the offset
    // is a multiple of 4 in a 4-aligned struct.
    unsafe { *info.cast::<u8>().add(SYSCALL_OFFSET).cast::<i32>() }
}

/// A call the filter does not allow, in words.
struct Violation(i32);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seccomp stopped the runner: it called {} (system call {}), which the runner's \
             filter does not allow, so the VM is lost. If the guest did not break the runner, \
             this is a krunbox bug: report it with this line",
            syscall_name(self.0),
            self.0
        )
    }
}

/// The name of system call `nr` on this architecture.
pub(super) fn syscall_name(nr: i32) -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let names = super::syscall_names::SYSCALL_NAMES;
        if let Ok(i) = names.binary_search_by_key(&(nr as u32), |&(n, _)| n) {
            return names[i].1;
        }
    }
    let _ = nr;
    "an unknown call"
}

fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live buffer of that length; a closed or
        // bad descriptor only makes the call fail.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// A line built on the stack: no allocation in a signal handler.
struct Buf {
    data: [u8; 512],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Self {
            data: [0; 512],
            len: 0,
        }
    }
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl std::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.data.len() {
            return Err(std::fmt::Error);
        }
        self.data[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RunnerEvent;

    #[test]
    fn the_report_names_the_call_and_is_an_event_line() {
        let mut buf = Buf::default();
        writeln!(
            buf,
            r#"{{"event":"failed","message":"{}","errno":null}}"#,
            Violation(59)
        )
        .expect("the line fits");
        let line = std::str::from_utf8(buf.bytes()).unwrap();
        let Ok(RunnerEvent::Failed(failure)) = serde_json::from_str(line.trim_end()) else {
            panic!("not a failure event: {line}");
        };
        #[cfg(target_arch = "x86_64")]
        assert!(
            failure.message.contains("execve (system call 59)"),
            "{}",
            failure.message
        );
        assert_eq!(syscall_name(100_000), "an unknown call");
    }
}
