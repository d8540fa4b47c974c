//! The runner: one process per VM.
//!
//! libkrun's `krun_start_enter` takes over the calling process and ends it
//! with the guest workload's exit code, so a VM cannot live inside the
//! program that drives it. Each VM gets a runner process instead:
//!
//! ```text
//!  your program ── spawn(runner program, env KRUNBOX_RUNNER_CONFIG=json) ──► runner
//!      ▲   fd 3 (pipe): one JSON line per RunnerEvent  ◄──────────────────────┤
//!      │   stdin/stdout/stderr: the guest workload's                          │
//!      └── exit status: the guest workload's exit code ◄── krun_start_enter ──┘
//! ```
//!
//! The runner program is a binary that calls [`enter_if_requested`] first
//! thing in `main` (the `krunbox` CLI does). When the variable is set, that
//! call configures libkrun from the JSON and never returns. Which binary
//! is used is decided by [`RunnerProgram`]: an explicit path, the
//! `KRUNBOX_RUNNER` variable, the current executable if it called
//! [`enter_if_requested`], or a `krunbox` binary next to it.

pub(crate) mod child;
mod config;
mod confine;
mod event;
mod monitor;
mod parent;
mod program;
mod user_ns;

pub use child::enter_if_requested;
pub use config::{NetMode, RunnerConfig, VsockPort, Workload};
#[cfg(feature = "confinement-probe")]
pub use confine::probe::Probe;
pub use confine::{
    Applied, CgroupLimits, Confinement, ConfinementReport, RunAs, SeccompMode, KEPT_ENV,
};
pub use event::{monotonic_us, RunnerEvent, RunnerFailure};
pub use monitor::RunnerEnd;
pub use parent::{RunnerExit, RunnerProcess, SpawnError, StdioSpec};
pub use program::{RunnerProgram, RunnerProgramError};

/// The variable carrying the JSON [`RunnerConfig`] to the runner.
pub const CONFIG_ENV: &str = "KRUNBOX_RUNNER_CONFIG";
/// The file descriptor on which the runner writes [`RunnerEvent`]s.
pub const EVENT_FD: i32 = 3;
