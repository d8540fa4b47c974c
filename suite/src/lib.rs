//! The runner of krunbox's VM test suite (`tests/vm`): where its cases
//! run, the nested lab's boots, shared VMs, reruns and the last line.
//!
//! The suite's cases boot real libkrun VMs. On a host whose KVM boots
//! them they run in place, in parallel where the harness's
//! `--test-threads` allows. On this project's machines (paravirtual KVM)
//! the test binary boots the nested QEMU lab ([`krunbox_lab`]) once and
//! runs itself inside it. This crate owns everything around the cases, so
//! that the cases themselves only declare what they need and what they
//! check:
//!
//! - [`boots`]: the host side of the lab: boots it, reads its notes,
//!   boots it again for the cases not ended when it dies or hangs;
//! - [`notes`]: the lab side: each case's start and end, a heartbeat, the
//!   reruns, told to the host;
//! - [`evidence`]: what shows that the lab's emulation lost a VM (KVM's
//!   triple-fault exits, the lab kernel's lockups), read by the runner
//!   itself;
//! - [`guest_console`]: the cases' guest consoles, kept past their VMs
//!   and read for a guest kernel that faulted in its own entry code;
//! - [`rerun`]: a failed case runs again only on such evidence, within a
//!   [`Budget`];
//! - [`fixture`]: a VM shared by a group of cases, set up by the first
//!   and torn down after the last, whatever their order or parallelism;
//! - [`strays`]: VMs a case left running, killed after it;
//! - [`post_mortem`]: what the machine looked like when a case failed;
//! - [`audit`]: the seccomp records the lab kernel logged, printed at
//!   the end of a lab run;
//! - [`summary`]: the run's last line, counting reruns and lab reboots
//!   with their evidence.
//!
//! A case is a function; it is declared alone ([`trial`]) or as one of a
//! fixture's group ([`group_trial`]), and [`Suite`] runs them all:
//!
//! ```no_run
//! use krunbox_suite::{group_trial, trial, Failed, Host, LabPlan, Resource, Shared, Suite};
//!
//! struct SharedVm; // a booted VM, in the real suite
//! impl Resource for SharedVm {
//!     fn set_up(_group: &str) -> Result<&'static Self, String> { Ok(&SharedVm) }
//!     fn alive(&self) -> bool { true }
//!     fn tear_down(&'static self, _group: &str) -> Result<(), String> { Ok(()) }
//! }
//! static AGENT: Shared<SharedVm> = Shared::new("agent");
//!
//! fn boots_alone() -> Result<(), Failed> { Ok(()) }
//! fn execs_in_the_shared_vm() -> Result<(), Failed> {
//!     let _vm = AGENT.get()?;
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let cases = vec![
//!         trial("vm::boots_alone", boots_alone),
//!         group_trial("agent::execs", &AGENT, execs_in_the_shared_vm),
//!     ];
//!     let plan = LabPlan::new(std::env::temp_dir());
//!     Suite::new(cases, plan).run(Host::Paravirtual)
//! }
//! ```

pub mod audit;
pub mod boots;
mod case;
pub mod evidence;
pub mod fixture;
pub mod guest_console;
pub mod notes;
pub mod post_mortem;
mod procfs;
pub mod rerun;
mod run;
pub mod strays;
pub mod summary;
pub mod vcpus;

pub use case::{group_trial, trial};
pub use fixture::{Resource, Shared};
pub use libtest_mimic::{Failed, Trial};
pub use rerun::Budget;
pub use run::{Arguments, Host, LabPlan, Suite};

/// How the suite names itself in what it prints.
pub const SUITE: &str = "krunbox vm tests";

/// Whether this process runs inside the nested lab (its init sets
/// `KRUNBOX_LAB=1`).
pub fn in_lab() -> bool {
    std::env::var_os("KRUNBOX_LAB").is_some_and(|v| v == "1")
}

/// `err` and its causes, joined by ": ".
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
