//! A case, declared alone ([`trial`]) or as one of a fixture's group
//! ([`group_trial`]), and what runs around it: its notes to the host, its
//! reruns on evidence ([`crate::rerun`]), its group's bookkeeping and the
//! sweep of the VMs it left running ([`crate::strays`]).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use libtest_mimic::{Failed, Trial};

use crate::fixture::{self, Resource, Shared};
use crate::rerun::{self, LOSE_VM_VAR};
use crate::{in_lab, notes, run, strays};

/// A case of its own: in the lab, run again under the rerun policy when
/// the lab's emulation lost its VM; the host told when it starts and how
/// it ended, panics included.
pub fn trial(name: &'static str, case: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(name, move || run_case(name, case, &|| Ok(())))
}

/// A case of `fixture`'s group: a [`trial`] that, once its last run ended
/// (passed, failed or panicked), counts itself ended in the group; the
/// last of the group's selected cases tears the fixture down, and fails
/// if that fails.
pub fn group_trial<T: Resource>(
    name: &'static str,
    fixture: &'static Shared<T>,
    case: fn() -> Result<(), Failed>,
) -> Trial {
    fixture.add_member(name);
    Trial::test(name, move || run_case(name, case, &|| fixture.case_ended()))
}

/// Runs `case` (again on evidence, in the lab), then `after` whatever the
/// case did; the case fails if either does.
fn run_case(
    name: &'static str,
    case: fn() -> Result<(), Failed>,
    after: &dyn Fn() -> Result<(), Failed>,
) -> Result<(), Failed> {
    notes::case_started(name);
    let started = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        if !in_lab() {
            return case();
        }
        let settings = run::settings();
        let lose = AtomicBool::new(std::env::var(LOSE_VM_VAR).is_ok_and(|c| c == name));
        rerun::lab_policy(settings.budget).run(name, &|| {
            if lose.swap(false, Ordering::SeqCst) {
                return lose_a_vm(settings.lose_a_vm);
            }
            case()
        })
    }));
    let after = after();
    if run::settings().sweep_strays {
        strays::sweep(name, &fixture::spared_pids());
    }
    let passed = matches!(result, Ok(Ok(()))) && after.is_ok();
    notes::case_ended(name, passed, started.elapsed());
    result
        .unwrap_or_else(|payload| panic::resume_unwind(payload))
        .and(after)
}

/// Loses a VM on purpose, as [`LOSE_VM_VAR`] asks, and fails.
fn lose_a_vm(how: Option<run::LoseAVm>) -> Result<(), Failed> {
    let Some(how) = how else {
        return Err(format!(
            "{LOSE_VM_VAR} names this case, but the suite has no way to lose a VM \
             (Suite::losing_a_vm_with)"
        )
        .into());
    };
    let what = how();
    Err(format!("lost a VM on purpose, as {LOSE_VM_VAR} asks: {what}").into())
}
