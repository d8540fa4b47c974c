//! What the runner gives up before libkrun parses anything the guest
//! sends: libkrun's devices run in the runner, so a guest that breaks one
//! gets the runner's privileges, and those should be as few as the VM
//! needs (docs/security.md, "The runner").
//!
//! In the order the runner applies them:
//!
//! 1. [`inherited`]: an environment of [`KEPT_ENV`] only, no descriptor
//!    of the caller's, `no_new_privs`;
//! 2. [`cgroup`], when asked for: a cgroup v2 of the VM's own with memory,
//!    CPU and pids limits; then [`user`], when asked for: a runner started
//!    as root drops to an unprivileged uid;
//! 3. [`landlock`]: the filesystem, before the runner's first thread (a
//!    Landlock domain binds the calling thread and those it starts
//!    afterwards);
//! 4. [`seccomp`]: the system calls, on every thread, last before
//!    `krun_start_enter`; a call outside the list ends the runner with a
//!    report ([`sigsys`]).
//!
//! What was applied travels to the parent as a [`ConfinementReport`].
//! Where the kernel lacks a mechanism the VM still boots, unless
//! [`Confinement::required`] says otherwise.

pub(crate) mod cgroup;
mod inherited;
mod landlock;
#[cfg(feature = "confinement-probe")]
pub(crate) mod probe;
mod seccomp;
mod sigsys;
#[cfg(target_arch = "x86_64")]
mod syscall_names;
mod user;

use serde::{Deserialize, Serialize};

use super::config::RunnerConfig;

pub use cgroup::CgroupLimits;
pub use inherited::KEPT_ENV;
pub(crate) use inherited::{close_inherited_fds, no_new_privs};
pub use user::RunAs;

/// The confinement a VM's runner is asked for. The default applies every
/// mechanism the kernel has and boots without those it lacks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Confinement {
    /// Restrict the runner's filesystem with Landlock.
    pub landlock: bool,
    /// The runner's system call filter.
    pub seccomp: SeccompMode,
    /// A cgroup v2 of the VM's own, with these limits (none by default).
    pub cgroup: Option<CgroupLimits>,
    /// For a runner started as root: the unprivileged uid and gid it
    /// drops to before the VM starts (none by default).
    pub user: Option<RunAs>,
    /// Refuse to boot when a requested mechanism cannot be applied at all
    /// (a Landlock ABI the kernel does not have counts as applied, in
    /// part).
    pub required: bool,
    /// Test-only: what the runner tries after confinement (see
    /// [`probe`]).
    #[cfg(feature = "confinement-probe")]
    pub probe: Option<probe::Probe>,
}

impl Default for Confinement {
    fn default() -> Self {
        Self {
            landlock: true,
            seccomp: SeccompMode::Enforce,
            cgroup: None,
            user: None,
            required: false,
            #[cfg(feature = "confinement-probe")]
            probe: None,
        }
    }
}

impl Confinement {
    /// No Landlock, no seccomp filter (the environment, descriptors and
    /// `no_new_privs` are given up all the same).
    pub fn none() -> Self {
        Self {
            landlock: false,
            seccomp: SeccompMode::Off,
            ..Self::default()
        }
    }
}

/// What the seccomp filter does with a system call outside its list.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SeccompMode {
    /// End the runner, reporting the call in its log and error.
    #[default]
    Enforce,
    /// Let the call through and have the kernel log it (audit record type
    /// 1326): for measuring what a workload needs.
    Log,
    /// No filter.
    Off,
}

/// How far one mechanism was applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Applied {
    /// In full.
    Full,
    /// In part; what is not enforced.
    Partial(String),
    /// Applied in a mode that only logs.
    Logging,
    /// Not asked for.
    Off,
    /// Asked for, but this kernel or architecture lacks it; why.
    Unavailable(String),
}

impl Applied {
    fn off() -> Self {
        Applied::Off
    }

    /// Whether the mechanism restricts the runner, at least in part.
    pub fn enforced(&self) -> bool {
        matches!(self, Applied::Full | Applied::Partial(_))
    }
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Applied::Full => f.write_str("enforced"),
            Applied::Partial(what) => write!(f, "enforced in part ({what})"),
            Applied::Logging => f.write_str("logging only"),
            Applied::Off => f.write_str("off"),
            Applied::Unavailable(why) => write!(f, "unavailable ({why})"),
        }
    }
}

/// What a runner applied to itself, sent to its parent before it starts
/// the VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfinementReport {
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// The Landlock ruleset.
    pub landlock: Applied,
    /// The seccomp filter.
    pub seccomp: Applied,
    /// The VM's own cgroup.
    #[serde(default = "Applied::off")]
    pub cgroup: Applied,
    /// The drop to an unprivileged uid.
    #[serde(default = "Applied::off")]
    pub user: Applied,
    /// How long the runner took to apply all of it, in microseconds
    /// (loading libkrunfw early for Landlock included).
    #[serde(default)]
    pub took_us: u64,
}

impl std::fmt::Display for ConfinementReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no_new_privs {}, Landlock {}, seccomp {}, cgroup {}, unprivileged uid {}",
            if self.no_new_privs { "set" } else { "unset" },
            self.landlock,
            self.seccomp,
            self.cgroup,
            self.user
        )
    }
}

/// Why the runner could not confine itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfineError {
    /// `PR_SET_NO_NEW_PRIVS` failed.
    #[error("could not set no_new_privs")]
    NoNewPrivs(#[source] std::io::Error),
    /// The Landlock ruleset could not be built or applied.
    #[error("could not apply the Landlock ruleset")]
    Landlock(#[source] landlock::LandlockError),
    /// The VM's cgroup could not be made or joined.
    #[error("could not put the runner in its cgroup")]
    Cgroup(#[source] cgroup::CgroupError),
    /// The runner could not drop to the unprivileged uid.
    #[error("could not drop to the unprivileged uid")]
    User(#[source] user::UserError),
    /// The seccomp filter could not be built or installed.
    #[error("could not install the seccomp filter")]
    Seccomp(#[source] seccomp::SeccompError),
    /// A mechanism was required and is not available.
    #[error("{mechanism} is required (--require-confinement) but {why}")]
    Required {
        /// Which.
        mechanism: &'static str,
        /// Why it is not applied.
        why: String,
    },
}

/// The first steps before any thread: no_new_privs, the VM's cgroup, the
/// unprivileged user. What the runner forks afterwards (the egress
/// process) shares them.
pub(crate) fn identity(config: &RunnerConfig) -> Result<ConfinementReport, ConfineError> {
    no_new_privs().map_err(ConfineError::NoNewPrivs)?;
    // Before Landlock, which leaves /sys/fs/cgroup out.
    let cgroup = match (&config.confinement.cgroup, &config.cgroup_dir) {
        (Some(limits), Some(dir)) => cgroup::join(limits, dir).map_err(ConfineError::Cgroup)?,
        _ => Applied::Off,
    };
    require(config.confinement.required, "a cgroup", &cgroup)?;
    let user = match config.confinement.user {
        Some(ids) => user::drop_to(ids, config.own_user_namespace).map_err(ConfineError::User)?,
        None => Applied::Off,
    };
    require(config.confinement.required, "an unprivileged uid", &user)?;
    Ok(ConfinementReport {
        no_new_privs: true,
        landlock: Applied::Off,
        seccomp: Applied::Off,
        cgroup,
        user,
        took_us: 0,
    })
}

/// Landlock, after [`identity`], still before any thread: it binds the
/// calling thread and those it starts afterwards.
pub(crate) fn fences(
    config: &RunnerConfig,
    report: &mut ConfinementReport,
) -> Result<(), ConfineError> {
    if config.confinement.landlock {
        report.landlock = landlock::restrict(config).map_err(ConfineError::Landlock)?;
    }
    require(config.confinement.required, "Landlock", &report.landlock)
}

/// The last step, just before `krun_start_enter`: the seccomp filter on
/// every thread.
pub(crate) fn before_start(
    config: &RunnerConfig,
    report: &mut ConfinementReport,
) -> Result<(), ConfineError> {
    report.seccomp = seccomp::install(config).map_err(ConfineError::Seccomp)?;
    require(config.confinement.required, "seccomp", &report.seccomp)
}

/// Fails when confinement is `required` and `applied` is asked for but
/// unavailable.
fn require(required: bool, mechanism: &'static str, applied: &Applied) -> Result<(), ConfineError> {
    match applied {
        Applied::Unavailable(why) if required => Err(ConfineError::Required {
            mechanism,
            why: why.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_mechanism_fails_a_boot_that_requires_confinement() {
        let missing = Applied::Unavailable("no Landlock".into());
        assert!(require(false, "Landlock", &missing).is_ok());
        let err = require(true, "Landlock", &missing).expect_err("required");
        assert_eq!(
            err.to_string(),
            "Landlock is required (--require-confinement) but no Landlock"
        );
        for applied in [
            Applied::Full,
            Applied::Partial("ABI 2".into()),
            Applied::Off,
        ] {
            assert!(require(true, "Landlock", &applied).is_ok());
        }
    }
}
