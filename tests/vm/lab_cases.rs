//! The lab's own evidence, checked for real: the runner reruns a case only
//! on what these sources show (`krunbox_suite::evidence`).

use krunbox::client::GuestCommand;
use krunbox::vm::OneShotOutput;
use krunbox_suite::evidence::{EvidenceSources, FaultKind, Watch, KERNEL_LOG};
use krunbox_suite::{in_lab, trial, vcpus};
use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check};
use crate::support::{agent_vm, vm};

/// The case, run only in the lab (ignored elsewhere, where the sources
/// are not the lab kernel's).
pub fn all() -> Vec<Trial> {
    vec![
        trial(
            "lab::a_guest_triple_fault_is_evidence",
            a_guest_triple_fault_is_evidence,
        )
        .with_ignored_flag(!in_lab()),
        trial(
            "lab::idle_and_busy_guests_are_not_frozen",
            idle_and_busy_guests_are_not_frozen,
        )
        .with_ignored_flag(!in_lab()),
    ]
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

/// In the lab: the vCPU watch that makes a frozen guest evidence
/// (`krunbox_suite::vcpus`) finds nothing in a live VM, idle (its vCPU
/// sleeps) or busy (a guest loop: its vCPU runs and exits for the host's
/// interrupts, which the watch must see, or a busy guest would look
/// frozen).
fn idle_and_busy_guests_are_not_frozen() -> Result<(), Failed> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let vm = agent_vm().boot().await.map_err(chain)?;
        let runner = vm.runner_pid();
        let idle = vcpus::sample();
        let mine = |s: &vcpus::Sample| {
            s.vcpus
                .iter()
                .filter(|v| v.runner == runner)
                .cloned()
                .collect::<Vec<_>>()
        };
        check(!mine(&idle).is_empty() && idle.faults().is_empty(), || {
            format!("idle: {}", idle.describe())
        })?;
        let spin = GuestCommand::new("sh").arg("-c").arg("while :; do :; done");
        let busy_loop = vm.agent().spawn_background(&spin).await.map_err(chain)?;
        let busy = vcpus::sample();
        let exits: usize = mine(&busy).iter().map(|v| v.exit_count()).sum();
        check(busy.faults().is_empty() && exits > 0, || {
            format!("busy: {}", busy.describe())
        })?;
        vm.agent()
            .kill_process(busy_loop.id, libc::SIGKILL)
            .await
            .map_err(chain)?;
        let status = vm
            .shutdown(std::time::Duration::from_secs(30))
            .await
            .map_err(chain)?;
        check(status.success(), || format!("shutdown: {status:?}"))
    })
}
