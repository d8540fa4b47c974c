//! The lab's own evidence, checked for real: the runner reruns a case only
//! on what these sources show (`krunbox_suite::evidence`).

use krunbox::vm::OneShotOutput;
use krunbox_suite::evidence::{EvidenceSources, FaultKind, Watch, KERNEL_LOG};
use krunbox_suite::{in_lab, trial};
use libtest_mimic::{Failed, Trial};

use crate::cases::check;
use crate::support::vm;

/// The case, run only in the lab (ignored elsewhere, where the sources
/// are not the lab kernel's).
pub fn all() -> Vec<Trial> {
    vec![trial(
        "lab::a_guest_triple_fault_is_evidence",
        a_guest_triple_fault_is_evidence,
    )
    .with_ignored_flag(!in_lab())]
}

/// Boots a VM and makes its guest triple-fault: its kernel told to reset
/// that way (`/sys/kernel/reboot/type`), then `reboot -f`.
pub fn triple_fault_a_vm() -> Result<OneShotOutput, krunbox::vm::Error> {
    vm().command([
        "sh",
        "-c",
        "echo triple > /sys/kernel/reboot/type && reboot -f",
    ])
    .output()
}

/// How the suite loses a VM on purpose (`KRUNBOX_VM_TESTS_LOSE_VM_IN`).
pub fn lose_a_vm() -> String {
    format!("{:?}", triple_fault_a_vm())
}

/// In the lab: a guest that triple-faults (its kernel told to reset that
/// way) shows in the lab kernel's KVM trace, and a record a process writes
/// to the kernel log is no evidence.
fn a_guest_triple_fault_is_evidence() -> Result<(), Failed> {
    let sources = EvidenceSources::lab();
    let watch = Watch::start(&sources);
    let records = Watch::start(&sources);
    std::fs::write(
        KERNEL_LOG,
        "watchdog: BUG: soft lockup - CPU#9 stuck (planted by a krunbox test)\n",
    )?;
    let run = triple_fault_a_vm();
    let faults = watch.faults();
    let kinds: Vec<FaultKind> = faults.iter().map(|f| f.kind).collect();
    check(kinds == [FaultKind::TripleFault], || {
        format!("evidence {faults:?}; the VM's run: {run:?}")
    })?;
    let planted = records.kernel_records();
    check(
        planted
            .iter()
            .any(|r| r.contains("planted by a krunbox test")),
        || format!("the planted record was not read back: {planted:?}"),
    )
}
