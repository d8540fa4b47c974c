//! A warm pool: VMs of one configuration booted ahead of demand, each
//! handed out once.
//!
//! A cold boot is the floor of every launch (seconds under emulation,
//! hundreds of milliseconds on real KVM), and upstream libkrun has no
//! snapshot or fork. So [`Pool`] keeps `size` VMs booted with their
//! agents ready, and [`Pool::acquire`] hands one out at once:
//!
//! - **one lease per VM**: a [`Lease`] owns its VM; the pool forgets it,
//!   and the VM is destroyed when the lease ends. Nothing a user leaves in
//!   a guest (files, processes, a changed kernel state) reaches the next.
//! - **refill in the background**: each lease taken, and each idle VM that
//!   dies (its liveness is watched, [`Vm::ended`](crate::vm::Vm::ended)), makes a background task
//!   boot a replacement. Boots, the refill's and cold acquires' together,
//!   are bounded by [`PoolConfig::max_boots`]: a burst of acquires on an
//!   empty pool queues for boot slots instead of starting every VM at once.
//! - **cold when empty**: an acquire that finds no idle VM waits for the
//!   first of an idle VM and a free boot slot; with a slot it boots its own
//!   VM (the lease says [`Lease::warm`] `false`).
//! - **nothing left behind**: dropping the pool (or [`Pool::close`], which
//!   also waits) kills every idle VM and every boot under way; a boot
//!   whose future is dropped kills its runner.
//!
//! A refill boot that fails is retried with a growing delay (0.5 s
//! doubling to 30 s) and counted in [`PoolStats`]; [`Pool::filled`] says
//! when the refill keeps failing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use krunbox::client::GuestCommand;
//! use krunbox::pool::PoolConfig;
//! use krunbox::vm::VmConfig;
//!
//! let pool = PoolConfig::new(VmConfig::new("/srv/rootfs"), 3).start()?;
//! pool.filled().await?; // optional: wait until 3 VMs are warm
//! let lease = pool.acquire().await?;
//! let out = lease.agent().exec(&GuestCommand::new("uname")).await?;
//! println!("{} (warm: {})", out.stdout_text(), lease.warm());
//! lease.release().await; // the VM is destroyed; a new one boots
//! # Ok(()) }
//! ```

mod error;
mod lease;
mod refill;
mod stats;

use std::sync::Arc;
use std::time::Instant;

pub use error::PoolError;
pub use lease::Lease;
pub use stats::PoolStats;

use crate::vm::VmConfig;
use refill::Shared;

/// What a pool boots and how many it keeps warm.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    vm: VmConfig,
    size: usize,
    max_boots: usize,
}

impl PoolConfig {
    /// A pool keeping `size` VMs of `vm` idle, booting at most 2 at once.
    pub fn new(vm: VmConfig, size: usize) -> Self {
        Self {
            vm,
            size,
            max_boots: 2,
        }
    }

    /// At most `n` boots at once, the refill's and cold acquires'
    /// together (at least 1).
    pub fn max_boots(mut self, n: usize) -> Self {
        self.max_boots = n;
        self
    }

    /// Checks the configuration and starts the refill on the current tokio
    /// runtime: the pool starts filling at once.
    pub fn start(self) -> Result<Pool, PoolError> {
        self.vm.validate().map_err(PoolError::Config)?;
        if self.max_boots == 0 {
            return Err(PoolError::NoBoots);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(PoolError::NoRuntime)?;
        let shared = Arc::new(Shared::new(self.vm, self.size, self.max_boots));
        let refill = runtime.spawn(refill::run(shared.clone()));
        Ok(Pool { shared, refill })
    }
}

/// VMs of one configuration, booted ahead and handed out once each: see
/// the [module documentation](self).
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
    refill: tokio::task::JoinHandle<()>,
}

impl Pool {
    /// A VM whose agent has said hello: an idle one at once, else the
    /// first of an idle VM and a boot of its own. Each VM serves one lease.
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        let asked = Instant::now();
        loop {
            if let Some(vm) = self.shared.take_idle()? {
                return Ok(Lease::new(vm, true, asked.elapsed()));
            }
            tokio::select! {
                () = self.shared.arrived.notified() => {}
                permit = self.shared.boot_slot() => {
                    let _slot = permit?;
                    // An idle VM may have come while we waited for the slot.
                    if let Some(vm) = self.shared.take_idle()? {
                        return Ok(Lease::new(vm, true, asked.elapsed()));
                    }
                    let vm = self.shared.boot_cold().await?;
                    return Ok(Lease::new(vm, false, asked.elapsed()));
                }
            }
        }
    }

    /// Waits until the pool holds `size` idle VMs; fails when the refill
    /// has failed three boots in a row.
    pub async fn filled(&self) -> Result<(), PoolError> {
        self.shared.filled().await
    }

    /// The pool's state and counters now.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Stops the refill, kills every idle VM and every boot under way, and
    /// waits until their runners are gone. Leases already handed out are
    /// their holders'.
    pub async fn close(self) {
        self.refill.abort();
        for vm in self.shared.close().await {
            vm.kill().await;
        }
    }
}

impl Drop for Pool {
    /// Kills every idle VM and every boot under way, without waiting.
    fn drop(&mut self) {
        self.refill.abort();
        drop(self.shared.close_now());
    }
}
