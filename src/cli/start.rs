//! `krunbox start`: boot a named VM that keeps running after the command
//! returns, or claim one booted ahead from a pool (`--from-pool`).

use std::time::{Duration, Instant};

use clap::{Args, Command};
use krunbox::client::ClientConfig;
use krunbox::state::{NamedPool, NamedVm, StateDir, VmName};

use super::pool::{self, PoolCliError};
use super::report;
use super::vm_args::VmArgs;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The VM's name: letters, digits, '_', '.', '-'.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Take a VM booted ahead from this pool (`krunbox pool create`), or
    /// boot one with the pool's options when none is ready; then refill
    /// the pool in the background. The VM options are the pool's.
    #[arg(long, value_name = "POOL")]
    from_pool: Option<String>,
    #[command(flatten)]
    vm: VmArgs,
    /// Longest wait for the guest agent to come up, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    ready_timeout: u64,
}

/// `start`'s command as clap derives it, with what derive cannot say: a
/// root (--rootfs or --image) is needed unless --from-pool is given, and
/// --from-pool takes no VM option (the pool's are used).
pub fn adjust(command: Command) -> Command {
    let vm_options: Vec<clap::Id> = VmArgs::augment_args(Command::new("vm"))
        .get_arguments()
        .map(|arg| arg.get_id().clone())
        .collect();
    command
        .mut_arg("rootfs", |arg| {
            arg.required(false)
                .required_unless_present_any(["image", "from_pool"])
        })
        .mut_arg("from_pool", |arg| arg.conflicts_with_all(vm_options))
}

pub fn start(args: StartArgs) -> i32 {
    report::exit_code(async move {
        match &args.from_pool {
            Some(pool) => claim(&args, pool).await,
            None => boot(&args).await,
        }
    })
}

fn client(args: &StartArgs) -> ClientConfig {
    ClientConfig {
        hello_timeout: Duration::from_secs(args.ready_timeout),
        ..ClientConfig::default()
    }
}

async fn boot(args: &StartArgs) -> Result<(), PoolCliError> {
    let boot = args.vm.boot().await?;
    let name: VmName = args.name.parse()?;
    let state = StateDir::open()?;
    let vm = NamedVm::start(&state, &name, &boot.config, client(args)).await?;
    let ready = vm
        .record()
        .ready_ms
        .map(|ms| format!(" in {:.1} s", ms as f64 / 1e3))
        .unwrap_or_default();
    eprintln!("krunbox: VM {name} is running (ready{ready}); `krunbox stop {name}` stops it");
    Ok(())
}

/// How long a claimed VM's agent has to answer a request before the claim
/// gives it up.
const CLAIM_ANSWER: Duration = Duration::from_secs(5);

/// Whether `vm`'s agent answers a request that spawns nothing in time.
async fn answers(vm: &NamedVm) -> bool {
    let config = ClientConfig {
        connect_timeout: CLAIM_ANSWER,
        request_timeout: CLAIM_ANSWER,
        ..ClientConfig::default()
    };
    match vm.agent(config) {
        Ok(agent) => tokio::time::timeout(CLAIM_ANSWER, agent.stat("/proc"))
            .await
            .is_ok_and(|answer| answer.is_ok()),
        Err(_) => false,
    }
}

/// Claims a ready VM of `pool` as `args.name`, or boots one cold with the
/// pool's options; starts the refill either way.
async fn claim(args: &StartArgs, pool: &str) -> Result<(), PoolCliError> {
    let name: VmName = args.name.parse()?;
    let state = StateDir::open()?;
    let pool = NamedPool::open(&state, &pool.parse()?)?;
    let started = Instant::now();
    // A member whose runner lives but whose agent is silent (a frozen
    // runner, a hung guest) is stopped, and the next one is tried: each
    // turn removes a member, so this ends.
    let how = loop {
        match pool.claim(&name)? {
            Some(vm) if answers(&vm).await => break "warm",
            Some(vm) => {
                eprintln!(
                    "krunbox: a VM of pool {} did not answer within {} s; stopping it",
                    pool.name(),
                    CLAIM_ANSWER.as_secs()
                );
                vm.stop(Duration::from_secs(1)).await?;
            }
            None => {
                let boot = pool::boot_of(&pool).await?;
                NamedVm::start(&state, &name, &boot.config, client(args)).await?;
                break "cold: no VM of the pool was ready";
            }
        }
    };
    // A claimed VM is running already; a failed refill is in its log.
    pool::spawn_refill(&pool)?;
    eprintln!(
        "krunbox: VM {name} is running (from pool {}, {how}, in {:.1} s); \
         `krunbox stop {name}` stops it",
        pool.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
