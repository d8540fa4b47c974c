//! `krunbox run`: one command in a fresh VM.

use std::os::unix::process::ExitStatusExt;

use clap::Args;

use super::report;
use super::vm_args::VmArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    vm: VmArgs,
    /// The command to run in the guest, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(args: RunArgs) -> i32 {
    match args.vm.config().command(args.command).status() {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => report::fail(&e),
    }
}
