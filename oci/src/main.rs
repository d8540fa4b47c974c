//! `krunbox-oci`: krunbox as an OCI runtime.
//!
//! containerd's runc shim, conmon (Podman, CRI-O) and Docker start a
//! container by running a runtime command line with a bundle: `create`,
//! then `start`, `state`, `kill`, `delete`. This one gives them a krunbox
//! VM per container, with the bundle's root as the VM's root filesystem
//! and the container's process run by the injected agent.
//!
//! A container is a named VM in the `--root` state directory plus a
//! *monitor* process: the pid that `create` writes to `--pid-file`. The
//! monitor holds the container's stdio, runs its process through the
//! agent once `start` asks, forwards signals to it, and exits with its
//! exit status, which is what the caller (the shim, conmon) collects. See
//! `docs/kubernetes.md` for what of the runtime-spec is honoured.

mod commands;
mod console;
mod container;
mod ctl;
mod error;
mod log;
mod monitor;
mod pump;
mod spec;

use clap::{Parser, Subcommand};
use liboci_cli::{CommonCmd, GlobalOpts, StandardCmd};

/// The command line: runc's global flags and subcommands.
#[derive(Parser, Debug)]
#[command(name = "krunbox-oci", version, about = "krunbox as an OCI runtime")]
pub(crate) struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
    /// Holds a container: what `create` starts (not for callers).
    #[command(hide = true)]
    Monitor(monitor::Args),
    /// Runs a detached `exec`'s process (not for callers).
    #[command(hide = true)]
    ExecChild(commands::ChildArgs),
}

fn main() {
    // The VM's runner is this executable.
    krunbox::runner::enter_if_requested();
    let cli = Cli::parse();
    let log = log::Log::new(&cli.global);
    let code = match commands::run(cli.global, cli.command) {
        Ok(code) => code,
        Err(error) => {
            log.error(&error);
            1
        }
    };
    std::process::exit(code);
}
