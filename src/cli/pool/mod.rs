//! `krunbox pool`: VMs booted ahead of need, claimed by `krunbox start
//! --name NAME --from-pool POOL` from any process, without a daemon
//! (the library's [`NamedPool`](krunbox::state::NamedPool)). One file per
//! subcommand; what they share (the pool's stored options, the refill
//! that a claim starts in the background) is here.

pub mod create;
pub mod error;
pub mod ls;
pub mod refill;
pub mod rm;

use clap::{Parser, Subcommand};
use krunbox::state::NamedPool;

use super::vm_args::{Boot, VmArgs};
pub use error::PoolCliError;

/// Boots at once while a pool fills.
pub const MAX_BOOTS: usize = 2;

/// The pool commands.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create a pool of VMs booted ahead of need, and boot them.
    Create(create::CreateArgs),
    /// List the pools and their VMs' states.
    Ls(ls::PoolLsArgs),
    /// Stop a pool's idle VMs and remove the pool (claimed VMs stay).
    Rm(rm::PoolRmArgs),
    /// Boot a pool's missing VMs (what a claim starts in the background).
    #[command(hide = true)]
    Refill(refill::RefillArgs),
}

/// Runs a pool command; its exit code.
pub fn pool(command: PoolCommand) -> i32 {
    match command {
        PoolCommand::Create(args) => create::create(args),
        PoolCommand::Ls(args) => ls::ls(args),
        PoolCommand::Rm(args) => rm::rm(args),
        PoolCommand::Refill(args) => refill::refill(args),
    }
}

/// The options a pool keeps, parsed as `krunbox start` parses its own.
#[derive(Debug, Parser)]
#[command(name = "krunbox pool create", no_binary_name = true)]
struct StoredOptions {
    #[command(flatten)]
    vm: VmArgs,
}

/// Parses a pool's stored options; refuses those that would clash between
/// its VMs: a host port can be published by one VM only, and each VM
/// keeps its own console and egress logs in its directory.
pub fn parse_options(options: &[String]) -> Result<VmArgs, PoolCliError> {
    let vm = StoredOptions::try_parse_from(options)
        .map_err(PoolCliError::Options)?
        .vm;
    let shared = [
        ("--publish", !vm.publish.is_empty()),
        ("--console-log", vm.console_log.is_some()),
        ("--egress-log", vm.egress_log.is_some()),
    ];
    match shared.iter().find(|(_, given)| *given) {
        Some((option, _)) => Err(PoolCliError::Shared(option)),
        None => Ok(vm),
    }
}

/// The configuration `pool`'s VMs boot with, its relative paths read
/// from the directory the pool was created in.
pub async fn boot_of(pool: &NamedPool) -> Result<Boot, PoolCliError> {
    let vm = parse_options(&pool.spec().options)?.anchored_at(&pool.spec().cwd);
    Ok(vm.boot().await?)
}

/// Starts `krunbox pool refill NAME` in the background, detached from
/// this process (its own session, its output in the pool's refill log),
/// so that this command returns at once.
pub fn spawn_refill(pool: &NamedPool) -> Result<(), PoolCliError> {
    use std::os::unix::process::CommandExt;
    let spawn = |source| PoolCliError::Refill {
        pool: pool.name().to_string(),
        source,
    };
    let exe = std::env::current_exe().map_err(spawn)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pool.refill_log_path())
        .map_err(spawn)?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["pool", "refill", pool.name().as_str()])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(spawn)?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent; it runs in the child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    command.spawn().map(drop).map_err(spawn)
}
