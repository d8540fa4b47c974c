//! Errors of the named-VM commands (`exec`, `cp`, …) that are not the
//! library's: guest and host paths, terminals, command lines.

use std::io;
use std::path::PathBuf;

use krunbox::client::ClientError;

use super::report::Advised;

/// A named-VM command that failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Finding, starting or stopping the VM failed.
    #[error(transparent)]
    State(#[from] krunbox::state::Error),
    /// A path that is not in the guest.
    #[error("{path}: no such file or directory in VM {vm:?}")]
    GuestNotFound {
        /// The VM.
        vm: String,
        /// The guest path.
        path: String,
    },
    /// A guest path that is not absolute.
    #[error("{path:?}: a path in VM {vm:?} must be absolute ({vm}:/path)")]
    GuestRelative {
        /// The VM.
        vm: String,
        /// The guest path.
        path: String,
    },
    /// An operation on the VM's agent failed.
    #[error("{op} in VM {vm:?} failed")]
    Agent {
        /// The VM.
        vm: String,
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// A host path that cannot be used.
    #[error("{path:?} on the host")]
    HostPath {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `cp` needs one side in a VM and one on the host.
    #[error("cp copies between the host and one VM: {0}")]
    CpSides(&'static str),
    /// `exec` without a command.
    #[error("no command to run: none was given")]
    NoCommand {
        /// The VM.
        vm: String,
    },
    /// `exec -t` without a terminal.
    #[error("-t needs a terminal on standard input")]
    NotATty,
    /// The host terminal could not be set up.
    #[error("cannot set up the terminal")]
    Terminal(#[source] nix::Error),
    /// The VM stopped, or its guest or agent stopped answering, while an
    /// operation ran.
    #[error("{op} in VM {vm:?} failed: {why}")]
    VmGone {
        /// The VM.
        vm: String,
        /// What was being done.
        op: &'static str,
        /// Which of them, as far as can be told.
        why: String,
    },
    /// The command's output could not be written here.
    #[error("in VM {vm:?}: the command was stopped")]
    Output {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: super::output::WriteEnd,
    },
}

impl Advised for CliError {
    fn advice(&self) -> Option<String> {
        match self {
            CliError::State(e) => e.advice(),
            CliError::GuestNotFound { vm, .. } => {
                Some(format!("list the directory with `krunbox exec {vm} -- ls -la DIR`"))
            }
            CliError::Agent {
                source: ClientError::Uncopyable { .. },
                ..
            } => Some("without --strict, cp copies the rest and lists what it skipped".into()),
            CliError::Agent { vm, source, .. } => match source.io_kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotFound => Some(format!(
                    "the VM may have stopped: `krunbox ls` shows it, `krunbox logs {vm}` shows its log"
                )),
                _ => None,
            },
            CliError::CpSides(_) => Some(
                "krunbox cp SRC NAME:DST copies in, krunbox cp NAME:SRC DST copies out; \
                 write a host path with ':' as ./path"
                    .into(),
            ),
            CliError::NotATty => Some("drop -t, or run from a terminal".into()),
            CliError::NoCommand { vm } => Some(format!(
                "give the command after the VM's name: krunbox exec {vm} CMD ARGS"
            )),
            CliError::VmGone { vm, .. } => Some(format!(
                "`krunbox logs {vm}` shows the guest console and `krunbox logs --runner {vm}` \
                 libkrun's messages; `krunbox stop {vm}` removes it"
            )),
            _ => None,
        }
    }
}

/// `op` on VM `vm` failed with `source`: a guest path the agent could not
/// find becomes [`CliError::GuestNotFound`].
pub fn agent_error(vm: &str, op: &'static str, path: &str, source: ClientError) -> CliError {
    let missing =
        matches!(source, ClientError::Agent { .. }) && source.io_kind() == io::ErrorKind::NotFound;
    if missing {
        CliError::GuestNotFound {
            vm: vm.to_owned(),
            path: path.to_owned(),
        }
    } else {
        CliError::Agent {
            vm: vm.to_owned(),
            op,
            source,
        }
    }
}

/// How long a named VM's agent may be silent before a command says it is
/// gone: a few pings' worth ([`krunbox_proto::PING_INTERVAL`] is 1 s).
pub const LIVENESS: std::time::Duration = std::time::Duration::from_secs(10);

/// The client settings of the commands on named VMs.
pub fn client_config() -> krunbox::client::ClientConfig {
    krunbox::client::ClientConfig {
        liveness_timeout: LIVENESS,
        ..krunbox::client::ClientConfig::default()
    }
}

/// `op` on the named VM `vm` failed with `source`: when the agent is gone,
/// says whether the VM stopped (its runner exited) or why the agent counts
/// as gone; otherwise the agent's error as it is.
pub fn gone_or_agent(
    vm: &krunbox::state::NamedVm,
    op: &'static str,
    source: ClientError,
) -> CliError {
    let agent_gone = match &source {
        ClientError::Gone { reason, .. } => Some(format!("its agent is gone: {reason}")),
        ClientError::Closed { .. } => Some("its agent closed the connection".to_owned()),
        _ => None,
    };
    let stopped = match agent_gone {
        Some(_) => runner_exited(vm),
        None => vm.status() == krunbox::state::VmStatus::Dead,
    };
    let why = match (stopped, agent_gone) {
        (true, _) => match vm.end() {
            Some(end) => format!("the VM stopped: its runner {end}"),
            None => "the VM stopped: its runner has exited \
                     (the guest powered off, crashed or was killed)"
                .to_owned(),
        },
        (false, Some(why)) => why,
        (false, None) => {
            return CliError::Agent {
                vm: vm.name().to_string(),
                op,
                source,
            }
        }
    };
    CliError::VmGone {
        vm: vm.name().to_string(),
        op,
        why,
    }
}

/// Whether `vm`'s runner has exited, allowing it a second: a VM that
/// stops closes its connections as its runner exits.
fn runner_exited(vm: &krunbox::state::NamedVm) -> bool {
    for _ in 0..20 {
        if vm.status() == krunbox::state::VmStatus::Dead {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}
