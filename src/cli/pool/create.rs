//! `krunbox pool create NAME --size N [start's VM options]`: records the
//! pool and boots its VMs.

use std::time::{Duration, Instant};

use clap::Args;
use krunbox::client::ClientConfig;
use krunbox::state::{NamedPool, PoolSpec, StateDir, VmName};

use super::super::report;
use super::{boot_of, PoolCliError, MAX_BOOTS};

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The pool's name: letters, digits, '_', '.', '-'.
    name: String,
    /// VMs kept booted.
    #[arg(long, value_name = "N")]
    size: usize,
    /// Longest wait for each VM's agent to come up, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    ready_timeout: u64,
    /// `krunbox start`'s VM options, after the pool's own: --rootfs DIR or
    /// --image IMAGE, --mem, --env, --net, --allow, --volume, …
    #[arg(
        value_name = "START_OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    options: Vec<String>,
}

pub fn create(args: CreateArgs) -> i32 {
    report::exit_code(run(args))
}

async fn run(args: CreateArgs) -> Result<(), PoolCliError> {
    let name: VmName = args.name.parse()?;
    let state = StateDir::open()?;
    // Checked before anything is written.
    super::parse_options(&args.options)?;
    let mut spec = PoolSpec::new(args.size, args.options);
    spec.cwd = std::env::current_dir().unwrap_or_default();
    let pool = NamedPool::create(&state, &name, spec)?;
    let started = Instant::now();
    let filled = async {
        let boot = boot_of(&pool).await?;
        let client = ClientConfig {
            hello_timeout: Duration::from_secs(args.ready_timeout),
            ..ClientConfig::default()
        };
        Ok::<_, PoolCliError>(pool.fill(&boot.config, client, MAX_BOOTS).await?)
    };
    match filled.await {
        Ok(booted) => {
            eprintln!(
                "krunbox: pool {name}: {booted} VMs ready in {:.1} s; \
                 `krunbox start --name NAME --from-pool {name}` takes one",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => {
            // Nothing half-made stays: the VMs that did boot stop.
            let _ = pool.remove(Duration::from_secs(5)).await;
            Err(e)
        }
    }
}
