//! `krunbox logs`: a named VM's log (the runner's and libkrun's messages).

use std::io::Write;

use clap::Args;
use krunbox::state::{NamedVm, StateDir, VmName};

use super::error::CliError;
use super::report;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The VM.
    #[arg(value_name = "NAME")]
    name: String,
}

pub fn logs(args: LogsArgs) -> i32 {
    match run(&args) {
        Ok(()) => 0,
        Err(e) => report::fail(&e),
    }
}

fn run(args: &LogsArgs) -> Result<(), CliError> {
    let name: VmName = args.name.parse()?;
    let vm = NamedVm::open(&StateDir::open()?, &name)?;
    let path = vm.log_path();
    let log = std::fs::read(&path).map_err(|source| CliError::HostPath {
        path: path.clone(),
        source,
    })?;
    let _ = std::io::stdout().write_all(&log);
    Ok(())
}
