//! The runtime's errors: one enum, causes kept as sources.

use std::path::PathBuf;

use oci_spec::runtime::ContainerState;

use crate::ctl::CtlError;
use crate::spec::SpecError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No container has this id in the state directory.
    #[error("container {id:?} does not exist")]
    NoSuchContainer { id: String },
    /// A signal for a container whose process has ended (containerd
    /// matches "container not running" to treat it as done).
    #[error("container not running: {id:?} has stopped")]
    NotRunning { id: String },
    /// `create` with an id that is taken.
    #[error("container {id:?} exists already")]
    Exists { id: String },
    /// The operation needs another state (runtime-spec: an error).
    #[error("container {id:?} is {status}: {op} needs it {needs}")]
    WrongState {
        id: String,
        op: &'static str,
        status: ContainerState,
        needs: &'static str,
    },
    /// The bundle's `config.json` cannot be run.
    #[error("bundle {}", bundle.display())]
    Spec {
        bundle: PathBuf,
        #[source]
        source: SpecError,
    },
    /// The state directory or a container's record.
    #[error("state {}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A container record that is not JSON of ours.
    #[error("container record {}", path.display())]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The named-VM layer: booting, opening or stopping the VM.
    #[error("the container's VM")]
    Vm(#[source] krunbox::state::Error),
    /// The agent in the container's VM.
    #[error("the container's agent")]
    Agent(#[source] krunbox::client::ClientError),
    /// This executable could not be started again (as the monitor, or
    /// as a detached exec's child).
    #[error("starting a krunbox-oci process (the monitor, or a detached exec)")]
    SpawnSelf(#[source] std::io::Error),
    /// The monitor did not take or refused a request.
    #[error("the container's monitor")]
    Ctl(#[source] CtlError),
    /// `--pid-file` could not be written.
    #[error("pid file {}", path.display())]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A detached `exec` could not start its process.
    #[error("exec: {0}")]
    ExecChild(String),
    /// A signal name or number that is none.
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    /// A subcommand or flag this runtime does not implement.
    #[error("{what} is not supported by krunbox-oci")]
    Unsupported { what: String },
    /// `process.terminal`'s console.
    #[error("the container's console")]
    Console(#[from] crate::console::ConsoleError),
    /// The tokio runtime could not be built.
    #[error("the async runtime")]
    Runtime(#[source] std::io::Error),
}
