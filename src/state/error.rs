//! Why a named VM could not be started, found or stopped.

use std::io;
use std::path::PathBuf;

use super::VmStatus;

/// A named-VM operation that failed. Each variant names the VM or the
/// path involved; [`Error::advice`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state directory could not be created or read.
    #[error("cannot use the state directory {path:?}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The state directory is not private to this user.
    #[error("the state directory {path:?} is not private to this user: {reason}")]
    Insecure {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket path in the state directory would be longer than a unix
    /// socket address allows.
    #[error("the socket path {path:?} is {len} bytes; unix sockets take at most {max}")]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a valid VM name.
    #[error("invalid VM name {name:?}: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit")]
    BadName {
        /// The name given.
        name: String,
    },
    /// A VM with this name exists already.
    #[error("a VM named {name:?} already exists ({status})")]
    Exists {
        /// The name.
        name: String,
        /// What it is doing.
        status: VmStatus,
    },
    /// No VM has this name.
    #[error("no VM named {name:?}")]
    NoSuchVm {
        /// The name.
        name: String,
    },
    /// The VM exists but is not running.
    #[error("VM {name:?} is not running ({status}{})", ended_suffix(.ended))]
    NotRunning {
        /// The name.
        name: String,
        /// What it is doing instead.
        status: VmStatus,
        /// How it ended, if its monitor recorded it.
        ended: Option<crate::runner::RunnerEnd>,
    },
    /// The VM's record could not be read or written.
    #[error("cannot use the record of VM {name:?} at {path:?}")]
    Record {
        /// The name.
        name: String,
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The VM could not boot.
    #[error("VM {name:?} could not start")]
    Boot {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: crate::vm::Error,
    },
    /// A pool's size out of range.
    #[error("a pool holds 1 to {max} VMs, not {size}")]
    BadPoolSize {
        /// The size asked for.
        size: usize,
        /// The most.
        max: usize,
    },
    /// A pool with this name exists already.
    #[error("a pool named {name:?} already exists")]
    PoolExists {
        /// The name.
        name: String,
    },
    /// No pool has this name.
    #[error("no pool named {name:?}")]
    NoSuchPool {
        /// The name.
        name: String,
    },
    /// A pool's record could not be read or written.
    #[error("cannot use the record of pool {name:?} at {path:?}")]
    PoolRecord {
        /// The name.
        name: String,
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The VM's runner would not die, even after SIGKILL.
    #[error("VM {name:?} (runner pid {pid}) is still running after SIGKILL")]
    Unkillable {
        /// The name.
        name: String,
        /// The runner's pid.
        pid: u32,
    },
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn advice(&self) -> Option<String> {
        match self {
            Error::Insecure { .. } => Some(format!(
                "remove it, or point {} at a directory of yours with mode 0700",
                super::STATE_DIR_ENV
            )),
            Error::PathTooLong { .. } => Some(format!(
                "use a shorter VM name, or a shorter {}",
                super::STATE_DIR_ENV
            )),
            Error::Exists { name, status } => Some(match status {
                VmStatus::Dead => format!("`krunbox stop {name}` removes it"),
                _ => format!("use it (`krunbox exec {name} -- CMD`), stop it (`krunbox stop {name}`), or pick another name"),
            }),
            Error::NoSuchVm { .. } => Some(
                "`krunbox ls` lists the VMs; `krunbox start --name NAME --rootfs DIR` starts one"
                    .into(),
            ),
            Error::NotRunning { name, status, .. } => Some(match status {
                VmStatus::Starting => format!("wait for `krunbox start --name {name}` to finish"),
                _ => format!(
                    "`krunbox logs {name}` shows the guest console and `krunbox logs --runner {name}` \
                     libkrun's last words; `krunbox stop {name}` cleans it up, \
                     `krunbox start --name {name} …` starts it again"
                ),
            }),
            Error::Boot { source, .. } => source.advice(),
            Error::PoolExists { name } => Some(format!(
                "use it (`krunbox start --name NAME --from-pool {name}`), remove it (`krunbox pool rm {name}`), or pick another name"
            )),
            Error::NoSuchPool { .. } => Some(
                "`krunbox pool ls` lists the pools; `krunbox pool create NAME --size N --rootfs DIR` makes one"
                    .into(),
            ),
            Error::PoolRecord { name, .. } => Some(format!(
                "`krunbox pool rm {name}` removes the pool and stops its VMs"
            )),
            _ => None,
        }
    }
}

fn ended_suffix(ended: &Option<crate::runner::RunnerEnd>) -> String {
    ended
        .as_ref()
        .map_or_else(String::new, |end| format!("; its runner {end}"))
}
