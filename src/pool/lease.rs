//! [`Lease`]: one VM from a pool, used once.

use std::ops::Deref;
use std::time::Duration;

use crate::vm::Vm;

/// A VM handed out by [`super::Pool::acquire`], its agent ready. It is
/// the lease holder's alone: the pool forgets it, and dropping the lease
/// (or [`Lease::release`]) destroys the VM, so nothing one user left in
/// it reaches the next.
#[derive(Debug)]
pub struct Lease {
    vm: Vm,
    warm: bool,
    waited: Duration,
}

impl Lease {
    pub(super) fn new(vm: Vm, warm: bool, waited: Duration) -> Self {
        Self { vm, warm, waited }
    }

    /// The VM.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// Whether the VM was booted before it was asked for (`false`: the
    /// acquire booted it, cold).
    pub fn warm(&self) -> bool {
        self.warm
    }

    /// How long the acquire took.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Destroys the VM and waits until its runner is gone.
    pub async fn release(self) {
        self.vm.kill().await;
    }

    /// The VM, to keep beyond the lease (it is then the caller's to shut
    /// down; dropping it kills it, as any [`Vm`]).
    pub fn into_vm(self) -> Vm {
        self.vm
    }
}

impl Deref for Lease {
    type Target = Vm;

    fn deref(&self) -> &Vm {
        &self.vm
    }
}
