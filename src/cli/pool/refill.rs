//! `krunbox pool refill NAME` (hidden): boots the pool's missing VMs. A
//! claim starts it in the background; it prints what failed to the pool's
//! refill log.

use std::time::Duration;

use clap::Args;
use krunbox::client::ClientConfig;
use krunbox::state::{NamedPool, StateDir, VmName};

use super::super::report;
use super::{boot_of, PoolCliError, MAX_BOOTS};

#[derive(Debug, Args)]
pub struct RefillArgs {
    /// The pool.
    name: String,
}

pub fn refill(args: RefillArgs) -> i32 {
    report::exit_code(run(args))
}

async fn run(args: RefillArgs) -> Result<(), PoolCliError> {
    let name: VmName = args.name.parse()?;
    let pool = NamedPool::open(&StateDir::open()?, &name)?;
    let boot = boot_of(&pool).await?;
    let client = ClientConfig {
        hello_timeout: Duration::from_secs(60),
        ..ClientConfig::default()
    };
    let booted = pool.fill(&boot.config, client, MAX_BOOTS).await?;
    eprintln!("krunbox: pool {name}: refilled with {booted} VMs");
    Ok(())
}
