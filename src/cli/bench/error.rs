//! Why a benchmark run stopped.

use std::io;
use std::path::PathBuf;

use krunbox::client::ClientError;

use crate::cli::report::Advised;
use crate::cli::rootfs::RootfsError;

/// Everything that ends `krunbox bench` early.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No rootfs to boot.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// A named VM could not be started, used or stopped.
    #[error("{case}: the named VM failed")]
    State {
        /// The case.
        case: &'static str,
        /// Why (boxed: it is large).
        #[source]
        source: Box<krunbox::state::Error>,
    },
    /// A VM did not boot or was lost.
    #[error("{case}: the VM failed")]
    Vm {
        /// The case.
        case: &'static str,
        /// Why.
        #[source]
        source: krunbox::vm::Error,
    },
    /// A warm pool could not start or hand out a VM.
    #[error("{case}: the pool failed")]
    Pool {
        /// The case.
        case: &'static str,
        /// Why.
        #[source]
        source: krunbox::pool::PoolError,
    },
    /// An agent operation failed.
    #[error("{case}: {op} failed")]
    Agent {
        /// The case.
        case: &'static str,
        /// The operation.
        op: &'static str,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// An agent operation failed because the VM stopped under it.
    #[error("{case}: {op} failed: the VM stopped: {lost}")]
    VmLost {
        /// The case.
        case: &'static str,
        /// The operation.
        op: &'static str,
        /// What the agent client saw.
        #[source]
        source: ClientError,
        /// How it ended, and the ends of its logs.
        lost: Box<LostVm>,
    },
    /// Host-side I/O failed (temporary files, the agent binary, a share).
    #[error("{case}: {what}")]
    Io {
        /// The case.
        case: &'static str,
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A measured command did not do what it should (wrong exit code or
    /// output): its timing would be meaningless.
    #[error("{case}: {what}")]
    Wrong {
        /// The case.
        case: &'static str,
        /// What went wrong.
        what: String,
    },
    /// The image to boot or pull could not be had.
    #[error(transparent)]
    Image(#[from] crate::cli::image::ImageError),
    /// The pull case's pull failed.
    #[error("pull: krunbox's pull failed")]
    Pull(#[source] krunbox::image::StoreError),
    /// `--cases pull` without `--image`.
    #[error("the pull case needs --image: an image in a registry to pull")]
    PullNeedsImage,
    /// A peer tool the bench measures could not be run.
    #[error("cannot run `{program}`")]
    Tool {
        /// The tool.
        program: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The peer's binary was not found.
    #[error("cannot find the peer `{}`", program.display())]
    PeerMissing {
        /// What was looked for.
        program: PathBuf,
    },
    /// The peer's binary could not be run.
    #[error("cannot run the peer {}", program.display())]
    PeerRun {
        /// The binary.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--libkrunfw` cannot be used.
    #[error("cannot boot with the libkrunfw {}", path.display())]
    Libkrunfw {
        /// The file given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// This build embeds no guest agent.
    #[error("this krunbox build embeds no guest agent")]
    NoAgent,
    /// An output file (`--json`, `--svg`) cannot be written.
    #[error("cannot write {}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Cases failed; the run went on with the others, and the report
    /// (table, JSON, chart) holds what was measured.
    #[error("{} of {total} cases failed: {}", cases.len(), cases.join(", "))]
    CasesFailed {
        /// The cases that failed.
        cases: Vec<String>,
        /// The cases run.
        total: usize,
    },
    /// A saved report cannot be read.
    #[error("cannot read the bench report {}", path.display())]
    ReportRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A saved report is not a report.
    #[error("{} is not a krunbox bench report", path.display())]
    ReportParse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Advised for BenchError {
    fn advice(&self) -> Option<String> {
        match self {
            BenchError::CasesFailed { .. } => Some(
                "each failure, with its cause, is printed at the end of the table and kept in \
                 the JSON's `failed`; the figures hold the samples taken before it"
                    .into(),
            ),
            BenchError::Rootfs(e) => Some(e.advice().to_owned()),
            BenchError::Vm { source, .. } => source.advice(),
            BenchError::Pool {
                source: krunbox::pool::PoolError::Boot(source),
                ..
            } => source.advice(),
            BenchError::Image(e) => e.advice(),
            BenchError::PullNeedsImage => Some(
                "e.g. `krunbox bench --cases pull --image localhost:5000/debian:bookworm`".into(),
            ),
            BenchError::Tool { .. } => Some(
                "the pull case measures skopeo and umoci too: install them \
                 (`apt install skopeo umoci`; `cargo xtask setup` does)"
                    .into(),
            ),
            BenchError::PeerMissing { .. } | BenchError::PeerRun { .. } => Some(
                "pass --smolvm PATH: smolvm's CLI is `smol/smol-vmm` in the smolmachines wheel \
                 (`pip download --no-deps smolmachines`, then unzip it); in the lab, \
                 `cargo xtask lab --smolvm` puts it on PATH as `smolvm`"
                    .into(),
            ),
            BenchError::NoAgent => {
                Some("build krunbox for Linux, or set KRUNBOX_AGENT_BIN when building".into())
            }
            _ => None,
        }
    }
}

impl BenchError {
    /// A [`BenchError::Wrong`].
    pub fn wrong(case: &'static str, what: impl Into<String>) -> Self {
        BenchError::Wrong {
            case,
            what: what.into(),
        }
    }

    /// An [`BenchError::Io`] maker for `map_err`.
    pub fn io(case: &'static str, what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| BenchError::Io { case, what, source }
    }

    /// An [`BenchError::Agent`] maker for `map_err`.
    pub fn agent(case: &'static str, op: &'static str) -> impl FnOnce(ClientError) -> Self {
        move |source| BenchError::Agent { case, op, source }
    }

    /// The error for an agent operation on `vm` that failed: if the VM
    /// has stopped (its runner gets a moment to be reaped), says so with
    /// the end of its log.
    pub async fn agent_on(
        case: &'static str,
        op: &'static str,
        vm: &krunbox::vm::Vm,
        source: ClientError,
    ) -> Self {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if vm.is_running() {
            return BenchError::Agent { case, op, source };
        }
        let status = vm
            .exit_status()
            .map_or_else(|| "no exit status".to_owned(), |status| status.to_string());
        BenchError::VmLost {
            case,
            op,
            source,
            lost: Box::new(LostVm {
                status,
                console_tail: tail_of(vm.log_path()),
                runner_tail: tail_of(vm.runner_log_path()),
            }),
        }
    }

    /// A [`BenchError::Pool`] maker for `map_err`.
    pub fn pool(case: &'static str) -> impl FnOnce(krunbox::pool::PoolError) -> Self {
        move |source| BenchError::Pool { case, source }
    }

    /// A [`BenchError::State`] maker for `map_err`.
    pub fn state(case: &'static str) -> impl FnOnce(krunbox::state::Error) -> Self {
        move |source| BenchError::State {
            case,
            source: Box::new(source),
        }
    }

    /// A [`BenchError::Vm`] maker for `map_err`.
    pub fn vm(case: &'static str) -> impl FnOnce(krunbox::vm::Error) -> Self {
        move |source| BenchError::Vm { case, source }
    }
}

/// The last 2 KiB of a log file, as text (empty when it cannot be read).
fn tail_of(path: &std::path::Path) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    let tail = &log[log.len().saturating_sub(2048)..];
    String::from_utf8_lossy(tail).trim_end().to_owned()
}

/// What is known of a VM that stopped under a case.
#[derive(Debug)]
pub struct LostVm {
    /// How the runner exited, as far as it is known.
    status: String,
    /// The end of the VM's console log.
    console_tail: String,
    /// The end of the runner's own log (libkrun's messages).
    runner_tail: String,
}

impl std::fmt::Display for LostVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; the end of its console:\n{}\nthe end of the runner's log:\n{}",
            self.status, self.console_tail, self.runner_tail
        )
    }
}
