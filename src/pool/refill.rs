//! The pool's shared state and its background refill.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio::task::JoinSet;

use super::stats::{resident_bytes, PoolStats};
use super::PoolError;
use crate::vm::{Vm, VmConfig};

/// Failed refill boots in a row after which [`Shared::filled`] gives up.
const FAILURES_TO_GIVE_UP: u32 = 3;

/// The first retry delay after a failed refill boot; it doubles.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The longest retry delay.
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// What the pool's handle, its refill and its boots share.
#[derive(Debug)]
pub(super) struct Shared {
    vm: VmConfig,
    size: usize,
    /// Boot slots: the refill's and cold acquires' boots together.
    slots: Arc<Semaphore>,
    state: Mutex<State>,
    /// An idle VM arrived (acquires waiting for one listen).
    pub(super) arrived: Notify,
    /// The refill should look again: a lease taken, a boot ended, an idle
    /// VM died.
    wake: Notify,
    /// How full the pool is, for [`Shared::filled`].
    fill: watch::Sender<Fill>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    idle: VecDeque<Vm>,
    booting: usize,
    warm_leases: u64,
    cold_leases: u64,
    idle_lost: u64,
    boot_failures: u64,
    /// Failed refill boots in a row, and the last one's causes.
    failing: Option<(u32, String)>,
    /// Refill boots, and the watchers of idle VMs' liveness.
    tasks: JoinSet<()>,
}

#[derive(Debug, Clone, Default)]
struct Fill {
    closed: bool,
    idle: usize,
    failing: Option<(u32, String)>,
}

/// What the refill should do now.
enum Need {
    Boot,
    Nothing,
    Closed,
}

impl Shared {
    pub(super) fn new(vm: VmConfig, size: usize, max_boots: usize) -> Self {
        Self {
            vm,
            size,
            slots: Arc::new(Semaphore::new(max_boots)),
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            wake: Notify::new(),
            fill: watch::Sender::new(Fill::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: &State) {
        self.fill.send_replace(Fill {
            closed: state.closed,
            idle: state.idle.len(),
            failing: state.failing.clone(),
        });
    }

    /// The oldest idle VM still alive, counted as a warm lease.
    pub(super) fn take_idle(&self) -> Result<Option<Vm>, PoolError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PoolError::Closed);
        }
        let vm = loop {
            match state.idle.pop_front() {
                None => return Ok(None),
                Some(vm) if vm.is_running() => break vm,
                Some(_dead) => state.idle_lost += 1,
            }
        };
        state.warm_leases += 1;
        self.publish(&state);
        drop(state);
        self.wake.notify_one();
        Ok(Some(vm))
    }

    /// A boot slot, once one is free.
    pub(super) async fn boot_slot(&self) -> Result<SemaphorePermit<'_>, PoolError> {
        self.slots.acquire().await.map_err(|_| PoolError::Closed)
    }

    /// Boots a VM for an acquire that found none idle (its caller holds a
    /// boot slot), counted as a cold lease.
    pub(super) async fn boot_cold(self: &Arc<Self>) -> Result<Vm, PoolError> {
        let _booting = Booting::start(self)?;
        let vm = self.vm.boot().await.map_err(PoolError::Boot)?;
        let mut state = self.lock();
        if state.closed {
            return Err(PoolError::Closed);
        }
        state.cold_leases += 1;
        Ok(vm)
    }

    /// Waits until `size` VMs are idle.
    pub(super) async fn filled(&self) -> Result<(), PoolError> {
        let mut fill = self.fill.subscribe();
        let fill = fill
            .wait_for(|f| f.closed || f.idle >= self.size || gave_up(&f.failing).is_some())
            .await
            .map_err(|_| PoolError::Closed)?
            .clone();
        if fill.closed {
            Err(PoolError::Closed)
        } else if fill.idle >= self.size {
            Ok(())
        } else {
            let (failures, last) = fill.failing.unwrap_or_default();
            Err(PoolError::Refill { failures, last })
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let state = self.lock();
        let idle_runners: Vec<u32> = state.idle.iter().map(Vm::runner_pid).collect();
        PoolStats {
            size: self.size,
            idle: state.idle.len(),
            booting: state.booting,
            warm_leases: state.warm_leases,
            cold_leases: state.cold_leases,
            idle_lost: state.idle_lost,
            boot_failures: state.boot_failures,
            failing: state.failing.as_ref().map(|(_, last)| last.clone()),
            idle_resident_bytes: idle_runners.iter().filter_map(|&p| resident_bytes(p)).sum(),
            idle_runners,
        }
    }

    /// Closes the pool: no more leases or boots. Returns the idle VMs
    /// and the tasks (boots under way, liveness watchers), aborted; the
    /// caller drops or joins them outside the lock (a dropped boot kills
    /// its runner), and kills the VMs.
    pub(super) fn close_now(&self) -> (Vec<Vm>, JoinSet<()>) {
        let mut state = self.lock();
        state.closed = true;
        let idle = state.idle.drain(..).collect();
        let mut tasks = std::mem::take(&mut state.tasks);
        self.publish(&state);
        drop(state);
        tasks.abort_all();
        self.slots.close();
        self.arrived.notify_waiters();
        (idle, tasks)
    }

    /// [`Shared::close_now`], then waits until the aborted tasks are gone.
    pub(super) async fn close(&self) -> Vec<Vm> {
        let (idle, mut tasks) = self.close_now();
        while tasks.join_next().await.is_some() {}
        idle
    }

    /// Prunes idle VMs that died, and says whether to boot another.
    fn need(&self) -> Need {
        let mut state = self.lock();
        if state.closed {
            return Need::Closed;
        }
        let before = state.idle.len();
        state.idle.retain(Vm::is_running);
        let lost = before - state.idle.len();
        if lost > 0 {
            state.idle_lost += lost as u64;
            self.publish(&state);
        }
        if state.idle.len() + state.booting < self.size {
            Need::Boot
        } else {
            Need::Nothing
        }
    }

    /// The refill's failed boots in a row, and how long to wait before
    /// the next refill boot after them.
    fn retry_delay(&self) -> (u32, Duration) {
        let failures = self.lock().failing.as_ref().map_or(0, |(n, _)| *n);
        if failures == 0 {
            return (0, Duration::ZERO);
        }
        let doubled = FIRST_RETRY.saturating_mul(1 << (failures - 1).min(16));
        (failures, doubled.min(LONGEST_RETRY))
    }

    /// Puts a freshly booted VM in the pool, watching its liveness.
    fn add_idle(self: &Arc<Self>, vm: Vm) {
        let mut state = self.lock();
        if state.closed {
            return; // `vm` is dropped: killed.
        }
        state.failing = None;
        while state.tasks.try_join_next().is_some() {}
        let ended = vm.ended();
        let pool = Arc::downgrade(self);
        state.tasks.spawn(async move {
            ended.await;
            if let Some(pool) = pool.upgrade() {
                pool.wake.notify_one();
            }
        });
        state.idle.push_back(vm);
        self.publish(&state);
        drop(state);
        self.arrived.notify_one();
    }

    fn refill_failed(&self, error: &crate::vm::Error) {
        let mut state = self.lock();
        state.boot_failures += 1;
        let failures = state.failing.as_ref().map_or(0, |(n, _)| *n) + 1;
        state.failing = Some((failures, crate::error_chain(error)));
        self.publish(&state);
    }
}

fn gave_up(failing: &Option<(u32, String)>) -> Option<u32> {
    failing
        .as_ref()
        .map(|(n, _)| *n)
        .filter(|&n| n >= FAILURES_TO_GIVE_UP)
}

/// A boot under way, counted in [`State::booting`] while it lives.
struct Booting(Arc<Shared>);

impl Booting {
    fn start(shared: &Arc<Shared>) -> Result<Self, PoolError> {
        let mut state = shared.lock();
        if state.closed {
            return Err(PoolError::Closed);
        }
        state.booting += 1;
        Ok(Self(shared.clone()))
    }
}

impl Drop for Booting {
    fn drop(&mut self) {
        self.0.lock().booting -= 1;
        self.0.wake.notify_one();
    }
}

/// The refill: keeps `size` VMs idle until the pool closes.
pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        match shared.need() {
            Need::Closed => return,
            Need::Nothing => {
                shared.wake.notified().await;
                continue;
            }
            Need::Boot => {}
        }
        let (failures, delay) = shared.retry_delay();
        tokio::time::sleep(delay).await;
        let Ok(slot) = shared.slots.clone().acquire_owned().await else {
            return;
        };
        // A boot that failed while we waited for the slot sets the delay
        // again; one that ended leaves nothing to boot.
        if shared.retry_delay().0 > failures || !matches!(shared.need(), Need::Boot) {
            continue;
        }
        let Ok(booting) = Booting::start(&shared) else {
            return;
        };
        let task = boot_one(shared.clone(), slot, booting);
        let mut state = shared.lock();
        if state.closed {
            return;
        }
        state.tasks.spawn(task);
    }
}

/// One refill boot: into the pool, or counted as failed.
async fn boot_one(shared: Arc<Shared>, slot: OwnedSemaphorePermit, booting: Booting) {
    let booted = shared.vm.boot().await;
    drop(slot);
    match booted {
        Ok(vm) => shared.add_idle(vm),
        Err(e) => shared.refill_failed(&e),
    }
    // After the VM is counted idle: the refill never sees a gap.
    drop(booting);
}
