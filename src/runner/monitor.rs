//! A detached VM's monitor: how a named VM ended, kept for later commands.
//!
//! A named VM's runner is nobody's child once `krunbox start` has
//! returned, so nobody would learn its exit status. A detached runner
//! therefore forks before it configures libkrun: the child runs the VM, and
//! the parent (the process `start` recorded) waits for it, writes a
//! [`RunnerEnd`] next to the VM's record, and exits with the same status.
//! The child dies with the monitor (`PR_SET_PDEATHSIG`), so killing the
//! recorded pid still ends the VM.
//!
//! The monitor holds the VM directory open from the start and writes the
//! record relative to it, so the record lands in the directory wherever it
//! has moved: a VM claimed from a pool is renamed to its new name.
//!
//! ```text
//!  krunbox start ─spawn─► runner = monitor (recorded pid) ─fork─► VM (libkrun)
//!                                   └─ waitpid ─► exit.json: code or signal,
//!                                                 the kernel's OOM line
//! ```

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

/// How a detached VM's runner ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerEnd {
    /// Its exit code (the guest workload's, for a VM that powered off;
    /// 125: krunbox could not start the VM).
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// When, in seconds since the Unix epoch.
    pub ended_unix: u64,
    /// The host kernel's line about killing it for memory, if it did.
    #[serde(default)]
    pub kernel: Option<String>,
}

impl RunnerEnd {
    /// The record in `path`, if one was written.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }
}

impl std::fmt::Display for RunnerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(125), _) => f.write_str("exited with status 125 (krunbox's runner failed)")?,
            (Some(code), _) => write!(f, "exited with status {code}")?,
            (None, Some(signal)) => write!(f, "was killed by signal {signal}")?,
            (None, None) => f.write_str("ended")?,
        }
        if let Some(line) = &self.kernel {
            write!(f, "; the host kernel: {line}")?;
        }
        Ok(())
    }
}

/// Forks; returns in the child, which runs the VM. The parent waits for
/// it, removes its cgroup (`cgroup_dir`), writes its end to `record`, and
/// exits the same way. Call it while
/// the process has a single thread.
pub(crate) fn split_off_vm(record: &Path, cgroup_dir: Option<&Path>) {
    let monitor = nix::unistd::getpid();
    // SAFETY: the runner calls this first, before it has started any
    // thread, so the child is a complete copy; the parent only waits,
    // writes a file and exits.
    match unsafe { fork() } {
        // Without a fork the VM simply runs unmonitored, as before.
        Err(_) => {}
        Ok(ForkResult::Child) => die_with(monitor),
        Ok(ForkResult::Parent { child }) => {
            // The event pipe is the VM's: the spawner must see it close
            // when the VM's process ends, not when the monitor does.
            // SAFETY: closing a descriptor number this process owns and
            // does not use; nothing holds it as an owned handle yet.
            unsafe { libc::close(super::EVENT_FD) };
            let dir = VmDir::open(record);
            let end = wait_for(child);
            if let Some(dir) = cgroup_dir {
                super::confine::cgroup::remove(dir);
            }
            if let Some(dir) = dir {
                let _ = dir.write_atomically(&end);
            }
            std::process::exit(match (end.code, end.signal) {
                (Some(code), _) => code,
                (None, Some(signal)) => 128 + signal,
                (None, None) => super::child::RUNNER_FAILED_EXIT,
            });
        }
    }
}

/// In the VM's process: dies with the monitor.
fn die_with(monitor: Pid) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid() != monitor {
        // The monitor died before the death signal was set.
        std::process::exit(super::child::RUNNER_FAILED_EXIT);
    }
}

fn wait_for(child: Pid) -> RunnerEnd {
    let (code, signal) = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => break (Some(code), None),
            Ok(WaitStatus::Signaled(_, signal, _)) => break (None, Some(signal as i32)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break (None, None),
        }
    };
    let killed = signal == Some(libc::SIGKILL);
    RunnerEnd {
        code,
        signal,
        ended_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        kernel: killed.then(|| oom_line(child.as_raw())).flatten(),
    }
}

/// The directory a record goes into, held open by descriptor (it may be
/// renamed meanwhile), and the record's file name in it.
struct VmDir {
    fd: OwnedFd,
    file: OsString,
}

impl VmDir {
    fn open(record: &Path) -> Option<Self> {
        let parent = record.parent().filter(|p| !p.as_os_str().is_empty())?;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(parent, flags, Mode::empty()).ok()?;
        Some(Self {
            fd,
            file: record.file_name()?.to_owned(),
        })
    }

    /// Writes `end` beside the record and renames it into place.
    fn write_atomically(&self, end: &RunnerEnd) -> io::Result<()> {
        let mut aside = self.file.clone();
        aside.push(".tmp");
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(
            &self.fd,
            aside.as_os_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )?;
        let mut file = File::from(fd);
        file.write_all(&serde_json::to_vec(end).map_err(io::Error::other)?)?;
        file.sync_all()?;
        nix::fcntl::renameat(&self.fd, aside.as_os_str(), &self.fd, self.file.as_os_str())?;
        Ok(())
    }
}

/// The kernel log's last "Killed process PID" line, where this process
/// may read the log (`/dev/kmsg`, without blocking).
fn oom_line(pid: i32) -> Option<String> {
    let mut kmsg = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    find_killed(&mut kmsg, pid)
}

/// Reads kmsg records (one per read) until there are no more, keeping
/// the last that says `pid` was killed.
fn find_killed(kmsg: &mut File, pid: i32) -> Option<String> {
    let needle = format!("Killed process {pid} ");
    let mut found = None;
    let mut buf = vec![0u8; 8192];
    // Bounded: a busy log cannot keep the monitor reading.
    for _ in 0..100_000 {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                // "PRIO,SEQ,USEC,FLAGS;MESSAGE\n"
                let message = record.split_once(';').map_or(&*record, |(_, m)| m);
                if message.contains(&needle) {
                    found = Some(message.trim_end().to_owned());
                }
            }
            // A record overwritten while reading: go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(_) => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_read_back_and_say_what_happened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        assert_eq!(RunnerEnd::read(&path), None);
        let end = RunnerEnd {
            code: None,
            signal: Some(9),
            ended_unix: 1,
            kernel: Some("Out of memory: Killed process 7 (krunbox)".into()),
        };
        // Written where the directory is when the VM ends, not where it
        // was when the monitor opened it.
        let vm_dir = VmDir::open(&path).unwrap();
        let moved = dir.path().with_extension("moved");
        std::fs::rename(dir.path(), &moved).unwrap();
        vm_dir.write_atomically(&end).unwrap();
        std::fs::rename(&moved, dir.path()).unwrap();
        assert_eq!(RunnerEnd::read(&path), Some(end.clone()));
        assert!(!dir.path().join("exit.json.tmp").exists());
        let said = end.to_string();
        assert!(
            said.contains("signal 9") && said.contains("Out of memory"),
            "{said}"
        );
        let powered_off = RunnerEnd {
            code: Some(0),
            signal: None,
            ended_unix: 1,
            kernel: None,
        };
        assert_eq!(powered_off.to_string(), "exited with status 0");
    }

    #[test]
    fn the_kernel_line_is_found_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        // A regular file reads as one record; good enough for the parser.
        fs::write(
            &path,
            "3,1,2,-;Out of memory: Killed process 4242 (krunbox) total-vm:1kB\n",
        )
        .unwrap();
        let mut file = File::open(&path).unwrap();
        let line = find_killed(&mut file, 4242).unwrap();
        assert!(
            line.starts_with("Out of memory: Killed process 4242"),
            "{line}"
        );
        let mut file = File::open(&path).unwrap();
        assert_eq!(find_killed(&mut file, 42), None);
    }
}
