//! `krunbox stop`: power named VMs off and remove them.

use std::time::Duration;

use clap::Args;
use krunbox::state::{NamedVm, StateDir, Stopped, VmName};

use super::report;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for the guest to power off before killing it.
    #[arg(short = 't', long = "time", default_value_t = 10, value_name = "SECS")]
    time: u64,
    /// The VMs to stop.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

pub fn stop(args: StopArgs) -> i32 {
    report::block_on(async move {
        let mut code = 0;
        for name in &args.names {
            match stop_one(name, Duration::from_secs(args.time)).await {
                Ok(how) => {
                    let how = match how {
                        Stopped::PoweredOff => "powered off",
                        Stopped::Killed => "killed: it did not power off in time",
                        Stopped::WasDead => "it was not running; removed",
                    };
                    eprintln!("krunbox: stopped {name} ({how})");
                }
                Err(e) => code = report::fail(&e),
            }
        }
        code
    })
}

async fn stop_one(name: &str, timeout: Duration) -> Result<Stopped, krunbox::state::Error> {
    let name: VmName = name.parse()?;
    let state = StateDir::open()?;
    NamedVm::open(&state, &name)?.stop(timeout).await
}
