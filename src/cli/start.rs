//! `krunbox start`: boot a named VM that keeps running after the command
//! returns.

use std::time::Duration;

use clap::Args;
use krunbox::client::ClientConfig;
use krunbox::state::{NamedVm, StateDir, VmName};

use super::report;
use super::vm_args::{Boot, VmArgs};

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The VM's name: letters, digits, '_', '.', '-'.
    #[arg(long, value_name = "NAME")]
    name: String,
    #[command(flatten)]
    vm: VmArgs,
    /// Longest wait for the guest agent to come up, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    ready_timeout: u64,
}

pub fn start(args: StartArgs) -> i32 {
    report::block_on(async move {
        let boot = match args.vm.boot().await {
            Ok(boot) => boot,
            Err(e) => return report::fail(&e),
        };
        match run(args, boot).await {
            Ok(()) => 0,
            Err(e) => report::fail(&e),
        }
    })
}

async fn run(args: StartArgs, boot: Boot) -> Result<(), krunbox::state::Error> {
    let name: VmName = args.name.parse()?;
    let state = StateDir::open()?;
    let client = ClientConfig {
        hello_timeout: Duration::from_secs(args.ready_timeout),
        ..ClientConfig::default()
    };
    let vm = NamedVm::start(&state, &name, &boot.config, client).await?;
    let ready = vm
        .record()
        .ready_ms
        .map(|ms| format!(" in {:.1} s", ms as f64 / 1e3))
        .unwrap_or_default();
    eprintln!("krunbox: VM {name} is running (ready{ready}); `krunbox stop {name}` stops it");
    Ok(())
}
