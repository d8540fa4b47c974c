//! `krunbox logs`: a named VM's console log (kernel, init and agent
//! messages), or with `--runner` its runner's log (libkrun's messages).

use std::io::Write;

use clap::Args;
use krunbox::state::{NamedVm, StateDir, VmName};

use super::error::CliError;
use super::report;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Print the runner's log (libkrun's messages) instead of the console.
    #[arg(long)]
    runner: bool,
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
    let path = if args.runner {
        vm.runner_log_path()
    } else {
        vm.log_path().to_owned()
    };
    let log = std::fs::read(&path).map_err(|source| CliError::HostPath {
        path: path.clone(),
        source,
    })?;
    if log.is_empty() {
        // Say so, rather than print nothing: a healthy guest's kernel is
        // quiet and its agent writes to the console only when it fails.
        let other = if args.runner {
            format!("`krunbox logs {name}` shows the guest console")
        } else {
            format!("`krunbox logs --runner {name}` shows libkrun's messages")
        };
        eprintln!("krunbox: {} is empty; {other}", path.display());
        return Ok(());
    }
    let _ = std::io::stdout().write_all(&log);
    Ok(())
}
