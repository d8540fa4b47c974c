//! What a failed case prints about its VM, so that a failure seen once (in
//! CI, say) can be explained without a rerun: whether the runner still
//! runs and how it ended, the tails of its logs, and the machine's state
//! ([`krunbox_suite::post_mortem`]).

use std::future::Future;

use krunbox::vm::Vm;
use krunbox_suite::post_mortem::{machine, tail};
use libtest_mimic::Failed;

/// Runs `body`; on failure adds [`report`] on `vm` to the message.
pub async fn explained<F>(vm: &Vm, body: F) -> Result<(), Failed>
where
    F: Future<Output = Result<(), Failed>>,
{
    explained_all(&[vm], body).await
}

/// Runs `body`; on failure adds a [`report`] on each of `vms`.
pub async fn explained_all<F>(vms: &[&Vm], body: F) -> Result<(), Failed>
where
    F: Future<Output = Result<(), Failed>>,
{
    body.await.map_err(|failed| {
        // Before the caller drops its VMs: a frozen vCPU is evidence only
        // while its runner lives.
        krunbox_suite::vcpus::watch_before_drop();
        let mut message = failed.message().unwrap_or("failed").to_owned();
        for vm in vms {
            message.push('\n');
            message.push_str(&report(vm));
        }
        Failed::from(message)
    })
}

/// The state of `vm` and the tails of its logs, as text.
pub fn report(vm: &Vm) -> String {
    let state = if vm.is_running() {
        format!("runner {} still running", vm.runner_pid())
    } else {
        format!("runner {} exited: {:?}", vm.runner_pid(), vm.exit_status())
    };
    format!(
        "--- post mortem: {state}\n--- runner log {}:\n{}\n--- console log {}:\n{}\n{}",
        vm.runner_log_path().display(),
        tail(vm.runner_log_path()),
        vm.log_path().display(),
        tail(vm.log_path()),
        machine(),
    )
}
