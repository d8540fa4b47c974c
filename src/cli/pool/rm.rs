//! `krunbox pool rm NAME…`: stops each pool's idle VMs and removes it.
//! VMs claimed from it are named VMs now, and stay.

use std::time::Duration;

use clap::Args;
use krunbox::state::{NamedPool, StateDir, VmName};

use super::super::report;
use super::PoolCliError;

#[derive(Debug, Args)]
pub struct PoolRmArgs {
    /// The pools.
    #[arg(required = true)]
    names: Vec<String>,
    /// Seconds each VM gets to power off before it is killed.
    #[arg(short = 't', long = "time", default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

pub fn rm(args: PoolRmArgs) -> i32 {
    report::block_on(async move {
        let mut code = 0;
        for name in &args.names {
            match remove(name, Duration::from_secs(args.timeout)).await {
                Ok(stopped) => println!("{name} ({stopped} VMs stopped)"),
                Err(e) => code = report::fail(&e),
            }
        }
        code
    })
}

async fn remove(name: &str, timeout: Duration) -> Result<usize, PoolCliError> {
    let name: VmName = name.parse()?;
    let pool = NamedPool::open(&StateDir::open()?, &name)?;
    Ok(pool.remove(timeout).await?)
}
