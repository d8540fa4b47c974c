//! Command-line parsing and dispatch, in the conventions of docker and
//! smolvm: `krunbox run [OPTIONS] -- CMD ARGS…` for one command in a fresh
//! VM; `krunbox start --name NAME …`, `exec`, `cp`, `ls`, `logs`, `stop`
//! for named VMs that outlive the command that started them.

mod bench;
mod cp;
mod demo;
mod doctor;
mod error;
mod exec;
mod image;
mod logs;
mod ls;
mod output;
mod pool;
mod report;
mod rootfs;
mod run;
mod sample;
mod start;
mod stop;
mod timings;
mod tty;
mod vm_args;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit code for krunbox's own failures (as docker uses 125), as opposed
/// to the guest command's exit code.
pub const EXIT_KRUNBOX_FAILED: i32 = 125;

#[derive(Debug, Parser)]
#[command(
    name = "krunbox",
    version,
    about = "Boot libkrun microVMs and run commands in them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot a VM on a root directory, run a command in it, exit with its code.
    Run(run::RunArgs),
    /// Boot a named VM that keeps running after this command returns.
    Start(start::StartArgs),
    /// Run a command in a named VM (-i for stdin, -t for a terminal).
    Exec(exec::ExecArgs),
    /// Copy files or directories between the host and a named VM.
    Cp(cp::CpArgs),
    /// List the named VMs.
    #[command(visible_alias = "ps")]
    Ls(ls::LsArgs),
    /// Print a named VM's log.
    Logs(logs::LogsArgs),
    /// Power named VMs off and remove them.
    #[command(visible_alias = "rm")]
    Stop(stop::StopArgs),
    /// Pools of VMs booted ahead of need, for `start --from-pool`.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Boot a VM, provision a prompt and 10 skills, exec, show the timings.
    Demo(demo::DemoArgs),
    /// Measure boot, exec, provisioning and copies against their baselines.
    Bench(bench::BenchArgs),
    /// Check that this host can boot VMs, and say what to do if not.
    Doctor(doctor::DoctorArgs),
    /// Fetch an image from a registry into the store.
    Pull(image::pull::PullArgs),
    /// Load images from a `docker save` archive or an OCI layout.
    Load(image::load::LoadArgs),
    /// List the images in the store.
    Images(image::images::ImagesArgs),
    /// Remove images.
    Rmi(image::rmi::RmiArgs),
    /// Manage the image store.
    #[command(subcommand)]
    Image(image::prune::ImageCommand),
}

/// Runs the CLI and returns the process exit code.
///
/// A usage error (an unknown option, a malformed value, a missing
/// argument) exits with [`EXIT_KRUNBOX_FAILED`] as docker's does, never
/// clap's 2, which a guest command may return too; `--help` and
/// `--version` exit 0.
pub fn main() -> i32 {
    let parsed = command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // Printing help or an error to a closed stream: nothing to add.
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_KRUNBOX_FAILED
            } else {
                0
            };
        }
    };
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Start(args) => start::start(args),
        Command::Exec(args) => exec::exec(args),
        Command::Cp(args) => cp::cp(args),
        Command::Ls(args) => ls::ls(args),
        Command::Logs(args) => logs::logs(args),
        Command::Stop(args) => stop::stop(args),
        Command::Pool(command) => pool::pool(command),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Pull(args) => image::pull::pull(args),
        Command::Load(args) => image::load::load(args),
        Command::Images(args) => image::images::images(args),
        Command::Rmi(args) => image::rmi::rmi(args),
        Command::Image(command) => image::prune::image(command),
        Command::Demo(args) => demo::demo(args),
        Command::Bench(args) => bench::bench(args),
    }
}

/// The command line's grammar: clap's derived one, with what derive cannot
/// say added (`start`'s root is optional with --from-pool).
fn command() -> clap::Command {
    Cli::command().mut_subcommand("start", start::adjust)
}
