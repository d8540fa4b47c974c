//! Why a VM could not be booted or followed.

use std::io;

use crate::host::{Kvm, LibkrunfwError};
use crate::runner::{RunnerFailure, RunnerProgramError, SpawnError};

use super::config::ConfigError;

/// A VM that could not boot, or that was lost.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot boot.
    #[error("invalid VM configuration")]
    Config(#[from] ConfigError),
    /// This host cannot run libkrun guests.
    #[error("this host cannot boot libkrun guests: {}", .0.describe())]
    Kvm(Kvm),
    /// The guest kernel library is missing.
    #[error("the guest kernel (libkrunfw) is not available")]
    Libkrunfw(#[from] LibkrunfwError),
    /// No runner program.
    #[error("cannot find a runner program")]
    RunnerProgram(#[from] RunnerProgramError),
    /// The runner process could not be started or followed.
    #[error("cannot run the VM's runner process")]
    Spawn(#[from] SpawnError),
    /// The runner started but could not start the VM.
    #[error("the VM could not start")]
    Runner(#[source] RunnerFailure),
    /// The runner was killed by a signal before the guest finished.
    #[error("the VM's runner process was killed by signal {signal}")]
    RunnerKilled {
        /// The signal number.
        signal: i32,
    },
    /// The guest's output could not be read.
    #[error("cannot read the guest's output")]
    Output(#[source] io::Error),
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn advice(&self) -> Option<String> {
        match self {
            Error::Config(ConfigError::Rootfs { .. }) => Some(
                "give --rootfs a directory holding the guest's files (e.g. a busybox tree)".into(),
            ),
            Error::Kvm(kvm) => kvm.advice().map(str::to_owned),
            Error::Libkrunfw(e) => Some(e.advice().to_owned()),
            Error::RunnerProgram(_) => {
                Some("build the CLI (cargo build --bin krunbox) or set KRUNBOX_RUNNER".into())
            }
            Error::Runner(_) => Some(
                "run `krunbox doctor`; rerun with --log-level 3 for libkrun's own messages".into(),
            ),
            _ => None,
        }
    }
}
