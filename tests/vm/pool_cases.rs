//! The warm pool on booted VMs: leases are warm, used once and replaced;
//! an idle VM killed from outside is replaced; a burst of acquires on a
//! small pool all get VMs of their own; a dropped boot or pool leaves no
//! runner.

use std::collections::BTreeSet;
use std::time::Duration;

use krunbox::client::GuestCommand;
use krunbox::pool::{Lease, Pool, PoolConfig, PoolStats};
use libtest_mimic::{Failed, Trial};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::runtime::Runtime;

use crate::cases::{chain, check};
use crate::fault_support::{bounded, first_word, wait_until, Leftovers};
use crate::support::agent_vm;
use krunbox_suite::strays::running_vms;
use krunbox_suite::trial;

/// The pool cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial(
            "pool::leases_are_warm_single_use_and_replaced",
            leases_are_warm_single_use_and_replaced,
        ),
        trial(
            "pool::twenty_acquires_at_once_from_three",
            twenty_acquires_at_once_from_three,
        ),
    ]
}

/// Acquires at once in [`twenty_acquires_at_once_from_three`].
const BURST: usize = 20;

/// Boots at once in [`twenty_acquires_at_once_from_three`]: the lab's
/// two emulated CPUs took more than the agent's 60 s hello timeout for
/// one of 4 boots at once, under the burst's execs.
const BURST_BOOTS: usize = 2;

/// A pool of `size` booting at most `max_boots` VMs at once.
fn pool(size: usize, max_boots: usize) -> Result<Pool, Failed> {
    // 128 MiB: the lab holds the pool, the leases and the boots at once.
    PoolConfig::new(agent_vm().memory_mib(128), size)
        .max_boots(max_boots)
        .start()
        .map_err(chain)
}

async fn boot_id(lease: &Lease) -> Result<String, Failed> {
    let out = lease
        .agent()
        .exec(&GuestCommand::new("cat").arg("/proc/sys/kernel/random/boot_id"))
        .await
        .map_err(chain)?;
    check(out.status.success(), || format!("cat boot_id: {out:?}"))?;
    Ok(first_word(&out.stdout))
}

async fn filled(pool: &Pool) -> Result<PoolStats, Failed> {
    bounded("filling the pool", pool.filled())
        .await?
        .map_err(chain)?;
    Ok(pool.stats())
}

/// The VM processes running now, as pids.
fn vm_pids() -> BTreeSet<u32> {
    running_vms(&[])
        .into_iter()
        .filter_map(|(pid, _)| u32::try_from(pid).ok())
        .collect()
}

/// Waits until no VM process runs but those in `allowed`.
async fn only_vms(what: &str, allowed: &BTreeSet<u32>) -> Result<(), Failed> {
    wait_until(what, || vm_pids().is_subset(allowed)).await
}

fn leases_are_warm_single_use_and_replaced() -> Result<(), Failed> {
    Runtime::new()?.block_on(async {
        let before = vm_pids();
        let pool = pool(2, 2)?;
        let stats = filled(&pool).await?;
        let first_idle: BTreeSet<u32> = stats.idle_runners.iter().copied().collect();
        check(first_idle.len() == 2 && stats.idle_resident_bytes > 0, || {
            format!("{stats:?}")
        })?;

        // Two leases: warm, from the idle VMs, different guests.
        let a = bounded("acquire", pool.acquire()).await?.map_err(chain)?;
        let b = bounded("acquire", pool.acquire()).await?.map_err(chain)?;
        check(a.warm() && b.warm(), || "a lease from a full pool was cold".into())?;
        check(
            first_idle.contains(&a.runner_pid()) && first_idle.contains(&b.runner_pid()),
            || format!("leases {} and {} not from {first_idle:?}", a.runner_pid(), b.runner_pid()),
        )?;
        let (id_a, id_b) = (boot_id(&a).await?, boot_id(&b).await?);
        check(id_a != id_b, || format!("two leases share boot id {id_a}"))?;

        // A released lease's VM is gone; the pool boots replacements.
        let a_left = Leftovers::of(&a);
        a.release().await;
        a_left.check_gone().await?;
        let stats = filled(&pool).await?;
        let refilled: BTreeSet<u32> = stats.idle_runners.iter().copied().collect();
        check(refilled.is_disjoint(&first_idle), || {
            format!("a leased VM went back to the pool: {refilled:?} after {first_idle:?}")
        })?;

        // An idle VM killed from outside is noticed and replaced.
        let victim = *refilled.iter().next().expect("two idle VMs");
        kill(Pid::from_raw(victim as i32), Signal::SIGKILL).map_err(chain)?;
        wait_until("the pool noticing its idle VM died", || {
            pool.stats().idle_lost == 1
        })
        .await?;
        let stats = filled(&pool).await?;
        check(!stats.idle_runners.contains(&victim), || format!("{stats:?}"))?;
        let c = bounded("acquire", pool.acquire()).await?.map_err(chain)?;
        check(c.warm(), || "a lease after the refill was cold".into())?;
        let id_c = boot_id(&c).await?;
        check(id_c != id_a && id_c != id_b, || format!("boot id {id_c} served twice"))?;

        // A boot dropped half-way (a caller's timeout) leaves no runner.
        // (The pool full first: no boot of its own under way.)
        filled(&pool).await?;
        let mut allowed = before.clone();
        allowed.extend(pool.stats().idle_runners);
        allowed.extend([b.runner_pid(), c.runner_pid()]);
        let config = agent_vm().memory_mib(128);
        let cut = tokio::time::timeout(Duration::from_millis(300), config.boot()).await;
        check(cut.is_err(), || "the boot finished within 300 ms".into())?;
        only_vms("the dropped boot's runner ending", &allowed).await?;

        // Dropping the pool kills its idle VMs and its boots; leases live on.
        let held: BTreeSet<u32> = [b.runner_pid(), c.runner_pid()].into();
        drop(pool);
        let mut allowed = before.clone();
        allowed.extend(&held);
        only_vms("the dropped pool's VMs ending", &allowed).await?;
        check(boot_id(&b).await? == id_b, || "a lease died with its pool".into())?;
        drop((b, c));
        only_vms("the leases' VMs ending", &before).await?;
        println!("pool: warm leases from distinct VMs, each used once and replaced; a killed idle VM replaced; nothing left");
        Ok(())
    })
}

fn twenty_acquires_at_once_from_three() -> Result<(), Failed> {
    Runtime::new()?.block_on(async {
        let before = vm_pids();
        let pool = std::sync::Arc::new(pool(3, BURST_BOOTS)?);
        filled(&pool).await?;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            let pool = pool.clone();
            set.spawn(async move {
                let lease = pool.acquire().await.map_err(chain)?;
                let id = boot_id(&lease).await?;
                let warm = lease.warm();
                lease.release().await;
                Ok::<_, Failed>((id, warm))
            });
        }
        let mut ids = BTreeSet::new();
        let mut warm = 0;
        while let Some(done) = bounded("the acquires", set.join_next()).await? {
            let (id, was_warm) = done??;
            check(ids.insert(id.clone()), || format!("boot id {id} served twice"))?;
            warm += usize::from(was_warm);
        }
        let stats = pool.stats();
        check(ids.len() == BURST, || format!("{} leases", ids.len()))?;
        check(
            stats.warm_leases + stats.cold_leases == BURST as u64 && (3..BURST).contains(&warm),
            || format!("{warm} warm of {BURST}; {stats:?}"),
        )?;
        let pool = std::sync::Arc::into_inner(pool).ok_or("the pool is still shared")?;
        pool.close().await;
        only_vms("the closed pool's VMs ending", &before).await?;
        println!(
            "pool: {BURST} acquires at once from a pool of 3: {warm} warm, {} cold, no VM served twice",
            BURST - warm
        );
        Ok(())
    })
}
