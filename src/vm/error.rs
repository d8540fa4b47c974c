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
    /// The VM's private socket directory could not be set up.
    #[error("cannot set up the VM's socket directory")]
    StateDir(#[source] io::Error),
    /// The agent did not come up, or its connection failed.
    #[error("the guest agent failed{}", log_suffix(.log_tail))]
    Agent {
        /// Why.
        #[source]
        source: crate::client::ClientError,
        /// The end of the VM log.
        log_tail: String,
    },
    /// The VM ended, or its runner died, while it was expected to run.
    #[error("the VM stopped: {reason}{}", log_suffix(.log_tail))]
    Lost {
        /// What is known of why.
        reason: String,
        /// The end of the VM log.
        log_tail: String,
    },
    /// A shutdown did not finish in time; the VM was killed.
    #[error("the VM did not power off within {0:?} and was killed")]
    ShutdownTimeout(std::time::Duration),
    /// The guest's output could not be read.
    #[error("cannot read the guest's output")]
    Output(#[source] io::Error),
}

/// An agent operation's failure as a VM error, so that a program mixing
/// boots and agent operations can use `?` on both (the VM's log is not
/// read: [`Vm`](super::Vm)'s own calls add its tail where they fail).
impl From<crate::client::ClientError> for Error {
    fn from(source: crate::client::ClientError) -> Self {
        Error::Agent {
            source,
            log_tail: String::new(),
        }
    }
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

fn log_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- end of the VM log ---\n{tail}\n---")
    }
}
