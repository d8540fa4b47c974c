//! Developer tasks for krunbox, run as `cargo xtask <task>`:
//!
//! - `setup`: install what the nested lab and the tests need (apt, the
//!   Debian minbase layer, the Python test environment; idempotent);
//! - `lab`: build `krunbox` and run a command in the nested QEMU lab.

mod debian_image;
mod lab;
mod lab_python;
mod lab_smolvm;
mod python_env;
mod setup;

use std::error::Error;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Developer tasks for krunbox")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the lab's host packages with apt (bookworm-backports and sid
    /// sources added on the machine's own mirror); does nothing when done.
    Setup(setup::SetupArgs),
    /// Build krunbox and run a command in the nested QEMU lab; exits with
    /// the command's exit status (125 if the lab itself failed).
    Lab(lab::LabArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<ExitCode, Box<dyn Error>> = match cli.task {
        Task::Setup(args) => setup::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Task::Lab(args) => lab::run(&args).map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            report(error.as_ref());
            ExitCode::from(lab::LAB_FAILED)
        }
    }
}

/// Prints an error and its chain of causes.
fn report(error: &dyn Error) {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}
