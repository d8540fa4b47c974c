//! [`VmRecord`]: what a named VM's directory says about it, and whether
//! the processes it names are still the ones it started.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use krunbox_proto::Hello;
use serde::{Deserialize, Serialize};

use crate::runner::NetMode;

/// The record's file name in a VM directory.
pub(crate) const RECORD_FILE: &str = "vm.json";

/// A process, identified beyond its pid: the pid plus its start time (in
/// clock ticks after boot, from `/proc/PID/stat`), so a reused pid is not
/// mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Its start time.
    pub start_ticks: u64,
}

impl ProcessId {
    /// The process `pid`, if it exists and is not a zombie.
    pub fn of(pid: u32) -> Option<Self> {
        let start_ticks = start_ticks(Path::new(&format!("/proc/{pid}/stat")))?;
        Some(Self { pid, start_ticks })
    }

    /// This process.
    pub fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// Whether this very process still runs.
    pub fn is_alive(&self) -> bool {
        Self::of(self.pid).is_some_and(|now| now == *self)
    }
}

/// The start time, in clock ticks after boot, of the process or thread
/// whose `stat` file is `stat` (`/proc/PID/stat`, `/proc/PID/task/TID/stat`);
/// `None` if it is gone or a zombie.
pub(crate) fn start_ticks(stat: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses,
    // so fields are counted after the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // starttime is field 22 of the line; fields[0] is field 3.
    fields.get(19)?.parse().ok()
}

/// What `krunbox start` wrote about a named VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// The VM's name.
    pub name: String,
    /// The process that started it (it exits once the VM is ready).
    pub starter: Option<ProcessId>,
    /// The VM's runner process, once the VM is ready.
    pub runner: Option<ProcessId>,
    /// The agent's hello, once the VM is ready.
    pub hello: Option<Hello>,
    /// The guest's root directory on the host.
    pub rootfs: PathBuf,
    /// vCPUs.
    pub cpus: u8,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Networking.
    pub net: NetMode,
    /// When it was started, in seconds since the epoch.
    pub created_unix: u64,
    /// Host spawn of the runner to agent ready, in milliseconds.
    pub ready_ms: Option<u64>,
    /// The guest console's log file.
    #[serde(default)]
    pub console_log: PathBuf,
    /// What the runner applied to itself (no_new_privs, Landlock,
    /// seccomp), as it reported; `None` in records of earlier versions.
    #[serde(default)]
    pub confinement: Option<crate::runner::ConfinementReport>,
}

impl VmRecord {
    /// Reads the record in VM directory `dir`.
    pub(crate) fn read(dir: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(dir.join(RECORD_FILE))?;
        serde_json::from_slice(&bytes).map_err(io::Error::other)
    }

    /// Writes the record into VM directory `dir`, whole or not at all
    /// (written aside, then renamed).
    pub(crate) fn write(&self, dir: &Path) -> io::Result<()> {
        write_json(dir, RECORD_FILE, self)
    }
}

/// Writes `value` as JSON to `dir/file` (mode 0600), whole or not at all:
/// written aside, synced, then renamed into place.
pub(crate) fn write_json(dir: &Path, file: &str, value: &impl Serialize) -> io::Result<()> {
    let aside = dir.join(format!(".{file}.tmp"));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)?;
    out.write_all(&serde_json::to_vec_pretty(value).map_err(io::Error::other)?)?;
    out.sync_all()?;
    std::fs::rename(&aside, dir.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current().unwrap();
        assert!(me.is_alive());
        let reused = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn an_exited_child_is_not_alive_even_as_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait for it to exit without reaping it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ProcessId::of(pid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(ProcessId::of(pid).is_none());
        child.wait().unwrap();
    }

    #[test]
    fn record_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let record = VmRecord {
            name: "a".into(),
            starter: ProcessId::current(),
            runner: None,
            hello: None,
            rootfs: "/srv/root".into(),
            cpus: 1,
            memory_mib: 512,
            net: NetMode::Tsi,
            created_unix: 1,
            ready_ms: None,
            console_log: "/run/a/console.log".into(),
            confinement: Some(crate::runner::ConfinementReport {
                no_new_privs: true,
                landlock: crate::runner::Applied::Partial("ABI 2".into()),
                seccomp: crate::runner::Applied::Full,
                cgroup: crate::runner::Applied::Off,
                user: crate::runner::Applied::Off,
                took_us: 412,
            }),
        };
        record.write(dir.path()).unwrap();
        assert_eq!(VmRecord::read(dir.path()).unwrap(), record);
        let mode = std::fs::metadata(dir.path().join(RECORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
