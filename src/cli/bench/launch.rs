//! The launch case: a VM from a warm pool against a cold boot, each to
//! its first exec, alone and under a burst of acquires.
//!
//! - warm: [`Pool::acquire`] on a full pool, then exec `true`;
//! - cold: boot a VM, then exec `true`;
//! - burst: [`BURST`] acquires at once on a full pool of [`POOL_SIZE`],
//!   each to its first exec (the pool runs dry: the rest boot cold, at
//!   most [`MAX_BOOTS`] at once); once, after the runs, a sample each.
//!
//! The pool is refilled (and waited for) between samples: each warm
//! sample finds it full, as a pool that keeps up with its demand would.

use std::sync::Arc;
use std::time::Instant;

use krunbox::pool::PoolConfig;

use super::error::BenchError;
use super::stats::Figure;
use super::{sh, Ctx};

/// Pool acquire → first exec done, the pool full.
pub const WARM: &str = "launch.warm_first_exec";
/// Boot → first exec done.
pub const COLD: &str = "launch.cold_first_exec";
/// Acquire → first exec done, one of [`BURST`] acquires at once.
pub const BURST_FIRST_EXEC: &str = "launch.burst_first_exec";
/// Samples per run: warm and cold (the burst's come once, at the end).
pub const SAMPLES_PER_RUN: u64 = 2;

/// Acquires at once in the burst.
pub const BURST: usize = 20;
/// The pool's size.
const POOL_SIZE: usize = 3;
/// Boots at once, the refill's and cold acquires' together.
const MAX_BOOTS: usize = 2;

const CASE: &str = "launch";

pub async fn launch(ctx: &mut Ctx) -> Result<(), BenchError> {
    let warm = ctx.figure(Figure::new(WARM, "pool acquire -> first exec (pool full)"));
    let cold = ctx.figure(Figure::new(COLD, "cold boot -> first exec"));
    let burst = ctx.figure(Figure::new(
        BURST_FIRST_EXEC,
        "acquire -> first exec, 20 at once from a pool of 3",
    ));
    let pool = PoolConfig::new(ctx.vm(), POOL_SIZE)
        .max_boots(MAX_BOOTS)
        .start()
        .map_err(BenchError::pool(CASE))?;
    let pool = Arc::new(pool);
    for run in ctx.all_runs() {
        pool.filled().await.map_err(BenchError::pool(CASE))?;
        let t = Instant::now();
        let lease = pool.acquire().await.map_err(BenchError::pool(CASE))?;
        sh(CASE, &lease, "true").await?;
        ctx.sample(run, warm, t.elapsed());
        lease.release().await;

        pool.filled().await.map_err(BenchError::pool(CASE))?;
        let t = Instant::now();
        let vm = ctx.vm().boot().await.map_err(BenchError::vm(CASE))?;
        sh(CASE, &vm, "true").await?;
        ctx.sample(run, cold, t.elapsed());
        vm.kill().await;
    }
    pool.filled().await.map_err(BenchError::pool(CASE))?;
    let mut acquires = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let pool = pool.clone();
        acquires.spawn(async move {
            let t = Instant::now();
            let lease = pool.acquire().await.map_err(BenchError::pool(CASE))?;
            sh(CASE, &lease, "true").await?;
            let took = t.elapsed();
            lease.release().await;
            Ok::<_, BenchError>(took)
        });
    }
    let last_run = ctx.all_runs().end.saturating_sub(1);
    while let Some(done) = acquires.join_next().await {
        let took =
            done.map_err(|e| BenchError::wrong(CASE, format!("an acquire panicked: {e}")))??;
        ctx.sample(last_run, burst, took);
    }
    if let Some(pool) = Arc::into_inner(pool) {
        pool.close().await;
    }
    Ok(())
}
