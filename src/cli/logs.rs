//! `krunbox logs`: a named VM's console log (kernel, init and agent
//! messages), with `--runner` its runner's log (libkrun's messages), or
//! with `--egress` the egress mode's record of attempts (one line each,
//! or the JSON lines with `--json`).

use std::io::Write;

use clap::Args;
use krunbox::egress::events::read_log;
use krunbox::state::{NamedVm, StateDir, VmName};

use super::error::CliError;
use super::report;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Print the runner's log (libkrun's messages) instead of the console.
    #[arg(long, conflicts_with = "egress")]
    runner: bool,
    /// Print the egress attempts (--net egress): time, allowed or denied,
    /// how, destination, bytes each way, and why.
    #[arg(long)]
    egress: bool,
    /// With --egress: the events as JSON lines.
    #[arg(long, requires = "egress")]
    json: bool,
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
    if args.egress {
        return egress(&vm, args.json);
    }
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

/// The egress log, as lines for people or as it is (JSON lines).
fn egress(vm: &NamedVm, json: bool) -> Result<(), CliError> {
    let path = vm.egress_log_path();
    let events = read_log(&path).map_err(|source| CliError::HostPath {
        path: path.clone(),
        source,
    })?;
    if events.is_empty() {
        eprintln!(
            "krunbox: no egress attempts recorded for {} (only a VM started with --net egress \
             records them)",
            vm.name()
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for event in &events {
        let line = match json {
            true => event.to_line(),
            false => format!("{} {}\n", time_of(event.at_ms), event.describe()),
        };
        if out.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    Ok(())
}

/// `HH:MM:SS.mmm` (UTC) of a time in milliseconds since the epoch.
fn time_of(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", at_ms % 1000)
}
