//! Command-line parsing and dispatch, in the conventions of docker and
//! smolvm: `krunbox run [OPTIONS] -- CMD ARGS…`.

mod bench;
mod demo;
mod doctor;
mod report;
mod rootfs;
mod run;
mod runtime;
mod sample;
mod vm_args;

use clap::{Parser, Subcommand};

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
    /// Boot a VM, provision a prompt and 10 skills, exec, show the timings.
    Demo(demo::DemoArgs),
    /// Measure boot, exec, provisioning and copies against their baselines.
    Bench(bench::BenchArgs),
    /// Check that this host can boot VMs, and say what to do if not.
    Doctor(doctor::DoctorArgs),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Demo(args) => demo::demo(args),
        Command::Bench(args) => bench::bench(args),
    }
}
