//! The runner's filesystem, fenced with Landlock: after [`restrict`] the
//! runner (and every thread it starts) reaches only what its VM needs.
//!
//! | path | access |
//! |---|---|
//! | the root directory (an image's boot root) | read-write |
//! | each read-only share (an image's tree, `:ro` volumes) | read |
//! | each read-write volume | read-write |
//! | the directory of each vsock port's socket (the VM's private directory) | read-write |
//! | the console log, the file only | read, write |
//! | `/dev/kvm` | read, write, device ioctls |
//! | `/proc/self` (the runner's own) | read |
//!
//! Nothing else: no other file can be read, written, made or removed, and
//! nothing can be executed (read-write grants every right but `EXECUTE`).
//! libkrun is loaded with the runner, and libkrunfw, which libkrun
//! `dlopen`s later, is loaded before the rules apply. The
//! rights used are those of Landlock ABI 5; on an older kernel the crate
//! applies what it has (ABI 1 has no `REFER`, ABI 2 no `TRUNCATE`, ABI 4
//! no device ioctl right) and the result says so.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, BitFlags, LandlockStatus, PathBeneath, PathFd, PathFdError, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, ABI,
};

use super::Applied;
use crate::runner::config::RunnerConfig;

/// The newest Landlock ABI whose filesystem rights the rules use.
const ABI_USED: ABI = ABI::V5;

/// Why the ruleset could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LandlockError {
    /// A path of a rule could not be opened.
    #[error("cannot open {} for a rule", path.display())]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: PathFdError,
    },
    /// The console log did not exist and could not be made.
    #[error("cannot create the console log {}", path.display())]
    ConsoleLog {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the ruleset.
    #[error("the kernel refused the ruleset")]
    Ruleset(#[source] RulesetError),
}

/// Applies the rules of `config` to the calling thread (and the threads it
/// starts afterwards).
pub(super) fn restrict(config: &RunnerConfig) -> Result<Applied, LandlockError> {
    // libkrun dlopens libkrunfw in `krun_start_enter`, after the rules
    // are in: loaded now, the loader finds it by name without opening a
    // file. (If it cannot be loaded, libkrun says so then.)
    let _ = crate::host::krunfw::probe();
    let mut created = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_USED))
        .and_then(Ruleset::create)
        .map_err(LandlockError::Ruleset)?;
    for (path, access) in rules(config)? {
        let fd = PathFd::new(&path).map_err(|source| LandlockError::Path {
            path: path.clone(),
            source,
        })?;
        let access = if path.is_dir() {
            access
        } else {
            access & AccessFs::from_file(ABI_USED)
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(LandlockError::Ruleset)?;
    }
    let status = created.restrict_self().map_err(LandlockError::Ruleset)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Applied::Full,
        RulesetStatus::PartiallyEnforced => Applied::Partial(partial_because(status.landlock)),
        RulesetStatus::NotEnforced => Applied::Unavailable(unavailable_because(status.landlock)),
    })
}

/// Each path the runner may reach, with its rights.
fn rules(config: &RunnerConfig) -> Result<Vec<(PathBuf, BitFlags<AccessFs>)>, LandlockError> {
    let read = AccessFs::from_read(ABI_USED) & !AccessFs::Execute;
    let read_write = AccessFs::from_all(ABI_USED) & !AccessFs::Execute;
    let mut rules = vec![(config.rootfs.clone(), read_write)];
    for (_, dir, read_only) in &config.shares {
        rules.push((dir.clone(), if *read_only { read } else { read_write }));
    }
    for port in &config.vsock_ports {
        if let Some(dir) = port.path.parent() {
            rules.push((dir.to_owned(), read_write));
        }
    }
    if let Some(log) = &config.console_log {
        create_if_missing(log)?;
        rules.push((
            log.clone(),
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate,
        ));
    }
    rules.push((
        PathBuf::from("/dev/kvm"),
        AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev,
    ));
    // Resolves to /proc/<pid>: the runner's own entries, not another
    // process's.
    rules.push((PathBuf::from("/proc/self"), read));
    Ok(rules)
}

/// Makes the console log (empty) if it is not there: a rule needs the
/// file, and libkrun opens it only later.
fn create_if_missing(path: &Path) -> Result<(), LandlockError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map(drop)
        .map_err(|source| LandlockError::ConsoleLog {
            path: path.to_owned(),
            source,
        })
}

fn partial_because(status: LandlockStatus) -> String {
    match status {
        LandlockStatus::Available { effective_abi, .. } => format!(
            "this kernel's Landlock ABI is {}; rights of later ABIs (up to {}) are not checked",
            abi_number(effective_abi),
            abi_number(ABI_USED)
        ),
        _ => "some rights are not checked by this kernel".to_owned(),
    }
}

fn unavailable_because(status: LandlockStatus) -> String {
    match status {
        LandlockStatus::NotEnabled => {
            "this kernel has Landlock but does not enable it (see its lsm= list)".to_owned()
        }
        LandlockStatus::NotImplemented => "this kernel is built without Landlock".to_owned(),
        LandlockStatus::Available { .. } => "the kernel enforced none of the rules".to_owned(),
    }
}

/// The ABI's number, as the kernel's documentation counts them.
fn abi_number(abi: ABI) -> i32 {
    abi as i32
}
